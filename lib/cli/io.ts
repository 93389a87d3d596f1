// What CLI handlers write to, injected so tests capture it (STYLE.md guideline 13).

export interface Output {
  write(text: string): unknown;
}

/** Print one JSON document; bigints become hex strings (addresses) so JSON.stringify accepts them. */
export function writeJson(out: Output, value: unknown): void {
  out.write(`${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)}\n`);
}

export function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}
