// SPDX-License-Identifier: Apache-2.0
/*
 * bao-bench-sample: the distribution of single frontend READ round trips, for
 * bench/run-qemu-bench.sh. bao-sim's debugfs `dm<N>/bench` (qemu/bao-sim/README.md) reports
 * only min/avg/max of a run; on a loaded host the average carries every preemption of the
 * guest's vCPU thread. Here each sample is one `bench` command of count 1 (the kernel times the
 * one access), and the targets take turns sample by sample (the order rotating), so that noise
 * falls on all of them alike; the output has percentiles, the median being the robust figure.
 *
 *   bao-bench-sample <samples> <label>:<dm>:<offset>[:<value>] [<label>:<dm>:<offset>[:<value>]...]
 *
 * With a value, the target's accesses are WRITEs of it (bao-sim's bench then writes).
 *
 * Prints one line per target: "<label> n <n> min <ns> p10 <ns> p50 <ns> p90 <ns> p99 <ns> max <ns>".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TARGETS 8

struct target {
	const char *label;
	char path[96];
	char cmd[48];
	unsigned long long *ns;
};

static int cmp(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

/* One access timed by the kernel; the file is reopened because its answer reads only once. */
static int sample(const struct target *t, unsigned long long *out)
{
	char buf[160];
	const char *p;
	ssize_t n;
	int fd = open(t->path, O_RDWR);

	if (fd < 0)
		return -1;
	if (write(fd, t->cmd, strlen(t->cmd)) < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0) {
		close(fd);
		return -1;
	}
	close(fd);
	buf[n] = 0;
	p = strstr(buf, "avg_ns ");
	if (!p)
		return -1;
	*out = strtoull(p + 7, NULL, 10);
	return 0;
}

int main(int argc, char **argv)
{
	struct target t[MAX_TARGETS];
	long samples, i;
	int nt = argc - 2, k;

	if (argc < 3 || nt > MAX_TARGETS || (samples = atol(argv[1])) <= 0) {
		fprintf(stderr, "usage: bao-bench-sample <samples> <label>:<dm>:<offset>[:<value>]...\n");
		return 2;
	}
	for (k = 0; k < nt; k++) {
		char *spec = argv[k + 2], *dm = strchr(spec, ':'), *off = dm ? strchr(dm + 1, ':') : NULL;
		char *value = off ? strchr(off + 1, ':') : NULL;

		if (!dm || !off) {
			fprintf(stderr, "bad target '%s' (label:dm:offset)\n", spec);
			return 2;
		}
		*dm++ = 0;
		*off++ = 0;
		if (value)
			*value++ = 0;
		t[k].label = spec;
		snprintf(t[k].path, sizeof(t[k].path), "/sys/kernel/debug/bao-sim/dm%s/bench", dm);
		if (value)
			snprintf(t[k].cmd, sizeof(t[k].cmd), "1 %s 4 %s", off, value);
		else
			snprintf(t[k].cmd, sizeof(t[k].cmd), "1 %s 4", off);
		t[k].ns = calloc((size_t)samples, sizeof(*t[k].ns));
		if (!t[k].ns)
			return 1;
	}
	for (i = 0; i < samples; i++) {
		for (k = 0; k < nt; k++) {
			struct target *x = &t[(k + i) % nt];

			if (sample(x, &x->ns[i]) < 0) {
				perror(x->path);
				return 1;
			}
		}
	}
	for (k = 0; k < nt; k++) {
		unsigned long long *v = t[k].ns;

		qsort(v, (size_t)samples, sizeof(*v), cmp);
		printf("%s n %ld min %llu p10 %llu p50 %llu p90 %llu p99 %llu max %llu\n", t[k].label, samples, v[0],
		       v[samples / 10], v[samples / 2], v[samples * 9 / 10], v[samples * 99 / 100], v[samples - 1]);
	}
	return 0;
}
