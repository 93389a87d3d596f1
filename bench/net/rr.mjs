// Request/response rate for bench/net (the guest job runs it in a network namespace):
//   node rr.mjs serve <ip> <port>          echoes every byte back, forever (stopped with SIGTERM)
//   node rr.mjs run <ip> <port> <seconds>  one byte out, one byte back, as fast as it goes;
//                                          prints "transactions <n> seconds <s> rate <n/s>"
// Node's own cost per transaction is the same on every path measured, so the ratio between
// paths is the device's.
import * as net from 'node:net';

const [mode, host, portText, secondsText] = process.argv.slice(2);
const port = Number(portText);

if (mode === 'serve') {
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
  });
  server.listen(port, host, () => console.log('listening'));
} else if (mode === 'run') {
  const seconds = Number(secondsText);
  const connect = (left) => {
    const s = net.connect(port, host);
    s.once('error', (err) => {
      if (left > 0 && err.code === 'ECONNREFUSED') setTimeout(() => connect(left - 1), 200);
      else {
        console.error(String(err));
        process.exit(1);
      }
    });
    s.once('connect', () => {
      s.setNoDelay(true);
      let n = 0;
      const start = process.hrtime.bigint();
      const end = start + BigInt(Math.round(seconds * 1e9));
      const one = Buffer.from([0x2a]);
      s.on('data', () => {
        n += 1;
        if (process.hrtime.bigint() < end) s.write(one);
        else {
          const s_ = Number(process.hrtime.bigint() - start) / 1e9;
          console.log(`transactions ${n} seconds ${s_.toFixed(2)} rate ${(n / s_).toFixed(0)}`);
          s.destroy();
        }
      });
      s.write(one);
    });
  };
  connect(50);
} else {
  console.error('usage: rr.mjs serve <ip> <port> | run <ip> <port> <seconds>');
  process.exit(2);
}
