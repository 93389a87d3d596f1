// The typed Bao ioctls (spec §3.4): one function per ioctl, arguments checked, results as objects.
#pragma once
#include <napi.h>

namespace nodebao {
void InitIoctls(Napi::Env env, Napi::Object exports);
}
