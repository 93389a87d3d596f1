// Kernel vhost ioctls (/dev/vhost-vsock, /dev/vhost-net): see vhost.cc.
#pragma once
#include <napi.h>

namespace nodebao {
void InitVhost(Napi::Env env, Napi::Object exports);
}
