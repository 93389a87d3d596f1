// One datagram to a unix socket path (sd_notify's transport: NOTIFY_SOCKET). Node's dgram module
// has no AF_UNIX support, so this is the one syscall sequence node-bao needs for systemd.
#pragma once
#include <napi.h>

namespace nodebao {
void InitNotify(Napi::Env env, Napi::Object exports);
}
