/* cmd_probe.c: `tessera probe` checks a set of workers end to end without a
 * model: it listens like `eval --listen` does, deploys random filter shares
 * to every worker, and runs rounds of conv tasks through the coded-layer
 * backend, finishing each round on the first (live - stragglers) answers
 * and checking every accepted product against the local kernel. When the
 * worker set changes it re-maps and re-deploys, as a coded model would.
 * The system tests and `tessera cluster` use it to exercise processes,
 * kills, restarts and rogue peers over ipc and tcp. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tessera/runtime.h"

#define N_SHARES 2
#define MAX_SLOTS 256

typedef struct {
    const char *listen, *curve_dir;
    long expect, stragglers, rounds, interval_ms, heartbeat_ms, liveness;
    double deadline_s, wait_s;
    int verbose;
} probe_opts;

static void probe_usage(FILE *f) {
    fprintf(f, "usage: tessera probe --listen URL --expect N [--stragglers S] [--rounds R]\n"
               "                     [--interval-ms MS] [--deadline SEC] [--wait SEC]\n"
               "                     [--heartbeat-ms MS] [--liveness N] [--curve-keys DIR]\n"
               "                     [--verbose]\n\n"
               "Binds URL, waits up to --wait seconds (default 60) for N workers\n"
               "(`tessera worker --connect URL`), deploys random filter shares to each and\n"
               "runs R rounds (default 100) of conv tasks on every live worker, each round\n"
               "finished by the first (live - S) answers within --deadline seconds (default\n"
               "30). Every accepted product is checked against the local kernel. A changed\n"
               "worker set is re-mapped and re-deployed; fewer than S + 1 live workers is an\n"
               "error. Prints a summary line per change and at the end; exit status 0 only\n"
               "when every round finished with correct products. --curve-keys DIR: CURVE with\n"
               "DIR/master.secret, admitting only the keys in DIR/authorized_workers.\n");
}

static volatile sig_atomic_t g_interrupted; /* set by the signal handler only */

static void on_signal(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static int parse(int argc, char **argv, probe_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose")) {
            o->verbose = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "tessera probe: %s needs a value (or is unknown)\n", a);
            return 0;
        }
        i++;
        int ok = 1;
        if (!strcmp(a, "--listen"))
            o->listen = v;
        else if (!strcmp(a, "--curve-keys"))
            o->curve_dir = v;
        else if (!strcmp(a, "--expect"))
            ok = ts_cli_parse_int(a, v, 1, MAX_SLOTS, &o->expect);
        else if (!strcmp(a, "--stragglers"))
            ok = ts_cli_parse_int(a, v, 0, MAX_SLOTS - 1, &o->stragglers);
        else if (!strcmp(a, "--rounds"))
            ok = ts_cli_parse_int(a, v, 1, 100000000, &o->rounds);
        else if (!strcmp(a, "--interval-ms"))
            ok = ts_cli_parse_int(a, v, 0, 3600000, &o->interval_ms);
        else if (!strcmp(a, "--heartbeat-ms"))
            ok = ts_cli_parse_int(a, v, 1, 3600000, &o->heartbeat_ms);
        else if (!strcmp(a, "--liveness"))
            ok = ts_cli_parse_int(a, v, 1, 1000, &o->liveness);
        else if (!strcmp(a, "--deadline"))
            ok = ts_cli_parse_double(a, v, 0.01, 86400, &o->deadline_s);
        else if (!strcmp(a, "--wait"))
            ok = ts_cli_parse_double(a, v, 0.01, 86400, &o->wait_s);
        else {
            fprintf(stderr, "tessera probe: unknown option %s\n", a);
            return 0;
        }
        if (!ok) return 0;
    }
    if (!o->listen || !o->expect) {
        fprintf(stderr, "tessera probe: --listen URL and --expect N are required\n");
        return 0;
    }
    return 1;
}

/* The work of every slot: one input and N_SHARES filter shares, refreshed
 * per round (inputs) and per re-map (shares). */
typedef struct {
    int n;
    ts_rng rng;
    ts_conv2d_params conv;
    ts_tensor *in[MAX_SLOTS];
    ts_tensor *share[MAX_SLOTS * N_SHARES];
    ts_tensor *out[MAX_SLOTS * N_SHARES];
    int responded[MAX_SLOTS];
    uint64_t answers_by_id[1024]; /* results accepted per worker id (ids < 1024) */
} probe_state;

