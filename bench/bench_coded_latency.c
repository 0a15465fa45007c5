/* bench_coded_latency.c: end-to-end inference latency of a coded model
 * (ts_coded_model over the runtime's master and workers) under device, link
 * and straggler emulation, per scheme, against n.
 *
 *   bench_coded_latency [--model fashion-cnn|alexnet|vgg16] [--workers 8,10,...]
 *       [--schemes uncoded,replication,mds,polynomial,crme]
 *       [--stragglers none,fixed,shiftexp,pareto] [--s S] [--gflops G] [--mbps M]
 *       [--latency-ms L] [--slow-count C] [--slow-factor F] [--shiftexp A]
 *       [--pareto A] [--runs R] [--warmup W] [--seed S] [--csv FILE] [--raw FILE]
 *       [--connect-procs] [--calibrate] [--ideal-only]
 *       [--listen URL] [--worker-wrap PATH] [--worker-mbps M] [--straggle-link]
 *       [--max-minutes T]
 *
 * Each configuration (n, straggler setting, scheme) gets a fresh cluster of
 * n workers: threads on inproc:// (ts_local_cluster), or with --connect-procs
 * `tessera worker` processes on tcp://127.0.0.1 started by this program. The
 * coded model (schemes other than uncoded tolerate --s stragglers; uncoded
 * waits for all n) runs W warm-up and R timed batch-1 inferences; each
 * latency is the wall time of ts_graph_forward at the master, including the
 * master's own work (encoding inputs, decoding in double, pooling and
 * activations, which the emulation does not slow down).
 *
 * Straggler settings: none; fixed = C of the n workers (picked by the seed)
 * slowed F times on every task; shiftexp = every worker's task time times
 * 1 + Exp(mean A); pareto = every worker's task time times Pareto(1, A).
 * The factor slows the device's compute; with --straggle-link it also
 * stretches the straggling task's link transfers (worker model "fixed:F+link":
 * a device on a congested link), and the settings print as "fixed+link" etc.
 *
 * The ideal bound printed per configuration is, summed over the coded layers,
 *   FLOPs of one worker's share / G               device time (ideal_ms), or
 *   layer FLOPs / (threshold * G)                 the formula (ideal_k_ms)
 * + (bytes in + bytes out per worker) * 8 / M     the plan's transfers
 * + 2 * L                                         one frame each way
 * It leaves out the master's compute and the non-coded layers.
 * --ideal-only prints both bounds per (n, scheme) without running anything.
 *
 * --max-minutes T caps the timed runs of each configuration at T minutes of
 * wall time: a configuration that reaches it stops after the inference in
 * progress and reports the runs it completed (R in the RESULT line and the
 * CSV is that count, and the log says it was cut). Each configuration's CSV
 * rows are appended as soon as it ends, under an flock, so that several
 * bench processes can share one CSV and a stopped run keeps what it did.
 *
 * With --connect-procs the master binds --listen (default tcp://127.0.0.1:0)
 * and with --worker-wrap each worker process is started as
 * `PATH INDEX CLI worker --connect URL ...` (bench/netns_latency.sh uses it
 * to run worker i in its own network namespace behind a rate-shaped veth).
 * --worker-mbps sets the link bandwidth the workers emulate when it differs
 * from --mbps (0 when the kernel shapes the real link); --mbps stays the
 * bandwidth of the ideal bound.
 *
 * --calibrate runs the same configurations with no emulation at all (the
 * workers report their real kernel time as device time) and prints, per
 * coded layer, the slowest accepted worker's real kernel time next to the
 * device time the emulation would charge at G: emulation is only faithful
 * when the emulated time is the larger one, since the real kernel runs first
 * and a reply can never leave before it is computed.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera/coded.h"
#include "tessera/runtime.h"
#include "tessera/zoo.h"

#define MAX_LIST 16
#define MAX_LAYERS 64
#define MAX_N 64
#define BENCH_LIVENESS 20

typedef enum { STRAG_NONE, STRAG_FIXED, STRAG_SHIFTEXP, STRAG_PARETO } strag_setting;
static const char *const STRAG_NAMES[] = {"none", "fixed", "shiftexp", "pareto"};
static const char *const STRAG_LINK_NAMES[] = {"none", "fixed+link", "shiftexp+link",
                                               "pareto+link"};

typedef struct {
    const char *model;
    int workers[MAX_LIST], n_workers;
    ts_scheme schemes[MAX_LIST];
    int n_schemes;
    strag_setting strags[MAX_LIST];
    int n_strags;
    int s;
    double gflops, mbps, latency_ms;
    int slow_count;
    double slow_factor, shiftexp, pareto;
    int runs, warmup;
    double max_s; /* wall-time cap of one configuration's timed runs (0: none) */
    uint64_t seed;
    const char *csv, *raw;
    int calibrate;
    int procs;      /* workers as `tessera worker` processes over tcp */
    int ideal_only; /* plan and print the ideal bounds, run nothing */
    const char *cli;
    const char *listen, *worker_wrap;
    double worker_mbps;   /* < 0: the same as mbps */
    int straggle_link;    /* the stragglers' factor stretches their link transfers too */
    ts_scheme cur_scheme; /* the configuration running (for printing) */
} bench_opts;

