// SPDX-License-Identifier: Apache-2.0
/*
 * fake-bao.so: the trapped-access round trip of bench/handoff, on the host, without Bao. Loaded
 * with LD_PRELOAD into the node process that runs bench/handoff/bench.ts, it stands in for the
 * dispatcher on three fds (FAKE_BAO_FD, +1, +2): ioctl(ATTACH) blocks in a read of a pipe the
 * frontend writes the request to, ioctl(COMPLETE) writes the answer to a pipe the frontend
 * reads, i.e. one kernel wake-up each way, as bao-sim's wait queues make them. Any other ioctl
 * goes to libc's. Interrupted by a signal, ATTACH fails with EINTR, as revB does.
 *
 *   fd +0  node-bao: a DeviceModelServer with its hot register cells (bench.ts)
 *   fd +1  c-floor: a thread of this library in a loop of ATTACH + COMPLETE (the floor)
 *   fd +2  node-js: a DeviceModelServer with every access through JS
 *
 * A frontend thread (pinned to CPU 0; every thread that ATTACHes is pinned to CPU 1, as the
 * guest job splits frontend and backends) waits until fds +0 and +2 are attached, then makes
 * single round trips, the three paths taking turns access by access (the order rotating), for
 * each class of FAKE_BAO_PLAN ("<samples> <class>:<offset>[:<value>] ..."), and writes the
 * guest job's "sample <class> <path> n N min .. p10 .. p50 .. p90 .. p99 .. max .." lines (ns)
 * to FAKE_BAO_OUT (renamed into place when complete).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

struct req { uint64_t dm_id, addr, op, value, access_width, request_id; };

#define NDM 3
#define MAGIC 0x74726976ULL

struct dm {
	int to_dm[2]; /* frontend -> ATTACH */
	int to_fe[2]; /* COMPLETE -> frontend */
	int attached;
	pid_t attach_tid; /* the thread that ATTACHes */
	long js_completes; /* COMPLETEs issued from node's main (JS) thread */
};

static struct dm dms[NDM];
static int base_fd = -1;
static uint64_t mmio_base;
static int (*libc_ioctl)(int, unsigned long, ...);
static __thread int pinned;

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

static int fake_ioctl(int i, unsigned long request, struct req *r)
{
	ssize_t n;

	switch (_IOC_NR(request)) {
	case 2: /* ATTACH */
		if (!pinned) {
			pin(1);
			pinned = 1;
		}
		__atomic_store_n(&dms[i].attach_tid, gettid(), __ATOMIC_RELAXED);
		__atomic_store_n(&dms[i].attached, 1, __ATOMIC_RELEASE);
		n = read(dms[i].to_dm[0], r, sizeof *r);
		if (n == (ssize_t)sizeof *r)
			return 0;
		if (n >= 0)
			errno = EIO;
		return -1;
	case 3: /* COMPLETE */
		if (gettid() == getpid())
			__atomic_add_fetch(&dms[i].js_completes, 1, __ATOMIC_RELAXED);
		n = write(dms[i].to_fe[1], r, sizeof *r);
		return n == (ssize_t)sizeof *r ? 0 : -1;
	default:
		errno = ENOTTY;
		return -1;
	}
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (base_fd >= 0 && fd >= base_fd && fd < base_fd + NDM && _IOC_TYPE(request) == 0xA6)
		return fake_ioctl(fd - base_fd, request, arg);
	return libc_ioctl(fd, request, arg);
}

/* CPU time a thread of this process has run (ns, /proc schedstat: user + system), 0 if unknown. */
static uint64_t thread_cpu_ns(pid_t tid)
{
	char path[64];
	unsigned long long run = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", (int)tid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu", &run) != 1)
		run = 0;
	fclose(f);
	return run;
}

static pid_t floor_tid;

/* The threads whose CPU is accounted per class: node's main (JS) thread, each ATTACH thread, the floor's. */
enum { CPU_JS, CPU_ATTACH_BAO, CPU_ATTACH_JS, CPU_FLOOR, NCPU };

