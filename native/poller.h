// Poller: a libuv poll watcher on one fd (see poller.cc).
#pragma once
#include <napi.h>
#include <uv.h>

namespace nodebao {

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit Poller(const Napi::CallbackInfo& info);
  ~Poller() override;

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value IsActive(const Napi::CallbackInfo& info);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  void StopWatching();
  void CloseHandle();

  uv_poll_t* handle_ = nullptr;  // owned; freed in the uv_close callback
  Napi::FunctionReference callback_;
  Napi::AsyncContext* context_ = nullptr;
  int fd_;
  bool active_ = false;
  bool closed_ = false;
};

}  // namespace nodebao
