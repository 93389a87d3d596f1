// The typed Bao ioctls (spec §3.4, §8). Revision-dependent numbers come from bao_uapi.h, selected
// by the revision argument that lib/dispatcher passes; nothing here interprets requests.
#include "ioctls.h"

#include <sys/ioctl.h>
#include <cerrno>

#include "bao_uapi.h"
#include "errors.h"

namespace nodebao {

using namespace uapi;

namespace {

int Ioctl(int fd, unsigned long request, void* arg) {
  int ret;
  do {
    ret = ioctl(fd, request, arg);
  } while (ret < 0 && errno == EINTR);
  return ret;
}

const DmIoctls& ArgRevision(const Napi::CallbackInfo& info, size_t i) {
  const DmIoctls* table = DmIoctlsFor(ArgInt(info, i, "revision"));
  if (table == nullptr) throw Napi::RangeError::New(info.Env(), "revision must be 0 (primary), 1 (revA) or 2 (revB)");
  return *table;
}

Napi::Object InfoObject(Napi::Env env, uint32_t id, uint64_t addr, uint64_t size, uint32_t irq) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", Napi::Number::New(env, id));
  o.Set("shmemAddr", Napi::BigInt::New(env, addr));
  o.Set("shmemSize", Napi::BigInt::New(env, size));
  o.Set("irq", Napi::Number::New(env, irq));
  return o;
}

// dmGetInfo(fd, id) -> {id, shmemAddr, shmemSize, irq, fd}. Primary ABI, on /dev/bao-io-dispatcher.
// Success is any return >= 0 (OOT returns 1); a negative fd field is the driver failing to create
// the DM fd although the ioctl succeeded (§3.4).
Napi::Value DmGetInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  DmInfo di{};
  di.id = ArgU32(info, 1, "id");
  di.fd = -1;
  if (Ioctl(fd, NB_IOCTL_DM_GET_INFO, &di) < 0) ThrowErrno(env, errno, "ioctl(BAO_IOCTL_DM_GET_INFO)");
  if (di.fd < 0) ThrowErrno(env, -di.fd, "ioctl(BAO_IOCTL_DM_GET_INFO)");
  Napi::Object o = InfoObject(env, di.id, di.shmem_addr, di.shmem_size, di.irq);
  o.Set("fd", Napi::Number::New(env, di.fd));
  return o;
}

// dmGetInfoRevA(fd, id) -> {id, shmemAddr, shmemSize, irq}, on /dev/bao-dm<N>.
Napi::Value DmGetInfoRevA(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  DmInfoRevA di{};
  di.id = ArgU32(info, 1, "id");
  if (Ioctl(fd, NB_REVA_IOCTL_DM_GET_INFO, &di) < 0) ThrowErrno(env, errno, "ioctl(BAO_IOCTL_DM_GET_INFO)");
  return InfoObject(env, di.id, di.shmem_addr, di.shmem_size, di.irq);
}

// createDm(fd, id, shmemAddr, shmemSize, irq) -> DM fd (the ioctl's return value), on /dev/bao.
Napi::Value CreateDm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  DmInfoRevB di{};
  di.id = ArgU32(info, 1, "id");
  di.shmem_addr = ArgU64(info, 2, "shmemAddr");
  di.shmem_size = ArgU64(info, 3, "shmemSize");
  di.irq = ArgU32(info, 4, "irq");
  int dmFd = Ioctl(fd, NB_REVB_IOCTL_CREATE_DM, &di);
  if (dmFd < 0) ThrowErrno(env, errno, "ioctl(BAO_IOCTL_CREATE_DM)");
  return Napi::Number::New(env, dmFd);
}

// dmGetInfoRevB(dmFd) -> {id, shmemAddr, shmemSize, irq}, on a DM fd from createDm.
Napi::Value DmGetInfoRevB(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  DmInfoRevB di{};
  if (Ioctl(fd, NB_REVB_IOCTL_DM_GET_INFO, &di) < 0) ThrowErrno(env, errno, "ioctl(BAO_IOCTL_DM_GET_INFO)");
  return InfoObject(env, di.id, di.shmem_addr, di.shmem_size, di.irq);
}

