// Turning failed syscalls into JS errors shaped like Node's own fs errors: `code` is libuv's errno
// name (the names fs uses), `errno` is Node's negative errno, `syscall` says which call (for an
// ioctl, which one), `path` is set when there is one. Argument checks throw TypeError/RangeError.
#pragma once

#include <napi.h>
#include <string>

namespace nodebao {

// Build (not throw) the error for `err` (a positive errno value).
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& syscall, const char* path = nullptr);

[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const char* path = nullptr);

// Argument readers: validate at every entry (STYLE.md guideline 7).
int32_t ArgFd(const Napi::CallbackInfo& info, size_t i, const char* name);
int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
// A u64 given as a bigint or as a non-negative safe integer number.
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);
uint64_t ValueU64(Napi::Env env, Napi::Value v, const char* name);

}  // namespace nodebao
