// AttachLoop: the request pump of one device model (spec §3.4, §5.3; STYLE.md 9).
//
// new AttachLoop(dmFd, revision, callback) starts one dedicated thread that blocks in
// IO_CLIENT_ATTACH. Requests are queued natively and one ThreadSafeFunction call drains all that
// accumulated, so a burst wakes JS once: callback(requests: ArrayBuffer | null, count, error, end).
// `requests` holds `count` raw 48-byte bao_virtio_request structs. When the thread ends, a last call
// carries end = 'stopped' | 'dm-gone' | 'error' (error set for 'error' and 'dm-gone').
//
// Stopping: ATTACH has no timeout and no poll support, so the thread is interrupted with a
// realtime signal whose no-op handler is installed without SA_RESTART. The signal may land just
// before the thread enters the ioctl; a libuv timer therefore repeats it until the thread is out.
// ATTACH reports the interruption as EFAULT (v2) or EINTR/EAGAIN (revB); with the stop flag unset
// the same errnos mean a competing consumer took the request, and the thread retries.
#include "attach.h"

#include <signal.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "errors.h"

namespace nodebao {

namespace {

int WakeSignal() { return SIGRTMAX - 3; }

void NoopHandler(int) {}

void InstallWakeHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = NoopHandler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the blocked ioctl must return
    sigaction(WakeSignal(), &sa, nullptr);
  });
}

}  // namespace

// Loops alive in one env (main thread or a worker), stopped by that env's cleanup hook. Never
// freed: finalizers of loops may run after the hook, and it is a few bytes per env.
struct Registry {
  std::mutex lock;
  std::vector<AttachLoop*> loops;
};

namespace {

void KeepRegistry(Napi::Env, Registry*) {}  // see Registry: deliberately never freed

void Register(Registry* r, AttachLoop* l) {
  std::lock_guard<std::mutex> g(r->lock);
  r->loops.push_back(l);
}

void Unregister(Registry* r, AttachLoop* l) {
  std::lock_guard<std::mutex> g(r->lock);
  auto& v = r->loops;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (*it == l) {
      v.erase(it);
      return;
    }
  }
}

const char* EndName(int end) {
  switch (end) {
    case 1: return "stopped";
    case 2: return "dm-gone";
    default: return "error";
  }
}

}  // namespace

void AttachLoop::Init(Napi::Env env, Napi::Object exports) {
  InstallWakeHandler();
  Napi::Function ctor = DefineClass(env, "AttachLoop",
                                    {InstanceMethod("stop", &AttachLoop::Stop),
                                     InstanceAccessor("running", &AttachLoop::IsRunning, nullptr)});
  exports.Set("AttachLoop", ctor);
  Registry* registry = new Registry();
  env.SetInstanceData<Registry, KeepRegistry>(registry);
  env.AddCleanupHook([registry] {
    std::vector<AttachLoop*> loops;
    {
      std::lock_guard<std::mutex> g(registry->lock);
      loops = registry->loops;
    }
    for (AttachLoop* l : loops) l->StopBlocking();
  });
}

AttachLoop::AttachLoop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AttachLoop>(info) {
  Napi::Env env = info.Env();
  fd_ = ArgFd(info, 0, "fd");
  revision_ = ArgInt(info, 1, "revision");
  const uapi::DmIoctls* table = uapi::DmIoctlsFor(revision_);
  if (table == nullptr) throw Napi::RangeError::New(env, "revision must be 0 (primary), 1 (revA) or 2 (revB)");
  attachRequest_ = table->attach;
  if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
  kickTimer_ = new uv_timer_t;
  uv_timer_init(loop, kickTimer_);
  kickTimer_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(kickTimer_));

  // Unlimited queue: the thread never waits for the JS thread, so stop() can always join it.
  tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "bao:attach", 0, 1);
  Ref();  // alive while the thread runs, whatever JS drops
  registry_ = env.GetInstanceData<Registry>();
  Register(registry_, this);
  thread_ = std::thread([this] { Run(); });
  tid_ = thread_.native_handle();
}

