// TAP interfaces: open, vnet header size, offloads, readv/writev into JS views (see tap.cc).
#pragma once
#include <napi.h>

namespace nodebao {

void InitTap(Napi::Env env, Napi::Object exports);

}  // namespace nodebao
