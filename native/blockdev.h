// Backing-store syscalls of the block device: the size and physical block size of a block
// device (ioctls), an advisory whole-file lock (open file description lock, as QEMU takes),
// and fallocate on the libuv thread pool (hole punching and zeroing).
#pragma once
#include <napi.h>

namespace nodebao {
void InitBlockDev(Napi::Env env, Napi::Object exports);
}
