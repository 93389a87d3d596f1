// abi(): the ABI tables as the compiler sees them (see abi.cc).
#pragma once
#include <napi.h>

namespace nodebao {
Napi::Value Abi(const Napi::CallbackInfo& info);
}