AttachLoop::~AttachLoop() {
  StopBlocking();
  if (kickTimer_ != nullptr) {
    uv_timer_stop(kickTimer_);
    uv_close(reinterpret_cast<uv_handle_t*>(kickTimer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    kickTimer_ = nullptr;
  }
}

void AttachLoop::Run() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, WakeSignal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);

  End end = End::kStopped;
  int err = 0;
  while (!stopFlag_.load()) {
    uapi::VirtioRequest req{};
    req.op = uapi::kOpAsk;  // content ignored by the driver; mirrors what bao-virtio-dm sends
    int ret = ioctl(fd_, attachRequest_, &req);
    if (ret >= 0) {
      bool schedule = false;
      {
        std::lock_guard<std::mutex> g(lock_);
        queue_.push_back(req);
        if (!drainScheduled_) schedule = drainScheduled_ = true;
      }
      if (schedule) tsfn_.NonBlockingCall([this](Napi::Env env, Napi::Function cb) { Deliver(env, cb, false); });
      continue;
    }
    int e = errno;
    if (stopFlag_.load()) break;
    // §3.4: signal / empty-queue wake-ups. EFAULT on v2 (the wait result is dropped), EINTR or
    // EAGAIN on revB. Without the stop flag these are a competing consumer winning: retry.
    if (e == EINTR || e == EAGAIN || (e == EFAULT && revision_ != uapi::kRevB)) continue;
    if (e == EPERM) {
      end = End::kDmGone;
    } else {
      end = End::kError;
    }
    err = e;
    break;
  }
  {
    std::lock_guard<std::mutex> g(lock_);
    end_ = end;
    endErrno_ = err;
  }
  tsfn_.BlockingCall([this](Napi::Env env, Napi::Function cb) {
    Deliver(env, cb, true);
  });
  threadDone_.store(true);
  tsfn_.Release();
}

// JS thread: hand every queued request over in one call; on the final call also report the end.
void AttachLoop::Deliver(Napi::Env env, Napi::Function cb, bool final) {
  if (env == nullptr) return;  // env torn down: nobody to tell
  std::vector<uapi::VirtioRequest> batch;
  End end;
  int err;
  {
    std::lock_guard<std::mutex> g(lock_);
    batch.swap(queue_);
    drainScheduled_ = false;
    end = end_;
    err = endErrno_;
  }
  Napi::HandleScope scope(env);
  auto call = [&](Napi::Value reqs, size_t count, Napi::Value error, Napi::Value endName) {
    try {
      cb.Call({reqs, Napi::Number::New(env, static_cast<double>(count)), error, endName});
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  };
  if (!batch.empty()) {
    size_t bytes = batch.size() * sizeof(uapi::VirtioRequest);
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes);
    memcpy(ab.Data(), batch.data(), bytes);
    call(ab, batch.size(), env.Null(), env.Null());
  }
  if (!final) return;
  Napi::Value error = env.Null();
  if (end != End::kStopped) {
    Napi::Error e = ErrnoError(env, err, "ioctl(BAO_IOCTL_IO_CLIENT_ATTACH)");
    error = e.Value();
  }
  call(env.Null(), 0, error, Napi::String::New(env, EndName(static_cast<int>(end))));
  Finish(env);
}

// JS thread, after the final delivery: join, stop kicking, settle stop() promises, drop the self-ref.
void AttachLoop::Finish(Napi::Env env) {
  if (finished_) return;
  finished_ = true;
  if (thread_.joinable()) thread_.join();
  if (kickTimer_ != nullptr) uv_timer_stop(kickTimer_);
  Unregister(registry_, this);
  for (auto& d : stopWaiters_) d.Resolve(env.Undefined());
  stopWaiters_.clear();
  Unref();
}

void AttachLoop::Kick() {
  if (!threadDone_.load()) pthread_kill(tid_, WakeSignal());
}

void AttachLoop::OnKickTimer(uv_timer_t* timer) {
  AttachLoop* self = static_cast<AttachLoop*>(timer->data);
  if (self->threadDone_.load()) {
    uv_timer_stop(timer);
    return;
  }
  self->Kick();
}

void AttachLoop::RequestStop() {
  stopFlag_.store(true);
  Kick();
}

// stop() -> Promise<void>, resolved once the thread has ended and been joined. Idempotent.
Napi::Value AttachLoop::Stop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  if (finished_) {
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  stopWaiters_.push_back(d);
  if (!stopFlag_.load()) {
    RequestStop();
    // The thread may not have entered the ioctl yet (or not even recorded its id): repeat the
    // signal until it is out. Referenced while stopping so the process waits for the join.
    uv_ref(reinterpret_cast<uv_handle_t*>(kickTimer_));
    uv_timer_start(kickTimer_, &AttachLoop::OnKickTimer, 1, 5);
  }
  return d.Promise();
}

// Teardown path (cleanup hook, destructor): no event loop to wait on, so kick and join here.
void AttachLoop::StopBlocking() {
  if (!thread_.joinable()) return;
  stopFlag_.store(true);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!threadDone_.load() && std::chrono::steady_clock::now() < deadline) {
    Kick();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (threadDone_.load()) {
    thread_.join();
  } else {
    thread_.detach();  // a driver that ignores signals: leak the thread rather than hang the exit
  }
  Unregister(registry_, this);
}

Napi::Value AttachLoop::IsRunning(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !finished_);
}

}  // namespace nodebao
