/* bench_latency.c: what the runtime itself costs, below any model.
 *
 * 1. Round trip: one worker, an ECHO task of P bytes out and P bytes back,
 *    over inproc://, ipc:// and tcp://127.0.0.1 (worker threads in this
 *    process, but every byte goes through the named transport), for
 *    payloads of 4 KiB .. 16 MiB: p50/p95/p99 and the payload rate (2P per
 *    round trip at the median).
 * 2. Fan-out: n = 8..20 workers, one 64 KiB ECHO task each as one job,
 *    collected until k = n - 2 results: the k-of-n machinery at the sizes of
 *    issue 5's latency benchmark.
 * 3. Link emulation check: one worker emulating M Mbit/s and L ms latency,
 *    ECHO of P bytes: the model's prediction 2 * (bytes * 8 / M + L) (data
 *    frame plus header, each way) against the measured median.
 *
 * usage: bench_latency [--reps R] [--transports inproc,ipc,tcp] [--csv FILE]
 *                      [--mbps M] [--latency-ms L] [--quick]
 * Every configuration runs 3 warm-up jobs, then R timed ones (default 200;
 * fewer for the 16 MiB payload). The emulation each part ran under is
 * printed with it. The machine is shared: numbers compare within one run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/runtime.h"

#define MAX_W 32
#define MAX_REPS 2000

typedef struct {
    int reps;
    const char *transports[3];
    int n_transports;
    const char *csv;
    double mbps, latency_ms;
    int quick;
} opts;

typedef struct {
    ts_master *m;
    ts_worker_thread *w[MAX_W];
    int n;
    uint32_t ids[MAX_W];
} bench_cluster;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)ceil(p / 100.0 * n) - 1;
    return v[i < 0 ? 0 : (i >= n ? n - 1 : i)];
}

static int url_for(const char *transport, char *buf, size_t len) {
    if (!strcmp(transport, "inproc"))
        snprintf(buf, len, "inproc://bench-latency");
    else if (!strcmp(transport, "ipc"))
        snprintf(buf, len, "ipc:///tmp/bench-latency-%d.ipc", (int)getpid());
    else if (!strcmp(transport, "tcp"))
        snprintf(buf, len, "tcp://127.0.0.1:0");
    else
        return 0;
    return 1;
}

static int start(bench_cluster *c, const char *transport, int n, double mbps, double lat_ms) {
    memset(c, 0, sizeof *c);
    char url[128];
    if (!url_for(transport, url, sizeof url)) return 0;
    ts_master_opts mo = ts_master_opts_default();
    mo.url = url;
    mo.liveness = 20; /* a loaded machine must not drop workers mid-benchmark */
    ts_err err = {0};
    if (!(c->m = ts_master_new(&mo, &err))) {
        fprintf(stderr, "bench_latency: %s\n", err.msg);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        ts_worker_opts o = ts_worker_opts_default();
        o.url = ts_master_endpoint(c->m);
        if (!strcmp(transport, "inproc")) o.zmq_ctx = ts_master_zmq_ctx(c->m);
        o.liveness = 20;
        o.mbps = mbps;
        o.latency_ms = lat_ms;
        if (!(c->w[i] = ts_worker_spawn(&o, &err))) {
            fprintf(stderr, "bench_latency: %s\n", err.msg);
            return 0;
        }
        c->n++;
    }
    if (ts_master_wait_workers(c->m, n, 60, &err) != TS_OK) {
        fprintf(stderr, "bench_latency: %s\n", err.msg);
        return 0;
    }
    ts_master_workers(c->m, c->ids, MAX_W);
    return 1;
}

static void stop(bench_cluster *c) {
    for (int i = 0; i < c->n; i++)
        ts_worker_stop(c->w[i], 1);
    ts_master_free(c->m);
}

static int count_cb(void *user, const ts_result *r) {
    (void)r;
    (*(int *)user)++;
    return 1;
}

/* One job: an ECHO of x to each of the first n workers, collected to k.
 * Returns the seconds it took, or -1. */
