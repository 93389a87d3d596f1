// bao-vsock: the smallest AF_VSOCK client and server, for the vhost-vsock tests in the guest
// (busybox has no vsock applet and node no AF_VSOCK).
//   bao-vsock listen <port>        accept one connection; copy it to stdout until EOF, then
//                                  send back "<byte count>\n" and the file named by $REPLY_FILE
//   bao-vsock connect <cid> <port> send stdin, shut down the write side, copy the reply to stdout
// Either gives up (SIGALRM, exit status 142) after $BAO_VSOCK_TIMEOUT seconds (default 120): a
// connection the transport lost must fail the test, not hang it.
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int copy(int from, int to, long *count) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0) return -1;
    if (n == 0) return 0;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(to, buf + off, (size_t)(n - off));
      if (w < 0) return -1;
      off += w;
    }
    if (count) *count += n;
  }
}

int main(int argc, char **argv) {
  const char *limit = getenv("BAO_VSOCK_TIMEOUT");
  alarm(limit ? (unsigned)atoi(limit) : 120);
  if (argc >= 3 && strcmp(argv[1], "listen") == 0) {
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = (unsigned)atoi(argv[2])};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) { perror("listen"); return 1; }
    fprintf(stderr, "listening\n");
    int c = accept(s, NULL, NULL);
    if (c < 0) { perror("accept"); return 1; }
    long got = 0;
    if (copy(c, 1, &got)) { perror("read"); return 1; }
    char line[64];
    int n = snprintf(line, sizeof line, "%ld\n", got);
    if (write(c, line, (size_t)n) != n) { perror("write"); return 1; }
    const char *reply = getenv("REPLY_FILE");
    if (reply) {
      FILE *f = fopen(reply, "r");
      if (!f || copy(fileno(f), c, NULL)) { perror("reply"); return 1; }
      fclose(f);
    }
    close(c);
    return 0;
  }
  if (argc >= 4 && strcmp(argv[1], "connect") == 0) {
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = (unsigned)strtoul(argv[2], NULL, 0), .svm_port = (unsigned)atoi(argv[3])};
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    if (copy(0, s, NULL)) { perror("send"); return 1; }
    shutdown(s, SHUT_WR);
    if (copy(s, 1, NULL)) { perror("receive"); return 1; }
    return 0;
  }
  fprintf(stderr, "usage: bao-vsock listen <port> | connect <cid> <port>\n");
  return 2;
}
