/* cmd_worker.c: `tessera worker` serves a master's tasks until stopped.
 * SIGINT/SIGTERM leave gracefully (DISCONNECT); an emulated crash ends the
 * process on the spot, as a real crash would (the library only reports it). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tessera/runtime.h"

static void worker_usage(FILE *f) {
    fprintf(f, "usage: tessera worker --connect URL [--name NAME] [--gflops G] [--mbps M]\n"
               "                      [--latency-ms L] [--straggler MODEL] [--seed S]\n"
               "                      [--heartbeat-ms MS] [--liveness N] [--threads T] [--once]\n"
               "                      [--curve-keys DIR] [--verbose]\n\n"
               "Connects to a master (ipc:///path or tcp://host:port), registers, and runs the\n"
               "tasks it is sent. Emulation: --gflops runs the real kernel, then waits until a\n"
               "device of G GFLOP/s would be done; --mbps and --latency-ms delay every frame by\n"
               "its size and the latency, in each direction. Straggler models (seeded by\n"
               "--seed): none, fixed:F (every task F times slower), shiftexp:A (1 + A*Exp(1)),\n"
               "pareto:A (tail index A), failstop:T (mute after T s), crash:T (the process\n"
               "exits after T s); fixed, shiftexp and pareto slow the device only, or with a\n"
               "+link suffix (fixed:5+link) the task's link transfers too. --once exits when\n"
               "the master shuts down instead of waiting for a new one. --curve-keys DIR\n"
               "encrypts and authenticates with CURVE: DIR holds master.pub (the master's\n"
               "public key) and this worker's worker.pub and worker.secret (made by\n"
               "`tessera keygen --dir DIR --role worker`).\n");
}

static volatile sig_atomic_t g_stop; /* set by the signal handler only */

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

typedef struct {
    const char *name;
    int has_value;
} opt_spec;

static int parse_args(int argc, char **argv, ts_worker_opts *o, long *threads, int *verbose) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        double d;
        ts_err err = {0};
        if (!strcmp(a, "--once")) {
            o->exit_on_shutdown = 1;
            continue;
        }
        if (!strcmp(a, "--verbose")) {
            *verbose = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "tessera worker: %s needs a value (or is unknown)\n", a);
            return 0;
        }
        i++;
        if (!strcmp(a, "--connect")) {
            o->url = v;
        } else if (!strcmp(a, "--name")) {
            o->name = v;
        } else if (!strcmp(a, "--curve-keys")) {
            o->curve_dir = v;
        } else if (!strcmp(a, "--gflops")) {
            if (!ts_cli_parse_double(a, v, 0, 1e6, &o->gflops)) return 0;
        } else if (!strcmp(a, "--mbps")) {
            if (!ts_cli_parse_double(a, v, 0, 1e7, &o->mbps)) return 0;
        } else if (!strcmp(a, "--latency-ms")) {
            if (!ts_cli_parse_double(a, v, 0, 1e6, &o->latency_ms)) return 0;
        } else if (!strcmp(a, "--straggler")) {
            if (ts_straggler_parse(v, &o->straggler, &err) != TS_OK) {
                fprintf(stderr, "tessera worker: %s\n", err.msg);
                return 0;
            }
        } else if (!strcmp(a, "--seed")) {
            if (!ts_cli_parse_double(a, v, 0, 9007199254740992.0, &d)) return 0;
            o->seed = (uint64_t)d;
        } else if (!strcmp(a, "--heartbeat-ms")) {
            if (!ts_cli_parse_int(a, v, 1, 3600000, &n)) return 0;
            o->heartbeat_ms = (int)n;
        } else if (!strcmp(a, "--liveness")) {
            if (!ts_cli_parse_int(a, v, 1, 1000, &n)) return 0;
            o->liveness = (int)n;
        } else if (!strcmp(a, "--threads")) {
            if (!ts_cli_parse_int(a, v, 1, 256, threads)) return 0;
        } else {
            fprintf(stderr, "tessera worker: unknown option %s\n", a);
            return 0;
        }
    }
    if (!o->url) {
        fprintf(stderr, "tessera worker: --connect URL is required\n");
        return 0;
    }
    return 1;
}

