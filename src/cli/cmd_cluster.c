/* cmd_cluster.c: `tessera cluster --workers N [...] -- <command> [args]`
 * starts N `tessera worker` processes on a private ipc:// endpoint, runs
 * `tessera <command> [args] --listen URL --expect N` against them, and
 * always cleans up: the workers are stopped (SIGTERM, then SIGKILL after a
 * grace period) and the socket file and its directory removed, whether the
 * job succeeds, fails or the cluster is interrupted (SIGINT/SIGTERM/SIGHUP
 * are passed on to the job first). Children also get PR_SET_PDEATHSIG, so a
 * cluster that is itself killed with SIGKILL does not leave them behind.
 * The exit status is the job's (130 after an interrupt). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "tessera/runtime.h"

#define MAX_WORKERS 64
#define GRACE_S 3.0     /* a stopped worker or interrupted job gets this long */
#define REAP_STEP_MS 20 /* supervision loop period */

typedef struct {
    long workers, straggling;
    const char *gflops, *mbps, *latency_ms, *straggler, *heartbeat_ms, *liveness;
    long seed;
    int verbose;
    char **job; /* argv after "--" */
    int n_job;
} cluster_opts;

static void cluster_usage(FILE *f) {
    fprintf(f, "usage: tessera cluster --workers N [--gflops G] [--mbps M] [--latency-ms L]\n"
               "                       [--straggler MODEL [--straggling K]] [--seed S]\n"
               "                       [--heartbeat-ms MS] [--liveness N] [--verbose]\n"
               "                       -- <command> [args...]\n\n"
               "Starts N local `tessera worker` processes connected over a private ipc://\n"
               "endpoint and runs `tessera <command> [args] --listen URL --expect N` against\n"
               "them (e.g. -- eval --model m.onnx --stragglers 1, or -- probe --rounds 50).\n"
               "Emulation options are passed to every worker; --straggler MODEL applies to\n"
               "the first K workers only with --straggling K (default: all). Worker i gets\n"
               "seed S + i. Workers' own output is shown with --verbose. The workers and\n"
               "the socket are always cleaned up; the exit status is the command's.\n");
}

static volatile sig_atomic_t g_signal; /* last signal received; handler only */

static void on_signal(int sig) {
    g_signal = sig;
}

static int parse(int argc, char **argv, cluster_opts *o) {
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) {
            o->verbose = 1;
            continue;
        }
        if (!v || !strcmp(v, "--")) {
            fprintf(stderr, "tessera cluster: %s needs a value (or is unknown)\n", a);
            return 0;
        }
        i++;
        double d;
        int ok = 1;
        if (!strcmp(a, "--workers"))
            ok = ts_cli_parse_int(a, v, 1, MAX_WORKERS, &o->workers);
        else if (!strcmp(a, "--straggling"))
            ok = ts_cli_parse_int(a, v, 0, MAX_WORKERS, &o->straggling);
        else if (!strcmp(a, "--seed"))
            ok = ts_cli_parse_int(a, v, 0, 1L << 40, &o->seed);
        else if (!strcmp(a, "--gflops"))
            ok = ts_cli_parse_double(a, v, 0, 1e6, &d), o->gflops = v;
        else if (!strcmp(a, "--mbps"))
            ok = ts_cli_parse_double(a, v, 0, 1e7, &d), o->mbps = v;
        else if (!strcmp(a, "--latency-ms"))
            ok = ts_cli_parse_double(a, v, 0, 1e6, &d), o->latency_ms = v;
        else if (!strcmp(a, "--heartbeat-ms"))
            ok = ts_cli_parse_double(a, v, 1, 3600000, &d), o->heartbeat_ms = v;
        else if (!strcmp(a, "--liveness"))
            ok = ts_cli_parse_double(a, v, 1, 1000, &d), o->liveness = v;
        else if (!strcmp(a, "--straggler")) {
            ts_straggler s;
            ts_err e = {0};
            if (ts_straggler_parse(v, &s, &e) != TS_OK) {
                fprintf(stderr, "tessera cluster: %s\n", e.msg);
                return 0;
            }
            o->straggler = v;
        } else {
            fprintf(stderr, "tessera cluster: unknown option %s\n", a);
            return 0;
        }
        if (!ok) return 0;
    }
    if (o->workers < 1) {
        fprintf(stderr, "tessera cluster: --workers N is required\n");
        return 0;
    }
    if (i >= argc - 1) {
        fprintf(stderr, "tessera cluster: give the command to run after --\n");
        return 0;
    }
    if (!strcmp(argv[i + 1], "cluster") || !strcmp(argv[i + 1], "worker")) {
        fprintf(stderr, "tessera cluster: cannot run '%s' as the job\n", argv[i + 1]);
        return 0;
    }
    o->job = argv + i + 1;
    o->n_job = argc - i - 1;
    return 1;
}

