// See blockdev.h. No policy here: the lock's scope and the fallocate modes are chosen in
// TypeScript (lib/vmm/block-host.ts); errors carry errno names like Node's fs errors.
#include "blockdev.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "errors.h"

namespace nodebao {

namespace {

// blockDeviceSize(fd) -> bigint bytes (BLKGETSIZE64: stat() gives 0 for a block device).
Napi::Value BlockDeviceSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t size = 0;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) ThrowErrno(env, errno, "ioctl(BLKGETSIZE64)");
  return Napi::BigInt::New(env, size);
}

// blockDevicePhysicalBlockSize(fd) -> bytes (BLKPBSZGET).
Napi::Value BlockDevicePhysicalBlockSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  unsigned int size = 0;
  if (ioctl(fd, BLKPBSZGET, &size) != 0) ThrowErrno(env, errno, "ioctl(BLKPBSZGET)");
  return Napi::Number::New(env, size);
}

// lockFile(fd, exclusive): F_OFD_SETLK on the whole file, write lock if exclusive else read
// lock. Never waits: a conflicting lock held elsewhere throws EAGAIN (or EACCES). OFD locks
// belong to the open file description, so closing another fd of the same file in this process
// does not drop them (unlike POSIX record locks).
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (info.Length() < 2 || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "exclusive must be a boolean");
  bool exclusive = info[1].As<Napi::Boolean>().Value();
  struct flock fl = {};
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // to the end of the file, however it grows
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) ThrowErrno(env, errno, "fcntl(F_OFD_SETLK)");
  return env.Undefined();
}

class FallocateWorker : public Napi::AsyncWorker {
 public:
  FallocateWorker(Napi::Function callback, int fd, int mode, off_t offset, off_t length)
      : Napi::AsyncWorker(callback, "nodebao:fallocate"), fd_(fd), mode_(mode), offset_(offset), length_(length) {}

  void Execute() override {
    if (fallocate(fd_, mode_, offset_, length_) != 0) err_ = errno;
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) Callback().Call({ErrnoError(env, err_, "fallocate").Value()});
    else Callback().Call({env.Null()});
  }

 private:
  int fd_;
  int mode_;
  off_t offset_;
  off_t length_;
  int err_ = 0;
};

// fallocate(fd, mode, offset, length, callback(err)) on the thread pool. mode is 'punch-hole'
// (deallocate, keep the size) or 'zero-range' (zero, keep the size).
Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  if (info.Length() < 2 || !info[1].IsString()) throw Napi::TypeError::New(env, "mode must be 'punch-hole' or 'zero-range'");
  std::string mode = info[1].As<Napi::String>().Utf8Value();
  int flags;
  if (mode == "punch-hole") flags = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
  else if (mode == "zero-range") flags = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
  else throw Napi::TypeError::New(env, "mode must be 'punch-hole' or 'zero-range'");
  uint64_t offset = ArgU64(info, 2, "offset");
  uint64_t length = ArgU64(info, 3, "length");
  if (offset > static_cast<uint64_t>(LLONG_MAX) || length > static_cast<uint64_t>(LLONG_MAX) - offset) {
    throw Napi::RangeError::New(env, "offset + length is out of range");
  }
  if (info.Length() < 5 || !info[4].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
  auto* worker = new FallocateWorker(info[4].As<Napi::Function>(), fd, flags, static_cast<off_t>(offset), static_cast<off_t>(length));
  worker->Queue();
  return env.Undefined();
}

}  // namespace

void InitBlockDev(Napi::Env env, Napi::Object exports) {
  exports.Set("blockDeviceSize", Napi::Function::New(env, BlockDeviceSize, "blockDeviceSize"));
  exports.Set("blockDevicePhysicalBlockSize", Napi::Function::New(env, BlockDevicePhysicalBlockSize, "blockDevicePhysicalBlockSize"));
  exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
  exports.Set("fallocate", Napi::Function::New(env, Fallocate, "fallocate"));
}

}  // namespace nodebao
