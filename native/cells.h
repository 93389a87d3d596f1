// Register cells: a table of trapped addresses the ATTACH thread answers by itself (cells.cc).
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

#include "bao_uapi.h"

namespace nodebao {
namespace cells {

// Layout, in 32-bit words (lib/dispatcher/register-cells.ts mirrors it):
//   header [0] cell count (JS stores it last), [1] COMPLETE failures, [2] the last one's errno
//   (or the hypervisor's raw status where the revision returns one), [3] word index of the
//   hand-off timing block (0: none)
//   cell i at kHeaderWords + i * kCellWords:
//     [0] addr low, [1] addr high, [2] access width, [3] kind, [4] value word index, [5] hits
//   value words anywhere after the cells.
constexpr uint32_t kHeaderWords = 4;
constexpr uint32_t kCellWords = 8;
constexpr uint32_t kMaxCells = 32;
constexpr uint32_t kFailures = 1;
constexpr uint32_t kLastErrno = 2;
constexpr uint32_t kTimingIndex = 3;
enum Kind : uint32_t { kNone = 0, kRead = 1, kClearBits = 2, kStore = 3 };

// Hand-off timing block (words from its index): [0..1] CLOCK_MONOTONIC ns at which the ATTACH
// thread queued the first request of the batch JS has not taken yet, 0 when that batch is not
// timed (native only), [2] the sampling period P (JS writes it; 0 or 1: every batch), [3] batches
// queued so far (native only), then two histograms of kTimingBuckets counters: the hand-off (that
// moment to the start of the JS delivery) and the JS turn (the delivery: decoding, the device
// model, the COMPLETEs). Only every P-th batch is timed: three clock reads per timed batch, which
// in a guest whose clock source has no vDSO path are three system calls. Bucket of a duration
// d ns: 0 below 256 ns, else 4 per octave, (octave - 8) * 4 + the next two bits of d.
constexpr uint32_t kTimingBuckets = 96;
constexpr uint32_t kTimingPeriod = 2;
constexpr uint32_t kTimingCounter = 3;
constexpr uint32_t kTimingHistograms = 4;
constexpr uint32_t kTimingWords = kTimingHistograms + 2 * kTimingBuckets;

struct Table {
  uint32_t* words = nullptr;
  size_t count = 0;  // words in the table
};

// If `req` hits a cell: performs its action (atomically) and, for a read, sets req->value to
// the cell's value. Returns whether it hit; a miss leaves everything untouched.
bool Answer(const Table& t, uapi::VirtioRequest* req);

void NoteCompleteFailure(const Table& t, int err);

// Hand-off timing (no-ops without a timing block). MarkQueued: ATTACH thread, under the shared
// lock, when it queues the first request of a batch (reads the clock for every P-th batch only).
// QueuedAt: JS thread, under the same lock, when it takes the batch: 0 for a batch not timed, and
// then the delivery reads no clock either. RecordDelivery: JS thread, after the callback returned.
uint64_t NowNs();
void MarkQueued(const Table& t);
uint64_t QueuedAt(const Table& t);
void RecordDelivery(const Table& t, uint64_t queuedNs, uint64_t startNs, uint64_t endNs);

// answerCell(table: ArrayBuffer, addr, op, width, value) -> value | null: the same lookup,
// without an ioctl (for tests of the table's format and actions). markQueued(table) -> bigint:
// MarkQueued then QueuedAt (for tests of the sampling).
void Init(Napi::Env env, Napi::Object exports);

}  // namespace cells
}  // namespace nodebao
