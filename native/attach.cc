// AttachLoop: the request pump of one device model (spec §3.4, §5.3; STYLE.md 9).
//
// new AttachLoop(dmFd, revision, callback, options?) starts one dedicated thread that blocks in
// IO_CLIENT_ATTACH. With options.cells (an ArrayBuffer in the cells.h layout), accesses that hit a
// register cell are answered and COMPLETEd by that thread and never reach JS (cells.cc). Requests are queued natively and one ThreadSafeFunction call drains all that
// accumulated, so a burst wakes JS once: callback(requests: ArrayBuffer | null, count, error, end).
// `requests` holds `count` raw 48-byte bao_virtio_request structs; it is the same buffer on every
// call that carries up to 16 (JS decodes it before returning: the next call overwrites it). When the thread ends, a last call
// carries end = 'stopped' | 'dm-gone' | 'error' (error set for 'error' and 'dm-gone').
//
// Stopping: ATTACH has no timeout and no poll support, so the thread is interrupted with a
// realtime signal whose no-op handler is installed without SA_RESTART. The signal may land just
// before the thread enters the ioctl; a libuv timer therefore repeats it until the thread is out.
// ATTACH reports the interruption as EFAULT (v2) or EINTR/EAGAIN (revB); with the stop flag unset
// the same errnos mean a competing consumer took the request, and the thread retries.
//
// Lifetime: the thread owns a reference to AttachShared and touches nothing else, so it can
// outlive the JS object (a thread that never returns from the ioctl is detached at teardown
// after 2 s). Every tsfn call of the thread is made under AttachShared::lock after checking
// `abandoned`: once the owner gave the thread up, the env (and the tsfn with it) may be gone.
// With a journal, ATTACH's buffer is a slot of the mapped journal (journal.h), so the kernel
// holds a pointer into that mapping while the thread blocks: the mapping is pinned from the
// constructor until the join, and never unpinned for a thread that was given up.
// A thread that cannot be started leaves nothing behind: the tsfn is released (it would keep
// the event loop alive), the loop unregistered, and the constructor throws the errno error.
#include "attach.h"

#include <signal.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include "errors.h"
#include "fdutil.h"

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

const char* EndName(AttachShared::End end) {
  switch (end) {
    case AttachShared::End::kStopped: return "stopped";
    case AttachShared::End::kDmGone: return "dm-gone";
    default: return "error";
  }
}

