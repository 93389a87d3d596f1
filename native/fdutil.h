// Small fd-level syscalls: mmap/munmap as external ArrayBuffers, eventfd creation, openpty.
#pragma once
#include <napi.h>

namespace nodebao {
void InitFdUtil(Napi::Env env, Napi::Object exports);
}
