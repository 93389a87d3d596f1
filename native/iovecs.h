// An array of Uint8Array views (guest buffers: subarrays of a mapping) as an iovec list.
#pragma once
#include <napi.h>
#include <sys/uio.h>

#include <vector>

namespace nodebao {
// Fills `iov` from the array `v` of Uint8Array views, at most IOV_MAX of them; throws a
// TypeError naming `what` for anything else. The views must stay alive while `iov` is used.
// One engine call per view (a 1 MiB block request is about 256 of them, each paid per request).
void CollectIovecs(Napi::Env env, Napi::Value v, std::vector<struct iovec>& iov, const char* what);
}  // namespace nodebao