// Sleeps `ms` whatever signals arrive (the test stand-in for a driver deaf to the wake signal).
void StallIgnoringSignals(int ms) {
  struct timespec left = {ms / 1000, static_cast<long>(ms % 1000) * 1000000L};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
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
  auto s = std::make_shared<AttachShared>();
  s->fd = ArgFd(info, 0, "fd");
  s->revision = ArgInt(info, 1, "revision");
  const uapi::DmIoctls* table = uapi::DmIoctlsFor(s->revision);
  if (table == nullptr) throw Napi::RangeError::New(env, "revision must be 0 (primary), 1 (revA) or 2 (revB)");
  s->attachRequest = table->attach;
  s->completeRequest = table->complete;
  if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object opts = info[3].As<Napi::Object>();
    Napi::Value stall = opts.Get("testStallMs");
    if (stall.IsNumber()) s->testStallMs = stall.As<Napi::Number>().Int32Value();
    Napi::Value cells = opts.Get("cells");
    if (cells.IsArrayBuffer()) {
      Napi::ArrayBuffer ab = cells.As<Napi::ArrayBuffer>();
      if (reinterpret_cast<uintptr_t>(ab.Data()) % 4 != 0) throw Napi::RangeError::New(env, "cells must be 4-byte aligned");
      s->cells = cells::Table{static_cast<uint32_t*>(ab.Data()), ab.ByteLength() / 4};
      cellsRef_ = Napi::Persistent(ab);
    } else if (!cells.IsUndefined()) {
      throw Napi::TypeError::New(env, "cells must be an ArrayBuffer");
    }
    s->journal = journal::FromOptions(env, opts, &journalRef_);
    // The ATTACH thread hands the kernel pointers into the journal (its slots are the request
    // buffer, journal.h). Unmapped under a blocked ATTACH, the next request would be lost (the
    // driver dequeues it, then the copy fails with EFAULT and its vCPU stays paused); mapped
    // again at that address, the kernel would write 48 bytes into unrelated memory. So the
    // mapping is pinned (fdutil.h: munmap() and the finalizer defer to the unpin) until the
    // thread is joined, and for the rest of the process if it is given up (StopBlocking): a
    // few pages per abandoned thread, which only a driver deaf to signals produces. Env
    // teardown may run the buffer's finalizer before the cleanup hook stops the thread, which
    // is why the pin is taken here and not when the thread is given up.
    // A journal in memory that mmap() did not map could not be pinned (nor survive the process).
    if (s->journal.base != nullptr && !PinMapping(s->journal.base)) throw Napi::TypeError::New(env, "journal must be an ArrayBuffer returned by mmap");
  }

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
  kickTimer_ = new uv_timer_t;
  uv_timer_init(loop, kickTimer_);
  kickTimer_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(kickTimer_));

  deliveryRef_ = Napi::Persistent(Napi::ArrayBuffer::New(env, kDeliveryRequests * sizeof(uapi::VirtioRequest)));

  // Unlimited queue: the thread never waits for the JS thread, so stop() can always join it.
  s->tsfn = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "bao:attach", 0, 1);
  s->owner = this;
  shared_ = s;
  registry_ = env.GetInstanceData<Registry>();

  auto* arg = new std::shared_ptr<AttachShared>(s);
  int err = pthread_create(&tid_, nullptr, &AttachLoop::ThreadMain, arg);
  if (err != 0) {
    delete arg;
    s->owner = nullptr;
    s->tsfn.Release();  // the thread's count: the tsfn closes and no longer holds the loop
    if (s->journal.base != nullptr) UnpinMapping(s->journal.base);
    CloseKickTimer();
    finished_ = true;
    ThrowErrno(env, err, "pthread_create");
  }
  started_ = true;
  Ref();  // alive while the thread runs, whatever JS drops
  Register(registry_, this);
}

AttachLoop::~AttachLoop() {
  StopBlocking();
  if (shared_) shared_->owner = nullptr;
  CloseKickTimer();
}

