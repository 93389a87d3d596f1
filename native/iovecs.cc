#include "iovecs.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

namespace nodebao {

namespace {
[[noreturn]] void NotViews(Napi::Env env, const char* what) {
  throw Napi::TypeError::New(env, std::string(what) + " must be an array of Uint8Array");
}
}  // namespace

void CollectIovecs(Napi::Env env, Napi::Value v, std::vector<struct iovec>& iov, const char* what) {
  if (!v.IsArray()) NotViews(env, what);
  Napi::Array arr = v.As<Napi::Array>();
  uint32_t n = arr.Length();
  if (n > IOV_MAX) throw Napi::RangeError::New(env, std::string("too many ") + what + " for one call (more than IOV_MAX)");
  iov.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    if (napi_get_element(env, arr, i, &e) != napi_ok) throw Napi::Error::New(env);
    // One napi_get_typedarray_info gives the type, the length and the data pointer (offset
    // included); node-addon-api's accessors would ask for each of them again.
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(env, e, &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
      NotViews(env, what);
    }
    iov[i].iov_base = data;
    iov[i].iov_len = length;
  }
}

namespace {
// A double span element as a byte count, or SIZE_MAX when it is not a whole number that fits a
// size_t (32 bits on armv7): SIZE_MAX never fits a region, so the bounds check refuses it.
size_t SpanValue(double d) {
  if (!(d >= 0) || d >= static_cast<double>(SIZE_MAX) || std::floor(d) != d) return SIZE_MAX;
  return static_cast<size_t>(d);
}
size_t SpanValue(uint32_t u) { return u; }

template <typename T>
void FillSpans(Napi::Env env, uint8_t* base, size_t size, const T* s, uint32_t count, std::vector<struct iovec>& iov) {
  iov.resize(count);
  for (uint32_t i = 0; i < count; i++) {
    size_t off = SpanValue(s[2 * i]);
    size_t len = SpanValue(s[2 * i + 1]);
    if (off > size || len > size - off) throw Napi::RangeError::New(env, "a span lies outside the region");
    iov[i].iov_base = base + off;
    iov[i].iov_len = len;
  }
}
}  // namespace

void CollectSpans(Napi::Env env, Napi::Value region, Napi::Value spans, uint32_t count, std::vector<struct iovec>& iov) {
  // One napi_get_typedarray_info per array (type, length and data at once): node-addon-api's
  // accessors ask again for each, and this runs per request.
  napi_typedarray_type type;
  size_t size;
  void* base;
  bool isTyped = false;
  if (napi_is_typedarray(env, region, &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(env, region, &type, &size, &base, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
    throw Napi::TypeError::New(env, "region must be a Uint8Array");
  }
  size_t elements;
  void* data;
  if (napi_is_typedarray(env, spans, &isTyped) != napi_ok || !isTyped ||
      napi_get_typedarray_info(env, spans, &type, &elements, &data, nullptr, nullptr) != napi_ok ||
      (type != napi_uint32_array && type != napi_float64_array)) {
    throw Napi::TypeError::New(env, "spans must be a Uint32Array or Float64Array of (offset, length) pairs");
  }
  if (count > IOV_MAX) throw Napi::RangeError::New(env, "too many spans for one call (more than IOV_MAX)");
  if (static_cast<size_t>(count) * 2 > elements) throw Napi::RangeError::New(env, "count is beyond the spans given");
  uint8_t* b = static_cast<uint8_t*>(base);
  if (type == napi_uint32_array) {
    FillSpans(env, b, size, static_cast<const uint32_t*>(data), count, iov);
  } else {
    FillSpans(env, b, size, static_cast<const double*>(data), count, iov);
  }
}

}  // namespace nodebao
