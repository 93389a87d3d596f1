// bench/perf-resolve.mjs <binary>: reads perf report lines on stdin and names the addresses perf
// left raw in <binary> (in the guest, perf does not resolve the embedded V8 builtins of node; the
// guest runs the host's node, so the host's copy names them). perf prints such an address as a
// file offset: it is mapped to a virtual address through the binary's program headers, then to
// the nearest symbol below it (nm).
import { execFileSync } from 'node:child_process';
import * as readline from 'node:readline';

const binary = process.argv[2] ?? process.execPath;
const loads = execFileSync('readelf', ['-lW', binary], { encoding: 'utf8' })
  .split('\n')
  .filter((l) => /^\s*LOAD\s/.test(l))
  .map((l) => {
    const [, off, vaddr, , filesz] = l.trim().split(/\s+/);
    return { off: Number(off), vaddr: Number(vaddr), size: Number(filesz) };
  });
const symbols = execFileSync('nm', ['-C', '--defined-only', binary], { encoding: 'utf8', maxBuffer: 1 << 28 })
  .split('\n')
  .map((l) => /^([0-9a-f]+) [tTwW] (.*)$/.exec(l))
  .filter((m) => m !== null)
  .map((m) => ({ at: Number.parseInt(m[1], 16), name: m[2] }))
  .sort((a, b) => a.at - b.at);

function name(offset) {
  const seg = loads.find((s) => offset >= s.off && offset < s.off + s.size);
  if (seg === undefined) return undefined;
  const va = offset - seg.off + seg.vaddr;
  let lo = 0;
  let hi = symbols.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (symbols[mid].at <= va) lo = mid;
    else hi = mid - 1;
  }
  return symbols[lo]?.at <= va ? symbols[lo].name : undefined;
}

for await (const line of readline.createInterface({ input: process.stdin })) {
  // "<command> node [.] 0x..." (sorted by command, object, symbol), or "% [.] 0x..." where the
  // report was limited to node's object and prints no object column.
  console.log(line.replace(/(\snode\s+\[\.\]\s+|%\s+\[\.\]\s+)0x([0-9a-f]+)/, (all, pre, hex) => {
    const n = name(Number.parseInt(hex, 16));
    return n === undefined ? all : `${pre}${n.slice(0, 90)}`;
  }));
}
