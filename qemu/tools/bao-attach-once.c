// SPDX-License-Identifier: GPL-2.0
/*
 * bao-attach-once: one IO_CLIENT_ATTACH on a device model, for the conformance tests that must
 * see the raw errno of a single ATTACH (the addon's AttachLoop retries EFAULT by design, spec
 * §3.4): a signal arriving while it blocks, or a competing consumer taking the request.
 *
 *   bao-attach-once <dm-id> <signal-after-ms>
 *
 * Prints one JSON line: {"ret":0,"errno":0,"ms":N,"request":{...}} or {"ret":-1,"errno":14,...}.
 * The SIGALRM handler is installed without SA_RESTART, so the ioctl returns on the signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct req { uint64_t dm_id, addr, op, value, access_width, request_id; };
struct info { uint32_t id; uint64_t shmem_addr, shmem_size; uint32_t irq; int32_t fd; };
#define GET_INFO _IOWR(0xA6, 0x01, struct info)
#define ATTACH _IOWR(0xA6, 0x02, struct req)

static void on_alarm(int sig) { (void)sig; }

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct itimerval it;
	struct info inf;
	struct req r;
	int disp, ret, err;
	long ms;
	double t0;

	if (argc != 3) {
		fprintf(stderr, "usage: bao-attach-once <dm-id> <signal-after-ms>\n");
		return 2;
	}
	ms = atol(argv[2]);
	disp = open("/dev/bao-io-dispatcher", O_RDWR);
	if (disp < 0) {
		perror("open /dev/bao-io-dispatcher");
		return 1;
	}
	memset(&inf, 0, sizeof(inf));
	inf.id = atoi(argv[1]);
	if (ioctl(disp, GET_INFO, &inf) < 0 || inf.fd < 0) {
		perror("DM_GET_INFO");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (ms % 1000) * 1000;
	setitimer(ITIMER_REAL, &it, NULL);
	memset(&r, 0, sizeof(r));
	r.op = 2;
	printf("{\"ready\":true}\n");
	fflush(stdout);
	t0 = now_ms();
	ret = ioctl(inf.fd, ATTACH, &r);
	err = ret < 0 ? errno : 0;
	printf("{\"ret\":%d,\"errno\":%d,\"ms\":%.1f,\"request\":{\"dmId\":%llu,\"addr\":%llu,\"op\":%llu,"
	       "\"value\":\"%llu\",\"accessWidth\":%llu,\"requestId\":%llu}}\n",
	       ret, err, now_ms() - t0, (unsigned long long)r.dm_id, (unsigned long long)r.addr,
	       (unsigned long long)r.op, (unsigned long long)r.value,
	       (unsigned long long)r.access_width, (unsigned long long)r.request_id);
	return 0;
}
