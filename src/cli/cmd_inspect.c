/* cmd_inspect.c: `tessera inspect MODEL` lists layers, shapes, parameters,
 * MACs and memory. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void inspect_usage(FILE *f) {
    fprintf(f, "usage: tessera inspect MODEL.onnx|zoo:NAME [--batch N]\n\n"
               "Prints each layer with its output shape, parameter count and multiply-\n"
               "accumulates (MACs) at the given batch (default 1), then totals: parameters,\n"
               "weight bytes and the planned activation + scratch memory of inference.\n");
}

static int64_t node_params(const ts_graph *g, ts_node_view n) {
    int64_t p = 0;
    for (int i = 0; i < n.n_in; i++) {
        if (n.inputs[i] < 0) continue;
        ts_value_view v = ts_graph_value(g, n.inputs[i]);
        if (v.kind == TS_VALUE_INIT) p += ts_shape_numel(&v.shape);
    }
    return p;
}

int ts_cmd_inspect(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        inspect_usage(stdout);
        return TS_EXIT_OK;
    }
    const char *model = NULL;
    long batch = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            if (!ts_cli_parse_int("--batch", argv[++i], 1, 4096, &batch)) return TS_EXIT_USAGE;
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            fprintf(stderr, "tessera inspect: unexpected argument '%s'\n", argv[i]);
            inspect_usage(stderr);
            return TS_EXIT_USAGE;
        }
    }
    if (!model) {
        inspect_usage(stderr);
        return TS_EXIT_USAGE;
    }
    ts_err err = {0};
    ts_graph *g = ts_cli_load_model(model, &err);
    if (!g) return ts_cli_fail(&err);
    if (ts_graph_plan(g, (int)batch, 0, &err) != TS_OK) {
        ts_graph_free(g);
        return ts_cli_fail(&err);
    }
    printf("model: %s (batch %ld)\n", model, batch);
    printf("%-4s %-22s %-18s %-22s %12s %14s\n", "#", "name", "op", "output", "params", "MACs");
    int64_t total_params = 0, total_macs = 0;
    for (int i = 0; i < ts_graph_num_nodes(g); i++) {
        ts_node_view n = ts_graph_node(g, i);
        char shape[96];
        ts_value_view out = ts_graph_value(g, n.output);
        int64_t p = node_params(g, n), m = ts_graph_node_macs(g, i);
        total_params += p;
        total_macs += m;
        printf("%-4d %-22.22s %-18s %-22s %12lld %14lld\n", i, n.name, ts_op_name(n.op),
               ts_shape_str(&out.shape, shape, sizeof shape), (long long)p, (long long)m);
    }
    char b1[32], b2[32];
    printf("parameters: %lld (%s)\n", (long long)total_params,
           ts_cli_human_bytes((double)total_params * 4, b1, sizeof b1));
    printf("MACs per batch: %lld (%.3f GFLOP)\n", (long long)total_macs, 2e-9 * (double)total_macs);
    printf("planned inference memory (activations + scratch): %s\n",
           ts_cli_human_bytes((double)ts_graph_planned_bytes(g), b2, sizeof b2));
    ts_graph_free(g);
    return TS_EXIT_OK;
}
