/* cmd_plan.c: `tessera plan MODEL --workers N --stragglers S` prints the
 * per-layer coded plan: split, threshold, traffic, storage, FLOPs and the
 * worst-case condition number of the decoding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tessera/coded.h"

static void plan_usage(FILE *f) {
    fprintf(f,
            "usage: tessera plan MODEL.onnx|zoo:NAME --workers N [--stragglers S]\n"
            "                    [--scheme crme|polynomial|mds|replication|uncoded] [--batch B]\n"
            "                    [--w-comm X] [--w-storage Y] [--w-compute Z]\n\n"
            "For every conv and dense layer: the APCP x KCCP split kA x kB chosen for N\n"
            "workers of which S may straggle (minimizing X * bytes moved per inference +\n"
            "Y * bytes stored + Z * FLOPs, per worker; defaults 1, 1, 0), the number of\n"
            "workers whose answers always suffice to decode (replication stops earlier,\n"
            "at the first answer of every replica group), bytes in/out per worker per\n"
            "inference, bytes of\n"
            "encoded filters stored per worker, FLOPs per worker against the whole layer\n"
            "on one node, and the worst-case condition number of the decoding over\n"
            "responder sets (all sets up to 2000, else 2000 sampled: marked ~).\n"
            "A run refuses a decoding whose condition number exceeds --max-cond\n"
            "(default %g). The formulas are in docs/fcdcc.md.\n",
            TS_CODED_MAX_COND);
}

static int parse_args(int argc, char **argv, const char **model, ts_coded_opts *o, long *batch) {
    long n;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strncmp(a, "--", 2) == 0;
        if (takes && !v) {
            fprintf(stderr, "tessera plan: %s needs a value\n", a);
            return 0;
        }
        if (!strcmp(a, "--workers")) {
            if (!ts_cli_parse_int(a, v, 1, 256, &n)) return 0;
            o->n_workers = (int)n;
        } else if (!strcmp(a, "--stragglers")) {
            if (!ts_cli_parse_int(a, v, 0, 255, &n)) return 0;
            o->stragglers = (int)n;
        } else if (!strcmp(a, "--batch")) {
            if (!ts_cli_parse_int(a, v, 1, 4096, batch)) return 0;
        } else if (!strcmp(a, "--scheme")) {
            ts_err e = {0};
            if (ts_scheme_parse(v, &o->scheme, &e) != TS_OK) {
                fprintf(stderr, "tessera plan: %s\n", e.msg);
                return 0;
            }
        } else if (!strcmp(a, "--w-comm")) {
            if (!ts_cli_parse_double(a, v, 0, 1e12, &o->w_comm)) return 0;
        } else if (!strcmp(a, "--w-storage")) {
            if (!ts_cli_parse_double(a, v, 0, 1e12, &o->w_storage)) return 0;
        } else if (!strcmp(a, "--w-compute")) {
            if (!ts_cli_parse_double(a, v, 0, 1e12, &o->w_compute)) return 0;
        } else if (!takes && !*model) {
            *model = a;
            continue;
        } else {
            fprintf(stderr, "tessera plan: unexpected argument '%s'\n", a);
            return 0;
        }
        i++;
    }
    return *model != NULL;
}

static void print_plans(const ts_graph *g, const ts_layer_plan *p, int n) {
    printf("%-18s %-5s %3s %3s %5s %10s %10s %10s %10s %10s %6s %10s\n", "layer", "op", "kA", "kB",
           "need", "in/wkr", "out/wkr", "stored/wkr", "MFLOP/wkr", "MFLOP/all", "ratio",
           "worst-cond");
    double in = 0, out = 0, st = 0, fw = 0, fu = 0;
    for (int i = 0; i < n; i++) {
        char b1[32], b2[32], b3[32];
        ts_node_view nv = ts_graph_node(g, p[i].node);
        printf("%-18.18s %-5s %3d %3d %5d %10s %10s %10s %10.3f %10.3f %5.1f%% %s%9.4g\n", nv.name,
               ts_op_name(p[i].op), p[i].kA, p[i].kB, p[i].threshold,
               ts_cli_human_bytes((double)p[i].bytes_in, b1, sizeof b1),
               ts_cli_human_bytes((double)p[i].bytes_out, b2, sizeof b2),
               ts_cli_human_bytes((double)p[i].bytes_stored, b3, sizeof b3),
               1e-6 * p[i].flops_worker, 1e-6 * p[i].flops_uncoded,
               100.0 * p[i].flops_worker / p[i].flops_uncoded, p[i].cond_exhaustive ? " " : "~",
               p[i].worst_cond);
        in += (double)p[i].bytes_in, out += (double)p[i].bytes_out;
        st += (double)p[i].bytes_stored, fw += p[i].flops_worker, fu += p[i].flops_uncoded;
    }
    char b1[32], b2[32], b3[32];
    printf("%-18s %-5s %3s %3s %5s %10s %10s %10s %10.3f %10.3f %5.1f%%\n", "total", "", "", "", "",
           ts_cli_human_bytes(in, b1, sizeof b1), ts_cli_human_bytes(out, b2, sizeof b2),
           ts_cli_human_bytes(st, b3, sizeof b3), 1e-6 * fw, 1e-6 * fu, 100.0 * fw / fu);
}

int ts_cmd_plan(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        plan_usage(stdout);
        return TS_EXIT_OK;
    }
    const char *model = NULL;
    ts_coded_opts o = ts_coded_opts_default();
    o.n_workers = 0;
    o.stragglers = 0;
    long batch = 1;
    if (!parse_args(argc, argv, &model, &o, &batch) || o.n_workers < 1) {
        if (model && o.n_workers < 1) fprintf(stderr, "tessera plan: --workers N is required\n");
        plan_usage(stderr);
        return TS_EXIT_USAGE;
    }
    ts_err err = {0};
    ts_graph *g = ts_cli_load_model(model, &err);
    if (!g) return ts_cli_fail(&err);
    ts_layer_plan *plans = NULL;
    int n = 0;
    if (ts_graph_plan(g, (int)batch, 0, &err) != TS_OK ||
        ts_coded_plan_graph(g, &o, &plans, &n, &err) != TS_OK) {
        ts_graph_free(g);
        return ts_cli_fail(&err);
    }
    printf("model: %s, batch %ld, scheme %s, %d workers, %d stragglers tolerated\n", model, batch,
           ts_scheme_name(o.scheme), o.n_workers, o.stragglers);
    printf("weights: comm %g, storage %g, compute %g (per worker)\n", o.w_comm, o.w_storage,
           o.w_compute);
    print_plans(g, plans, n);
    free(plans);
    ts_graph_free(g);
    return TS_EXIT_OK;
}
