// One end of a TCP transfer for test/qemu/net.test.ts, run inside a network namespace:
//   node net-transfer.mjs listen <ip> <port> <MiB to send> <seed>
//   node net-transfer.mjs connect <ip> <port> <MiB to send> <seed>
// Each end sends <MiB> of a deterministic stream (numbered 1 MiB blocks derived from <seed>)
// and hashes everything it receives until the peer closes; prints one JSON line
// {sent, received, sha256} and exits. The test computes the expected hash itself.
import { createHash } from 'node:crypto';
import * as net from 'node:net';

const [mode, host, portText, mibText, seed] = process.argv.slice(2);
const port = Number(portText);
const mib = Number(mibText);

export function block(seedText, i) {
  const out = Buffer.alloc(1 << 20);
  let at = 0;
  let counter = 0;
  while (at < out.length) {
    const h = createHash('sha256').update(`${seedText}:${i}:${counter++}`).digest();
    at += h.copy(out, at);
  }
  return out;
}

function run(socket) {
  const hash = createHash('sha256');
  let received = 0;
  let sent = 0;
  socket.on('data', (d) => {
    hash.update(d);
    received += d.length;
  });
  const base = block(seed, 0);
  let i = 0;
  const pump = () => {
    while (i < mib) {
      const b = Buffer.from(base);
      b.writeUInt32LE(i, 0); // numbered blocks: loss, duplication or reordering changes the hash
      i += 1;
      sent += b.length;
      if (!socket.write(b)) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  pump();
  socket.on('end', () => {});
  socket.on('close', () => {
    console.log(JSON.stringify({ sent, received, sha256: hash.digest('hex') }));
    process.exit(0);
  });
  socket.on('error', (e) => {
    console.error(String(e));
    process.exit(1);
  });
}

if (mode === 'listen') {
  // allowHalfOpen: the end that finishes sending first must still receive the other's stream
  // (by default Node ends a socket's own side when the peer's FIN arrives).
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    server.close();
    run(socket);
  });
  server.listen(port, host, () => console.error('listening'));
} else {
  // The listener runs in another process that may not be listening yet on a loaded machine:
  // retry a refused connection for up to 60 s rather than fail the transfer.
  const deadline = Date.now() + 60_000;
  const attempt = () => {
    const socket = net.connect({ port, host, allowHalfOpen: true }, () => {
      socket.removeListener('error', refused);
      run(socket);
    });
    const refused = (e) => {
      if (e.code === 'ECONNREFUSED' && Date.now() < deadline) setTimeout(attempt, 200);
      else {
        console.error(String(e));
        process.exit(1);
      }
    };
    socket.once('error', refused);
  };
  attempt();
}