typedef struct {
    int n;
    strag_setting strag;
    ts_scheme scheme;
    double p50, p95, p99, mean, ideal, master_share, backend_p50;
    double ideal_k; /* the formula: FLOPs / (threshold * G) + transfers */
    int runs;       /* timed inferences completed (below --runs when cut by --max-minutes) */
    int ok;
} result;

/* ---- parsing --------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr, "usage: bench_coded_latency [--model M] [--workers 8,10] [--schemes crme,...] "
                    "[--stragglers none,fixed,shiftexp,pareto] [--s S] [--gflops G] [--mbps M] "
                    "[--latency-ms L] [--slow-count C] [--slow-factor F] [--shiftexp A] "
                    "[--pareto A] [--runs R] [--warmup W] [--seed S] [--csv FILE] [--raw FILE] "
                    "[--connect-procs] [--cli PATH] [--calibrate] [--ideal-only] [--listen URL] "
                    "[--worker-wrap PATH] [--worker-mbps M] [--straggle-link] [--max-minutes T]\n");
}

static int parse_ints(const char *s, int *out, int cap, int lo, int hi) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (*end || v < lo || v > hi || n >= cap) return -1;
        out[n++] = (int)v;
    }
    return n;
}

static int parse_schemes(const char *s, ts_scheme *out, int cap) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        ts_err e = {0};
        if (n >= cap || ts_scheme_parse(tok, &out[n], &e) != TS_OK) {
            fprintf(stderr, "bench_coded_latency: %s\n", e.msg[0] ? e.msg : "too many schemes");
            return -1;
        }
        n++;
    }
    return n;
}

static int parse_strags(const char *s, strag_setting *out, int cap) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (!strcmp(tok, STRAG_NAMES[i])) k = i;
        if (k < 0 || n >= cap) {
            fprintf(stderr, "bench_coded_latency: unknown straggler setting '%s'\n", tok);
            return -1;
        }
        out[n++] = (strag_setting)k;
    }
    return n;
}

static int num_arg(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !(d >= lo && d <= hi)) {
        fprintf(stderr, "bench_coded_latency: %s must be a number in [%g, %g], not '%s'\n", opt, lo,
                hi, v);
        return 0;
    }
    *out = d;
    return 1;
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.model = "fashion-cnn",
                      .n_workers = 1,
                      .s = 2,
                      .gflops = 10,
                      .mbps = 100,
                      .latency_ms = 1,
                      .slow_count = 2,
                      .slow_factor = 5,
                      .shiftexp = 0.5,
                      .pareto = 2.5,
                      .runs = 1000,
                      .warmup = 10,
                      .seed = 1,
                      .worker_mbps = -1};
    o->workers[0] = 10;
    o->n_schemes = parse_schemes("uncoded,replication,mds,polynomial,crme", o->schemes, MAX_LIST);
    o->n_strags = parse_strags("none,fixed", o->strags, MAX_LIST);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--calibrate")) {
            o->calibrate = 1;
            continue;
        }
        if (!strcmp(a, "--ideal-only")) {
            o->ideal_only = 1;
            continue;
        }
        if (!strcmp(a, "--connect-procs")) {
            o->procs = 1;
            continue;
        }
        if (!strcmp(a, "--straggle-link")) {
            o->straggle_link = 1;
            continue;
        }
        if (i + 1 >= argc) {
            usage();
            return 0;
        }
        const char *v = argv[++i];
        double d = 0;
        int ok = 1;
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--workers"))
            ok = (o->n_workers = parse_ints(v, o->workers, MAX_LIST, 1, MAX_N)) > 0;
        else if (!strcmp(a, "--schemes"))
            ok = (o->n_schemes = parse_schemes(v, o->schemes, MAX_LIST)) > 0;
        else if (!strcmp(a, "--stragglers"))
            ok = (o->n_strags = parse_strags(v, o->strags, MAX_LIST)) > 0;
        else if (!strcmp(a, "--s"))
            ok = num_arg(a, v, 0, MAX_N, &d), o->s = (int)d;
        else if (!strcmp(a, "--gflops"))
            ok = num_arg(a, v, 1e-3, 1e6, &o->gflops);
        else if (!strcmp(a, "--mbps"))
            ok = num_arg(a, v, 0, 1e6, &o->mbps);
        else if (!strcmp(a, "--latency-ms"))
            ok = num_arg(a, v, 0, 1e4, &o->latency_ms);
        else if (!strcmp(a, "--slow-count"))
            ok = num_arg(a, v, 0, MAX_N, &d), o->slow_count = (int)d;
        else if (!strcmp(a, "--slow-factor"))
            ok = num_arg(a, v, 1, 1e4, &o->slow_factor);
        else if (!strcmp(a, "--shiftexp"))
            ok = num_arg(a, v, 0, 1e3, &o->shiftexp);
        else if (!strcmp(a, "--pareto"))
            ok = num_arg(a, v, 1e-3, 1e3, &o->pareto);
        else if (!strcmp(a, "--runs"))
            ok = num_arg(a, v, 1, 1e7, &d), o->runs = (int)d;
        else if (!strcmp(a, "--warmup"))
            ok = num_arg(a, v, 0, 1e6, &d), o->warmup = (int)d;
        else if (!strcmp(a, "--seed"))
            ok = num_arg(a, v, 0, 1e15, &d), o->seed = (uint64_t)d;
        else if (!strcmp(a, "--csv"))
            o->csv = v;
        else if (!strcmp(a, "--raw"))
            o->raw = v;
        else if (!strcmp(a, "--cli"))
            o->cli = v;
        else if (!strcmp(a, "--listen"))
            o->listen = v;
        else if (!strcmp(a, "--worker-wrap"))
            o->worker_wrap = v;
        else if (!strcmp(a, "--worker-mbps"))
            ok = num_arg(a, v, 0, 1e6, &o->worker_mbps);
        else if (!strcmp(a, "--max-minutes"))
            ok = num_arg(a, v, 1e-3, 1e6, &d), o->max_s = d * 60;
        else {
            usage();
            return 0;
        }
        if (!ok) {
            fprintf(stderr, "bench_coded_latency: bad value '%s' for %s\n", v, a);
            return 0;
        }
    }
    return 1;
}

/* ---- emulation per worker ------------------------------------------------------ */

