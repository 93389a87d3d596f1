// A thin io_uring: set up with raw syscalls (<linux/io_uring.h>, no liburing), queue readv,
// writev, fsync and fallocate SQEs whose iovecs point straight at the caller's buffers, submit
// them in one io_uring_enter, and reap completions; an eventfd registered with the ring tells
// libuv (through a Poller) that completions are waiting. No virtio knowledge, no policy.
#pragma once
#include <napi.h>

namespace nodebao {
void InitUring(Napi::Env env, Napi::Object exports);
}
