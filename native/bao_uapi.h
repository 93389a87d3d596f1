// Our own statement of the Bao I/O dispatcher userspace ABI, every revision in circulation
// (spec shared/spec/bao-abi.md §3, §8). Written from the spec, not copied from a kernel header:
// the v2 UAPI header does not even carry the op codes and flags userspace needs (§3.1).
// The ioctl numbers are computed with the kernel's own _IOC macros on these structs, so the
// C compiler of each target architecture is the authority; lib/uapi holds the same facts as
// data and test/native/abi.test.ts checks that both agree.
#pragma once

#include <linux/ioctl.h>
#include <cstddef>
#include <cstdint>

namespace nodebao::uapi {

// Revision ids shared with lib/uapi (revision.ts): keep the numbering in sync.
enum Revision : int { kPrimary = 0, kRevA = 1, kRevB = 2 };

// ---- Primary ABI: OOT = v1 = v2, ioctl type 0xA6 (§3) --------------------------------------

constexpr unsigned kTypePrimary = 0xA6;

// §3.3: u32 id, 4 bytes padding, then u64 fields; fd is filled by the driver (negative = errno).
struct DmInfo {
  uint32_t id;
  uint32_t pad0;
  uint64_t shmem_addr;
  uint64_t shmem_size;
  uint32_t irq;
  int32_t fd;
};

// §3.3: one request as ATTACH hands it out and COMPLETE takes it back. Identical in every revision.
struct VirtioRequest {
  uint64_t dm_id;
  uint64_t addr;
  uint64_t op;
  uint64_t value;
  uint64_t access_width;
  uint64_t request_id;
};

struct Ioeventfd {
  int32_t fd;  // u32 in OOT/v1/v2, s32 in revB: same bits
  uint32_t flags;
  uint64_t addr;
  uint32_t len;
  uint32_t reserved;
  uint64_t data;
};

struct Irqfd {
  int32_t fd;
  uint32_t flags;
};

// §3.1: op codes and flags (kernel-internal in v2, so userspace defines them).
constexpr uint64_t kOpWrite = 0;
constexpr uint64_t kOpRead = 1;
constexpr uint64_t kOpAsk = 2;
constexpr uint64_t kOpNotify = 3;
constexpr uint32_t kIoeventfdFlagDatamatch = 1u << 1;
constexpr uint32_t kIoeventfdFlagDeassign = 1u << 2;
constexpr uint32_t kIrqfdFlagDeassign = 1u << 0;

#define NB_IOCTL_DM_GET_INFO _IOWR(0xA6, 0x01, struct nodebao::uapi::DmInfo)
#define NB_IOCTL_IO_CLIENT_ATTACH _IOWR(0xA6, 0x02, struct nodebao::uapi::VirtioRequest)
#define NB_IOCTL_IO_REQUEST_COMPLETE _IOW(0xA6, 0x03, struct nodebao::uapi::VirtioRequest)
#define NB_IOCTL_IOEVENTFD _IOW(0xA6, 0x04, struct nodebao::uapi::Ioeventfd)
#define NB_IOCTL_IRQFD _IOW(0xA6, 0x05, struct nodebao::uapi::Irqfd)

// ---- revA: one /dev/bao-dm<N> node per DM, same numbers, info without fd (§2.1, §3.3) -----

struct DmInfoRevA {
  uint32_t id;
  uint32_t pad0;
  uint64_t shmem_addr;
  uint64_t shmem_size;
  uint32_t irq;
  // 4 bytes of tail padding the kernel may leave uninitialised (§10.3)
};

#define NB_REVA_IOCTL_DM_GET_INFO _IOWR(0xA6, 0x01, struct nodebao::uapi::DmInfoRevA)

// ---- revB: /dev/bao control node, CREATE_DM, ioctl type 0xA7, 24-byte info (§3.2, §8) ---------

constexpr unsigned kTypeRevB = 0xA7;

struct DmInfoRevB {
  uint64_t shmem_addr;
  uint64_t shmem_size;
  uint32_t id;
  uint32_t irq;
};

#define NB_REVB_IOCTL_CREATE_DM _IOW(0xA7, 0x00, struct nodebao::uapi::DmInfoRevB)
#define NB_REVB_IOCTL_DM_GET_INFO _IOWR(0xA7, 0x01, struct nodebao::uapi::DmInfoRevB)
#define NB_REVB_IOCTL_IO_CLIENT_ATTACH _IOWR(0xA7, 0x02, struct nodebao::uapi::VirtioRequest)
#define NB_REVB_IOCTL_IO_REQUEST_COMPLETE _IOW(0xA7, 0x03, struct nodebao::uapi::VirtioRequest)
#define NB_REVB_IOCTL_IOEVENTFD _IOW(0xA7, 0x04, struct nodebao::uapi::Ioeventfd)
#define NB_REVB_IOCTL_IRQFD _IOW(0xA7, 0x05, struct nodebao::uapi::Irqfd)

static_assert(sizeof(DmInfo) == 32, "spec §3.3: bao_dm_info is 32 bytes");
static_assert(sizeof(VirtioRequest) == 48, "spec §3.3: bao_virtio_request is 48 bytes");
static_assert(sizeof(Ioeventfd) == 32, "spec §3.3: bao_ioeventfd is 32 bytes");
static_assert(sizeof(Irqfd) == 8, "spec §3.3: bao_irqfd is 8 bytes");
static_assert(sizeof(DmInfoRevA) == 32, "spec §3.3: revA info keeps 32 bytes");
static_assert(sizeof(DmInfoRevB) == 24, "spec §3.3: revB info is 24 bytes");

// The per-revision numbers the DM-fd ioctls use (ATTACH, COMPLETE, IOEVENTFD, IRQFD).
struct DmIoctls {
  unsigned long attach;
  unsigned long complete;
  unsigned long ioeventfd;
  unsigned long irqfd;
};

inline const DmIoctls* DmIoctlsFor(int revision) {
  static const DmIoctls primary{NB_IOCTL_IO_CLIENT_ATTACH, NB_IOCTL_IO_REQUEST_COMPLETE, NB_IOCTL_IOEVENTFD,
                                NB_IOCTL_IRQFD};
  static const DmIoctls revB{NB_REVB_IOCTL_IO_CLIENT_ATTACH, NB_REVB_IOCTL_IO_REQUEST_COMPLETE,
                             NB_REVB_IOCTL_IOEVENTFD, NB_REVB_IOCTL_IRQFD};
  switch (revision) {
    case kPrimary:
    case kRevA:  // revA keeps type 0xA6 and the v2 numbers for every DM ioctl
      return &primary;
    case kRevB:
      return &revB;
    default:
      return nullptr;
  }
}

}  // namespace nodebao::uapi
