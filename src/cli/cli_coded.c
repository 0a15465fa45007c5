/* cli_coded.c: the coded-execution options shared by `eval` and `infer`, and
 * the session that attaches a coded model (FCDCC) to a graph. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tessera/coded.h"
#include "tessera/runtime.h"

void ts_cli_coded_init(ts_cli_coded *o) {
    memset(o, 0, sizeof *o);
    o->workers = 0;
    o->stragglers = 0;
    o->scheme = "crme";
    o->deadline_s = 60.0;
    o->pipeline = 1;
}

static int value_of(int argc, char **argv, int *i, const char **out) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "tessera: %s needs a value\n", argv[*i]);
        return 0;
    }
    *out = argv[++*i];
    return 1;
}

int ts_cli_coded_arg(ts_cli_coded *o, int argc, char **argv, int *i) {
    const char *opt = argv[*i], *v = NULL;
    long n;
    static const char *const known[] = {"--workers",    "--stragglers", "--scheme",
                                        "--listen",     "--expect",     "--deadline",
                                        "--curve-keys", "--pipeline",   "--max-cond"};
    int k = -1;
    for (int j = 0; j < (int)(sizeof known / sizeof known[0]); j++)
        if (!strcmp(opt, known[j])) k = j;
    if (k < 0) return 0;
    if (!value_of(argc, argv, i, &v)) return -1;
    o->set = 1;
    switch (k) {
    case 0:
        if (!ts_cli_parse_int(opt, v, 1, 256, &n)) return -1;
        o->workers = (int)n;
        return 1;
    case 1:
        if (!ts_cli_parse_int(opt, v, 0, 255, &n)) return -1;
        o->stragglers = (int)n;
        return 1;
    case 2: {
        ts_scheme s;
        ts_err e = {0};
        if (ts_scheme_parse(v, &s, &e) != TS_OK) {
            fprintf(stderr, "tessera: %s\n", e.msg);
            return -1;
        }
        o->scheme = v;
        return 1;
    }
    case 3: o->listen = v; return 1;
    case 4:
        if (!ts_cli_parse_int(opt, v, 1, 256, &n)) return -1;
        o->expect = (int)n;
        return 1;
    case 5: return ts_cli_parse_double(opt, v, 0.01, 86400.0, &o->deadline_s) ? 1 : -1;
    case 6: o->curve_dir = v; return 1;
    case 8: return ts_cli_parse_double(opt, v, 1.0, 1e300, &o->max_cond) ? 1 : -1;
    default:
        if (!ts_cli_parse_int(opt, v, 1, TS_CLI_MAX_LANES, &n)) return -1;
        o->pipeline = (int)n;
        return 1;
    }
}

int ts_cli_coded_active(const ts_cli_coded *o) {
    return o->set;
}

void ts_cli_coded_usage(FILE *f) {
    fprintf(f,
            "Coded execution (every conv and dense layer split across workers):\n"
            "  --workers N      N worker threads in this process, or with --listen the\n"
            "                   number of remote workers to plan for\n"
            "  --stragglers S   workers that may fail to answer per layer (default 0)\n"
            "  --scheme X       crme (default) | uncoded | replication | mds | polynomial\n"
            "  --listen URL     bind tcp://host:port or ipc:///path for `tessera worker`s\n"
            "  --expect N       with --listen: wait for N workers before starting\n"

            "  --deadline S     seconds a layer may take before the run fails (default 60)\n"
            "  --curve-keys DIR with --listen: CURVE encryption; only workers whose public\n"
            "                   keys are listed in DIR may join (see tessera keygen)\n"
            "  --max-cond C     fail a layer whose decoding system has a condition number\n"
            "                   above C (default %g): float32 round-off times C would\n"
            "                   spoil the answer (real Vandermonde codes at large n)\n"
            "  --pipeline D     keep D batches in flight at once (default 1), so workers\n"
            "                   do not idle while the master encodes, decodes and runs\n"
            "                   the uncoded layers; the lanes share the model's weights\n"
            "                   on the master, and a filter share that several lanes\n"
            "                   deploy to one worker is sent and stored once (ALIAS)\n",
            TS_CODED_MAX_COND);
}

/* One pipeline lane: a copy of the model with its own coded executor and
 * its own backend (blob namespace = model id lane + 1) on the shared master. */
