// See errors.h.
#include "errors.h"

#include <uv.h>
#include <cmath>

namespace nodebao {

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall, const char* path) {
  const char* code = uv_err_name(-err);
  std::string message = std::string(code) + ": " + uv_strerror(-err) + ", " + syscall;
  if (path != nullptr) message += std::string(" '") + path + "'";
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (path != nullptr) e.Set("path", Napi::String::New(env, path));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const char* path) {
  throw ErrnoError(env, err, syscall, path);
}

// One napi call per number (napi_get_value_double fails on anything else): every trapped access
// that goes to JS converts eight arguments in complete().
static double ArgNumber(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = 0;
  if (info.Length() <= i || napi_get_value_double(info.Env(), info[i], &d) != napi_ok) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  if (!std::isfinite(d) || std::trunc(d) != d) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be an integer");
  }
  return d;
}

int32_t ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = ArgNumber(info, i, name);
  if (d < 0 || d > INT32_MAX) throw Napi::RangeError::New(info.Env(), std::string(name) + " is not a valid fd");
  return static_cast<int32_t>(d);
}

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = ArgNumber(info, i, name);
  if (d < INT32_MIN || d > INT32_MAX) throw Napi::RangeError::New(info.Env(), std::string(name) + " is out of range");
  return static_cast<int32_t>(d);
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  double d = ArgNumber(info, i, name);
  if (d < 0 || d > UINT32_MAX) throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a u32");
  return static_cast<uint32_t>(d);
}

// Numbers first, in one napi call (napi_get_value_double fails on anything else, a bigint
// included): complete() converts six of them on every trapped access that goes to JS.
uint64_t ValueU64(Napi::Env env, Napi::Value v, const char* name) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) == napi_ok) {
    if (!std::isfinite(d) || std::trunc(d) != d || d < 0 || d > 9007199254740991.0) {
      throw Napi::RangeError::New(env, std::string(name) + " must be a non-negative safe integer");
    }
    return static_cast<uint64_t>(d);
  }
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, std::string(name) + " must fit in a u64");
    return u;
  }
  throw Napi::TypeError::New(env, std::string(name) + " must be a bigint or a number");
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i) throw Napi::TypeError::New(info.Env(), std::string(name) + " is missing");
  return ValueU64(info.Env(), info[i], name);
}

}  // namespace nodebao
