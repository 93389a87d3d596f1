const mods = process.argv.slice(2);
let t = process.hrtime.bigint();
for (const m of mods) { await import(m); const n = process.hrtime.bigint(); console.log(m.padEnd(50), (Number(n - t) / 1e6).toFixed(0), 'ms'); t = n; }
