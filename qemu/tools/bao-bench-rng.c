// SPDX-License-Identifier: Apache-2.0
/*
 * bao-bench-rng: the floor of a virtio-rng device model, for bench/run-qemu-bench.sh. The least
 * a userspace device model in C does to serve the guest's virtio_rng driver through bao-sim:
 * one ATTACH + COMPLETE thread answering a virtio-mmio v2 register file (probe, features, one
 * queue, Status, InterruptStatus/ACK), and one thread that waits on the queue's ioeventfd, fills
 * each buffer with getrandom(2) through the shared-region mapping (gpa - shmem_addr, spec §3.6),
 * publishes it in the used ring and raises the interrupt through the irqfd (§3.7, §3.8). No event
 * loop, no allocation per request, no validation beyond the mapping's bounds: what node-bao's rng
 * device model adds on top of this is what the "node-bao / C floor" completion ratio measures.
 *
 *   bao-bench-rng <dm-id> <mmio-base>
 *
 * Prints "ready" once attached work can start, and "requests N completions M" when it ends
 * (SIGTERM/SIGINT, or the DM going away).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

/* Our restatement of the v2 structs (spec §3.3). */
struct req { uint64_t dm_id, addr, op, value, access_width, request_id; };
struct info { uint32_t id; uint64_t shmem_addr, shmem_size; uint32_t irq; int32_t fd; };
struct ioeventfd { uint32_t fd, flags; uint64_t addr; uint32_t len, reserved; uint64_t data; };
struct irqfd { int32_t fd; uint32_t flags; };
#define GET_INFO _IOWR(0xA6, 0x01, struct info)
#define ATTACH _IOWR(0xA6, 0x02, struct req)
#define COMPLETE _IOW(0xA6, 0x03, struct req)
#define IOEVENTFD _IOW(0xA6, 0x04, struct ioeventfd)
#define IRQFD _IOW(0xA6, 0x05, struct irqfd)
#define OP_READ 1
#define QSIZE 64

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint8_t *mem;
static uint64_t shmem_addr, shmem_size;
static int kick_fd, irq_fd;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t status, isr, dev_feat_sel, drv_feat_sel, queue_sel, num = QSIZE, ready;
static uint64_t desc, avail, used;
static uint16_t last_avail;
static unsigned long long completions;

/* Host pointer of [gpa, gpa + len) inside the shared region, or NULL. */
static void *at(uint64_t gpa, uint64_t len)
{
	if (gpa < shmem_addr || len > shmem_size || gpa - shmem_addr > shmem_size - len)
		return NULL;
	return mem + (gpa - shmem_addr);
}

/* Serve every available buffer (under `lock`); raise the interrupt once if any was used. */
static void serve(void)
{
	uint16_t *aidx = at(avail + 2, 2), *uidx = at(used + 2, 2);
	int served = 0;

	if (!ready || !aidx || !uidx || !num)
		return;
	while (last_avail != __atomic_load_n(aidx, __ATOMIC_ACQUIRE)) {
		uint16_t *slot = at(avail + 4 + 2 * (last_avail % num), 2);
		uint16_t head = slot ? *slot : 0;
		uint8_t *d = at(desc + 16ULL * (head % num), 16);
		uint64_t addr;
		uint32_t len, *u, written = 0;
		uint8_t *buf;

		if (!d)
			break;
		memcpy(&addr, d, 8);
		memcpy(&len, d + 8, 4);
		buf = at(addr, len);
		if (buf && getrandom(buf, len, 0) == (ssize_t)len)
			written = len;
		u = at(used + 4 + 8ULL * (*uidx % num), 8);
		if (!u)
			break;
		u[0] = head;
		u[1] = written;
		__atomic_store_n(uidx, (uint16_t)(*uidx + 1), __ATOMIC_RELEASE);
		last_avail++;
		served++;
		completions++;
	}
	if (served) {
		uint64_t one = 1;

		__atomic_fetch_or(&isr, 1u, __ATOMIC_SEQ_CST); /* before the interrupt, as in node-bao */
		if (write(irq_fd, &one, 8) != 8)
			perror("irqfd write");
	}
}

static uint64_t reg_read(uint64_t off)
{
	switch (off) {
	case 0x000: return 0x74726976;
	case 0x004: return 2;
	case 0x008: return 4; /* entropy source */
	case 0x00c: return 0x554d4551;
	case 0x010: return dev_feat_sel == 1 ? 0x3 : 0; /* VERSION_1 | ACCESS_PLATFORM */
	case 0x034: return queue_sel == 0 ? QSIZE : 0;
	case 0x044: return queue_sel == 0 ? ready : 0;
	case 0x060: return __atomic_load_n(&isr, __ATOMIC_SEQ_CST);
	case 0x070: return status;
	default: return 0; /* config generation, config space (rng has none) */
	}
}

