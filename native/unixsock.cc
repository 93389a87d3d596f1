// Unix stream sockets that carry file descriptors (SCM_RIGHTS). Node's net module can neither
// send nor receive descriptors on a stream socket (only child_process IPC can), and vhost-user
// passes the memory fd and every kick/call eventfd that way. Thin: connect, socketpair, one
// sendmsg and one recvmsg, all non-blocking; framing and polling stay in TypeScript.
#include "unixsock.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "errors.h"

namespace nodebao {

namespace {

// The kernel's SCM_MAX_FD is 253; vhost-user sends at most 8 (VHOST_MEMORY_BASELINE_NREGIONS).
constexpr size_t kMaxFds = 32;

// unixConnect(path) -> fd: connected, non-blocking, close-on-exec. connect() on a unix stream
// socket completes at once (or fails with ENOENT/ECONNREFUSED); it waits only for a full backlog,
// so the socket is made non-blocking first and EAGAIN is reported as it is.
Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    throw Napi::RangeError::New(env, "unix socket path must be 1.." + std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "connect", path.c_str());
  }
  return Napi::Number::New(env, fd);
}

// socketPair() -> [fd, fd]: a connected AF_UNIX stream pair, both non-blocking, close-on-exec.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) ThrowErrno(env, errno, "socketpair");
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, sv[0]));
  a.Set(1u, Napi::Number::New(env, sv[1]));
  return a;
}

// sendFds(fd, bytes: Uint8Array, fds: number[]) -> bytes sent. One sendmsg, MSG_NOSIGNAL (a
// closed peer is EPIPE, not a signal), MSG_DONTWAIT; the fds ride with the first byte.
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (info.Length() < 2 || !info[1].IsTypedArray()) throw Napi::TypeError::New(env, "bytes must be a Uint8Array");
  Napi::Uint8Array bytes = info[1].As<Napi::Uint8Array>();
  std::vector<int> fds;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsArray()) throw Napi::TypeError::New(env, "fds must be an array of fds");
    Napi::Array arr = info[2].As<Napi::Array>();
    if (arr.Length() > kMaxFds) throw Napi::RangeError::New(env, "too many fds");
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsNumber()) throw Napi::TypeError::New(env, "fds must be numbers");
      int32_t f = v.As<Napi::Number>().Int32Value();
      if (f < 0) throw Napi::RangeError::New(env, "fds must be valid descriptors");
      fds.push_back(f);
    }
  }
  struct iovec iov = {bytes.Data(), bytes.ByteLength()};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    size_t len = sizeof(int) * fds.size();
    memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(len);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), fds.data(), len);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "sendmsg");
  return Napi::Number::New(env, static_cast<double>(n));
}

// recvFds(fd, into: Uint8Array) -> {bytes, fds}: one recvmsg, MSG_DONTWAIT, received fds
// close-on-exec. bytes 0 = the peer closed. EAGAIN is thrown (code 'EAGAIN') for the caller to
// take as "nothing yet". A truncated control message (MSG_CTRUNC) means fds were dropped.
Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (info.Length() < 2 || !info[1].IsTypedArray()) throw Napi::TypeError::New(env, "into must be a Uint8Array");
  Napi::Uint8Array into = info[1].As<Napi::Uint8Array>();
  struct iovec iov = {into.Data(), into.ByteLength()};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(env, errno, "recvmsg");
  Napi::Array fds = Napi::Array::New(env);
  uint32_t count = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* p = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < k; i++) fds.Set(count++, Napi::Number::New(env, p[i]));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(n)));
  o.Set("fds", fds);
  o.Set("truncated", Napi::Boolean::New(env, (msg.msg_flags & MSG_CTRUNC) != 0));
  return o;
}

// Fills a sockaddr_un from a path ('@name': abstract namespace); returns its length.
socklen_t UnixAddress(Napi::Env env, const std::string& path, struct sockaddr_un* addr) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr->sun_path) {
    throw Napi::RangeError::New(env, "unix socket path must be 1.." + std::to_string(sizeof addr->sun_path - 1) + " bytes");
  }
  memcpy(addr->sun_path, path.data(), path.size());
  if (path[0] == '@') addr->sun_path[0] = '\0';
  return static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size());
}

// unixListen(path, backlog) -> fd: a bound, listening AF_UNIX stream socket, non-blocking,
// close-on-exec (a net.Server's accepted sockets cannot carry fds; this one's can, via
// unixAccept + sendFds/recvFds). The caller removes a stale path and sets its permissions.
Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int backlog = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 4;
  struct sockaddr_un addr;
  socklen_t len = UnixAddress(env, path, &addr);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), len) != 0 || listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "bind/listen", path.c_str());
  }
  return Napi::Number::New(env, fd);
}

// unixAccept(fd) -> fd: one accept4, non-blocking and close-on-exec; EAGAIN is thrown when no
// connection waits (poll the listening fd for readability).
Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int c;
  do {
    c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  } while (c < 0 && errno == EINTR);
  if (c < 0) ThrowErrno(env, errno, "accept4");
  return Napi::Number::New(env, c);
}

// unixDatagramBind(path) -> fd: a bound AF_UNIX datagram socket, non-blocking, close-on-exec: the
// receiving end of a notify socket (what a supervisor binds as NOTIFY_SOCKET); read it with recvFds.
Napi::Value UnixDatagramBind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct sockaddr_un addr;
  socklen_t len = UnixAddress(env, path, &addr);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket");
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), len) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "bind", path.c_str());
  }
  return Napi::Number::New(env, fd);
}

// mappingAddress(arrayBuffer) -> bigint: the process address of an mmap'ed ArrayBuffer, for the
// kernel vhost memory table (its userspace_addr); never dereferenced here.
Napi::Value MappingAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "mappingAddress takes an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) throw Napi::TypeError::New(env, "the mapping is unmapped");
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ab.Data())));
}

}  // namespace

void InitUnixSock(Napi::Env env, Napi::Object exports) {
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair, "socketPair"));
  exports.Set("sendFds", Napi::Function::New(env, SendFds, "sendFds"));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds, "recvFds"));
  exports.Set("mappingAddress", Napi::Function::New(env, MappingAddress, "mappingAddress"));
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept, "unixAccept"));
  exports.Set("unixDatagramBind", Napi::Function::New(env, UnixDatagramBind, "unixDatagramBind"));
}

}  // namespace nodebao