// complete(fd, revision, dmId, addr, op, value, accessWidth, requestId). The hot path: plain
// arguments, no object to unpack. The driver passes the hypervisor status through (§3.4): a raw
// negative status comes back as errno EPERM (-1) / ESRCH (-3), v1 maps failures to EIO, OOT on
// RISC-V may return it positive. Those are the hypervisor refusing the completion, reported as
// code BAO_COMPLETE_REJECTED with `status`; other errnos (ENOTTY, EBADF...) are plain syscall errors.
Napi::Value Complete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  const DmIoctls& rev = ArgRevision(info, 1);
  VirtioRequest req{};
  req.dm_id = ArgU64(info, 2, "dmId");
  req.addr = ArgU64(info, 3, "addr");
  req.op = ArgU64(info, 4, "op");
  req.value = ArgU64(info, 5, "value");
  req.access_width = ArgU64(info, 6, "accessWidth");
  req.request_id = ArgU64(info, 7, "requestId");
  int ret = Ioctl(fd, rev.complete, &req);
  if (ret == 0) return env.Undefined();
  int err = ret < 0 ? errno : 0;
  if (ret < 0 && err != EPERM && err != ESRCH && err != EIO) {
    ThrowErrno(env, err, "ioctl(BAO_IOCTL_IO_REQUEST_COMPLETE)");
  }
  int status = ret > 0 ? ret : -err;
  Napi::Error e = Napi::Error::New(env, "BAO_COMPLETE_REJECTED: the hypervisor rejected the completion of request " +
                                            std::to_string(req.request_id) + " (status " + std::to_string(status) +
                                            "), ioctl(BAO_IOCTL_IO_REQUEST_COMPLETE)");
  e.Set("code", Napi::String::New(env, "BAO_COMPLETE_REJECTED"));
  e.Set("status", Napi::Number::New(env, status));
  if (err != 0) e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, "ioctl(BAO_IOCTL_IO_REQUEST_COMPLETE)"));
  throw e;
}

// ioeventfd(fd, revision, eventfd, flags, addr, len, data). Flags are the raw §3.1 bits so that
// assign, datamatch and deassign are all expressible; lib/dispatcher builds them.
Napi::Value IoeventfdIoctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  const DmIoctls& rev = ArgRevision(info, 1);
  Ioeventfd ev{};
  ev.fd = ArgFd(info, 2, "eventfd");
  ev.flags = ArgU32(info, 3, "flags");
  ev.addr = ArgU64(info, 4, "addr");
  ev.len = ArgU32(info, 5, "len");
  ev.data = ArgU64(info, 6, "data");
  if (Ioctl(fd, rev.ioeventfd, &ev) < 0) ThrowErrno(env, errno, "ioctl(BAO_IOCTL_IOEVENTFD)");
  return env.Undefined();
}

// irqfd(fd, revision, eventfd, flags).
Napi::Value IrqfdIoctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  const DmIoctls& rev = ArgRevision(info, 1);
  Irqfd irq{};
  irq.fd = ArgFd(info, 2, "eventfd");
  irq.flags = ArgU32(info, 3, "flags");
  if (Ioctl(fd, rev.irqfd, &irq) < 0) ThrowErrno(env, errno, "ioctl(BAO_IOCTL_IRQFD)");
  return env.Undefined();
}

}  // namespace

void InitIoctls(Napi::Env env, Napi::Object exports) {
  exports.Set("dmGetInfo", Napi::Function::New(env, DmGetInfo, "dmGetInfo"));
  exports.Set("dmGetInfoRevA", Napi::Function::New(env, DmGetInfoRevA, "dmGetInfoRevA"));
  exports.Set("createDm", Napi::Function::New(env, CreateDm, "createDm"));
  exports.Set("dmGetInfoRevB", Napi::Function::New(env, DmGetInfoRevB, "dmGetInfoRevB"));
  exports.Set("complete", Napi::Function::New(env, Complete, "complete"));
  exports.Set("ioeventfd", Napi::Function::New(env, IoeventfdIoctl, "ioeventfd"));
  exports.Set("irqfd", Napi::Function::New(env, IrqfdIoctl, "irqfd"));
}

}  // namespace nodebao
