// Request journal (see journal.h). Stores into the mapping are ordered with the GCC atomic
// builtins: another process reads the slot only after this one died, so what matters is that a
// slot never reads TAKEN before its request bytes are in place.
#include "journal.h"

#include <cstring>

namespace nodebao {
namespace journal {

namespace {

uint32_t* StateWord(const Table& t, size_t slot) {
  return reinterpret_cast<uint32_t*>(t.base + slot * kSlotBytes);
}

void WriteMarker(uint8_t* request) {
  uapi::VirtioRequest marker{};
  marker.op = uapi::kOpAsk;  // what ATTACH is given anyway (attach.cc)
  memcpy(request, &marker, sizeof marker);
}

}  // namespace

Table FromOptions(Napi::Env env, Napi::Object opts, Napi::Reference<Napi::ArrayBuffer>* keep) {
  Napi::Value buffer = opts.Get("journal");
  if (buffer.IsUndefined()) return Table{};
  if (!buffer.IsArrayBuffer()) throw Napi::TypeError::New(env, "journal must be an ArrayBuffer");
  Napi::ArrayBuffer ab = buffer.As<Napi::ArrayBuffer>();
  Napi::Value offsetValue = opts.Get("journalOffset");
  Napi::Value slotsValue = opts.Get("journalSlots");
  if (!offsetValue.IsNumber() || !slotsValue.IsNumber()) throw Napi::TypeError::New(env, "journalOffset and journalSlots must be numbers");
  double offset = offsetValue.As<Napi::Number>().DoubleValue();
  double slots = slotsValue.As<Napi::Number>().DoubleValue();
  if (offset < 0 || slots < 1 || offset != static_cast<double>(static_cast<size_t>(offset)) ||
      slots != static_cast<double>(static_cast<size_t>(slots)) || offset + slots * kSlotBytes > static_cast<double>(ab.ByteLength())) {
    throw Napi::RangeError::New(env, "the journal does not fit in its buffer");
  }
  uint8_t* base = static_cast<uint8_t*>(ab.Data()) + static_cast<size_t>(offset);
  if (reinterpret_cast<uintptr_t>(base) % 8 != 0) throw Napi::RangeError::New(env, "the journal must be 8-byte aligned");
  *keep = Napi::Persistent(ab);
  return Table{base, static_cast<size_t>(slots)};
}

int Take(const Table& t, const uapi::VirtioRequest& req) {
  if (t.base == nullptr) return -1;
  for (size_t i = 0; i < t.slots; ++i) {
    uint32_t expected = kFree;
    if (!__atomic_compare_exchange_n(StateWord(t, i), &expected, kWriting, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
    memcpy(t.base + i * kSlotBytes + kRequestOffset, &req, sizeof req);
    __atomic_store_n(StateWord(t, i), kTaken, __ATOMIC_RELEASE);
    return static_cast<int>(i);
  }
  return -1;
}

int Arm(const Table& t) {
  if (t.base == nullptr) return -1;
  for (size_t i = 0; i < t.slots; ++i) {
    uint32_t expected = kFree;
    if (!__atomic_compare_exchange_n(StateWord(t, i), &expected, kWriting, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
    WriteMarker(t.base + i * kSlotBytes + kRequestOffset);
    __atomic_store_n(StateWord(t, i), kArmed, __ATOMIC_RELEASE);
    return static_cast<int>(i);
  }
  return -1;
}

uapi::VirtioRequest* RequestIn(const Table& t, int slot) {
  return reinterpret_cast<uapi::VirtioRequest*>(t.base + static_cast<size_t>(slot) * kSlotBytes + kRequestOffset);
}

void Rearm(const Table& t, int slot) {
  if (t.base == nullptr || slot < 0) return;
  WriteMarker(t.base + static_cast<size_t>(slot) * kSlotBytes + kRequestOffset);
}

void Filled(const Table& t, int slot) {
  if (t.base == nullptr || slot < 0) return;
  __atomic_store_n(StateWord(t, static_cast<size_t>(slot)), kTaken, __ATOMIC_RELEASE);
}

void Disarm(const Table& t, int slot) {
  if (t.base == nullptr || slot < 0) return;
  __atomic_store_n(StateWord(t, static_cast<size_t>(slot)), kFree, __ATOMIC_RELEASE);
}

void MarkCompleting(const Table& t, int slot) {
  if (t.base == nullptr || slot < 0) return;
  __atomic_store_n(StateWord(t, static_cast<size_t>(slot)), kCompleting, __ATOMIC_SEQ_CST);
}

void Release(const Table& t, int slot) {
  if (t.base == nullptr || slot < 0) return;
  __atomic_store_n(StateWord(t, static_cast<size_t>(slot)), kFree, __ATOMIC_RELEASE);
}

}  // namespace journal
}  // namespace nodebao
