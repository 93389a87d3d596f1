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
//   (or the hypervisor's raw status where the revision returns one)
//   cell i at kHeaderWords + i * kCellWords:
//     [0] addr low, [1] addr high, [2] access width, [3] kind, [4] value word index, [5] hits
//   value words anywhere after the cells.
constexpr uint32_t kHeaderWords = 4;
constexpr uint32_t kCellWords = 8;
constexpr uint32_t kMaxCells = 32;
constexpr uint32_t kFailures = 1;
constexpr uint32_t kLastErrno = 2;
enum Kind : uint32_t { kNone = 0, kRead = 1, kClearBits = 2, kStore = 3 };

struct Table {
  uint32_t* words = nullptr;
  size_t count = 0;  // words in the table
};

// If `req` hits a cell: performs its action (atomically) and, for a read, sets req->value to
// the cell's value. Returns whether it hit; a miss leaves everything untouched.
bool Answer(const Table& t, uapi::VirtioRequest* req);

void NoteCompleteFailure(const Table& t, int err);

// answerCell(table: ArrayBuffer, addr, op, width, value) -> value | null: the same lookup,
// without an ioctl (for tests of the table's format and actions).
void Init(Napi::Env env, Napi::Object exports);

}  // namespace cells
}  // namespace nodebao
