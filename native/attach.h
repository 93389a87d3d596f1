// AttachLoop: one native thread blocking in IO_CLIENT_ATTACH for one DM fd (see attach.cc).
#pragma once
#include <napi.h>
#include <pthread.h>
#include <uv.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "bao_uapi.h"
#include "cells.h"
#include "journal.h"

namespace nodebao {

struct Registry;
class AttachLoop;

// Everything the ATTACH thread touches. It holds its own reference (shared_ptr), so the JS
// object may be finalized while the thread still runs (env teardown with a thread that did not
// answer the stop signal): the thread then only ever sees this, never the AttachLoop.
struct AttachShared {
  enum class End { kNone, kStopped, kDmGone, kError };

  int fd = -1;
  int revision = 0;
  unsigned long attachRequest = 0;
  unsigned long completeRequest = 0;
  int testStallMs = 0;  // tests only: plays a driver that ignores the stop signal this long
  Napi::ThreadSafeFunction tsfn;
  std::atomic<bool> stopFlag{false};
  std::atomic<bool> threadDone{false};

  std::mutex lock;  // guards everything below, and every use of tsfn by the thread
  std::vector<uapi::VirtioRequest> queue;
  bool drainScheduled = false;
  End end = End::kNone;
  int endErrno = 0;
  // Set (under `lock`) when the owner gave the thread up: the env may be gone, with the tsfn
  // and the cell table's memory.
  bool abandoned = false;
  cells::Table cells;  // words == nullptr: no cells, every request goes to JS
  journal::Table journal;  // base == nullptr: requests are not recorded (journal.h)

  AttachLoop* owner = nullptr;  // JS thread only; nulled by ~AttachLoop
};

class AttachLoop : public Napi::ObjectWrap<AttachLoop> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit AttachLoop(const Napi::CallbackInfo& info);
  ~AttachLoop() override;

  // Env teardown: stop and join without the event loop (cleanup hook).
  void StopBlocking();

 private:
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value IsRunning(const Napi::CallbackInfo& info);
  static void* ThreadMain(void* arg);
  static void Run(const std::shared_ptr<AttachShared>& s);
  static void Deliver(const std::shared_ptr<AttachShared>& s, Napi::Env env, Napi::Function cb, bool final);
  void RequestStop();
  void Kick();
  void Finish(Napi::Env env);
  void CloseKickTimer();
  void UnpinJournal();
  static void OnKickTimer(uv_timer_t* timer);

  Registry* registry_ = nullptr;
  std::shared_ptr<AttachShared> shared_;
  pthread_t tid_{};
  bool started_ = false;   // a thread was created
  bool joined_ = false;    // ... and joined or detached: tid_ is no longer ours
  bool finished_ = false;  // JS side has joined the thread and released everything

  Napi::Reference<Napi::ArrayBuffer> cellsRef_;  // keeps the table's memory while the thread may read it
  Napi::Reference<Napi::ArrayBuffer> journalRef_;  // same for the request journal's mapping
  // The ArrayBuffer each delivery of up to kDeliveryRequests requests is copied into (JS thread
  // only): made once, so that a trapped access costs no ArrayBuffer (allocation, zeroing, GC
  // tracking). JS decodes it before the callback returns (the next delivery overwrites it).
  static constexpr size_t kDeliveryRequests = 16;
  Napi::Reference<Napi::ArrayBuffer> deliveryRef_;
  uv_timer_t* kickTimer_ = nullptr;
  std::vector<Napi::Promise::Deferred> stopWaiters_;
};

}  // namespace nodebao