/* ---- child processes --------------------------------------------------- */

/* Forks and execs this same binary with args. quiet: stdout to /dev/null. */
static pid_t spawn(char **args, int quiet) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid; /* parent, or -1 */
    /* child: die with the cluster, start from default signal dispositions */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (quiet) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, STDOUT_FILENO);
        if (fd > STDOUT_FILENO) close(fd);
    }
    execv("/proc/self/exe", args);
    fprintf(stderr, "tessera cluster: cannot run /proc/self/exe: %s\n", strerror(errno));
    _exit(127);
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reaps whatever exited; returns the job's wait status once it is gone. */
static void reap(pid_t *workers, int n, pid_t *job, int *job_status) {
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == *job) {
            *job = 0;
            *job_status = st;
            continue;
        }
        for (int i = 0; i < n; i++)
            if (workers[i] == pid) {
                workers[i] = 0;
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                    fprintf(stderr, "tessera cluster: worker %d exited (%s %d)\n", i,
                            WIFSIGNALED(st) ? "signal" : "status",
                            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            }
    }
}

static int any_alive(const pid_t *workers, int n) {
    for (int i = 0; i < n; i++)
        if (workers[i] > 0) return 1;
    return 0;
}

/* SIGTERM (graceful DISCONNECT), then SIGKILL for stragglers after GRACE_S. */
static void stop_workers(pid_t *workers, int n, pid_t *job, int *job_status) {
    for (int i = 0; i < n; i++)
        if (workers[i] > 0) kill(workers[i], SIGTERM);
    double end = ts_now() + GRACE_S;
    for (;;) {
        reap(workers, n, job, job_status);
        if (!any_alive(workers, n)) return;
        if (ts_now() > end) break;
        nap_ms(REAP_STEP_MS);
    }
    for (int i = 0; i < n; i++)
        if (workers[i] > 0) kill(workers[i], SIGKILL);
    while (any_alive(workers, n)) {
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0 && errno != EINTR) break;
        for (int i = 0; i < n; i++)
            if (workers[i] == pid) workers[i] = 0;
    }
}

/* ---- the arguments of each child -------------------------------------- */

typedef struct {
    char *v[64];
    int n;
    char bufs[8][64];
    int nb;
} argv_builder;

static void arg(argv_builder *b, const char *s) {
    if (b->n < 63) b->v[b->n++] = (char *)s;
    b->v[b->n] = NULL;
}

static void arg_opt(argv_builder *b, const char *name, const char *value) {
    if (!value) return;
    arg(b, name);
    arg(b, value);
}

static const char *fmt_buf(argv_builder *b, const char *fmt, long v) {
    char *s = b->bufs[b->nb < 7 ? b->nb++ : 7];
    snprintf(s, 64, fmt, v);
    return s;
}

static void worker_args(argv_builder *b, const cluster_opts *o, const char *url, int i) {
    memset(b, 0, sizeof *b);
    arg(b, "tessera");
    arg(b, "worker");
    arg_opt(b, "--connect", url);
    arg_opt(b, "--name", fmt_buf(b, "cluster-%ld", i));
    arg_opt(b, "--seed", fmt_buf(b, "%ld", o->seed + i));
    arg_opt(b, "--gflops", o->gflops);
    arg_opt(b, "--mbps", o->mbps);
    arg_opt(b, "--latency-ms", o->latency_ms);
    arg_opt(b, "--heartbeat-ms", o->heartbeat_ms);
    arg_opt(b, "--liveness", o->liveness);
    if (o->straggler && (o->straggling < 0 || i < o->straggling))
        arg_opt(b, "--straggler", o->straggler);
    arg(b, "--once");
}

