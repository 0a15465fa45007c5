/* cmd_eval.c: `tessera eval` measures a model's accuracy on a labelled
 * dataset (the Fashion-MNIST test set by default) and prints the confusion
 * matrix. The line "accuracy: NN.NN%" is a stable interface for scripts. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tessera/data.h"
#include "tessera/train.h"

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: tessera eval --model M.onnx [--data DIR | --images IDX --labels IDX]\n"
            "                    [--split test|train] [--batch B] [--limit N] [--threads N]\n"
            "                    [coded execution options]\n\n"
            "Evaluates on the Fashion-MNIST test split by default and prints\n"
            "'accuracy: NN.NN%%', the mean loss, and a confusion matrix with per-class\n"
            "accuracy. Batch norm is folded into the convolutions first.\n\n"
            "  --model M      ONNX model (or zoo:NAME, untrained)\n"
            "  --data DIR     Fashion-MNIST directory (default %s)\n"
            "  --split S      test (default) or train\n"
            "  --images IDX   any ubyte IDX image file (gzip or plain) instead of --data\n"
            "  --labels IDX   its labels (required with --images)\n"
            "  --batch B      images per forward pass (default 100)\n"
            "  --limit N      evaluate the first N images only\n"
            "  --threads N    compute threads (default 1)\n\n",
            ts_fmnist_default_dir());
    ts_cli_coded_usage(f);
}

typedef struct {
    const char *model, *data, *split, *images, *labels;
    long batch, limit, threads;
    ts_cli_coded coded;
} eval_args;

static const char *const VALUE_OPTS[] = {"--model", "--data",  "--split",   "--images", "--labels",
                                         "--batch", "--limit", "--threads", NULL};

/* 1 consumed, 0 unknown, -1 bad value. */
static int parse_opt(eval_args *a, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    int known = 0;
    for (int k = 0; VALUE_OPTS[k]; k++)
        known |= !strcmp(opt, VALUE_OPTS[k]);
    if (!known) return ts_cli_coded_arg(&a->coded, argc, argv, i);
    if (*i + 1 >= argc) {
        fprintf(stderr, "tessera: %s needs a value\n", opt);
        return -1;
    }
    const char *v = argv[++*i];
    if (!strcmp(opt, "--model"))
        a->model = v;
    else if (!strcmp(opt, "--data"))
        a->data = v;
    else if (!strcmp(opt, "--images"))
        a->images = v;
    else if (!strcmp(opt, "--labels"))
        a->labels = v;
    else if (!strcmp(opt, "--split")) {
        if (strcmp(v, "test") && strcmp(v, "train")) {
            fprintf(stderr, "tessera: --split expects test or train, got '%s'\n", v);
            return -1;
        }
        a->split = v;
    } else if (!strcmp(opt, "--batch"))
        return ts_cli_parse_int(opt, v, 1, 65536, &a->batch) ? 1 : -1;
    else if (!strcmp(opt, "--limit"))
        return ts_cli_parse_int(opt, v, 1, TS_DATA_MAX_ITEMS, &a->limit) ? 1 : -1;
    else
        return ts_cli_parse_int(opt, v, 1, 256, &a->threads) ? 1 : -1;
    return 1;
}

static const char *class_label(const ts_dataset *ds, int k, char *buf, size_t len) {
    const char *name = ts_dataset_class_name(ds, k);
    if (name) return name;
    snprintf(buf, len, "class %d", k);
    return buf;
}

