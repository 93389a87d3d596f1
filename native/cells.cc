// Register cells: generic data, no virtio knowledge. JS describes some trapped addresses as
// cells (address, width, kind, where the value lives) in memory this thread can read; the ATTACH
// thread answers an access that hits one at once, COMPLETE included, without waking JS:
//   kRead       a READ returns the value word (atomic load)
//   kClearBits  a WRITE clears the written bits in the value word (atomic and-not)
//   kStore      a WRITE stores the written value (atomic store)
// Everything else goes to JS as before. Each cell counts its hits (relaxed), which JS reads
// when it reports. Every access to a value word is a sequentially consistent atomic, and JS
// changes value words only with Atomics: see lib/dispatcher/register-cells.ts for the ordering.
#include "cells.h"

#include <ctime>

#include "errors.h"

namespace nodebao {
namespace cells {

namespace {

uint32_t Load(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

}  // namespace

bool Answer(const Table& t, uapi::VirtioRequest* req) {
  if (t.words == nullptr || t.count < kHeaderWords) return false;
  uint32_t n = Load(&t.words[0]);
  if (n > kMaxCells) n = kMaxCells;
  size_t fit = (t.count - kHeaderWords) / kCellWords;
  if (n > fit) n = static_cast<uint32_t>(fit);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t* c = &t.words[kHeaderWords + i * kCellWords];
    uint64_t addr = static_cast<uint64_t>(Load(&c[0])) | (static_cast<uint64_t>(Load(&c[1])) << 32);
    if (addr != req->addr || Load(&c[2]) != req->access_width) continue;
    uint32_t kind = Load(&c[3]);
    bool read = req->op == uapi::kOpRead;
    if (read != (kind == kRead) || kind == kNone || kind > kStore) continue;
    uint32_t vi = Load(&c[4]);
    if (vi >= t.count) continue;
    uint32_t* v = &t.words[vi];
    uint32_t mask = req->access_width >= 4 ? 0xffffffffu : ((1u << (8 * req->access_width)) - 1);
    switch (kind) {
      case kRead:
        req->value = __atomic_load_n(v, __ATOMIC_SEQ_CST) & mask;
        break;
      case kClearBits:
        __atomic_fetch_and(v, ~(static_cast<uint32_t>(req->value) & mask), __ATOMIC_SEQ_CST);
        break;
      default:
        __atomic_store_n(v, static_cast<uint32_t>(req->value) & mask, __ATOMIC_SEQ_CST);
        break;
    }
    __atomic_fetch_add(&c[5], 1u, __ATOMIC_RELAXED);
    return true;
  }
  return false;
}

void NoteCompleteFailure(const Table& t, int err) {
  if (t.words == nullptr || t.count < kHeaderWords) return;
  __atomic_fetch_add(&t.words[kFailures], 1u, __ATOMIC_RELAXED);
  __atomic_store_n(&t.words[kLastErrno], static_cast<uint32_t>(err), __ATOMIC_RELAXED);
}

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

// The timing block, or nullptr when the table has none (or it does not fit).
uint32_t* Timing(const Table& t) {
  if (t.words == nullptr || t.count < kHeaderWords) return nullptr;
  uint32_t at = Load(&t.words[kTimingIndex]);
  if (at < kHeaderWords || at > t.count || t.count - at < kTimingWords) return nullptr;
  return &t.words[at];
}

uint32_t Bucket(uint64_t ns) {
  if (ns < 256) return 0;
  uint32_t octave = 63 - static_cast<uint32_t>(__builtin_clzll(ns));
  uint32_t b = (octave - 8) * 4 + static_cast<uint32_t>((ns >> (octave - 2)) & 3);
  return b < kTimingBuckets ? b : kTimingBuckets - 1;
}

}  // namespace

void MarkQueued(const Table& t) {
  uint32_t* tm = Timing(t);
  if (tm == nullptr) return;
  uint32_t period = Load(&tm[kTimingPeriod]);
  uint32_t seen = tm[kTimingCounter]++;  // under the shared lock: one writer
  if (period > 1 && seen % period != 0) {
    tm[0] = 0;
    tm[1] = 0;
    return;
  }
  uint64_t now = NowNs();
  tm[0] = static_cast<uint32_t>(now);
  tm[1] = static_cast<uint32_t>(now >> 32);
}

uint64_t QueuedAt(const Table& t) {
  uint32_t* tm = Timing(t);
  if (tm == nullptr) return 0;
  return static_cast<uint64_t>(tm[0]) | (static_cast<uint64_t>(tm[1]) << 32);
}

void RecordDelivery(const Table& t, uint64_t queuedNs, uint64_t startNs, uint64_t endNs) {
  uint32_t* tm = Timing(t);
  if (tm == nullptr || queuedNs == 0 || startNs < queuedNs || endNs < startNs) return;
  __atomic_fetch_add(&tm[kTimingHistograms + Bucket(startNs - queuedNs)], 1u, __ATOMIC_RELAXED);
  __atomic_fetch_add(&tm[kTimingHistograms + kTimingBuckets + Bucket(endNs - startNs)], 1u, __ATOMIC_RELAXED);
}

namespace {

Napi::Value AnswerCell(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "table must be an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  Table t{static_cast<uint32_t*>(ab.Data()), ab.ByteLength() / 4};
  uapi::VirtioRequest req{};
  req.addr = ArgU64(info, 1, "addr");
  req.op = ArgU64(info, 2, "op");
  req.access_width = ArgU64(info, 3, "width");
  req.value = ArgU64(info, 4, "value");
  if (!Answer(t, &req)) return env.Null();
  return Napi::Number::New(env, static_cast<double>(req.value));
}

// recordDelivery(table, queuedNs, startNs, endNs): RecordDelivery with given times (tests of the
// timing block's format).
Napi::Value RecordDeliveryJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "table must be an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  Table t{static_cast<uint32_t*>(ab.Data()), ab.ByteLength() / 4};
  RecordDelivery(t, ArgU64(info, 1, "queuedNs"), ArgU64(info, 2, "startNs"), ArgU64(info, 3, "endNs"));
  return env.Undefined();
}

Napi::Value MarkQueuedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "table must be an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  Table t{static_cast<uint32_t*>(ab.Data()), ab.ByteLength() / 4};
  MarkQueued(t);
  return Napi::BigInt::New(env, QueuedAt(t));
}

}  // namespace

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("answerCell", Napi::Function::New(env, AnswerCell, "answerCell"));
  exports.Set("markQueued", Napi::Function::New(env, MarkQueuedJs, "markQueued"));
  exports.Set("recordDelivery", Napi::Function::New(env, RecordDeliveryJs, "recordDelivery"));
}

}  // namespace cells
}  // namespace nodebao
