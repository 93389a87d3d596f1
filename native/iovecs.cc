#include "iovecs.h"

#include <climits>
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

}  // namespace nodebao
