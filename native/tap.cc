// TAP interfaces for virtio-net and vhost-net: open /dev/net/tun as a tap with a vnet header,
// set the header size and the offloads, and move frames with readv/writev whose iovecs point
// straight into JS views (the guest's buffers in the shared mapping, so nothing is copied).
// No virtio knowledge and no policy: which flags and sizes to use is decided in lib/.
//
// The iovecs come either from an array of views, or (the per-frame path) from (offset, length)
// pairs into one view of the mapping, which costs two N-API calls for the whole vector.
//
// Readiness: reads and writes are non-blocking. EAGAIN is not an exception (it is the normal end
// of every drain): readv/writev return -1 for it, and the caller waits for the poller.
#include "tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <climits>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"
#include "iovecs.h"

namespace nodebao {

namespace {

constexpr const char* kTunPath = "/dev/net/tun";

// tapOpen(name, multiQueue) -> { fd, name }: TUNSETIFF with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR (and
// IFF_MULTI_QUEUE). An existing tap is attached; a missing name creates a tap that lives as long
// as its fds (whether that is allowed is the caller's decision, made before calling).
Napi::Value TapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name.size() >= IFNAMSIZ) throw Napi::RangeError::New(env, "interface name longer than 15 bytes");
  bool multiQueue = info.Length() > 1 && info[1].ToBoolean().Value();
  int fd = open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "open", kTunPath);
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multiQueue ? IFF_MULTI_QUEUE : 0);
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, "ioctl TUNSETIFF", name.c_str());
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", Napi::Number::New(env, fd));
  o.Set("name", Napi::String::New(env, ifr.ifr_name));
  return o;
}

// tapSetVnetHdrSize(fd, size): TUNSETVNETHDRSZ.
Napi::Value TapSetVnetHdrSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  int size = ArgInt(info, 1, "size");
  if (ioctl(fd, TUNSETVNETHDRSZ, &size) != 0) ThrowErrno(env, errno, "ioctl TUNSETVNETHDRSZ");
  return env.Undefined();
}

// TUNSETOFFLOAD (TUN_F_* bits); 0 or the errno.
int SetOffload(int fd, uint32_t flags) {
  return ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(flags)) == 0 ? 0 : errno;
}

// The ioctl on the libuv thread pool: it takes the kernel's rtnl lock, and a frontend of the same
// kernel may hold rtnl while it waits for this process (virtio_net's probe and control
// commands), so the event loop must never wait for rtnl itself.
class SetOffloadWorker : public Napi::AsyncWorker {
 public:
  SetOffloadWorker(Napi::Function cb, int fd, uint32_t flags) : Napi::AsyncWorker(cb, "bao:tap-offload"), fd_(fd), flags_(flags) {}
  void Execute() override { err_ = SetOffload(fd_, flags_); }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Callback().Call({err_ == 0 ? env.Null() : ErrnoError(env, err_, "ioctl TUNSETOFFLOAD").Value()});
  }

 private:
  int fd_;
  uint32_t flags_;
  int err_ = 0;
};

// tapSetOffload(fd, flags[, callback(err|null)]): with a callback on the thread pool (see
// SetOffloadWorker), without one at once (only before any frontend is served: at start-up).
Napi::Value TapSetOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t flags = ArgU32(info, 1, "flags");
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    (new SetOffloadWorker(info[2].As<Napi::Function>(), fd, flags))->Queue();
    return env.Undefined();
  }
  int err = SetOffload(fd, flags);
  if (err != 0) ThrowErrno(env, err, "ioctl TUNSETOFFLOAD");
  return env.Undefined();
}

// One readv or writev with `iov`, retried on EINTR: the bytes moved, or -1 when the fd is not
// ready (EAGAIN); any other error is thrown with its errno name.
using VectorOp = ssize_t (*)(int, const struct iovec*, int);

Napi::Value VectorIo(Napi::Env env, int fd, VectorOp op, const std::vector<struct iovec>& iov, const char* what) {
  ssize_t n;
  do {
    n = op(fd, iov.data(), static_cast<int>(iov.size()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    ThrowErrno(env, errno, what);
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// (fd, buffers): an array of views.
Napi::Value ViewsIo(const Napi::CallbackInfo& info, VectorOp op, const char* what) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  std::vector<struct iovec> iov;
  CollectIovecs(env, info.Length() > 1 ? info[1] : env.Undefined(), iov, "buffers");
  return VectorIo(env, fd, op, iov, what);
}

// (fd, region, spans, count): ranges of one view. Called per frame: the vector is reused.
Napi::Value SpansIo(const Napi::CallbackInfo& info, VectorOp op, const char* what) {
  static thread_local std::vector<struct iovec> iov;
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (info.Length() < 4) throw Napi::TypeError::New(env, "needs (fd, region, spans, count)");
  CollectSpans(env, info[1], info[2], ArgU32(info, 3, "count"), iov);
  return VectorIo(info.Env(), fd, op, iov, what);
}

// readv(fd, buffers): one frame into the views (a tap: its full length, even beyond them), or -1.
Napi::Value Readv(const Napi::CallbackInfo& info) { return ViewsIo(info, ::readv, "readv"); }
// writev(fd, buffers): one frame from the views, or -1 when the tap cannot take it now.
Napi::Value Writev(const Napi::CallbackInfo& info) { return ViewsIo(info, ::writev, "writev"); }
// readvSpans(fd, region, spans, count) and writevSpans(...): the same over ranges of `region`.
Napi::Value ReadvSpans(const Napi::CallbackInfo& info) { return SpansIo(info, ::readv, "readv"); }
Napi::Value WritevSpans(const Napi::CallbackInfo& info) { return SpansIo(info, ::writev, "writev"); }

}  // namespace

void InitTap(Napi::Env env, Napi::Object exports) {
  exports.Set("tapOpen", Napi::Function::New(env, TapOpen, "tapOpen"));
  exports.Set("tapSetVnetHdrSize", Napi::Function::New(env, TapSetVnetHdrSize, "tapSetVnetHdrSize"));
  exports.Set("tapSetOffload", Napi::Function::New(env, TapSetOffload, "tapSetOffload"));
  exports.Set("readv", Napi::Function::New(env, Readv, "readv"));
  exports.Set("writev", Napi::Function::New(env, Writev, "writev"));
  exports.Set("readvSpans", Napi::Function::New(env, ReadvSpans, "readvSpans"));
  exports.Set("writevSpans", Napi::Function::New(env, WritevSpans, "writevSpans"));
  Napi::Object c = exports.Get("constants").As<Napi::Object>();
  c.Set("TUN_F_CSUM", Napi::Number::New(env, TUN_F_CSUM));
  c.Set("TUN_F_TSO4", Napi::Number::New(env, TUN_F_TSO4));
  c.Set("TUN_F_TSO6", Napi::Number::New(env, TUN_F_TSO6));
  c.Set("TUN_F_TSO_ECN", Napi::Number::New(env, TUN_F_TSO_ECN));
  c.Set("TUN_F_UFO", Napi::Number::New(env, TUN_F_UFO));
}

}  // namespace nodebao
