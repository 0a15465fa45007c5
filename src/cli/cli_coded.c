/* cli_coded.c: the coded-execution options shared by `eval` and `infer`, and
 * the session that attaches a coded model (FCDCC) to a graph. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tessera/coded.h"

void ts_cli_coded_init(ts_cli_coded *o) {
    memset(o, 0, sizeof *o);
    o->workers = 0;
    o->stragglers = 0;
    o->scheme = "crme";
    o->pipeline = 1;
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
    static const char *const known[] = {"--workers", "--stragglers", "--scheme", "--listen",
                                        "--expect",  "--pipeline",   "--deadline"};
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
    case 5:
        if (!ts_cli_parse_int(opt, v, 1, 64, &n)) return -1;
        o->pipeline = (int)n;
        return 1;
    default: return ts_cli_parse_double(opt, v, 0.01, 86400.0, &o->deadline_s) ? 1 : -1;
    }
}

int ts_cli_coded_active(const ts_cli_coded *o) { return o->set; }

void ts_cli_coded_usage(FILE *f) {
    fprintf(f,
            "Coded execution (every conv and dense layer split across workers):\n"
            "  --workers N      N worker threads in this process, or with --listen the\n"
            "                   number of remote workers to plan for\n"
            "  --stragglers S   workers that may fail to answer per layer (default 0)\n"
            "  --scheme X       crme (default) | uncoded | replication | mds | polynomial\n"
            "  --listen URL     bind tcp://host:port or ipc:///path for `tessera worker`s\n"
            "  --expect N       with --listen: wait for N workers before starting\n"
            "  --pipeline D     inferences in flight at once (default 1)\n"
            "  --deadline S     seconds a layer may take before the run fails (default 60)\n");
}

struct ts_cli_coded_session {
    int unused;
};

ts_cli_coded_session *ts_cli_coded_begin(ts_graph *g, const ts_cli_coded *o, ts_err *err) {
    (void)g;
    (void)o;
    ts_errorf(err, TS_ERR_UNSUPPORTED, "coded execution is not available in this build yet");
    return NULL;
}

void ts_cli_coded_end(ts_cli_coded_session *s) { free(s); }