static void state_clear(probe_state *p) {
    for (int i = 0; i < MAX_SLOTS; i++) {
        ts_tensor_free(p->in[i]);
        p->in[i] = NULL;
    }
    for (int i = 0; i < MAX_SLOTS * N_SHARES; i++) {
        ts_tensor_free(p->share[i]);
        ts_tensor_free(p->out[i]);
        p->share[i] = p->out[i] = NULL;
    }
}

static ts_tensor *random_tensor(ts_shape s, ts_rng *rng, ts_err *err) {
    ts_tensor *t = ts_tensor_new(&s, err);
    if (t) ts_rng_fill_uniform(rng, t->data, t->size, -1.0f, 1.0f);
    return t;
}

/* Re-maps the slots to the live workers and deploys fresh shares. */
static ts_status remap(probe_state *p, ts_coded_backend *be, long stragglers, ts_err *err) {
    state_clear(p);
    p->n = be->num_workers(be->ctx);
    if (p->n < stragglers + 1)
        return ts_errorf(err, TS_ERR_UNAVAILABLE,
                         "%d workers are live, too few to tolerate %ld stragglers: no plan is "
                         "possible",
                         p->n, stragglers);
    for (int j = 0; j < p->n; j++) {
        if (!(p->in[j] = random_tensor(ts_shape4(1, 3, 10, 9), &p->rng, err))) return err->status;
        for (int d = 0; d < N_SHARES; d++) {
            ts_tensor *w = random_tensor(ts_shape4(4, 3, 3, 3), &p->rng, err);
            ts_tensor *y = ts_tensor_new4(1, 4, 8, 7, err);
            p->share[j * N_SHARES + d] = w;
            p->out[j * N_SHARES + d] = y;
            if (!w || !y) return err->status;
            TS_TRY(be->deploy(be->ctx, j, 0, d, w, err));
        }
    }
    return be->deploy_wait(be->ctx, err);
}

/* Checks every responder's products against the local conv. */
static int check_products(probe_state *p, ts_master_backend *mb, ts_err *err) {
    int bad = 0;
    for (int j = 0; j < p->n; j++) {
        if (!p->responded[j]) continue;
        uint32_t id = ts_master_backend_slot_worker(mb, j);
        if (id < 1024) p->answers_by_id[id]++;
        for (int d = 0; d < N_SHARES; d++) {
            ts_tensor *want = ts_tensor_new4(1, 4, 8, 7, err);
            if (!want) return -1;
            size_t ws =
                ts_conv2d_workspace_floats(&p->conv, &p->in[j]->s, &p->share[j * N_SHARES + d]->s);
            float *buf = ws ? ts_alloc(ws * sizeof(float)) : NULL;
            ts_status s = ts_conv2d_forward(&p->conv, p->in[j], p->share[j * N_SHARES + d], NULL,
                                            want, buf, err);
            ts_free(buf);
            double e = s == TS_OK ? ts_tensor_rel_err(p->out[j * N_SHARES + d], want) : 1;
            ts_tensor_free(want);
            if (!(e < 1e-4)) {
                fprintf(stderr, "tessera probe: worker %u returned a wrong product (rel err %g)\n",
                        id, e);
                bad++;
            }
        }
    }
    return bad;
}

static ts_layer_job round_job(probe_state *p, const probe_opts *o) {
    ts_layer_job job = {.layer = 0,
                        .kind = TS_SHARE_CONV,
                        .conv = p->conv,
                        .n_in = 1,
                        .n_shares = N_SHARES,
                        .inputs = (const ts_tensor *const *)p->in,
                        .outputs = p->out,
                        .need = p->n - (int)o->stragglers,
                        .deadline_s = o->deadline_s,
                        .responded = p->responded};
    return job;
}

/* One round: fresh inputs, run, check. Re-maps and retries (a few times)
 * when the worker set changed under the round. */
