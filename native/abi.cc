// abi(): the ioctl numbers and struct layouts exactly as this target's C compiler computes them,
// per revision. `baoctl abi` prints it and test/native checks it against lib/uapi.
#include "abi.h"

#include "bao_uapi.h"

namespace nodebao {

using namespace uapi;

namespace {

Napi::Number U32(Napi::Env env, unsigned long v) { return Napi::Number::New(env, static_cast<double>(static_cast<uint32_t>(v))); }

struct Field {
  const char* name;
  size_t offset;
};

Napi::Object Layout(Napi::Env env, size_t size, std::initializer_list<Field> fields) {
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  Napi::Object offsets = Napi::Object::New(env);
  for (const Field& f : fields) offsets.Set(f.name, Napi::Number::New(env, static_cast<double>(f.offset)));
  layout.Set("offsets", offsets);
  return layout;
}

#define NB_FIELD(type, field) Field{#field, offsetof(type, field)}

Napi::Object RequestLayout(Napi::Env env) {
  return Layout(env, sizeof(VirtioRequest),
                {NB_FIELD(VirtioRequest, dm_id), NB_FIELD(VirtioRequest, addr), NB_FIELD(VirtioRequest, op),
                 NB_FIELD(VirtioRequest, value), NB_FIELD(VirtioRequest, access_width),
                 NB_FIELD(VirtioRequest, request_id)});
}

Napi::Object IoeventfdLayout(Napi::Env env) {
  return Layout(env, sizeof(Ioeventfd),
                {NB_FIELD(Ioeventfd, fd), NB_FIELD(Ioeventfd, flags), NB_FIELD(Ioeventfd, addr),
                 NB_FIELD(Ioeventfd, len), NB_FIELD(Ioeventfd, reserved), NB_FIELD(Ioeventfd, data)});
}

Napi::Object IrqfdLayout(Napi::Env env) {
  return Layout(env, sizeof(Irqfd), {NB_FIELD(Irqfd, fd), NB_FIELD(Irqfd, flags)});
}

Napi::Object RevisionTable(Napi::Env env, unsigned type, Napi::Object ioctls, Napi::Object dmInfo) {
  Napi::Object rev = Napi::Object::New(env);
  rev.Set("ioctlType", Napi::Number::New(env, type));
  rev.Set("ioctls", ioctls);
  Napi::Object structs = Napi::Object::New(env);
  structs.Set("bao_dm_info", dmInfo);
  structs.Set("bao_virtio_request", RequestLayout(env));
  structs.Set("bao_ioeventfd", IoeventfdLayout(env));
  structs.Set("bao_irqfd", IrqfdLayout(env));
  rev.Set("structs", structs);
  return rev;
}

}  // namespace

Napi::Value Abi(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);

  Napi::Object primary = Napi::Object::New(env);
  primary.Set("BAO_IOCTL_DM_GET_INFO", U32(env, NB_IOCTL_DM_GET_INFO));
  primary.Set("BAO_IOCTL_IO_CLIENT_ATTACH", U32(env, NB_IOCTL_IO_CLIENT_ATTACH));
  primary.Set("BAO_IOCTL_IO_REQUEST_COMPLETE", U32(env, NB_IOCTL_IO_REQUEST_COMPLETE));
  primary.Set("BAO_IOCTL_IOEVENTFD", U32(env, NB_IOCTL_IOEVENTFD));
  primary.Set("BAO_IOCTL_IRQFD", U32(env, NB_IOCTL_IRQFD));
  out.Set("primary", RevisionTable(env, kTypePrimary, primary,
                              Layout(env, sizeof(DmInfo),
                                     {NB_FIELD(DmInfo, id), NB_FIELD(DmInfo, shmem_addr),
                                      NB_FIELD(DmInfo, shmem_size), NB_FIELD(DmInfo, irq), NB_FIELD(DmInfo, fd)})));

  Napi::Object revA = Napi::Object::New(env);
  revA.Set("BAO_IOCTL_DM_GET_INFO", U32(env, NB_REVA_IOCTL_DM_GET_INFO));
  revA.Set("BAO_IOCTL_IO_CLIENT_ATTACH", U32(env, NB_IOCTL_IO_CLIENT_ATTACH));
  revA.Set("BAO_IOCTL_IO_REQUEST_COMPLETE", U32(env, NB_IOCTL_IO_REQUEST_COMPLETE));
  revA.Set("BAO_IOCTL_IOEVENTFD", U32(env, NB_IOCTL_IOEVENTFD));
  revA.Set("BAO_IOCTL_IRQFD", U32(env, NB_IOCTL_IRQFD));
  out.Set("revA", RevisionTable(env, kTypePrimary, revA,
                           Layout(env, sizeof(DmInfoRevA),
                                  {NB_FIELD(DmInfoRevA, id), NB_FIELD(DmInfoRevA, shmem_addr),
                                   NB_FIELD(DmInfoRevA, shmem_size), NB_FIELD(DmInfoRevA, irq)})));

  Napi::Object revB = Napi::Object::New(env);
  revB.Set("BAO_IOCTL_CREATE_DM", U32(env, NB_REVB_IOCTL_CREATE_DM));
  revB.Set("BAO_IOCTL_DM_GET_INFO", U32(env, NB_REVB_IOCTL_DM_GET_INFO));
  revB.Set("BAO_IOCTL_IO_CLIENT_ATTACH", U32(env, NB_REVB_IOCTL_IO_CLIENT_ATTACH));
  revB.Set("BAO_IOCTL_IO_REQUEST_COMPLETE", U32(env, NB_REVB_IOCTL_IO_REQUEST_COMPLETE));
  revB.Set("BAO_IOCTL_IOEVENTFD", U32(env, NB_REVB_IOCTL_IOEVENTFD));
  revB.Set("BAO_IOCTL_IRQFD", U32(env, NB_REVB_IOCTL_IRQFD));
  out.Set("revB", RevisionTable(env, kTypeRevB, revB,
                           Layout(env, sizeof(DmInfoRevB),
                                  {NB_FIELD(DmInfoRevB, shmem_addr), NB_FIELD(DmInfoRevB, shmem_size),
                                   NB_FIELD(DmInfoRevB, id), NB_FIELD(DmInfoRevB, irq)})));
  return out;
}

}  // namespace nodebao
