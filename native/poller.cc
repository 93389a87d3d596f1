// Poller: calls a JS function whenever an fd becomes readable (or writable), from the event loop
// itself, so queue ioeventfds, tap and pty fds cost no thread (bindings-cpp poller pattern).
// new Poller(fd, callback(err, events)); start(events = READABLE); stop(); close() (idempotent).
// While watching, the object holds a strong reference to itself so it is not collected.
// A poll error (libuv reports POLLERR as UV_EBADF and has already stopped its watcher) ends the
// watching here too before the callback sees it: the self-reference is dropped, `active` turns
// false, and start() may be called again if the owner wants to retry.
#include "poller.h"

#include "errors.h"

namespace nodebao {

void Poller::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "Poller",
                                    {InstanceMethod("start", &Poller::Start), InstanceMethod("stop", &Poller::Stop),
                                     InstanceMethod("close", &Poller::Close),
                                     InstanceAccessor("active", &Poller::IsActive, nullptr)});
  exports.Set("Poller", ctor);
  Napi::Object c = exports.Get("constants").As<Napi::Object>();
  c.Set("POLL_READABLE", Napi::Number::New(env, UV_READABLE));
  c.Set("POLL_WRITABLE", Napi::Number::New(env, UV_WRITABLE));
  c.Set("POLL_DISCONNECT", Napi::Number::New(env, UV_DISCONNECT));
}

Poller::Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
  Napi::Env env = info.Env();
  fd_ = ArgFd(info, 0, "fd");
  if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
  callback_ = Napi::Persistent(info[1].As<Napi::Function>());
  context_ = new Napi::AsyncContext(env, "bao:poller");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "no event loop");
  handle_ = new uv_poll_t;
  int r = uv_poll_init(loop, handle_, fd_);
  if (r != 0) {
    delete handle_;
    handle_ = nullptr;
    closed_ = true;
    ThrowErrno(env, -r, "uv_poll_init");
  }
  handle_->data = this;
}

Poller::~Poller() {
  CloseHandle();
  delete context_;
}

void Poller::OnPoll(uv_poll_t* handle, int status, int events) {
  Poller* self = static_cast<Poller*>(handle->data);
  if (self == nullptr || !self->active_) return;
  Napi::Env env = self->Env();
  Napi::HandleScope scope(env);
  Napi::Value err = env.Null();
  Napi::Value keep = self->Value();  // StopWatching may drop the last reference
  if (status < 0) {
    err = ErrnoError(env, -status, "uv_poll").Value();
    self->StopWatching();
  }
  try {
    self->callback_.MakeCallback(keep.As<Napi::Object>(), {err, Napi::Number::New(env, events)}, *self->context_);
  } catch (const Napi::Error& e) {
    // A throwing JS callback must surface as an uncaught exception, not unwind through libuv.
    napi_fatal_exception(env, e.Value());
  }
}

Napi::Value Poller::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "Poller is closed");
  int events = UV_READABLE;
  if (info.Length() > 0 && !info[0].IsUndefined()) events = ArgInt(info, 0, "events");
  int r = uv_poll_start(handle_, events, &Poller::OnPoll);
  if (r != 0) ThrowErrno(env, -r, "uv_poll_start");
  if (!active_) Ref();
  active_ = true;
  return env.Undefined();
}

void Poller::StopWatching() {
  if (!active_) return;
  uv_poll_stop(handle_);
  active_ = false;
  Unref();
}

Napi::Value Poller::Stop(const Napi::CallbackInfo& info) {
  if (!closed_) StopWatching();
  return info.Env().Undefined();
}

void Poller::CloseHandle() {
  if (handle_ == nullptr) return;
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
  handle_ = nullptr;
}

Napi::Value Poller::Close(const Napi::CallbackInfo& info) {
  if (!closed_) {
    StopWatching();
    CloseHandle();
    closed_ = true;
  }
  return info.Env().Undefined();
}

Napi::Value Poller::IsActive(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), active_); }

}  // namespace nodebao
