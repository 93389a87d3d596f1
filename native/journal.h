// Request journal: slots in caller-provided memory (a memory-mapped state file) where the ATTACH
// thread records each request it took, before anything handles it, so that a process started
// after this one died finds the accesses it never completed (their frontend vCPUs are paused).
// Generic: raw requests and a state word per slot, no policy. lib/vmm/state/request-journal.ts
// mirrors the layout and owns the other transitions.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

#include "bao_uapi.h"

namespace nodebao {
namespace journal {

// Slot layout (64 bytes): [0] u32 state, [4] u32 reserved, [8] the 48-byte request (struct
// bao_virtio_request, 48 bytes and 8-aligned in every revision, spec §3.3), rest unused. The
// request sits 8-aligned in the slot so that the slot itself can be ATTACH's buffer.
constexpr size_t kSlotBytes = 64;
constexpr size_t kRequestOffset = 8;
static_assert(sizeof(uapi::VirtioRequest) == 48, "the slot embeds the 48-byte request");
static_assert(kRequestOffset % alignof(uapi::VirtioRequest) == 0 && kRequestOffset + 48 <= kSlotBytes, "slot layout");
// ARMED: the slot is the buffer of an ATTACH in progress. Its request holds the marker (all zero,
// op = ASK) until the kernel copies a request over it; a request's op is READ or WRITE, so an
// ARMED slot whose op is no longer ASK holds a request the driver handed over (taken).
enum State : uint32_t { kFree = 0, kTaken = 1, kCompleting = 2, kWriting = 3, kArmed = 4 };

struct Table {
  uint8_t* base = nullptr;  // nullptr: no journal
  size_t slots = 0;
};

// AttachLoop options { journal: ArrayBuffer, journalOffset: number, journalSlots: number }: the
// table, or an empty one when `journal` is absent. Throws on a table that does not fit or is
// misaligned. `keep` holds the buffer while the thread may write it.
Table FromOptions(Napi::Env env, Napi::Object opts, Napi::Reference<Napi::ArrayBuffer>* keep);

// Records `req` in a free slot (claimed with a compare-and-swap, the request bytes stored, then
// the state TAKEN with release order). Returns the slot, or -1 when there is no journal or no
// free slot (the request is still served; only a crash would lose it).
int Take(const Table& t, const uapi::VirtioRequest& req);

// Arming (closes the window between ATTACH returning and Take): claims a free slot, fills its
// request with the marker and marks it ARMED; -1 when there is no journal or no free slot.
// The ATTACH thread passes RequestIn(t, slot) to the ioctl, so the kernel's copy of the request
// lands in the mapped file and survives the process; Filled() then marks it TAKEN. After an
// ATTACH that failed, Rearm() writes the marker again (the driver does not write on failure;
// this only makes sure). Disarm() frees it when the thread ends.
int Arm(const Table& t);
uapi::VirtioRequest* RequestIn(const Table& t, int slot);
void Rearm(const Table& t, int slot);
void Filled(const Table& t, int slot);
void Disarm(const Table& t, int slot);

// The slot's request is being completed / was completed by this thread.
void MarkCompleting(const Table& t, int slot);
void Release(const Table& t, int slot);

}  // namespace journal
}  // namespace nodebao