/* The straggler setting as printed and written to the CSVs. */
static const char *strag_label(const bench_opts *o, strag_setting st) {
    return o->straggle_link ? STRAG_LINK_NAMES[st] : STRAG_NAMES[st];
}

/* Which workers are the fixed stragglers: a seeded choice, printed. */
static void pick_slow(int n, int count, uint64_t seed, int *slow) {
    memset(slow, 0, sizeof(int) * (size_t)n);
    ts_rng r;
    ts_rng_seed(&r, seed * 7919 + (uint64_t)n);
    for (int picked = 0; picked < count && picked < n;) {
        int i = (int)ts_rng_below(&r, (uint64_t)n);
        if (!slow[i]) slow[i] = 1, picked++;
    }
}

static ts_straggler worker_straggler(const bench_opts *o, strag_setting st, int is_slow) {
    ts_straggler s = {TS_STRAGGLER_NONE, 0, 0};
    if (o->calibrate) return s;
    if (st == STRAG_FIXED && is_slow) s = (ts_straggler){TS_STRAGGLER_FIXED, o->slow_factor, 0};
    if (st == STRAG_SHIFTEXP) s = (ts_straggler){TS_STRAGGLER_SHIFTEXP, o->shiftexp, 0};
    if (st == STRAG_PARETO) s = (ts_straggler){TS_STRAGGLER_PARETO, o->pareto, 0};
    s.link = s.kind != TS_STRAGGLER_NONE && o->straggle_link;
    return s;
}

static void make_worker_opts(const bench_opts *o, int n, strag_setting st, ts_worker_opts *wo) {
    int slow[MAX_N];
    pick_slow(n, st == STRAG_FIXED ? o->slow_count : 0, o->seed, slow);
    for (int i = 0; i < n; i++) {
        wo[i] = ts_worker_opts_default();
        wo[i].gflops = o->calibrate ? 0 : o->gflops;
        wo[i].mbps = o->calibrate ? 0 : o->worker_mbps >= 0 ? o->worker_mbps : o->mbps;
        wo[i].latency_ms = o->calibrate ? 0 : o->latency_ms;
        wo[i].straggler = worker_straggler(o, st, slow[i]);
        wo[i].seed = o->seed * 1000 + (uint64_t)i + 1;
    }
}

static void print_emulation(const bench_opts *o, int n, strag_setting st,
                            const ts_worker_opts *wo) {
    char buf[64], list[256] = "";
    int first_slow = -1;
    if (o->calibrate) {
        printf("# emulation: none (calibration: real kernel times)\n");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (wo[i].straggler.kind != TS_STRAGGLER_FIXED) continue;
        if (first_slow < 0) first_slow = i;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%d", len ? "," : "", i);
    }
    printf("# emulation: device %g GFLOP/s, link %g Mbit/s + %g ms each way, stragglers %s",
           o->gflops, o->mbps, o->latency_ms, strag_label(o, st));
    if (first_slow >= 0)
        printf(" (%s on workers %s of %d, by spawn order)",
               ts_straggler_str(&wo[first_slow].straggler, buf, sizeof buf), list, n);
    else if (st != STRAG_NONE)
        printf(" (%s on every worker)", ts_straggler_str(&wo[0].straggler, buf, sizeof buf));
    printf(", seeds %llu..%llu\n", (unsigned long long)wo[0].seed,
           (unsigned long long)wo[n - 1].seed);
    if (o->worker_mbps >= 0 && o->worker_mbps != o->mbps)
        printf("# the workers emulate %g Mbit/s themselves (0: the link is real, shaped by the "
               "kernel); %g Mbit/s is the ideal bound's\n",
               o->worker_mbps, o->mbps);
    if (o->worker_wrap) printf("# workers started through %s\n", o->worker_wrap);
}

