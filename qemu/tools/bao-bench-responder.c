// SPDX-License-Identifier: Apache-2.0
/*
 * bao-bench-responder: the floor of a userspace device model, for bench/run-qemu-bench.sh. One
 * thread in a loop of IO_CLIENT_ATTACH + IO_REQUEST_COMPLETE on one device model (v2 ABI,
 * shared/spec/bao-abi.md §3.4): no decoding beyond the op, no event loop, no allocation. READs
 * complete with the virtio-mmio magic at offset 0 and 0 elsewhere; WRITEs are acknowledged.
 * Whatever node-bao adds on top of this loop (thread hand-off to JS, decoding, the transport)
 * is what bench/README.md's "node-bao / C floor" ratio measures.
 *
 *   bao-bench-responder <dm-id> <mmio-base> [<ioeventfd-offset>]
 *
 * With <ioeventfd-offset>, a wildcard ioeventfd of length 4 is first registered at
 * mmio-base + offset (§3.7), so frontend accesses there complete in the kernel and never reach
 * this loop: the in-kernel reference point of the benchmark.
 * Prints "ready" once attached work can start, and "requests N" when it ends (SIGTERM/SIGINT,
 * or the DM going away: EPERM/ENOENT).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Our restatement of the v2 structs (spec §3.3). */
struct req { uint64_t dm_id, addr, op, value, access_width, request_id; };
struct info { uint32_t id; uint64_t shmem_addr, shmem_size; uint32_t irq; int32_t fd; };
struct ioeventfd { uint32_t fd, flags; uint64_t addr; uint32_t len, reserved; uint64_t data; };
#define GET_INFO _IOWR(0xA6, 0x01, struct info)
#define ATTACH _IOWR(0xA6, 0x02, struct req)
#define COMPLETE _IOW(0xA6, 0x03, struct req)
#define IOEVENTFD _IOW(0xA6, 0x04, struct ioeventfd)
#define OP_READ 1
#define VIRTIO_MMIO_MAGIC 0x74726976ULL

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct info inf;
	struct req r;
	uint64_t base, requests = 0, failed = 0;
	int disp;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: bao-bench-responder <dm-id> <mmio-base> [<ioeventfd-offset>]\n");
		return 2;
	}
	base = strtoull(argv[2], NULL, 0);
	disp = open("/dev/bao-io-dispatcher", O_RDWR | O_CLOEXEC);
	if (disp < 0) {
		perror("open /dev/bao-io-dispatcher");
		return 1;
	}
	memset(&inf, 0, sizeof(inf));
	inf.id = (uint32_t)atoi(argv[1]);
	if (ioctl(disp, GET_INFO, &inf) < 0 || inf.fd < 0) {
		perror("DM_GET_INFO");
		return 1;
	}
	if (argc == 4) {
		struct ioeventfd ev;
		int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		memset(&ev, 0, sizeof(ev));
		ev.fd = (uint32_t)efd;
		ev.addr = base + strtoull(argv[3], NULL, 0);
		ev.len = 4;
		if (efd < 0 || ioctl(inf.fd, IOEVENTFD, &ev) < 0) {
			perror("IOEVENTFD");
			return 1;
		}
	}
	/* No SA_RESTART: a signal ends the blocked ATTACH (EFAULT on v2), then the loop sees stop. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		memset(&r, 0, sizeof(r));
		r.op = 2; /* ASK, as bao-virtio-dm passes it; the input is ignored */
		if (ioctl(inf.fd, ATTACH, &r) < 0) {
			if (errno == EFAULT || errno == EINTR)
				continue; /* woken without a request (§3.4) */
			if (errno != EPERM && errno != ENOENT)
				perror("ATTACH");
			break;
		}
		if (r.op == OP_READ)
			r.value = r.addr == base ? VIRTIO_MMIO_MAGIC : 0;
		if (ioctl(inf.fd, COMPLETE, &r) != 0)
			failed++;
		requests++;
	}
	printf("requests %llu failed %llu\n", (unsigned long long)requests, (unsigned long long)failed);
	return 0;
}