static double echo_job(bench_cluster *c, const ts_tensor *x, int n, int k) {
    ts_task t[MAX_W];
    for (int i = 0; i < n; i++)
        t[i] = (ts_task){.kind = TS_TASK_ECHO,
                         .worker = c->ids[i],
                         .shard = (uint32_t)i,
                         .inputs = &x,
                         .n_inputs = 1};
    ts_err err = {0};
    int got = 0;
    double t0 = ts_now();
    ts_job *j = ts_master_submit(c->m, 1, t, n, &err);
    ts_status s = j ? ts_master_collect(c->m, j, k, 60, count_cb, &got, &err) : TS_ERR_INVALID;
    double dt = ts_now() - t0;
    ts_master_job_free(c->m, j);
    if (s != TS_OK) {
        fprintf(stderr, "bench_latency: %s\n", err.msg);
        return -1;
    }
    return dt;
}

typedef struct {
    double p50, p95, p99;
    int reps;
} lat;

static int measure(bench_cluster *c, size_t bytes, int n, int k, int reps, lat *out) {
    ts_shape s = ts_shape2(1, (int64_t)(bytes / sizeof(float)));
    ts_tensor *x = ts_tensor_new(&s, NULL);
    if (!x) return 0;
    ts_tensor_fill(x, 1.0f);
    static double v[MAX_REPS];
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++)
        ok = echo_job(c, x, n, k) >= 0;
    for (int i = 0; i < reps && ok; i++)
        ok = (v[i] = echo_job(c, x, n, k)) >= 0;
    ts_tensor_free(x);
    if (!ok) return 0;
    out->reps = reps;
    out->p50 = pct(v, reps, 50);
    out->p95 = pct(v, reps, 95);
    out->p99 = pct(v, reps, 99);
    return 1;
}

static int parse(int argc, char **argv, opts *o) {
    o->reps = 200;
    o->mbps = 100;
    o->latency_ms = 1;
    const char *tr = "inproc,ipc,tcp";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) {
            o->quick = 1;
            continue;
        }
        if (!v) return 0;
        i++;
        if (!strcmp(a, "--reps"))
            o->reps = atoi(v);
        else if (!strcmp(a, "--transports"))
            tr = v;
        else if (!strcmp(a, "--csv"))
            o->csv = v;
        else if (!strcmp(a, "--mbps"))
            o->mbps = atof(v);
        else if (!strcmp(a, "--latency-ms"))
            o->latency_ms = atof(v);
        else
            return 0;
    }
    if (o->reps < 10 || o->reps > MAX_REPS || !(o->mbps > 0) || !(o->latency_ms >= 0)) return 0;
    static char buf[64];
    snprintf(buf, sizeof buf, "%s", tr);
    for (char *p = strtok(buf, ","); p && o->n_transports < 3; p = strtok(NULL, ","))
        o->transports[o->n_transports++] = p;
    return o->n_transports > 0;
}