static ts_status run_round(probe_state *p, ts_coded_backend *be, ts_master_backend *mb,
                           const probe_opts *o, uint64_t *epoch, long *bad, ts_err *err) {
    for (int attempt = 0;; attempt++) {
        if (be->epoch(be->ctx) != *epoch) {
            int before = p->n;
            *epoch = be->epoch(be->ctx);
            TS_TRY(remap(p, be, o->stragglers, err));
            printf("probe: worker set changed: %d -> %d live, re-deployed\n", before, p->n);
            fflush(stdout);
        }
        for (int j = 0; j < p->n; j++)
            ts_rng_fill_uniform(&p->rng, p->in[j]->data, p->in[j]->size, -1.0f, 1.0f);
        ts_layer_job job = round_job(p, o);
        ts_status s = be->run(be->ctx, &job, err);
        if (s == TS_OK) {
            int b = check_products(p, mb, err);
            if (b < 0) return err->status;
            *bad += b;
            return TS_OK;
        }
        if (s != TS_ERR_UNAVAILABLE || be->epoch(be->ctx) == *epoch || attempt >= 8) return s;
        fprintf(stderr, "tessera probe: %s; re-mapping to the workers left\n", err->msg);
    }
}

static void print_summary(const probe_state *p, long rounds, long bad) {
    printf("probe: %ld rounds, %ld wrong products; answers per worker id:", rounds, bad);
    for (int id = 0; id < 1024; id++)
        if (p->answers_by_id[id]) printf(" %d:%llu", id, (unsigned long long)p->answers_by_id[id]);
    printf("\n");
}

static int probe_run(const probe_opts *o, ts_master *m) {
    ts_err err = {0};
    fprintf(stderr, "probe: listening on %s, waiting for %ld workers\n", ts_master_endpoint(m),
            o->expect);
    if (ts_master_wait_workers(m, (int)o->expect, o->wait_s, &err) != TS_OK)
        return ts_cli_fail(&err);
    ts_master_backend *mb = ts_master_backend_new(m, 1, &err);
    if (!mb) return ts_cli_fail(&err);
    ts_coded_backend be = ts_master_coded_backend(mb);
    probe_state *p = calloc(1, sizeof *p);
    if (!p) {
        ts_master_backend_free(mb);
        return TS_EXIT_FAIL;
    }
    ts_rng_seed(&p->rng, 12345);
    p->conv = ts_conv2d_params_default();
    uint64_t epoch = be.epoch(be.ctx) + 1; /* forces the first mapping */
    long bad = 0, done = 0;
    ts_status s = TS_OK;
    double t0 = ts_now();
    for (; done < o->rounds && !g_interrupted; done++) {
        s = run_round(p, &be, mb, o, &epoch, &bad, &err);
        if (s != TS_OK) break;
        if (o->verbose) printf("probe: round %ld ok (%d live)\n", done + 1, p->n);
        if (o->interval_ms) ts_master_poll(m, o->interval_ms * 1e-3, &err);
    }
    ts_master_backend_stats st;
    ts_master_backend_get_stats(mb, &st);
    print_summary(p, done, bad);
    printf("probe: %llu tasks sent, %llu results accepted, %llu rejected, %.3f s\n",
           (unsigned long long)st.tasks_sent, (unsigned long long)st.results_accepted,
           (unsigned long long)st.results_rejected, ts_now() - t0);
    state_clear(p);
    free(p);
    ts_master_backend_free(mb);
    if (s != TS_OK) {
        fprintf(stderr, "tessera probe: round %ld failed: %s\n", done + 1, err.msg);
        return TS_EXIT_FAIL;
    }
    if (g_interrupted) {
        fprintf(stderr, "tessera probe: interrupted after %ld rounds\n", done);
        return TS_EXIT_FAIL;
    }
    return bad ? TS_EXIT_FAIL : TS_EXIT_OK;
}

int ts_cmd_probe(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        probe_usage(stdout);
        return TS_EXIT_OK;
    }
    probe_opts o = {.rounds = 100, .deadline_s = 30, .wait_s = 60};
    if (!parse(argc, argv, &o)) {
        probe_usage(stderr);
        return TS_EXIT_USAGE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ts_master_opts mo = ts_master_opts_default();
    mo.url = o.listen;
    mo.curve_dir = o.curve_dir;
    if (o.heartbeat_ms) mo.heartbeat_ms = (int)o.heartbeat_ms;
    if (o.liveness) mo.liveness = (int)o.liveness;
    ts_err err = {0};
    ts_master *m = ts_master_new(&mo, &err);
    if (!m) return ts_cli_fail(&err);
    int rc = probe_run(&o, m);
    ts_master_free(m);
    return rc;
}
