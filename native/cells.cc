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

}  // namespace

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("answerCell", Napi::Function::New(env, AnswerCell, "answerCell"));
}

}  // namespace cells
}  // namespace nodebao
