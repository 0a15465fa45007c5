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
    static const char *const known[] = {"--workers", "--stragglers", "--scheme",    "--listen",
                                        "--expect",  "--deadline",   "--curve-keys"};
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
    default: o->curve_dir = v; return 1;
    }
}

int ts_cli_coded_active(const ts_cli_coded *o) {
    return o->set;
}

void ts_cli_coded_usage(FILE *f) {
    fprintf(f, "Coded execution (every conv and dense layer split across workers):\n"
               "  --workers N      N worker threads in this process, or with --listen the\n"
               "                   number of remote workers to plan for\n"
               "  --stragglers S   workers that may fail to answer per layer (default 0)\n"
               "  --scheme X       crme (default) | uncoded | replication | mds | polynomial\n"
               "  --listen URL     bind tcp://host:port or ipc:///path for `tessera worker`s\n"
               "  --expect N       with --listen: wait for N workers before starting\n"

               "  --deadline S     seconds a layer may take before the run fails (default 60)\n"
               "  --curve-keys DIR with --listen: CURVE encryption; only workers whose public\n"
               "                   keys are listed in DIR may join (see tessera keygen)\n");
}

struct ts_cli_coded_session {
    ts_local_cluster *cluster; /* embedded: worker threads on inproc:// */
    ts_master *master;         /* --listen: workers elsewhere */
    ts_master_backend *backend;
    ts_coded_model *model;
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
    TS_TRY(ts_master_wait_workers(s->master, *n, o->deadline_s > 120 ? o->deadline_s : 120, err));
    if (!(s->backend = ts_master_backend_new(s->master, 1, err))) return TS_ERR_UNAVAILABLE;
    return TS_OK;
}

static void print_plan(const ts_cli_coded_session *s, const ts_graph *g, const ts_cli_coded *o,
                       int n) {
    fprintf(stderr, "tessera: coded run: %d workers (%s), scheme %s, %d stragglers tolerated\n", n,
            o->listen ? o->listen : "threads in this process", o->scheme, o->stragglers);
    for (int i = 0; i < ts_coded_model_num_layers(s->model); i++) {
        const ts_layer_plan *p = ts_coded_model_layer(s->model, i);
        fprintf(stderr, "  %-16s kA=%d kB=%d needs %d of %d\n", ts_graph_node(g, p->node).name,
                p->kA, p->kB, p->threshold, n);
    }
}

ts_cli_coded_session *ts_cli_coded_begin(ts_graph *g, const ts_cli_coded *o, ts_err *err) {
    if (o->curve_dir && !o->listen) {
        ts_errorf(err, TS_ERR_INVALID,
                  "--curve-keys protects workers reached with --listen; worker threads in this "
                  "process need no keys");
        return NULL;
    }
    if (!o->listen && o->workers < 1) {
        ts_errorf(err, TS_ERR_INVALID,
                  "coded execution needs --workers N (worker threads here) or --listen URL "
                  "--expect N (workers elsewhere)");
        return NULL;
    }
    if (o->listen && o->expect < 1 && o->workers < 1) {
        ts_errorf(err, TS_ERR_INVALID, "--listen needs --expect N: how many workers to wait for");
        return NULL;
    }
    ts_cli_coded_session *s = calloc(1, sizeof *s);
    if (!s) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    int n = 0;
    if (open_workers(s, o, &n, err) != TS_OK) goto fail;
    ts_coded_opts co = ts_coded_opts_default();
    co.n_workers = n;
    co.stragglers = o->stragglers;
    co.deadline_s = o->deadline_s;
    if (ts_scheme_parse(o->scheme, &co.scheme, err) != TS_OK) goto fail;
    ts_coded_backend be =
        s->cluster ? ts_local_cluster_backend(s->cluster) : ts_master_coded_backend(s->backend);
    if (!(s->model = ts_coded_model_new(g, &co, be, err))) goto fail;
    print_plan(s, g, o, n);
    return s;
fail:
    ts_cli_coded_end(s);
    return NULL;
}

void ts_cli_coded_end(ts_cli_coded_session *s) {
    if (!s) return;
    ts_coded_model_free(s->model);
    ts_master_backend_free(s->backend);
    ts_master_free(s->master);
    ts_local_cluster_free(s->cluster);
    free(s);
}