typedef struct {
    ts_graph *g; /* lane 0: the caller's; others owned here */
    ts_master_backend *backend;
    ts_coded_model *model;
} coded_lane;

struct ts_cli_coded_session {
    ts_local_cluster *cluster; /* embedded: worker threads on inproc:// */
    ts_master *master;         /* --listen: workers elsewhere */
    coded_lane lanes[TS_CLI_MAX_LANES];
    ts_graph *graphs[TS_CLI_MAX_LANES];
    int n_lanes;
};

static ts_status open_workers(ts_cli_coded_session *s, const ts_cli_coded *o, int *n, ts_err *err) {
    if (!o->listen) {
        *n = o->workers;
        if (!(s->cluster = ts_local_cluster_new(*n, NULL, err))) return TS_ERR_UNAVAILABLE;
        return ts_master_wait_workers(ts_local_cluster_master(s->cluster), *n, 30.0, err);
    }
    ts_master_opts mo = ts_master_opts_default();
    mo.url = o->listen;
    mo.curve_dir = o->curve_dir;
    if (!(s->master = ts_master_new(&mo, err))) return TS_ERR_UNAVAILABLE;
    *n = o->expect ? o->expect : o->workers;
    fprintf(stderr, "tessera: listening on %s, waiting for %d workers\n",
            ts_master_endpoint(s->master), *n);
    return ts_master_wait_workers(s->master, *n, o->deadline_s > 120 ? o->deadline_s : 120, err);
}

static void print_plan(const ts_cli_coded_session *s, const ts_cli_coded *o, int n) {
    const ts_graph *g = s->lanes[0].g;
    /* uncoded has no redundancy: it waits for every worker whatever S says */
    int uncoded = !strcmp(o->scheme, "uncoded");
    fprintf(stderr, "tessera: coded run: %d workers (%s), scheme %s, %d stragglers tolerated%s", n,
            o->listen ? o->listen : "threads in this process", o->scheme,
            uncoded ? 0 : o->stragglers,
            uncoded && o->stragglers ? " (uncoded waits for all: --stragglers ignored)" : "");
    if (s->n_lanes > 1) fprintf(stderr, ", pipeline depth %d", s->n_lanes);
    fprintf(stderr, "\n");
    for (int i = 0; i < ts_coded_model_num_layers(s->lanes[0].model); i++) {
        const ts_layer_plan *p = ts_coded_model_layer(s->lanes[0].model, i);
        fprintf(stderr, "  %-16s kA=%d kB=%d needs %d of %d\n", ts_graph_node(g, p->node).name,
                p->kA, p->kB, p->threshold, n);
    }
}

static ts_status check_options(const ts_cli_coded *o, ts_err *err) {
    if (o->curve_dir && !o->listen)
        return ts_errorf(err, TS_ERR_INVALID,
                         "--curve-keys protects workers reached with --listen; worker threads in "
                         "this process need no keys");
    if (!o->listen && o->workers < 1)
        return ts_errorf(err, TS_ERR_INVALID,
                         "coded execution needs --workers N (worker threads here) or --listen URL "
                         "--expect N (workers elsewhere)");
    if (o->listen && o->expect < 1 && o->workers < 1)
        return ts_errorf(err, TS_ERR_INVALID,
                         "--listen needs --expect N: how many workers to wait for");
    if (o->pipeline < 1 || o->pipeline > TS_CLI_MAX_LANES)
        return ts_errorf(err, TS_ERR_INVALID, "--pipeline must be 1..%d", TS_CLI_MAX_LANES);
    return TS_OK;
}

