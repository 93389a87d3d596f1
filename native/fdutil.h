// Small fd-level syscalls: mmap/munmap as external ArrayBuffers, eventfd creation, openpty.
#pragma once
#include <napi.h>

namespace nodebao {
void InitFdUtil(Napi::Env env, Napi::Object exports);

// While pinned (PinMapping calls not yet matched by UnpinMapping), the mapping made by mmap()
// here that contains `p` stays mapped: munmap() only detaches its ArrayBuffer and the finalizer
// only marks it; the last unpin then unmaps. For memory the kernel may write while JS could drop
// it (an ATTACH thread's journal slot, attach.cc). False (nothing pinned) for memory that
// mmap() here did not map.
bool PinMapping(const void* p);
void UnpinMapping(const void* p);
}