static void print_uptime(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) snprintf(buf, sizeof buf, "?\n");
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    printf("# machine load %s (/proc/loadavg): %s\n", when, buf);
}

/* ---- a metering backend: the runtime's backend, timed per layer -------------- */

typedef struct {
    ts_coded_backend inner;
    ts_master_backend *mb;
    ts_master *master;
    double backend_s;                  /* time inside run() this inference */
    double layer_emul_max[MAX_LAYERS]; /* slowest accepted worker's device time */
} meter;

static int m_num_workers(void *ctx) {
    return ((meter *)ctx)->inner.num_workers(((meter *)ctx)->inner.ctx);
}
static uint64_t m_epoch(void *ctx) {
    return ((meter *)ctx)->inner.epoch(((meter *)ctx)->inner.ctx);
}
static ts_status m_deploy(void *ctx, int w, int l, int s, const ts_tensor *t, ts_err *err) {
    meter *m = ctx;
    ts_status st = m->inner.deploy(m->inner.ctx, w, l, s, t, err);
    /* Work-around: the coded model encodes and sends every worker's filter
     * shares without running the master's poll loop; for AlexNet's and
     * VGG-16's dense layers that takes longer than heartbeat x liveness, the
     * workers take the master for dead and reconnect, and the deploy fails.
     * Polling here keeps the heartbeats flowing. */
    ts_err e = {0};
    if (st == TS_OK) ts_master_poll(m->master, 0, &e);
    return st;
}
static ts_status m_deploy_wait(void *ctx, ts_err *err) {
    meter *m = ctx;
    return m->inner.deploy_wait(m->inner.ctx, err);
}
static ts_status m_run(void *ctx, ts_layer_job *job, ts_err *err) {
    meter *m = ctx;
    double t0 = ts_now();
    ts_status s = m->inner.run(m->inner.ctx, job, err);
    m->backend_s += ts_now() - t0;
    ts_master_backend_stats st;
    ts_master_backend_get_stats(m->mb, &st);
    if (job->layer >= 0 && job->layer < MAX_LAYERS)
        m->layer_emul_max[job->layer] = st.last_max_emulated_s;
    return s;
}

static ts_coded_backend meter_backend(meter *m) {
    return (ts_coded_backend){m_num_workers, m_epoch, m_deploy, m_deploy_wait, m_run, m};
}

/* ---- workers as processes over tcp ------------------------------------------- */

typedef struct {
    ts_master *master;
    ts_master_backend *mb;
    pid_t pids[MAX_N];
    int n;
} proc_cluster;

static void proc_cluster_free(proc_cluster *pc) {
    ts_master_backend_free(pc->mb);
    ts_master_free(pc->master); /* says DISCONNECT; the workers exit */
    for (int i = 0; i < pc->n; i++) {
        if (pc->pids[i] <= 0) continue;
        int status;
        for (int t = 0; t < 50 && waitpid(pc->pids[i], &status, WNOHANG) == 0; t++)
            usleep(100000);
        if (waitpid(pc->pids[i], &status, WNOHANG) == 0) {
            kill(pc->pids[i], SIGKILL);
            waitpid(pc->pids[i], &status, 0);
        }
    }
    pc->n = 0;
}

static pid_t spawn_worker(const bench_opts *o, int index, const char *url,
                          const ts_worker_opts *wo) {
    char g[32], m[32], l[32], s[64], seed[32], sbuf[64], live[16];
    snprintf(live, sizeof live, "%d", BENCH_LIVENESS);
    snprintf(g, sizeof g, "%g", wo->gflops);
    snprintf(m, sizeof m, "%g", wo->mbps);
    snprintf(l, sizeof l, "%g", wo->latency_ms);
    snprintf(s, sizeof s, "%s", ts_straggler_str(&wo->straggler, sbuf, sizeof sbuf));
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)wo->seed);
    char idx[16];
    snprintf(idx, sizeof idx, "%d", index);
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = {(char *)o->worker_wrap,
                        idx,
                        (char *)o->cli,
                        "worker",
                        "--connect",
                        (char *)url,
                        "--gflops",
                        g,
                        "--mbps",
                        m,
                        "--latency-ms",
                        l,
                        "--straggler",
                        s,
                        "--seed",
                        seed,
                        "--liveness",
                        live,
                        NULL};
        char **argv = o->worker_wrap ? args : args + 2;
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static ts_status proc_cluster_new(const bench_opts *o, int n, const ts_worker_opts *wo,
                                  proc_cluster *pc, ts_err *err) {
    memset(pc, 0, sizeof *pc);
    ts_master_opts mo = ts_master_opts_default();
    mo.url = o->listen ? o->listen : "tcp://127.0.0.1:0";
    mo.liveness = BENCH_LIVENESS;
    if (!(pc->master = ts_master_new(&mo, err))) return err->status;
    for (int i = 0; i < n; i++) {
        pc->pids[i] = spawn_worker(o, i, ts_master_endpoint(pc->master), &wo[i]);
        pc->n = i + 1;
        if (pc->pids[i] < 0) return ts_errorf(err, TS_ERR_IO, "fork failed");
    }
    TS_TRY(ts_master_wait_workers(pc->master, n, 60, err));
    if (!(pc->mb = ts_master_backend_new(pc->master, 1, err))) return err->status;
    ts_master_backend_set_deploy_timeout(pc->mb, 600);
    return TS_OK;
}