/* A further copy of the model for lane i, prepared like the caller's. */
static ts_status load_lane_graph(const ts_graph *g0, const char *spec, ts_graph **out,
                                 ts_err *err) {
    if (!spec)
        return ts_errorf(err, TS_ERR_INVALID, "--pipeline needs the model's path to copy it");
    int batch = (int)ts_graph_value(g0, ts_graph_input(g0)).shape.shape[0];
    ts_graph *g = ts_cli_load_model(spec, err);
    if (!g) return err && err->status != TS_OK ? err->status : TS_ERR_INVALID;
    ts_status st = ts_graph_fold_batchnorm(g, err);
    /* The lanes only run forward: they read lane 0's weights instead of
     * holding a copy each (lane 0, the caller's graph, outlives them). */
    ts_err share_err = {0};
    if (st == TS_OK && ts_graph_share_weights(g, g0, &share_err) != TS_OK)
        ts_log(TS_LOG_WARN, "pipeline lane keeps its own weights: %s", share_err.msg);
    if (st == TS_OK) st = ts_graph_plan(g, batch, 0, err);
    if (st != TS_OK) {
        ts_graph_free(g);
        return st;
    }
    *out = g;
    return TS_OK;
}

static ts_master *session_master(ts_cli_coded_session *s) {
    return s->cluster ? ts_local_cluster_master(s->cluster) : s->master;
}

/* What the lanes' filter shares cost to deploy: later lanes' identical
 * shares go out as ALIASes and take no room on the workers. */
static void print_deploys(ts_cli_coded_session *s) {
    ts_master_stats st;
    ts_master_get_stats(session_master(s), &st);
    fprintf(stderr, "tessera: filter shares deployed: %.1f MB sent", st.deploy_bytes_sent / 1e6);
    if (st.deploys_aliased)
        fprintf(stderr, ", %.1f MB (%llu shares) aliased to the copies the workers hold",
                st.deploy_bytes_saved / 1e6, (unsigned long long)st.deploys_aliased);
    fprintf(stderr, "\n");
}

static ts_status open_lane(ts_cli_coded_session *s, int i, const ts_coded_opts *co, ts_err *err) {
    coded_lane *l = &s->lanes[i];
    ts_master_backend *b = NULL;
    if (s->cluster && i == 0) {
        b = ts_local_cluster_master_backend(s->cluster);
    } else {
        if (!(l->backend = ts_master_backend_new(session_master(s), (uint32_t)i + 1, err)))
            return TS_ERR_UNAVAILABLE;
        b = l->backend;
    }
    l->model = ts_coded_model_new(l->g, co, ts_master_coded_backend(b), err);
    return l->model ? TS_OK : (err && err->status != TS_OK ? err->status : TS_ERR_INVALID);
}

ts_cli_coded_session *ts_cli_coded_begin(ts_graph *g, const char *model_spec, const ts_cli_coded *o,
                                         ts_err *err) {
    if (check_options(o, err) != TS_OK) return NULL;
    ts_cli_coded_session *s = calloc(1, sizeof *s);
    if (!s) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int n = 0;
    ts_coded_opts co = ts_coded_opts_default();
    if (ts_scheme_parse(o->scheme, &co.scheme, err) != TS_OK) goto fail;
    s->lanes[0].g = g;
    for (s->n_lanes = 1; s->n_lanes < o->pipeline; s->n_lanes++)
        if (load_lane_graph(g, model_spec, &s->lanes[s->n_lanes].g, err) != TS_OK) goto fail;
    if (open_workers(s, o, &n, err) != TS_OK) goto fail;
    co.n_workers = n;
    co.stragglers = o->stragglers;
    co.deadline_s = o->deadline_s;
    if (o->max_cond > 0) co.max_cond = o->max_cond;
    for (int i = 0; i < s->n_lanes; i++) {
        if (open_lane(s, i, &co, err) != TS_OK) goto fail;
        s->graphs[i] = s->lanes[i].g;
    }
    print_plan(s, o, n);
    print_deploys(s);
    return s;
fail:
    ts_cli_coded_end(s);
    return NULL;
}

int ts_cli_coded_lanes(ts_cli_coded_session *s, ts_graph ***graphs) {
    *graphs = s->graphs;
    return s->n_lanes;
}

void ts_cli_coded_end(ts_cli_coded_session *s) {
    if (!s) return;
    for (int i = 0; i < TS_CLI_MAX_LANES; i++) {
        ts_coded_model_free(s->lanes[i].model);
        ts_master_backend_free(s->lanes[i].backend);
        if (i > 0) ts_graph_free(s->lanes[i].g);
    }
    ts_master_free(s->master);
    ts_local_cluster_free(s->cluster);
    free(s);
}
