// vhostIoctl(fd, request, bytes?) -> the ioctl's result: the kernel vhost ioctls (type 0xAF),
// their argument struct laid out in TypeScript (lib/vhost/kernel/uapi.ts) and passed by
// pointer. Only vhost requests are accepted, and the buffer must hold at least the size the
// request number encodes (SET_MEM_TABLE's regions follow its 8-byte header), so this cannot be
// turned into a general ioctl(2).
#include "vhost.h"

#include <sys/ioctl.h>

#include <cerrno>

#include "errors.h"

namespace nodebao {

namespace {

constexpr unsigned kVhostType = 0xAF;

Napi::Value VhostIoctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint32_t request = ArgU32(info, 1, "request");
  if (_IOC_TYPE(request) != kVhostType) throw Napi::RangeError::New(env, "not a vhost ioctl request");
  void* arg = nullptr;
  size_t len = 0;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsTypedArray()) throw Napi::TypeError::New(env, "bytes must be a Uint8Array");
    Napi::Uint8Array bytes = info[2].As<Napi::Uint8Array>();
    arg = bytes.Data();
    len = bytes.ByteLength();
  }
  if (len < _IOC_SIZE(request)) throw Napi::RangeError::New(env, "argument buffer smaller than the request's struct");
  int r;
  do {
    r = ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(env, errno, "ioctl vhost");
  return Napi::Number::New(env, r);
}

}  // namespace

void InitVhost(Napi::Env env, Napi::Object exports) {
  exports.Set("vhostIoctl", Napi::Function::New(env, VhostIoctl, "vhostIoctl"));
}

}  // namespace nodebao