/* ---- one configuration ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, int n, double p) {
    double pos = p * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return sorted[n - 1];
    return sorted[i] + (pos - i) * (sorted[i + 1] - sorted[i]);
}

/* The ideal bound of one plan: per coded layer the device time, the plan's
 * bytes in and out of one worker at the link speed, and one latency each
 * way. by_worker = 1: device time of the plan's per-worker FLOPs (what the
 * scheme makes a worker do, padding and redundancy included: replication's
 * workers each do 1/(n/(s+1)) of a layer); 0: the formula, layer
 * FLOPs / (threshold * G). */
static double ideal_of(const bench_opts *o, const ts_layer_plan *plans, int n, int by_worker) {
    double t = 0;
    for (int i = 0; i < n; i++) {
        const ts_layer_plan *p = &plans[i];
        t += (by_worker ? p->flops_worker : p->flops_uncoded / (double)p->threshold) /
             (o->gflops * 1e9);
        if (o->mbps > 0) t += (double)(p->bytes_in + p->bytes_out) * 8.0 / (o->mbps * 1e6);
        t += 2.0 * o->latency_ms * 1e-3;
    }
    return t;
}

static double ideal_bound(const bench_opts *o, const ts_coded_model *cm, int by_worker) {
    ts_layer_plan plans[MAX_LAYERS];
    int n = ts_coded_model_num_layers(cm);
    for (int i = 0; i < n && i < MAX_LAYERS; i++)
        plans[i] = *ts_coded_model_layer(cm, i);
    return ideal_of(o, plans, n < MAX_LAYERS ? n : MAX_LAYERS, by_worker);
}

/* Calibration: per layer, the median over inferences of the slowest
 * accepted worker's real kernel time, against the device time at G. */
static void print_calibration(const bench_opts *o, const ts_coded_model *cm, const ts_graph *g,
                              const double *real_in, size_t stride, int runs) {
    double *real = (double *)real_in;
    int nl = ts_coded_model_num_layers(cm);
    double worst = 0, total_real = 0, total_emul = 0, excess = 0;
    const char *worst_name = "";
    printf("#   %-14s %12s %12s %12s %8s\n", "layer", "MFLOP/worker", "real p50 ms", "emul ms",
           "real/emul");
    for (int l = 0; l < nl && l < MAX_LAYERS; l++) {
        const ts_layer_plan *p = ts_coded_model_layer(cm, l);
        double *col = real + (size_t)l * stride;
        qsort(col, (size_t)runs, sizeof *col, cmp_double);
        double med = percentile(col, runs, 0.5), emul = p->flops_worker / (o->gflops * 1e9);
        double ratio = med / emul;
        total_real += med, total_emul += emul;
        if (med > emul) excess += med - emul;
        if (ratio > worst) worst = ratio, worst_name = ts_graph_node(g, p->node).name;
        printf("#   %-14s %12.3f %12.3f %12.3f %8.2f\n", ts_graph_node(g, p->node).name,
               p->flops_worker / 1e6, med * 1e3, emul * 1e3, ratio);
    }
    printf("# calibration at %g GFLOP/s: worst layer %s real/emulated %.2f, all layers %.2f: %s\n",
           o->gflops, worst_name, worst, total_real / total_emul,
           worst <= 1.0 ? "faithful" : "NOT faithful at this device speed");
    printf("# fastest faithful device speed (every layer): %.2f GFLOP/s\n", o->gflops / worst);
    /* A layer of a few kFLOP is never slower emulated than its fixed task
     * overhead; what matters is how much real time leaks into the latency. */
    printf("CALIB model=%s n=%d scheme=%s gflops=%g excess_ms=%.3f ideal_ms=%.3f excess_share=%.3f "
           "worst_layer=%s worst_ratio=%.2f\n",
           o->model, ts_coded_model_workers(cm), ts_scheme_name(o->cur_scheme), o->gflops,
           excess * 1e3, ideal_bound(o, cm, 1) * 1e3, excess / ideal_bound(o, cm, 1), worst_name,
           worst);
}

/* Opens path for appending, locked against other bench processes sharing
 * it (the lock goes with fclose). */
static FILE *open_locked(const char *path) {
    FILE *f = fopen(path, "a");
    if (!f || flock(fileno(f), LOCK_EX) != 0) {
        fprintf(stderr, "bench_coded_latency: cannot append to %s: %s\n", path, strerror(errno));
        if (f) fclose(f);
        return NULL;
    }
    return f;
}