static void reg_write(uint64_t off, uint32_t v)
{
	switch (off) {
	case 0x014: dev_feat_sel = v; break;
	case 0x024: drv_feat_sel = v; break;
	case 0x030: queue_sel = v; break;
	case 0x038: if (queue_sel == 0 && v && v <= QSIZE && !(v & (v - 1))) num = v; break;
	case 0x044: if (queue_sel == 0) ready = v & 1; break;
	case 0x050: serve(); break; /* a kick that missed the ioeventfd */
	case 0x064: __atomic_fetch_and(&isr, ~v, __ATOMIC_SEQ_CST); break;
	case 0x070:
		status = v;
		if (v == 0) {
			ready = 0;
			last_avail = 0;
			num = QSIZE;
			__atomic_store_n(&isr, 0, __ATOMIC_SEQ_CST);
		}
		break;
	case 0x080: if (queue_sel == 0) desc = (desc & ~0xffffffffULL) | v; break;
	case 0x084: if (queue_sel == 0) desc = (desc & 0xffffffffULL) | (uint64_t)v << 32; break;
	case 0x090: if (queue_sel == 0) avail = (avail & ~0xffffffffULL) | v; break;
	case 0x094: if (queue_sel == 0) avail = (avail & 0xffffffffULL) | (uint64_t)v << 32; break;
	case 0x0a0: if (queue_sel == 0) used = (used & ~0xffffffffULL) | v; break;
	case 0x0a4: if (queue_sel == 0) used = (used & 0xffffffffULL) | (uint64_t)v << 32; break;
	default: break; /* DriverFeatures: the driver takes what we offer */
	}
}

/* The queue's ioeventfd: each kick serves the ring. */
static void *kick_thread(void *arg)
{
	(void)arg;
	for (;;) {
		uint64_t n;

		if (read(kick_fd, &n, 8) != 8) {
			if (errno == EINTR)
				continue;
			break;
		}
		pthread_mutex_lock(&lock);
		serve();
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct info inf;
	struct ioeventfd ev;
	struct irqfd irq;
	struct req r;
	uint64_t base, requests = 0;
	pthread_t kt;
	int disp;

	if (argc != 3) {
		fprintf(stderr, "usage: bao-bench-rng <dm-id> <mmio-base>\n");
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
	shmem_addr = inf.shmem_addr;
	shmem_size = inf.shmem_size;
	mem = mmap(NULL, shmem_size, PROT_READ | PROT_WRITE, MAP_SHARED, inf.fd, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	kick_fd = eventfd(0, EFD_CLOEXEC);
	irq_fd = eventfd(0, EFD_CLOEXEC);
	memset(&ev, 0, sizeof(ev));
	ev.fd = (uint32_t)kick_fd;
	ev.addr = base + 0x50;
	ev.len = 4;
	irq.fd = irq_fd;
	irq.flags = 0;
	if (kick_fd < 0 || irq_fd < 0 || ioctl(inf.fd, IOEVENTFD, &ev) < 0 || ioctl(inf.fd, IRQFD, &irq) < 0) {
		perror("IOEVENTFD/IRQFD");
		return 1;
	}
	if (pthread_create(&kt, NULL, kick_thread, NULL) != 0) {
		perror("pthread_create");
		return 1;
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
		r.op = 2; /* ASK, as bao-virtio-dm passes it */
		if (ioctl(inf.fd, ATTACH, &r) < 0) {
			if (errno == EFAULT || errno == EINTR)
				continue;
			if (errno != EPERM && errno != ENOENT)
				perror("ATTACH");
			break;
		}
		pthread_mutex_lock(&lock);
		if (r.op == OP_READ)
			r.value = r.addr >= base && r.addr - base < 0x200 ? reg_read(r.addr - base) : 0;
		else if (r.addr >= base && r.addr - base < 0x200)
			reg_write(r.addr - base, (uint32_t)r.value);
		pthread_mutex_unlock(&lock);
		ioctl(inf.fd, COMPLETE, &r);
		requests++;
	}
	pthread_mutex_lock(&lock);
	printf("requests %llu completions %llu\n", (unsigned long long)requests, completions);
	pthread_mutex_unlock(&lock);
	return 0;
}