int main(int argc, char **argv) {
    opts o = {0};
    if (!parse(argc, argv, &o)) {
        fprintf(stderr,
                "usage: bench_latency [--reps R (10..%d)] [--transports inproc,ipc,tcp]\n"
                "                     [--csv FILE] [--mbps M] [--latency-ms L] [--quick]\n",
                MAX_REPS);
        return 2;
    }
    FILE *csv = o.csv ? fopen(o.csv, "w") : NULL;
    if (o.csv && !csv) {
        perror(o.csv);
        return 1;
    }
    if (csv) fprintf(csv, "part,transport,workers,k,bytes,reps,p50_s,p95_s,p99_s,model_s\n");
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(la);
    }
    printf("bench_latency: %d timed jobs per point, load average %.2f at start\n", o.reps, load[0]);

    size_t sizes[] = {4 << 10, 64 << 10, 1 << 20, 16 << 20};
    int n_sizes = o.quick ? 3 : 4;
    printf("\n## 1. Round trip, 1 worker, ECHO (no emulation)\n\n");
    printf("| transport | payload | p50 ms | p95 ms | p99 ms | MB/s at p50 |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int t = 0; t < o.n_transports; t++) {
        bench_cluster c;
        if (!start(&c, o.transports[t], 1, 0, 0)) return 1;
        for (int i = 0; i < n_sizes; i++) {
            int reps = sizes[i] >= (16u << 20) ? (o.reps < 40 ? o.reps : 40) : o.reps;
            lat l;
            if (!measure(&c, sizes[i], 1, 1, reps, &l)) return 1;
            printf("| %s | %zu KiB | %.3f | %.3f | %.3f | %.0f |\n", o.transports[t],
                   sizes[i] >> 10, l.p50 * 1e3, l.p95 * 1e3, l.p99 * 1e3,
                   2.0 * (double)sizes[i] / l.p50 / 1e6);
            if (csv)
                fprintf(csv, "rtt,%s,1,1,%zu,%d,%.9f,%.9f,%.9f,\n", o.transports[t], sizes[i],
                        l.reps, l.p50, l.p95, l.p99);
        }
        stop(&c);
    }

    printf("\n## 2. Fan-out: 64 KiB ECHO to each of n workers, collected to k = n - 2\n\n");
    printf("| transport | n | k | p50 ms | p95 ms | p99 ms |\n| --- | ---: | ---: | ---: | ---: | "
           "---: |\n");
    int ns[] = {8, 12, 16, 20};
    for (int t = 0; t < o.n_transports; t++) {
        for (int i = 0; i < (o.quick ? 2 : 4); i++) {
            bench_cluster c;
            if (!start(&c, o.transports[t], ns[i], 0, 0)) return 1;
            lat l;
            if (!measure(&c, 64 << 10, ns[i], ns[i] - 2, o.reps, &l)) return 1;
            printf("| %s | %d | %d | %.3f | %.3f | %.3f |\n", o.transports[t], ns[i], ns[i] - 2,
                   l.p50 * 1e3, l.p95 * 1e3, l.p99 * 1e3);
            if (csv)
                fprintf(csv, "fanout,%s,%d,%d,%d,%d,%.9f,%.9f,%.9f,\n", o.transports[t], ns[i],
                        ns[i] - 2, 64 << 10, l.reps, l.p50, l.p95, l.p99);
            stop(&c);
        }
    }

    printf("\n## 3. Link emulation: 1 worker at %g Mbit/s, %g ms one-way latency\n\n", o.mbps,
           o.latency_ms);
    printf("| transport | payload | model ms | p50 ms | p50 / model |\n| --- | ---: | ---: | ---: "
           "| ---: |\n");
    size_t esizes[] = {4 << 10, 64 << 10, 1 << 20};
    for (int t = 0; t < o.n_transports; t++) {
        bench_cluster c;
        if (!start(&c, o.transports[t], 1, o.mbps, o.latency_ms)) return 1;
        for (int i = 0; i < 3; i++) {
            /* each way: the whole message (data + frame 0 of a few hundred
             * bytes) at M Mbit/s, plus L */
            double model = 2 * ((double)esizes[i] * 8 / (o.mbps * 1e6) + o.latency_ms * 1e-3);
            lat l;
            int reps = o.reps < 50 ? o.reps : 50;
            if (!measure(&c, esizes[i], 1, 1, reps, &l)) return 1;
            printf("| %s | %zu KiB | %.3f | %.3f | %.3f |\n", o.transports[t], esizes[i] >> 10,
                   model * 1e3, l.p50 * 1e3, l.p50 / model);
            if (csv)
                fprintf(csv, "emul,%s,1,1,%zu,%d,%.9f,%.9f,%.9f,%.9f\n", o.transports[t], esizes[i],
                        l.reps, l.p50, l.p95, l.p99, model);
        }
        stop(&c);
    }
    la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load[0]) != 1) load[0] = -1;
        fclose(la);
    }
    printf("\nload average %.2f at the end\n", load[0]);
    if (csv) fclose(csv);
    return 0;
}