static void write_raw(const bench_opts *o, int n, strag_setting st, ts_scheme sc,
                      const double *sorted, int runs) {
    if (!o->raw || o->calibrate) return; /* unemulated times are not results */
    FILE *f = open_locked(o->raw);
    if (!f) return;
    for (int i = 0; i < runs; i++)
        fprintf(f, "%s,%d,%s,%s,%.4f,%.5f,%g,%g,%s\n", o->model, n, strag_label(o, st),
                ts_scheme_name(sc), sorted[i] * 1e3, (i + 1.0) / runs, o->gflops, o->mbps,
                o->procs ? "tcp-procs" : "inproc-threads");
    fclose(f);
}

static void write_csv_row(const bench_opts *o, const result *r) {
    if (!o->csv || o->calibrate) return;
    FILE *f = open_locked(o->csv);
    if (!f) return;
    fprintf(f, "%s,%s,%d,%s,%s,%d,%g,%g,%g,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.3f,%.4f,%.4f\n", o->model,
            o->procs ? "tcp-procs" : "inproc-threads", r->n, strag_label(o, r->strag),
            ts_scheme_name(r->scheme), r->scheme == TS_SCHEME_UNCODED ? 0 : o->s, o->gflops,
            o->mbps, o->latency_ms, r->runs, r->p50, r->p95, r->p99, r->mean, r->ideal_k,
            r->master_share, r->backend_p50, r->ideal);
    fclose(f);
}

typedef struct {
    ts_graph *g;
    ts_tensor *input;
    ts_tensor *reference; /* single-node output */
} model_ctx;

static ts_status open_cluster(const bench_opts *o, int n, const ts_worker_opts *wo,
                              ts_local_cluster **lc, proc_cluster *pc, ts_master_backend **mb,
                              ts_err *err) {
    if (o->procs) {
        TS_TRY(proc_cluster_new(o, n, wo, pc, err));
        *mb = pc->mb;
        return TS_OK;
    }
    /* Liveness 20 x 1 s: deploying VGG-16's dense shares and decoding its
     * big layers keep the master away from its poll loop for seconds on
     * this shared machine; no failure is injected here, so slow detection
     * costs nothing. */
    ts_local_cluster_opts co = {
        .n_workers = n, .per_worker = wo, .heartbeat_ms = 1000, .liveness = BENCH_LIVENESS};
    if (!(*lc = ts_local_cluster_new_opts(&co, err))) return err->status;
    *mb = ts_local_cluster_master_backend(*lc);
    ts_master_backend_set_deploy_timeout(*mb, 600);
    return TS_OK;
}

/* Runs the warm-up and timed inferences; *done gets the timed ones completed
 * (all of --runs unless --max-minutes cut them). */
static ts_status time_runs(const bench_opts *o, model_ctx *mc, ts_coded_model *cm, meter *mt,
                           double *lat, double *backend, double *master_s, double *real, int *done,
                           ts_err *err) {
    double err_max = 0, t_start = 0;
    int nl = ts_coded_model_num_layers(cm), checked = 0;
    *done = 0;
    for (int i = -o->warmup; i < o->runs; i++) {
        if (i == 0) t_start = ts_now();
        if (i > 0 && o->max_s > 0 && ts_now() - t_start > o->max_s) {
            printf("# cut by --max-minutes %g after %d of %d timed inferences\n", o->max_s / 60, i,
                   o->runs);
            break;
        }
        mt->backend_s = 0;
        double t0 = ts_now();
        TS_TRY(ts_graph_forward(mc->g, mc->input, err));
        double t = ts_now() - t0;
        /* every output, outside the timed interval: a wrong answer in any
         * inference (a late result mixed in, a bad decode) fails the run */
        double e = ts_tensor_rel_err(ts_graph_result(mc->g), mc->reference);
        if (!(e <= err_max) && !isnan(err_max)) err_max = e; /* a NaN sticks */
        checked++;
        if (i < 0) continue;
        lat[i] = t;
        backend[i] = mt->backend_s;
        *master_s += t - mt->backend_s;
        for (int l = 0; real && l < nl && l < MAX_LAYERS; l++)
            real[(size_t)l * o->runs + i] = mt->layer_emul_max[l];
        *done = i + 1;
    }
    printf("# output vs single node: relative error %.2e (largest over all %d inferences, "
           "warm-up and timed)\n",
           err_max, checked);
    if (!(err_max < 1e-3))
        return ts_errorf(err, TS_ERR_INVALID, "coded output differs from the single-node output");
    return TS_OK;
}

