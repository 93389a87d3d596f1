// Small fd-level syscalls: mmap/munmap as external ArrayBuffers, eventfd creation, openpty.
#pragma once
#include <napi.h>

namespace nodebao {
void InitFdUtil(Napi::Env env, Napi::Object exports);

// Keeps the mapping (made by mmap() here) that contains `p` mapped for the rest of the process:
// munmap() then only detaches its ArrayBuffer and the finalizer leaves it. For memory the kernel
// may still write (an abandoned ATTACH thread's journal slot, attach.cc). No-op for other memory.
void PinMapping(const void* p);
}
