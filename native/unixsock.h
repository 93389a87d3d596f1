// Unix stream sockets with descriptor passing (SCM_RIGHTS): what the vhost-user frontend needs and
// Node's net module cannot do (see unixsock.cc).
#pragma once
#include <napi.h>

namespace nodebao {
void InitUnixSock(Napi::Env env, Napi::Object exports);
}