static result run_config(bench_opts *o, model_ctx *mc, int n, strag_setting st, ts_scheme sc) {
    result res = {.n = n, .strag = st, .scheme = sc};
    ts_worker_opts wo[MAX_N];
    make_worker_opts(o, n, st, wo);
    int s = sc == TS_SCHEME_UNCODED ? 0 : o->s;
    o->cur_scheme = sc;
    printf("\n## %s n=%d scheme=%s s=%d stragglers=%s runs=%d warmup=%d%s\n", o->model, n,
           ts_scheme_name(sc), s, strag_label(o, st), o->runs, o->warmup,
           !o->procs        ? " workers=threads on inproc://"
           : o->worker_wrap ? " workers=processes over tcp, started through --worker-wrap"
                            : " workers=processes over tcp://127.0.0.1");
    print_emulation(o, n, st, wo);
    print_uptime("before");
    fflush(stdout);
    ts_err e = {0};
    ts_local_cluster *lc = NULL;
    proc_cluster pc = {0};
    ts_master_backend *mb = NULL;
    ts_coded_model *cm = NULL;
    double *lat = calloc((size_t)o->runs, sizeof *lat);
    double *backend = calloc((size_t)o->runs, sizeof *backend);
    double *real = o->calibrate ? calloc((size_t)o->runs * MAX_LAYERS, sizeof *real) : NULL;
    double master_s = 0, t_setup = ts_now();
    int runs = 0;
    meter mt = {0};
    ts_status stt = open_cluster(o, n, wo, &lc, &pc, &mb, &e);
    if (stt == TS_OK) {
        mt.inner = ts_master_coded_backend(mb);
        mt.mb = mb;
        mt.master = o->procs ? pc.master : ts_local_cluster_master(lc);
        ts_coded_opts co = ts_coded_opts_default();
        co.n_workers = n;
        co.stragglers = s;
        co.scheme = sc;
        co.deadline_s = 600;
        cm = ts_coded_model_new(mc->g, &co, meter_backend(&mt), &e);
        stt = cm ? TS_OK : e.status;
    }
    if (stt == TS_OK) {
        printf("# setup (cluster, plan, deploy) %.1f s\n", ts_now() - t_setup);
        stt = time_runs(o, mc, cm, &mt, lat, backend, &master_s, real, &runs, &e);
    }
    if (stt == TS_OK) {
        qsort(lat, (size_t)runs, sizeof *lat, cmp_double);
        double sum = 0;
        for (int i = 0; i < runs; i++)
            sum += lat[i];
        res = (result){.n = n,
                       .strag = st,
                       .scheme = sc,
                       .p50 = percentile(lat, runs, 0.5) * 1e3,
                       .p95 = percentile(lat, runs, 0.95) * 1e3,
                       .p99 = percentile(lat, runs, 0.99) * 1e3,
                       .mean = sum / runs * 1e3,
                       .ideal = ideal_bound(o, cm, 1) * 1e3,
                       .ideal_k = ideal_bound(o, cm, 0) * 1e3,
                       .master_share = master_s / sum,
                       .runs = runs,
                       .ok = 1};
        qsort(backend, (size_t)runs, sizeof *backend, cmp_double);
        res.backend_p50 = percentile(backend, runs, 0.5) * 1e3;
        printf("RESULT model=%s n=%d scheme=%s s=%d stragglers=%s R=%d p50_ms=%.3f p95_ms=%.3f "
               "p99_ms=%.3f mean_ms=%.3f ideal_ms=%.3f ideal_k_ms=%.3f master_share=%.2f "
               "workers_p50_ms=%.3f\n",
               o->model, n, ts_scheme_name(sc), s, strag_label(o, st), runs, res.p50, res.p95,
               res.p99, res.mean, res.ideal, res.ideal_k, res.master_share, res.backend_p50);
        write_raw(o, n, st, sc, lat, runs);
        write_csv_row(o, &res);
        if (o->calibrate) print_calibration(o, cm, mc->g, real, (size_t)o->runs, runs);
    } else {
        printf("FAILED model=%s n=%d scheme=%s stragglers=%s: %s\n", o->model, n,
               ts_scheme_name(sc), strag_label(o, st), e.msg);
    }
    print_uptime("after");
    fflush(stdout);
    ts_coded_model_free(cm);
    ts_local_cluster_free(lc);
    if (o->procs) proc_cluster_free(&pc);
    free(lat);
    free(backend);
    free(real);
    return res;
}

/* ---- model and summary ------------------------------------------------------------ */

static ts_status open_model(const bench_opts *o, model_ctx *mc, ts_err *err) {
    memset(mc, 0, sizeof *mc);
    if (!(mc->g = ts_zoo_build(o->model, 1, err))) return err->status;
    TS_TRY(ts_graph_plan(mc->g, 1, 0, err));
    TS_TRY(ts_graph_fold_batchnorm(mc->g, err));
    TS_TRY(ts_graph_plan(mc->g, 1, 0, err));
    ts_shape in = ts_graph_value(mc->g, ts_graph_input(mc->g)).shape;
    if (!(mc->input = ts_tensor_new(&in, err))) return err->status;
    ts_rng r;
    ts_rng_seed(&r, o->seed);
    ts_rng_fill_uniform(&r, mc->input->data, mc->input->size, 0.0f, 1.0f);
    TS_TRY(ts_graph_forward(mc->g, mc->input, err));
    if (!(mc->reference = ts_tensor_clone(ts_graph_result(mc->g), err))) return err->status;
    double flops = 0;
    for (int i = 0; i < ts_graph_num_nodes(mc->g); i++)
        flops += 2.0 * (double)ts_graph_node_macs(mc->g, i);
    printf("# model %s: input %lldx%lldx%lld, %.3f GFLOP per inference (2 x MACs)\n", o->model,
           (long long)in.shape[1], (long long)in.shape[2], (long long)in.shape[3], flops / 1e9);
    return TS_OK;
}