void AttachLoop::CloseKickTimer() {
  if (kickTimer_ == nullptr) return;
  uv_timer_stop(kickTimer_);
  uv_close(reinterpret_cast<uv_handle_t*>(kickTimer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  kickTimer_ = nullptr;
}

void* AttachLoop::ThreadMain(void* arg) {
  std::shared_ptr<AttachShared> s = std::move(*static_cast<std::shared_ptr<AttachShared>*>(arg));
  delete static_cast<std::shared_ptr<AttachShared>*>(arg);
  // Named for top -H, perf and /proc/<pid>/task/*/comm: a busy device model's ATTACH thread
  // takes CPU from the event loop, and is otherwise indistinguishable from Node's own threads.
  pthread_setname_np(pthread_self(), "bao-attach");
  Run(s);
  return nullptr;
}

// The ATTACH thread. Uses only `s` (see the lifetime note at the top).
void AttachLoop::Run(const std::shared_ptr<AttachShared>& sp) {
  AttachShared& s = *sp;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, WakeSignal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);

  using End = AttachShared::End;
  End end = End::kStopped;
  int err = 0;
  // The thread's own copy of the journal table: its mapping is pinned until the thread is
  // joined, for good if it is given up (constructor), so it stays valid whatever JS drops.
  const journal::Table jt = s.journal;
  // The journal slot that is ATTACH's buffer, or -1 (no journal, or it is full). Armed before
  // the test stall, so that a test sees the slot armed while the thread stalls.
  int armed = journal::Arm(jt);
  if (s.testStallMs > 0) StallIgnoringSignals(s.testStallMs);
  while (!s.stopFlag.load()) {
    uapi::VirtioRequest local{};
    local.op = uapi::kOpAsk;  // content ignored by the driver; mirrors what bao-virtio-dm sends
    if (armed < 0) armed = journal::Arm(jt);
    // With a slot, the kernel copies the request straight into the mapped journal file: taken
    // and recorded are one event, and a kill right after the ioctl leaves it to the next process.
    uapi::VirtioRequest* buf = armed >= 0 ? journal::RequestIn(jt, armed) : &local;
    int ret = ioctl(s.fd, s.attachRequest, buf);
    if (ret >= 0) {
      int slot = armed;
      armed = -1;
      uapi::VirtioRequest req = *buf;
      journal::Filled(jt, slot);
      bool hit = false;
      {
        std::lock_guard<std::mutex> g(s.lock);
        if (s.abandoned) continue;  // TAKEN in the journal: the next process completes it
        if (slot < 0) slot = journal::Take(jt, req);  // no slot was free when armed: try again now
        hit = cells::Answer(s.cells, &req);
        if (!hit) {
          s.queue.push_back(req);
          if (!s.drainScheduled) {
            s.drainScheduled = true;
            cells::MarkQueued(s.cells);  // hand-off timing, when the table asks for it
            s.tsfn.NonBlockingCall([sp](Napi::Env env, Napi::Function cb) { Deliver(sp, env, cb, false); });
          }
        }
      }
      // A hot cell: the vCPU is released from this thread; JS reads the hit counters later.
      // The stop signal may interrupt the COMPLETE: retry it, the vCPU waits for it.
      if (hit) {
        int r;
        journal::MarkCompleting(jt, slot);
        do {
          r = ioctl(s.fd, s.completeRequest, &req);
        } while (r < 0 && errno == EINTR);
        if (r != 0) {
          int e = r < 0 ? errno : r;  // a positive result is the hypervisor's raw status
          std::lock_guard<std::mutex> g(s.lock);
          if (!s.abandoned) cells::NoteCompleteFailure(s.cells, e);
        }
        journal::Release(jt, slot);
      }
      continue;
    }
    int e = errno;
    journal::Rearm(jt, armed);
    if (s.stopFlag.load()) break;
    // §3.4: signal / empty-queue wake-ups. EFAULT on v2 (the wait result is dropped), EINTR or
    // EAGAIN on revB. Without the stop flag these are a competing consumer winning: retry.
    if (e == EINTR || e == EAGAIN || (e == EFAULT && s.revision != uapi::kRevB)) continue;
    end = e == EPERM ? End::kDmGone : End::kError;
    err = e;
    break;
  }
  {
    std::lock_guard<std::mutex> g(s.lock);
    // The marker only: nothing was handed over into it. A thread given up leaves its slot as
    // it is: by now the file may have a new owner in this process, whose slots these are.
    if (!s.abandoned) journal::Disarm(jt, armed);
    s.end = end;
    s.endErrno = err;
    if (!s.abandoned) {
      s.tsfn.BlockingCall([sp](Napi::Env env, Napi::Function cb) { Deliver(sp, env, cb, true); });
      s.tsfn.Release();
    }
    s.threadDone.store(true);
  }
}

// JS thread: hand every queued request over in one call; on the final call also report the end.
void AttachLoop::Deliver(const std::shared_ptr<AttachShared>& sp, Napi::Env env, Napi::Function cb, bool final) {
  if (env == nullptr) return;  // env torn down: nobody to tell
  AttachShared& s = *sp;
  AttachShared::End end;
  int err;
  uint64_t queuedNs;
  Napi::HandleScope scope(env);
  // The requests are copied out under the lock, into the owner's delivery buffer when they fit
  // (a new ArrayBuffer otherwise); the queue keeps its capacity, so neither thread allocates.
  Napi::ArrayBuffer ab;
  size_t count;
  {
    std::lock_guard<std::mutex> g(s.lock);
    queuedNs = cells::QueuedAt(s.cells);
    count = s.queue.size();
    if (count > 0) {
      size_t bytes = count * sizeof(uapi::VirtioRequest);
      ab = s.owner != nullptr && count <= kDeliveryRequests ? s.owner->deliveryRef_.Value() : Napi::ArrayBuffer::New(env, bytes);
      memcpy(ab.Data(), s.queue.data(), bytes);
      s.queue.clear();
    }
    s.drainScheduled = false;
    end = s.end;
    err = s.endErrno;
  }
  auto call = [&](Napi::Value reqs, size_t count, Napi::Value error, Napi::Value endName) {
    try {
      cb.Call({reqs, Napi::Number::New(env, static_cast<double>(count)), error, endName});
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  };
  if (count > 0) {
    // A batch the ATTACH thread did not time (queuedNs 0: sampling, cells.h) reads no clock here either.
    uint64_t startNs = queuedNs != 0 ? cells::NowNs() : 0;
    call(ab, count, env.Null(), env.Null());
    if (queuedNs != 0) cells::RecordDelivery(s.cells, queuedNs, startNs, cells::NowNs());
  }
  if (!final) return;
  Napi::Value error = env.Null();
  if (end != AttachShared::End::kStopped) {
    Napi::Error e = ErrnoError(env, err, "ioctl(BAO_IOCTL_IO_CLIENT_ATTACH)");
    error = e.Value();
  }
  call(env.Null(), 0, error, Napi::String::New(env, EndName(end)));
  if (s.owner != nullptr) s.owner->Finish(env);
}

// JS thread, after the final delivery: join, stop kicking, settle stop() promises, drop the self-ref.
void AttachLoop::Finish(Napi::Env env) {
  if (finished_) return;
  finished_ = true;
  if (started_ && !joined_) {
    pthread_join(tid_, nullptr);
    joined_ = true;
    UnpinJournal();
  }
  if (kickTimer_ != nullptr) uv_timer_stop(kickTimer_);
  Unregister(registry_, this);
  for (auto& d : stopWaiters_) d.Resolve(env.Undefined());
  stopWaiters_.clear();
  Unref();
}

void AttachLoop::Kick() {
  if (started_ && !joined_ && !shared_->threadDone.load()) pthread_kill(tid_, WakeSignal());
}

void AttachLoop::OnKickTimer(uv_timer_t* timer) {
  AttachLoop* self = static_cast<AttachLoop*>(timer->data);
  if (self->shared_->threadDone.load()) {
    uv_timer_stop(timer);
    return;
  }
  self->Kick();
}

void AttachLoop::RequestStop() {
  shared_->stopFlag.store(true);
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
  if (!shared_->stopFlag.load()) {
    RequestStop();
    // The thread may not have entered the ioctl yet: repeat the signal until it is out.
    // Referenced while stopping so the process waits for the join.
    uv_ref(reinterpret_cast<uv_handle_t*>(kickTimer_));
    uv_timer_start(kickTimer_, &AttachLoop::OnKickTimer, 1, 5);
  }
  return d.Promise();
}

// Teardown path (cleanup hook, destructor): no event loop to wait on, so kick and join here.
// A thread still in the ioctl after 2 s is given up (detached, `abandoned`): it keeps its own
// reference to the shared state and never touches this object or the tsfn again.
void AttachLoop::StopBlocking() {
  if (!started_ || joined_) return;
  shared_->stopFlag.store(true);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!shared_->threadDone.load() && std::chrono::steady_clock::now() < deadline) {
    Kick();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  bool done;
  {
    std::lock_guard<std::mutex> g(shared_->lock);
    done = shared_->threadDone.load();
    if (!done) {
      shared_->abandoned = true;
      shared_->cells = cells::Table{};  // its memory goes with this object
      // The journal's memory does not: the thread is still inside ATTACH with a pointer into it
      // and the kernel may write the next request there at any time. Its pin (constructor) is
      // therefore never released: the mapping stays for the rest of the process (constructor).
    }
  }
  if (done) {
    pthread_join(tid_, nullptr);
    UnpinJournal();
  } else {
    pthread_detach(tid_);  // a driver that ignores signals: leak the thread rather than hang the exit
  }
  joined_ = true;
  Unregister(registry_, this);
}

// After the join: the thread no longer hands the kernel pointers into the journal.
void AttachLoop::UnpinJournal() {
  if (shared_->journal.base != nullptr) UnpinMapping(shared_->journal.base);
}

Napi::Value AttachLoop::IsRunning(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !finished_);
}

}  // namespace nodebao