static void cpu_snapshot(uint64_t *cpu, long *js)
{
	cpu[CPU_JS] = thread_cpu_ns(getpid());
	cpu[CPU_ATTACH_BAO] = thread_cpu_ns(dms[0].attach_tid);
	cpu[CPU_ATTACH_JS] = thread_cpu_ns(dms[2].attach_tid);
	cpu[CPU_FLOOR] = thread_cpu_ns(floor_tid);
	*js = __atomic_load_n(&dms[0].js_completes, __ATOMIC_RELAXED) + __atomic_load_n(&dms[2].js_completes, __ATOMIC_RELAXED);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *floor_main(void *arg)
{
	struct req r;
	(void)arg;
	floor_tid = gettid();
	for (;;) {
		if (ioctl(base_fd + 1, _IOWR(0xA6, 0x02, struct req), &r) != 0)
			continue;
		if (r.op == 1)
			r.value = r.addr == mmio_base ? MAGIC : 0;
		ioctl(base_fd + 1, _IOW(0xA6, 0x03, struct req), &r);
	}
	return NULL;
}

static uint64_t trip(int i, uint64_t off, int is_write, uint64_t value, uint64_t id)
{
	struct req r = { .dm_id = i, .addr = mmio_base + off, .op = is_write ? 0 : 1, .value = is_write ? value : 0,
			 .access_width = 4, .request_id = id };
	uint64_t t = now_ns();
	if (write(dms[i].to_dm[1], &r, sizeof r) != sizeof r || read(dms[i].to_fe[0], &r, sizeof r) != sizeof r) {
		perror("fake-bao: frontend");
		exit(1);
	}
	return now_ns() - t;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void *frontend_main(void *arg)
{
	static const char *labels[NDM] = { "node-bao", "c-floor", "node-js" };
	static const int order[NDM] = { 0, 2, 1 };
	char *plan = strdup(arg), *save = NULL, *tok, path[4096];
	const char *out = getenv("FAKE_BAO_OUT");
	long samples = strtol(strtok_r(plan, " ", &save), NULL, 10);
	uint64_t *t[NDM], id = 0;
	FILE *f;

	pin(0);
	while (!__atomic_load_n(&dms[0].attached, __ATOMIC_ACQUIRE) || !__atomic_load_n(&dms[2].attached, __ATOMIC_ACQUIRE))
		usleep(10000);
	usleep(300000);
	snprintf(path, sizeof path, "%s.part", out);
	f = fopen(path, "w");
	for (int i = 0; i < NDM; i++)
		t[i] = calloc(samples, sizeof(uint64_t));
	while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		char cls[64];
		uint64_t off = 0, value = 0;
		int fields = sscanf(tok, "%63[^:]:%li:%li", cls, (long *)&off, (long *)&value);
		uint64_t cpu0[NCPU], cpu1[NCPU];
		long js0 = 0, js1 = 0;
		for (long s = -200; s < samples; s++) { /* 200 untimed warm-up rounds */
			if (s == 0)
				cpu_snapshot(cpu0, &js0);
			for (int k = 0; k < NDM; k++) {
				int i = order[(k + (s & 0x7fffffff)) % NDM];
				uint64_t d = trip(i, off, fields >= 3, value, id++);
				if (s >= 0)
					t[i][s] = d;
			}
		}
		cpu_snapshot(cpu1, &js1);
		/* CPU per access of each thread over the timed rounds: the JS thread's per access it answered */
		fprintf(f, "cpu %s js_accesses %ld js_ns %lu attach_bao_ns %lu attach_js_ns %lu floor_ns %lu\n", cls, js1 - js0,
			(unsigned long)(cpu1[CPU_JS] - cpu0[CPU_JS]), (unsigned long)(cpu1[CPU_ATTACH_BAO] - cpu0[CPU_ATTACH_BAO]),
			(unsigned long)(cpu1[CPU_ATTACH_JS] - cpu0[CPU_ATTACH_JS]), (unsigned long)(cpu1[CPU_FLOOR] - cpu0[CPU_FLOOR]));
		for (int i = 0; i < NDM; i++) {
			uint64_t *v = t[i];
			qsort(v, samples, sizeof *v, cmp);
			fprintf(f, "sample %s %s n %ld min %lu p10 %lu p50 %lu p90 %lu p99 %lu max %lu\n", cls, labels[i], samples,
				v[0], v[samples / 10], v[samples / 2], v[samples * 9 / 10], v[samples * 99 / 100], v[samples - 1]);
		}
	}
	fclose(f);
	rename(path, out);
	return NULL;
}

__attribute__((constructor)) static void init(void)
{
	const char *fd = getenv("FAKE_BAO_FD"), *plan = getenv("FAKE_BAO_PLAN"), *base = getenv("FAKE_BAO_BASE");
	pthread_t th;

	libc_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	if (fd == NULL || plan == NULL || base == NULL || getenv("FAKE_BAO_OUT") == NULL ||
	    strcmp(program_invocation_short_name, "node") != 0)
		return; /* not the bench's node (taskset, a child): stay out of the way */
	unsetenv("LD_PRELOAD");
	base_fd = atoi(fd);
	mmio_base = strtoull(base, NULL, 0);
	for (int i = 0; i < NDM; i++) {
		if (pipe(dms[i].to_dm) != 0 || pipe(dms[i].to_fe) != 0 || dup2(dms[i].to_dm[0], base_fd + i) < 0) {
			perror("fake-bao: pipe");
			exit(1);
		}
	}
	pthread_create(&th, NULL, floor_main, NULL);
	pthread_detach(th);
	pthread_create(&th, NULL, frontend_main, (void *)plan);
	pthread_detach(th);
}
