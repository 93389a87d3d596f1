// AttachLoop: one native thread blocking in IO_CLIENT_ATTACH for one DM fd (see attach.cc).
#pragma once
#include <napi.h>
#include <pthread.h>
#include <uv.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "bao_uapi.h"

namespace nodebao {

struct Registry;

class AttachLoop : public Napi::ObjectWrap<AttachLoop> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit AttachLoop(const Napi::CallbackInfo& info);
  ~AttachLoop() override;

  // Env teardown: stop and join without the event loop (cleanup hook).
  void StopBlocking();

 private:
  enum class End { kNone, kStopped, kDmGone, kError };

  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value IsRunning(const Napi::CallbackInfo& info);
  void Run();
  void RequestStop();
  void Kick();
  void Deliver(Napi::Env env, Napi::Function cb, bool final);
  void Finish(Napi::Env env);
  static void OnKickTimer(uv_timer_t* timer);

  Registry* registry_ = nullptr;
  int fd_;
  int revision_;
  unsigned long attachRequest_;
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  pthread_t tid_{};
  std::atomic<bool> stopFlag_{false};
  std::atomic<bool> threadDone_{false};
  bool finished_ = false;  // JS side has joined the thread and released everything

  std::mutex lock_;  // guards queue_, drainScheduled_, end_, endErrno_
  std::vector<uapi::VirtioRequest> queue_;
  bool drainScheduled_ = false;
  End end_ = End::kNone;
  int endErrno_ = 0;

  uv_timer_t* kickTimer_ = nullptr;
  std::vector<Napi::Promise::Deferred> stopWaiters_;
};

}  // namespace nodebao