static void print_ideals(const bench_opts *o, model_ctx *mc) {
    for (int w = 0; w < o->n_workers; w++)
        for (int c = 0; c < o->n_schemes; c++) {
            ts_coded_opts co = ts_coded_opts_default();
            co.n_workers = o->workers[w];
            co.scheme = o->schemes[c];
            co.stragglers = co.scheme == TS_SCHEME_UNCODED ? 0 : o->s;
            ts_layer_plan *plans = NULL;
            int np = 0;
            ts_err e = {0};
            if (ts_coded_plan_graph(mc->g, &co, &plans, &np, &e) != TS_OK) {
                printf("IDEAL model=%s n=%d scheme=%s: no plan: %s\n", o->model, co.n_workers,
                       ts_scheme_name(co.scheme), e.msg);
                continue;
            }
            printf("IDEAL model=%s n=%d scheme=%s s=%d gflops=%g mbps=%g latency_ms=%g "
                   "ideal_ms=%.3f ideal_k_ms=%.3f\n",
                   o->model, co.n_workers, ts_scheme_name(co.scheme), co.stragglers, o->gflops,
                   o->mbps, o->latency_ms, ideal_of(o, plans, np, 1) * 1e3,
                   ideal_of(o, plans, np, 0) * 1e3);
            free(plans);
        }
}

static const result *find(const result *rs, int nr, int n, strag_setting st, ts_scheme sc) {
    for (int i = 0; i < nr; i++)
        if (rs[i].ok && rs[i].n == n && rs[i].strag == st && rs[i].scheme == sc) return &rs[i];
    return NULL;
}

static void print_ratios(const bench_opts *o, const result *rs, int nr) {
    printf("\n# ratios (targets at n=10 with 2 of 10 fixed 5x: CRME p99 / uncoded straggler-free "
           "p50 <= 1.4, uncoded p99 / CRME p99 >= 3; no stragglers: CRME p50 / uncoded p50 <= "
           "1.35)\n");
    for (int w = 0; w < o->n_workers; w++) {
        int n = o->workers[w];
        const result *u0 = find(rs, nr, n, STRAG_NONE, TS_SCHEME_UNCODED);
        const result *c0 = find(rs, nr, n, STRAG_NONE, TS_SCHEME_CRME);
        for (int k = 0; k < o->n_strags; k++) {
            strag_setting st = o->strags[k];
            if (st == STRAG_NONE) continue;
            const result *u = find(rs, nr, n, st, TS_SCHEME_UNCODED);
            const result *c = find(rs, nr, n, st, TS_SCHEME_CRME);
            if (c && u0)
                printf("RATIO model=%s n=%d stragglers=%s crme_p99/uncoded_free_p50=%.3f\n",
                       o->model, n, strag_label(o, st), c->p99 / u0->p50);
            if (c && u)
                printf("RATIO model=%s n=%d stragglers=%s uncoded_p99/crme_p99=%.3f\n", o->model, n,
                       strag_label(o, st), u->p99 / c->p99);
        }
        if (c0 && u0)
            printf("RATIO model=%s n=%d stragglers=none crme_p50/uncoded_p50=%.3f\n", o->model, n,
                   c0->p50 / u0->p50);
    }
}

int main(int argc, char **argv) {
    bench_opts o;
    if (!parse_args(argc, argv, &o)) return 2;
    if (o.procs && !o.cli) o.cli = getenv("TS_CLI");
    if (o.procs && !o.cli) {
        fprintf(stderr, "bench_coded_latency: --connect-procs needs --cli PATH or TS_CLI\n");
        return 2;
    }
    ts_threads_set(1); /* workers are threads: one core's worth each, no BLAS teams */
    signal(SIGPIPE, SIG_IGN);
    printf("# bench_coded_latency:");
    for (int i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    print_uptime("at start");
    model_ctx mc;
    ts_err e = {0};
    if (open_model(&o, &mc, &e) != TS_OK) {
        fprintf(stderr, "bench_coded_latency: %s\n", e.msg);
        return 1;
    }
    if (o.ideal_only) {
        print_ideals(&o, &mc);
        ts_tensor_free(mc.input);
        ts_tensor_free(mc.reference);
        ts_graph_free(mc.g);
        return 0;
    }
    int cap = o.n_workers * o.n_strags * o.n_schemes, nr = 0, failed = 0;
    result *rs = calloc((size_t)cap, sizeof *rs);
    for (int w = 0; w < o.n_workers; w++)
        for (int k = 0; k < o.n_strags; k++)
            for (int c = 0; c < o.n_schemes; c++) {
                rs[nr] = run_config(&o, &mc, o.workers[w], o.strags[k], o.schemes[c]);
                failed += !rs[nr].ok;
                nr++;
            }
    if (!o.calibrate) print_ratios(&o, rs, nr);
    free(rs);
    ts_tensor_free(mc.input);
    ts_tensor_free(mc.reference);
    ts_graph_free(mc.g);
    return failed ? 1 : 0;
}
