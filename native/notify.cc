// sendUnixDatagram(path, data): socket(AF_UNIX, SOCK_DGRAM) + sendto + close. A path starting
// with '@' names the abstract namespace (as systemd writes NOTIFY_SOCKET). No policy here: the
// message format and when to send are lib/vmm/systemd-notify.ts's.
#include "notify.h"

#include <sys/socket.h>
#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"

namespace nodebao {
namespace {

Napi::Value SendUnixDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBuffer()) {
    throw Napi::TypeError::New(env, "sendUnixDatagram(path: string, data: Buffer)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto data = info[1].As<Napi::Buffer<uint8_t>>();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    throw Napi::RangeError::New(env, "unix socket path is empty or longer than 107 bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", path.c_str());
  ssize_t n = sendto(fd, data.Data(), data.Length(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  int err = errno;
  close(fd);
  if (n < 0) ThrowErrno(env, err, "sendto", path.c_str());
  return Napi::Number::New(env, static_cast<double>(n));
}

// The fd store's transport (sd_pid_notify_with_fds): the same datagram with descriptors as
// SCM_RIGHTS. systemd takes at most a few hundred per message; node-bao sends one per message so
// that each carries its own FDNAME.
constexpr size_t kMaxDatagramFds = 32;

Napi::Value SendUnixDatagramFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBuffer() || !info[2].IsArray()) {
    throw Napi::TypeError::New(env, "sendUnixDatagramFds(path: string, data: Buffer, fds: number[])");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto data = info[1].As<Napi::Buffer<uint8_t>>();
  Napi::Array arr = info[2].As<Napi::Array>();
  if (arr.Length() > kMaxDatagramFds) throw Napi::RangeError::New(env, "too many fds for one datagram");
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0) throw Napi::TypeError::New(env, "fds must be descriptors");
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    throw Napi::RangeError::New(env, "unix socket path is empty or longer than 107 bytes");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  iovec iov{data.Data(), data.Length()};
  msghdr msg{};
  msg.msg_name = &addr;
  msg.msg_namelen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDatagramFds)];
  if (!fds.empty()) {
    size_t len = sizeof(int) * fds.size();
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(len);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(len);
    std::memcpy(CMSG_DATA(c), fds.data(), len);
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, errno, "socket", path.c_str());
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) ThrowErrno(env, err, "sendmsg", path.c_str());
  return Napi::Number::New(env, static_cast<double>(n));
}

// setCloexec(fd): FD_CLOEXEC on a descriptor received at exec (LISTEN_FDS starts at 3 without
// it, and sd_listen_fds(3) sets it so that children do not inherit the device models' fds).
Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) ThrowErrno(env, errno, "fcntl(F_SETFD)");
  return env.Undefined();
}

}  // namespace

void InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("sendUnixDatagram", Napi::Function::New(env, SendUnixDatagram, "sendUnixDatagram"));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexec, "setCloexec"));
  exports.Set("sendUnixDatagramFds", Napi::Function::New(env, SendUnixDatagramFds, "sendUnixDatagramFds"));
}

}  // namespace nodebao
