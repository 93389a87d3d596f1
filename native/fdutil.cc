// mmap as an external ArrayBuffer, eventfd creation and a raw-mode pty: the few fd syscalls Node's
// fs cannot make. Reads and writes of these fds happen in TypeScript through fs (STYLE.md 7).
#include "fdutil.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <climits>
#include <mutex>
#include <unordered_map>

#include "errors.h"

namespace nodebao {

namespace {

// One record per live mapping, keyed by its address so munmap(arrayBuffer) finds it. The
// ArrayBuffer's finalizer is the safety net: it unmaps what JS forgot to (better-sqlite3 style).
struct MapRecord {
  void* addr;
  size_t length;
  bool unmapped;
  // PinMapping: while pins > 0 neither munmap() nor the finalizer unmaps; they leave it to the
  // last UnpinMapping (unmapWanted / finalized), which a thread given up never makes.
  int pins = 0;
  bool unmapWanted = false;
  bool finalized = false;
};

struct Mappings {
  std::mutex lock;
  std::unordered_map<void*, MapRecord*> byAddr;
};

Mappings& AllMappings() {
  static Mappings* m = new Mappings();  // never destroyed: finalizers may run during exit
  return *m;
}

void FinalizeMapping(Napi::Env, void*, MapRecord* rec) {
  {
    std::lock_guard<std::mutex> g(AllMappings().lock);
    if (rec->pins > 0) {
      rec->finalized = true;  // the last UnpinMapping unmaps and frees it
      return;
    }
    auto it = AllMappings().byAddr.find(rec->addr);
    if (it != AllMappings().byAddr.end() && it->second == rec) AllMappings().byAddr.erase(it);
  }
  if (!rec->unmapped) munmap(rec->addr, rec->length);
  delete rec;
}

MapRecord* RecordContaining(const void* p) {
  const uint8_t* at = static_cast<const uint8_t*>(p);
  for (auto& entry : AllMappings().byAddr) {
    const uint8_t* start = static_cast<const uint8_t*>(entry.second->addr);
    if (!entry.second->unmapped && at >= start && at < start + entry.second->length) return entry.second;
  }
  return nullptr;
}

// mmap(fd, length, offset, prot) -> ArrayBuffer (MAP_SHARED: the peer must see our writes, §3.5).
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0, "fd");
  uint64_t length = ArgU64(info, 1, "length");
  uint64_t offset = ArgU64(info, 2, "offset");
  int prot = ArgInt(info, 3, "prot");
  if (length == 0 || length > SIZE_MAX) throw Napi::RangeError::New(env, "length must be > 0");
  if (offset > static_cast<uint64_t>(LLONG_MAX)) throw Napi::RangeError::New(env, "offset is out of range");
  void* addr = mmap(nullptr, static_cast<size_t>(length), prot, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap");
  MapRecord* rec = new MapRecord{addr, static_cast<size_t>(length), false};
  {
    std::lock_guard<std::mutex> g(AllMappings().lock);
    AllMappings().byAddr[addr] = rec;
  }
  return Napi::ArrayBuffer::New(env, addr, static_cast<size_t>(length), FinalizeMapping, rec);
}

// munmap(arrayBuffer): unmaps and detaches, so every view of it becomes zero-length instead of
// pointing at unmapped memory. Idempotent: a detached or unknown buffer is left alone.
Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "munmap takes the ArrayBuffer mmap returned");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return env.Undefined();
  MapRecord* rec = nullptr;
  {
    std::lock_guard<std::mutex> g(AllMappings().lock);
    auto it = AllMappings().byAddr.find(ab.Data());
    if (it != AllMappings().byAddr.end()) rec = it->second;
  }
  if (rec == nullptr || rec->unmapped || rec->unmapWanted) throw Napi::TypeError::New(env, "munmap: this ArrayBuffer was not returned by mmap");
  bool pinned;
  {
    std::lock_guard<std::mutex> g(AllMappings().lock);
    pinned = rec->pins > 0;
    if (pinned) rec->unmapWanted = true;  // detached now, unmapped at the last unpin
  }
  if (!pinned) {
    if (munmap(rec->addr, rec->length) != 0) ThrowErrno(env, errno, "munmap");
    rec->unmapped = true;
  }
  ab.Detach();
  return env.Undefined();
}

}  // namespace

bool PinMapping(const void* p) {
  std::lock_guard<std::mutex> g(AllMappings().lock);
  MapRecord* rec = RecordContaining(p);
  if (rec == nullptr) return false;
  rec->pins += 1;
  return true;
}

void UnpinMapping(const void* p) {
  MapRecord* rec;
  {
    std::lock_guard<std::mutex> g(AllMappings().lock);
    rec = RecordContaining(p);
    if (rec == nullptr || --rec->pins > 0) return;
    if (!rec->unmapWanted && !rec->finalized) return;  // still JS's: munmap() or the finalizer unmaps
    if (rec->finalized) AllMappings().byAddr.erase(rec->addr);
  }
  if (!rec->unmapped) munmap(rec->addr, rec->length);
  rec->unmapped = true;
  if (rec->finalized) delete rec;
}

namespace {

// eventfd(initval, flags) -> fd.
Napi::Value EventFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t initval = ArgU32(info, 0, "initval");
  int flags = ArgInt(info, 1, "flags");
  int fd = eventfd(initval, flags);
  if (fd < 0) ThrowErrno(env, errno, "eventfd");
  return Napi::Number::New(env, fd);
}

// openpty() -> {fd, path}: master non-blocking and close-on-exec, line discipline raw. Termios set
// through the master applies to the slave side (Linux tty_mode_ioctl uses the linked tty).
Napi::Value OpenPty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, errno, "posix_openpt", "/dev/ptmx");
  char name[128];
  auto fail = [&](const char* syscall) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, syscall);
  };
  if (grantpt(fd) != 0) fail("grantpt");
  if (unlockpt(fd) != 0) fail("unlockpt");
  if (ptsname_r(fd, name, sizeof name) != 0) fail("ptsname_r");
  struct termios tio;
  if (tcgetattr(fd, &tio) != 0) fail("tcgetattr");
  cfmakeraw(&tio);
  if (tcsetattr(fd, TCSANOW, &tio) != 0) fail("tcsetattr");
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) fail("fcntl");
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", Napi::Number::New(env, fd));
  o.Set("path", Napi::String::New(env, name));
  return o;
}

}  // namespace

void InitFdUtil(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  exports.Set("eventfd", Napi::Function::New(env, EventFd, "eventfd"));
  exports.Set("openpty", Napi::Function::New(env, OpenPty, "openpty"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("PROT_READ", Napi::Number::New(env, PROT_READ));
  c.Set("PROT_WRITE", Napi::Number::New(env, PROT_WRITE));
  c.Set("EFD_NONBLOCK", Napi::Number::New(env, EFD_NONBLOCK));
  c.Set("EFD_CLOEXEC", Napi::Number::New(env, EFD_CLOEXEC));
  c.Set("EFD_SEMAPHORE", Napi::Number::New(env, EFD_SEMAPHORE));
  exports.Set("constants", c);
}

}  // namespace nodebao