int ts_cmd_worker(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        worker_usage(stdout);
        return TS_EXIT_OK;
    }
    ts_worker_opts o = ts_worker_opts_default();
    long threads = 1;
    int verbose = 0;
    if (!parse_args(argc, argv, &o, &threads, &verbose)) {
        worker_usage(stderr);
        return TS_EXIT_USAGE;
    }
    ts_threads_set((int)threads);
    if (verbose) ts_log_set(NULL, NULL, TS_LOG_INFO);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* sig_atomic_t is int on the platforms we build for; the library reads
     * the flag with atomic loads. */
    o.stop = (const int *)&g_stop;

    char strag[64];
    printf("worker %s: connecting to %s (gflops %g, mbps %g, latency %g ms, straggler %s, "
           "seed %llu)\n",
           o.name ? o.name : "", o.url, o.gflops, o.mbps, o.latency_ms,
           ts_straggler_str(&o.straggler, strag, sizeof strag), (unsigned long long)o.seed);
    fflush(stdout);

    ts_err err = {0};
    ts_worker_exit why;
    ts_worker_stats st = {0};
    o.stats = &st;
    ts_status s = ts_worker_run(&o, &why, &err);
    if (s != TS_OK) return ts_cli_fail(&err);
    if (why == TS_WORKER_EXIT_CRASH) {
        fprintf(stderr, "tessera worker: emulated crash (%s)\n", strag);
        _exit(TS_EXIT_FAIL); /* no cleanup, no goodbye: that is the point */
    }
    printf("worker %s: %s after %llu tasks (%llu failed), %llu blobs + %llu aliases (peak %.1f "
           "MB stored), %llu registrations\n",
           o.name ? o.name : "", why == TS_WORKER_EXIT_SHUTDOWN ? "master shut down" : "stopped",
           (unsigned long long)st.tasks, (unsigned long long)st.task_errors,
           (unsigned long long)st.blobs, (unsigned long long)st.aliases, st.blob_bytes_peak / 1e6,
           (unsigned long long)st.registrations);
    return TS_EXIT_OK;
}

/* ---- tessera keygen ---------------------------------------------------- */

static void keygen_usage(FILE *f) {
    fprintf(f, "usage: tessera keygen --dir DIR --role master|worker\n"
               "       tessera keygen --dir DIR --authorize WORKER_PUBLIC_KEY\n\n"
               "Makes a CURVE keypair (DIR/<role>.pub, DIR/<role>.secret with mode 0600)\n"
               "and prints the public key; or appends a worker's public key to the master's\n"
               "DIR/authorized_workers. A worker directory also needs a copy of the\n"
               "master's master.pub. Use the directories with --curve-keys.\n");
}

int ts_cmd_keygen(int argc, char **argv) {
    const char *dir = NULL, *role = NULL, *key = NULL;
    if (ts_cli_wants_help(argc, argv)) {
        keygen_usage(stdout);
        return TS_EXIT_OK;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--role"))
            role = argv[i + 1];
        else if (!strcmp(argv[i], "--authorize"))
            key = argv[i + 1];
        else
            break;
    }
    if (!dir || (!role == !key) || argc % 2 == 0) {
        keygen_usage(stderr);
        return TS_EXIT_USAGE;
    }
    ts_err err = {0};
    if (key) return ts_curve_authorize(dir, key, &err) == TS_OK ? TS_EXIT_OK : ts_cli_fail(&err);
    char pub[41];
    if (ts_curve_keygen(dir, role, pub, &err) != TS_OK) return ts_cli_fail(&err);
    printf("%s\n", pub);
    return TS_EXIT_OK;
}
