/* cmd_bench.c: `tessera bench` times a model's forward pass layer by layer
 * and checks its peak memory against the planning bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"

static void bench_usage(FILE *f) {
    fprintf(f, "usage: tessera bench --model MODEL.onnx|zoo:NAME [--batch N] [--threads T]\n"
               "                     [--repeats R] [--fold-bn]\n\n"
               "Runs R timed forward passes (after one warm-up) and prints, per layer, the\n"
               "median and p95 time and GFLOP/s, then the whole-model p50/p95/p99. Also prints\n"
               "peak resident memory against the bound weights + two largest activations +\n"
               "largest im2col buffer.\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

/* weights + two largest activations + largest conv scratch, in bytes. */
static double memory_bound(const ts_graph *g) {
    double weights = 0, a1 = 0, a2 = 0, ws = 0;
    for (int i = 0; i < ts_graph_num_values(g); i++) {
        ts_value_view v = ts_graph_value(g, i);
        double b = 4.0 * (double)ts_shape_numel(&v.shape);
        if (v.kind == TS_VALUE_INIT) {
            weights += b;
        } else if (b > a1) {
            a2 = a1;
            a1 = b;
        } else if (b > a2) {
            a2 = b;
        }
    }
    for (int i = 0; i < ts_graph_num_nodes(g); i++) {
        ts_node_view n = ts_graph_node(g, i);
        if (n.op != TS_OP_CONV) continue;
        ts_value_view x = ts_graph_value(g, n.inputs[0]), w = ts_graph_value(g, n.inputs[1]);
        double b = 4.0 * (double)ts_conv2d_workspace_floats(&n.attrs->conv, &x.shape, &w.shape);
        if (b > ws) ws = b;
    }
    return weights + a1 + a2 + ws;
}

static double rss_peak_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return 1024.0 * (double)ru.ru_maxrss;
}

int ts_cmd_bench(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        bench_usage(stdout);
        return TS_EXIT_OK;
    }
    const char *model = NULL;
    long batch = 1, threads = 1, repeats = 10;
    int fold = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--model") && v)
            model = argv[++i];
        else if (!strcmp(a, "--batch") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 1024, &batch);
        else if (!strcmp(a, "--threads") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 256, &threads);
        else if (!strcmp(a, "--repeats") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 100000, &repeats);
        else if (!strcmp(a, "--fold-bn"))
            fold = 1;
        else {
            fprintf(stderr, "tessera bench: unexpected argument '%s'\n", a);
            bench_usage(stderr);
            return TS_EXIT_USAGE;
        }
        if (!ok) return TS_EXIT_USAGE;
    }
    if (!model) {
        bench_usage(stderr);
        return TS_EXIT_USAGE;
    }
    ts_threads_set((int)threads);
    ts_err err = {0};
    ts_graph *g = ts_cli_load_model(model, &err);
    if (!g) return ts_cli_fail(&err);
    int rc = TS_EXIT_FAIL;
    double *times = NULL, *node_t = NULL, *per_node = NULL;
    ts_tensor *x = NULL;
    if (fold && ts_graph_fold_batchnorm(g, &err) != TS_OK) goto done;
    if (ts_graph_plan(g, (int)batch, 0, &err) != TS_OK) goto done;
    ts_value_view in = ts_graph_value(g, ts_graph_input(g));
    x = ts_tensor_new(&in.shape, &err);
    if (!x) goto done;
    ts_rng rng;
    ts_rng_seed(&rng, 1);
    ts_rng_fill_normal(&rng, x->data, x->size, 1.0f);
    int nn = ts_graph_num_nodes(g);
    times = calloc((size_t)repeats, sizeof *times);
    node_t = calloc((size_t)nn, sizeof *node_t);
    per_node = calloc((size_t)(nn * repeats), sizeof *per_node);
    if (!times || !node_t || !per_node) {
        ts_errorf(&err, TS_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (ts_graph_forward(g, x, &err) != TS_OK) goto done; /* warm-up */
    for (long r = 0; r < repeats; r++) {
        memset(node_t, 0, (size_t)nn * sizeof *node_t);
        double t0 = ts_now();
        if (ts_graph_forward_profiled(g, x, node_t, &err) != TS_OK) goto done;
        times[r] = ts_now() - t0;
        for (int i = 0; i < nn; i++)
            per_node[(size_t)i * repeats + r] = node_t[i];
    }
    printf("model: %s, batch %ld, threads %ld, %ld repeats\n", model, batch, threads, repeats);
    printf("%-4s %-22s %-18s %10s %10s %9s\n", "#", "layer", "op", "p50 ms", "p95 ms", "GFLOP/s");
    for (int i = 0; i < nn; i++) {
        ts_node_view n = ts_graph_node(g, i);
        double *v = per_node + (size_t)i * repeats;
        double p50 = percentile(v, (int)repeats, 0.5), p95 = percentile(v, (int)repeats, 0.95);
        double macs = (double)ts_graph_node_macs(g, i);
        printf("%-4d %-22.22s %-18s %10.3f %10.3f %9.1f\n", i, n.name, ts_op_name(n.op), 1e3 * p50,
               1e3 * p95, macs > 0 && p50 > 0 ? 2e-9 * macs / p50 : 0.0);
    }
    double total_macs = 0;
    for (int i = 0; i < nn; i++)
        total_macs += (double)ts_graph_node_macs(g, i);
    double p50 = percentile(times, (int)repeats, 0.5);
    printf("forward: p50 %.3f ms, p95 %.3f ms, p99 %.3f ms, %.1f GFLOP/s at p50\n", 1e3 * p50,
           1e3 * percentile(times, (int)repeats, 0.95), 1e3 * percentile(times, (int)repeats, 0.99),
           2e-9 * total_macs / p50);
    double bound = memory_bound(g), peak = rss_peak_bytes();
    printf("peak RSS %.1f MiB; bound (weights + 2 largest activations + largest im2col) %.1f MiB; "
           "ratio %.3f\n",
           peak / 1048576, bound / 1048576, peak / bound);
    rc = TS_EXIT_OK;
done:
    if (rc != TS_EXIT_OK) ts_cli_fail(&err);
    free(times);
    free(node_t);
    free(per_node);
    ts_tensor_free(x);
    ts_graph_free(g);
    return rc;
}