static int has_arg(const cluster_opts *o, const char *name) {
    for (int i = 0; i < o->n_job; i++)
        if (!strcmp(o->job[i], name)) return 1;
    return 0;
}

/* `tessera <job...> --listen URL --expect N`, unless the job says them. */
static char **job_args(const cluster_opts *o, const char *url, char *expect) {
    char **v = calloc((size_t)o->n_job + 6, sizeof *v);
    if (!v) return NULL;
    int n = 0;
    v[n++] = "tessera";
    for (int i = 0; i < o->n_job; i++)
        v[n++] = o->job[i];
    if (!has_arg(o, "--listen")) {
        v[n++] = "--listen";
        v[n++] = (char *)url;
    }
    if (!has_arg(o, "--expect")) {
        snprintf(expect, 16, "%ld", o->workers);
        v[n++] = "--expect";
        v[n++] = expect;
    }
    v[n] = NULL;
    return v;
}

/* ---- supervision ---------------------------------------------------------- */

static int exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return TS_EXIT_FAIL;
}

/* Waits for the job; a signal to the cluster is passed on to it, and a job
 * that does not end within GRACE_S after that is killed. */
static int supervise(pid_t *workers, int n, pid_t job) {
    int job_status = 0, forwarded = 0;
    double kill_at = 0;
    while (job > 0) {
        reap(workers, n, &job, &job_status);
        if (job <= 0) break;
        if (g_signal && !forwarded) {
            fprintf(stderr, "tessera cluster: signal %d, stopping the job\n", (int)g_signal);
            kill(job, SIGINT);
            forwarded = 1;
            kill_at = ts_now() + GRACE_S;
        }
        if (forwarded && ts_now() > kill_at) {
            kill(job, SIGKILL);
            kill_at = ts_now() + 3600;
        }
        nap_ms(REAP_STEP_MS);
    }
    stop_workers(workers, n, &job, &job_status);
    return forwarded ? 130 : exit_code(job_status);
}

static int run_cluster(const cluster_opts *o, const char *dir) {
    char path[300], url[320], expect[16];
    snprintf(path, sizeof path, "%s/master.ipc", dir);
    snprintf(url, sizeof url, "ipc://%s", path);
    pid_t workers[MAX_WORKERS] = {0};
    char **jargs = job_args(o, url, expect);
    if (!jargs) return TS_EXIT_FAIL;
    int rc = TS_EXIT_FAIL;
    fprintf(stderr, "tessera cluster: %ld workers on %s\n", o->workers, url);
    pid_t job = spawn(jargs, 0);
    if (job < 0) {
        fprintf(stderr, "tessera cluster: cannot start the job: %s\n", strerror(errno));
        goto done;
    }
    for (int i = 0; i < o->workers; i++) {
        argv_builder b;
        worker_args(&b, o, url, i);
        workers[i] = spawn(b.v, !o->verbose);
        if (workers[i] < 0) {
            fprintf(stderr, "tessera cluster: cannot start worker %d: %s\n", i, strerror(errno));
            workers[i] = 0;
        }
    }
    rc = supervise(workers, (int)o->workers, job);
done:
    free(jargs);
    unlink(path);
    return rc;
}

int ts_cmd_cluster(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            cluster_usage(stdout);
            return TS_EXIT_OK;
        }
    cluster_opts o = {.straggling = -1, .seed = 1};
    if (!parse(argc, argv, &o)) {
        cluster_usage(stderr);
        return TS_EXIT_USAGE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    char dir[] = "/tmp/tessera-cluster-XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "tessera cluster: cannot create a socket directory: %s\n", strerror(errno));
        return TS_EXIT_FAIL;
    }
    fflush(stdout);
    int rc = run_cluster(&o, dir);
    rmdir(dir);
    return rc;
}