static void print_confusion(const ts_dataset *ds, const ts_eval_result *r) {
    printf("confusion matrix (rows: true class, columns: predicted class):\n");
    printf("%-16s", "");
    for (int j = 0; j < r->classes; j++)
        printf(" %6d", j);
    printf("  %8s\n", "accuracy");
    for (int i = 0; i < r->classes; i++) {
        char buf[32];
        int64_t row = 0;
        printf("%2d %-13.13s", i, class_label(ds, i, buf, sizeof buf));
        for (int j = 0; j < r->classes; j++) {
            int64_t c = r->confusion[(int64_t)i * r->classes + j];
            row += c;
            printf(" %6lld", (long long)c);
        }
        int64_t hit = r->confusion[(int64_t)i * r->classes + i];
        if (row)
            printf("  %7.2f%%\n", 100.0 * (double)hit / (double)row);
        else
            printf("  %8s\n", "-");
    }
}

static ts_dataset *load_dataset(const eval_args *a, ts_err *err) {
    if (a->images) return ts_dataset_load_idx(a->images, a->labels, err);
    return ts_fmnist_load(a->data, a->split, err);
}

static int run_eval(const eval_args *a) {
    ts_err err = {0};
    ts_threads_set((int)a->threads);
    ts_graph *g = ts_cli_load_model(a->model, &err);
    ts_dataset *ds = g ? load_dataset(a, &err) : NULL;
    ts_cli_coded_session *cs = NULL;
    ts_eval_result r = {0};
    ts_status st = ds ? TS_OK : TS_ERR_INVALID;
    if (st == TS_OK) st = ts_graph_fold_batchnorm(g, &err);
    if (st == TS_OK) st = ts_graph_plan(g, (int)a->batch, 0, &err);
    if (st == TS_OK && ts_cli_coded_active(&a->coded)) {
        cs = ts_cli_coded_begin(g, a->model, &a->coded, &err);
        if (!cs) st = err.status != TS_OK ? err.status : TS_ERR_UNAVAILABLE;
    }
    ts_graph **lanes = &g;
    int n_lanes = cs ? ts_cli_coded_lanes(cs, &lanes) : 1;
    double t0 = ts_now();
    if (st == TS_OK)
        st = ts_evaluate_lanes(lanes, n_lanes, ds, (int)a->batch, a->limit, 0, &r, &err);
    double secs = ts_now() - t0;
    ts_cli_coded_end(cs);
    if (st == TS_OK) {
        printf("model: %s\n", a->model);
        if (a->images)
            printf("data: %s (%lld images evaluated)\n", a->images, (long long)r.count);
        else
            printf("data: Fashion-MNIST %s split in %s (%lld images evaluated)\n", a->split,
                   a->data ? a->data : ts_fmnist_default_dir(), (long long)r.count);
        printf("accuracy: %.2f%%\n", 100.0 * ts_eval_accuracy(&r));
        printf("loss: %.4f\n", r.loss);
        printf("time: %.2f s (%.0f images/s, batch %ld, %ld thread(s))\n", secs,
               secs > 0 ? (double)r.count / secs : 0.0, a->batch, a->threads);
        print_confusion(ds, &r);
    }
    ts_eval_result_free(&r);
    ts_dataset_free(ds);
    ts_graph_free(g);
    return st == TS_OK ? TS_EXIT_OK : ts_cli_fail(&err);
}

int ts_cmd_eval(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        eval_usage(stdout);
        return TS_EXIT_OK;
    }
    eval_args a = {.split = "test", .batch = 100, .threads = 1};
    ts_cli_coded_init(&a.coded);
    for (int i = 1; i < argc; i++) {
        int r = parse_opt(&a, argc, argv, &i);
        if (r < 0) return TS_EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "tessera eval: unexpected argument '%s'\n", argv[i]);
            eval_usage(stderr);
            return TS_EXIT_USAGE;
        }
    }
    const char *problem = !a.model                ? "--model is required"
                          : a.images && !a.labels ? "--images needs --labels"
                          : a.labels && !a.images ? "--labels needs --images"
                          : a.images && a.data    ? "--data and --images exclude each other"
                                                  : NULL;
    if (problem) {
        fprintf(stderr, "tessera eval: %s\n", problem);
        eval_usage(stderr);
        return TS_EXIT_USAGE;
    }
    return run_eval(&a);
}
