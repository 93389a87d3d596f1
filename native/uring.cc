// See uring.h. The rings are shared with the kernel: the SQ tail is published with a release
// store after the SQEs are written, the CQ tail read with an acquire load before the CQEs, and
// the CQ head given back with a release store (the liburing barriers, written out).
#include "uring.h"

#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "errors.h"
#include "iovecs.h"

namespace nodebao {

namespace {

int SysSetup(unsigned entries, io_uring_params* p) { return static_cast<int>(syscall(__NR_io_uring_setup, entries, p)); }
int SysEnter(int fd, unsigned toSubmit, unsigned minComplete, unsigned flags) {
  return static_cast<int>(syscall(__NR_io_uring_enter, fd, toSubmit, minComplete, flags, nullptr, 0));
}
int SysRegister(int fd, unsigned op, void* arg, unsigned nr) { return static_cast<int>(syscall(__NR_io_uring_register, fd, op, arg, nr)); }

class Uring : public Napi::ObjectWrap<Uring> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Uring", {
      InstanceMethod<&Uring::Readv>("readv"),
      InstanceMethod<&Uring::Writev>("writev"),
      InstanceMethod<&Uring::Fsync>("fsync"),
      InstanceMethod<&Uring::Fallocate>("fallocate"),
      InstanceMethod<&Uring::Submit>("submit"),
      InstanceMethod<&Uring::Reap>("reap"),
      InstanceMethod<&Uring::Close>("close"),
      InstanceAccessor<&Uring::EventFd>("eventfd"),
      InstanceAccessor<&Uring::Entries>("entries"),
    });
    exports.Set("Uring", ctor);
  }

  // new Uring(entries): the ring and its eventfd; throws the setup's errno (ENOSYS, EPERM...).
  explicit Uring(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Uring>(info) {
    Napi::Env env = info.Env();
    uint32_t entries = ArgU32(info, 0, "entries");
    if (entries == 0 || entries > 4096) throw Napi::RangeError::New(env, "entries must be 1..4096");
    io_uring_params p;
    std::memset(&p, 0, sizeof p);
    ringFd_ = SysSetup(entries, &p);
    if (ringFd_ < 0) ThrowErrno(env, errno, "io_uring_setup");
    sqEntries_ = p.sq_entries;
    cqEntries_ = p.cq_entries;
    sqSize_ = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
    cqSize_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) sqSize_ = cqSize_ = sqSize_ > cqSize_ ? sqSize_ : cqSize_;
    sqPtr_ = mmap(nullptr, sqSize_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd_, IORING_OFF_SQ_RING);
    if (sqPtr_ == MAP_FAILED) Fail(env, "mmap(IORING_OFF_SQ_RING)");
    if (single) {
      cqPtr_ = sqPtr_;
    } else {
      cqPtr_ = mmap(nullptr, cqSize_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd_, IORING_OFF_CQ_RING);
      if (cqPtr_ == MAP_FAILED) Fail(env, "mmap(IORING_OFF_CQ_RING)");
    }
    sqesSize_ = p.sq_entries * sizeof(io_uring_sqe);
    sqes_ = static_cast<io_uring_sqe*>(mmap(nullptr, sqesSize_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd_, IORING_OFF_SQES));
    if (sqes_ == MAP_FAILED) Fail(env, "mmap(IORING_OFF_SQES)");
    char* sq = static_cast<char*>(sqPtr_);
    sqHead_ = reinterpret_cast<unsigned*>(sq + p.sq_off.head);
    sqTail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
    sqMask_ = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
    sqArray_ = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
    char* cq = static_cast<char*>(cqPtr_);
    cqHead_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
    cqTail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
    cqMask_ = *reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
    localTail_ = *sqTail_;
    eventFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (eventFd_ < 0) Fail(env, "eventfd");
    if (SysRegister(ringFd_, IORING_REGISTER_EVENTFD, &eventFd_, 1) != 0) Fail(env, "io_uring_register(EVENTFD)");
  }

  ~Uring() override { Release(); }

 private:
  using IovecMap = std::unordered_map<uint64_t, std::vector<iovec>>;

  [[noreturn]] void Fail(Napi::Env env, const char* what) {
    int err = errno;
    Release();
    ThrowErrno(env, err, what);
  }

  void Release() {
    if (sqes_ != nullptr && sqes_ != MAP_FAILED) munmap(sqes_, sqesSize_);
    if (cqPtr_ != nullptr && cqPtr_ != MAP_FAILED && cqPtr_ != sqPtr_) munmap(cqPtr_, cqSize_);
    if (sqPtr_ != nullptr && sqPtr_ != MAP_FAILED) munmap(sqPtr_, sqSize_);
    sqes_ = nullptr;
    cqPtr_ = sqPtr_ = nullptr;
    if (ringFd_ >= 0) close(ringFd_);  // the kernel finishes or cancels what is in flight
    if (eventFd_ >= 0) close(eventFd_);
    ringFd_ = eventFd_ = -1;
    iovecs_.clear();
    spare_.clear();
  }

  // A tag names a request until its completion is reaped; reap() reports it as an int32.
  static uint64_t ArgTag(const Napi::CallbackInfo& info, size_t i) {
    uint64_t tag = ArgU64(info, i, "tag");
    if (tag < 1 || tag > static_cast<uint64_t>(INT32_MAX)) throw Napi::RangeError::New(info.Env(), "tag must be 1..2^31-1");
    return tag;
  }

  // A node for iovecs_ keyed `tag`: a recycled one (its vector keeps its capacity) when there is
  // one, so that a request in steady state costs no allocation here.
  IovecMap::node_type TakeNode(uint64_t tag) {
    if (spare_.empty()) {
      fresh_.try_emplace(tag);
      return fresh_.extract(tag);
    }
    IovecMap::node_type node = std::move(spare_.back());
    spare_.pop_back();
    node.key() = tag;
    return node;
  }

  void CheckOpen(Napi::Env env) {
    if (ringFd_ < 0) throw Napi::Error::New(env, "the ring is closed");
  }

  // The next free SQE, or nullptr when the submission queue is full (the caller retries later).
  io_uring_sqe* NextSqe() {
    unsigned head = __atomic_load_n(sqHead_, __ATOMIC_ACQUIRE);
    if (localTail_ - head >= sqEntries_) return nullptr;
    unsigned index = localTail_ & sqMask_;
    io_uring_sqe* sqe = &sqes_[index];
    std::memset(sqe, 0, sizeof *sqe);
    sqArray_[index] = index;
    localTail_ += 1;
    return sqe;
  }

  // (fd, region, spans, count, offset, [flags,] tag): `count` (offset, length) ranges of the
  // Uint8Array `region` (iovecs.h), as an iovec list owned until the completion.
  bool PrepRw(const Napi::CallbackInfo& info, uint8_t opcode, bool withFlags) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    int fd = ArgFd(info, 0, "fd");
    if (info.Length() < (withFlags ? 7u : 6u)) throw Napi::TypeError::New(env, withFlags ? "writev needs (fd, region, spans, count, offset, flags, tag)" : "readv needs (fd, region, spans, count, offset, tag)");
    uint32_t count = ArgU32(info, 3, "count");
    uint64_t offset = ArgU64(info, 4, "offset");
    uint32_t rwFlags = withFlags ? ArgU32(info, 5, "flags") : 0;
    uint64_t tag = ArgTag(info, withFlags ? 6 : 5);
    if (offset > static_cast<uint64_t>(LLONG_MAX)) throw Napi::RangeError::New(env, "offset is out of range");
    if (count == 0) throw Napi::RangeError::New(env, "count must be at least 1");
    if (iovecs_.count(tag) != 0) throw Napi::Error::New(env, "tag is already in flight");
    IovecMap::node_type node = TakeNode(tag);
    try {
      CollectSpans(env, info[1], info[2], count, node.mapped());
    } catch (...) {
      spare_.push_back(std::move(node));
      throw;
    }
    io_uring_sqe* sqe = NextSqe();
    if (sqe == nullptr) {
      spare_.push_back(std::move(node));
      return false;
    }
    auto& stored = iovecs_.insert(std::move(node)).position->second;
    sqe->opcode = opcode;
    sqe->fd = fd;
    sqe->off = offset;
    sqe->addr = reinterpret_cast<uint64_t>(stored.data());
    sqe->len = static_cast<uint32_t>(stored.size());
    sqe->rw_flags = static_cast<__kernel_rwf_t>(rwFlags);
    sqe->user_data = tag;
    return true;
  }

  // readv(fd, region, spans, count, offset, tag) -> false when the SQ is full.
  Napi::Value Readv(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), PrepRw(info, IORING_OP_READV, false)); }

  // writev(fd, region, spans, count, offset, flags, tag): flags are RWF_* (RWF_DSYNC = 2 for write-through).
  Napi::Value Writev(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), PrepRw(info, IORING_OP_WRITEV, true)); }

  // fsync(fd, tag): fdatasync semantics (IORING_FSYNC_DATASYNC).
  Napi::Value Fsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    int fd = ArgFd(info, 0, "fd");
    uint64_t tag = ArgTag(info, 1);
    io_uring_sqe* sqe = NextSqe();
    if (sqe == nullptr) return Napi::Boolean::New(env, false);
    sqe->opcode = IORING_OP_FSYNC;
    sqe->fd = fd;
    sqe->fsync_flags = IORING_FSYNC_DATASYNC;
    sqe->user_data = tag;
    return Napi::Boolean::New(env, true);
  }

  // fallocate(fd, mode, offset, length, tag): mode is the raw FALLOC_FL_* value.
  Napi::Value Fallocate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    int fd = ArgFd(info, 0, "fd");
    int mode = ArgInt(info, 1, "mode");
    uint64_t offset = ArgU64(info, 2, "offset");
    uint64_t length = ArgU64(info, 3, "length");
    uint64_t tag = ArgTag(info, 4);
    io_uring_sqe* sqe = NextSqe();
    if (sqe == nullptr) return Napi::Boolean::New(env, false);
    sqe->opcode = IORING_OP_FALLOCATE;
    sqe->fd = fd;
    sqe->off = offset;
    sqe->addr = length;  // the kernel takes the length in addr and the mode in len
    sqe->len = static_cast<uint32_t>(mode);
    sqe->user_data = tag;
    return Napi::Boolean::New(env, true);
  }

  // submit() -> number of SQEs the kernel took.
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    unsigned pending = localTail_ - *sqTail_;
    if (pending == 0) return Napi::Number::New(env, 0);
    __atomic_store_n(sqTail_, localTail_, __ATOMIC_RELEASE);
    int n;
    do {
      n = SysEnter(ringFd_, pending, 0, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) ThrowErrno(env, errno, "io_uring_enter");
    return Napi::Number::New(env, n);
  }

  // reap(out: Int32Array) -> n: the next n completions as out[2i] = tag, out[2i+1] = res (bytes
  // or -errno), n at most out.length / 2. The eventfd is cleared first, so a caller whose array
  // was filled calls again: the completions left are not signalled a second time. Written into
  // the caller's array rather than returned as a new one: an array and two numbers per
  // completion, each stored through V8's generic property path, were a visible share of the
  // block device's CPU in the guest.
  Napi::Value Reap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw Napi::TypeError::New(env, "reap(out) needs an Int32Array");
    }
    Napi::Int32Array out = info[0].As<Napi::Int32Array>();
    size_t room = out.ElementLength() / 2;
    if (room == 0) throw Napi::RangeError::New(env, "reap(out) needs room for one completion (two elements)");
    int32_t* cells = out.Data();
    uint64_t value;
    (void)!read(eventFd_, &value, sizeof value);  // clear the wake-up; completions are read below
    unsigned head = *cqHead_;
    unsigned tail = __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE);
    size_t n = 0;
    while (head != tail && n < room) {
      const io_uring_cqe& cqe = cqes_[head & cqMask_];
      cells[2 * n] = static_cast<int32_t>(cqe.user_data);  // tags are 1..INT32_MAX (ArgTag)
      cells[2 * n + 1] = cqe.res;
      IovecMap::node_type node = iovecs_.extract(cqe.user_data);
      if (!node.empty() && spare_.size() < sqEntries_) spare_.push_back(std::move(node));
      head += 1;
      n += 1;
    }
    __atomic_store_n(cqHead_, head, __ATOMIC_RELEASE);
    return Napi::Number::New(env, static_cast<double>(n));
  }

  // close(): idempotent. Closing the ring waits for (or cancels) the I/O in flight.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  Napi::Value EventFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), eventFd_); }
  Napi::Value Entries(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), sqEntries_); }

  int ringFd_ = -1;
  int eventFd_ = -1;
  unsigned sqEntries_ = 0;
  unsigned cqEntries_ = 0;
  size_t sqSize_ = 0;
  size_t cqSize_ = 0;
  size_t sqesSize_ = 0;
  void* sqPtr_ = nullptr;
  void* cqPtr_ = nullptr;
  io_uring_sqe* sqes_ = nullptr;
  unsigned* sqHead_ = nullptr;
  unsigned* sqTail_ = nullptr;
  unsigned sqMask_ = 0;
  unsigned* sqArray_ = nullptr;
  unsigned* cqHead_ = nullptr;
  unsigned* cqTail_ = nullptr;
  unsigned cqMask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
  unsigned localTail_ = 0;
  // Each request's iovec list, by tag, until its completion is reaped (the kernel reads it
  // at submission or later, from an io-wq worker).
  IovecMap iovecs_;
  // Nodes of reaped requests, kept for the next ones; fresh_ only makes new nodes.
  std::vector<IovecMap::node_type> spare_;
  IovecMap fresh_;
};

}  // namespace

void InitUring(Napi::Env env, Napi::Object exports) {
  Uring::Init(env, exports);
}

}  // namespace nodebao
