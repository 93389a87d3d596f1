// The node-bao addon's entry point: registers each thin syscall module (ARCHITECTURE.md, native/).
// Typed for TypeScript in lib/native.ts.
#include <napi.h>

#include "abi.h"
#include "attach.h"
#include "blockdev.h"
#include "cells.h"
#include "fdutil.h"
#include "ioctls.h"
#include "notify.h"
#include "poller.h"
#include "tap.h"
#include "unixsock.h"
#include "vhost.h"
#include "uring.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abi", Napi::Function::New(env, nodebao::Abi, "abi"));
  nodebao::InitIoctls(env, exports);
  nodebao::InitFdUtil(env, exports);  // creates exports.constants
  nodebao::Poller::Init(env, exports);
  nodebao::AttachLoop::Init(env, exports);
  nodebao::cells::Init(env, exports);
  nodebao::InitNotify(env, exports);
  nodebao::InitBlockDev(env, exports);
  nodebao::InitTap(env, exports);
  nodebao::InitUnixSock(env, exports);
  nodebao::InitVhost(env, exports);
  nodebao::InitUring(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(bao, Init)
