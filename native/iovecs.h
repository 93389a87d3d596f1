// Guest buffers as an iovec list: from an array of Uint8Array views (subarrays of a mapping), or
// from (offset, length) pairs into one view of the mapping (two N-API calls for the whole list).
#pragma once
#include <napi.h>
#include <sys/uio.h>

#include <vector>

namespace nodebao {
// Fills `iov` from the array `v` of Uint8Array views, at most IOV_MAX of them; throws a
// TypeError naming `what` for anything else. The views must stay alive while `iov` is used.
// One engine call per view (a 1 MiB block request is about 256 of them, each paid per request).
void CollectIovecs(Napi::Env env, Napi::Value v, std::vector<struct iovec>& iov, const char* what);

// Fills `iov` from `count` (offset, length) pairs of `spans` (a Uint32Array, or a Float64Array
// for regions past 4 GiB: whole numbers only), each a range of the Uint8Array `region` checked to
// lie inside it; at most IOV_MAX. Throws a TypeError or RangeError saying which argument is wrong.
void CollectSpans(Napi::Env env, Napi::Value region, Napi::Value spans, uint32_t count, std::vector<struct iovec>& iov);
}  // namespace nodebao
