/* cmd_infer.c: `tessera infer` classifies PGM/PPM images or the images of
 * IDX files and prints the top-k classes with probabilities. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cli.h"
#include "tessera/data.h"

/* Images classified per forward pass at most. */
#define INFER_MAX_BATCH 64

static void infer_usage(FILE *f) {
    fprintf(f,
            "usage: tessera infer --model M.onnx [--top K] [--limit N] [--batch B]\n"
            "                     [--threads N] [coded execution options] IMAGE...\n\n"
            "Classifies each IMAGE: a PGM/PPM file (P2, P3, P5, P6) or an IDX image file\n"
            "(gzip or plain; every image in it, or the first N with --limit). Images are\n"
            "converted to the model's channel count (BT.601 luma for colour to grey) and\n"
            "resized bilinearly to its input size, with a note on stderr; IDX images of\n"
            "another size are refused. Prints one line per image with the top K classes\n"
            "(default 3) and their probabilities; Fashion-MNIST class names are used for\n"
            "models with a 1x28x28 input and 10 outputs. Images go through the model\n"
            "B at a time (default: all of them, at most %d).\n\n",
            INFER_MAX_BATCH);
    ts_cli_coded_usage(f);
}

typedef struct {
    const char *model;
    long top, limit, threads, batch;
    ts_cli_coded coded;
    char **inputs;
    int n_inputs;
} infer_args;

/* One image to classify: a name for the output and its normalized pixels. */
typedef struct {
    char name[512];
    float *pixels; /* C*H*W floats */
} item;

typedef struct {
    item *items;
    int64_t n, cap;
} item_list;

static item *push_item(item_list *l, ts_err *err) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 16;
        item *p = realloc(l->items, (size_t)cap * sizeof *p);
        if (!p) {
            ts_errorf(err, TS_ERR_NOMEM, "out of memory collecting images");
            return NULL;
        }
        l->items = p;
        l->cap = cap;
    }
    item *it = &l->items[l->n++];
    it->pixels = NULL;
    it->name[0] = 0;
    return it;
}

static void free_items(item_list *l) {
    for (int64_t i = 0; i < l->n; i++)
        free(l->items[i].pixels);
    free(l->items);
}

/* PGM/PPM files start with 'P' and a digit; anything else is tried as IDX
 * (whose first two bytes are zero). Read through zlib so gzip IDX works. */
static int looks_like_pnm(const char *path) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) return 0;
    unsigned char b[2] = {0, 0};
    int n = gzread(gz, b, 2);
    gzclose(gz);
    return n == 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '9';
}

static ts_status add_pnm(item_list *l, const char *path, const ts_shape *in, ts_err *err) {
    int c = (int)in->shape[1], h = (int)in->shape[2], w = (int)in->shape[3];
    ts_tensor *img = ts_image_load_pnm(path, err);
    if (!img) return err->status;
    if (img->s.shape[2] != h || img->s.shape[3] != w)
        fprintf(stderr, "note: %s is %lldx%lld, resized to the model's %dx%d (bilinear)\n", path,
                (long long)img->s.shape[3], (long long)img->s.shape[2], w, h);
    ts_tensor_free(img);
    ts_tensor *t = ts_image_load_for_model(path, c, h, w, err);
    if (!t) return err->status;
    item *it = push_item(l, err);
    if (!it) {
        ts_tensor_free(t);
        return TS_ERR_NOMEM;
    }
    snprintf(it->name, sizeof it->name, "%s", path);
    it->pixels = malloc((size_t)t->size * sizeof(float));
    if (it->pixels) memcpy(it->pixels, t->data, (size_t)t->size * sizeof(float));
    ts_tensor_free(t);
    return it->pixels ? TS_OK : ts_errorf(err, TS_ERR_NOMEM, "out of memory");
}

static ts_status add_idx(item_list *l, const char *path, const ts_shape *in, long limit,
                         ts_err *err) {
    ts_dataset *ds = ts_dataset_load_idx(path, NULL, err);
    if (!ds) return err->status;
    ts_status st = TS_OK;
    if (ts_dataset_channels(ds) != in->shape[1] || ts_dataset_height(ds) != in->shape[2] ||
        ts_dataset_width(ds) != in->shape[3])
        st = ts_errorf(err, TS_ERR_SHAPE,
                       "%s holds %dx%dx%d images; the model takes %lldx%lldx%lld (IDX images "
                       "are not resized)",
                       path, ts_dataset_channels(ds), ts_dataset_height(ds), ts_dataset_width(ds),
                       (long long)in->shape[1], (long long)in->shape[2], (long long)in->shape[3]);
    int64_t n = ts_dataset_count(ds);
    if (limit > 0 && limit < n) n = limit;
    size_t floats = (size_t)in->shape[1] * (size_t)in->shape[2] * (size_t)in->shape[3];
    for (int64_t i = 0; st == TS_OK && i < n; i++) {
        item *it = push_item(l, err);
        if (!it)
            st = TS_ERR_NOMEM;
        else if (!(it->pixels = malloc(floats * sizeof(float))))
            st = ts_errorf(err, TS_ERR_NOMEM, "out of memory");
        else {
            snprintf(it->name, sizeof it->name, "%s[%lld]", path, (long long)i);
            ts_dataset_get(ds, i, it->pixels);
        }
    }
    ts_dataset_free(ds);
    return st;
}

static const char *class_name(int k, int fmnist, char *buf, size_t len) {
    if (fmnist) return ts_fmnist_class_names[k];
    snprintf(buf, len, "class %d", k);
    return buf;
}

/* Prints the top k of one row; probabilities are the softmax of the logits
 * unless the model already ends in Softmax. */
static void print_top(const char *name, const float *row, int64_t classes, long k, int is_prob,
                      int fmnist) {
    double p[4096], mx = row[0], sum = 0;
    for (int64_t j = 1; j < classes; j++)
        mx = fmax(mx, row[j]);
    for (int64_t j = 0; j < classes; j++)
        sum += p[j] = is_prob ? row[j] : exp(row[j] - mx);
    printf("%s:", name);
    int used[4096] = {0};
    for (long r = 0; r < k && r < classes; r++) {
        int64_t best = -1;
        for (int64_t j = 0; j < classes; j++)
            if (!used[j] && (best < 0 || p[j] > p[best])) best = j;
        used[best] = 1;
        char buf[32];
        printf("%s %s (%.2f%%)", r ? "," : "", class_name((int)best, fmnist, buf, sizeof buf),
               sum > 0 ? 100.0 * p[best] / sum : 0.0);
    }
    printf("\n");
}

/* Classification of a list of images by one or more lanes (graphs) at
 * once: lanes take batch numbers from a counter, and batches are printed in
 * order as soon as all batches before them are done. */
typedef struct {
    const item_list *l;
    const infer_args *a;
    int batch, is_prob, fmnist;
    int64_t n_batches, classes;
    float *logits; /* [items, classes] */
    atomic_int_fast64_t next;
    atomic_int failed;
    pthread_mutex_t mu; /* guards done and next_print */
    char *done;         /* [n_batches] */
    int64_t next_print;
} infer_pass;

typedef struct {
    infer_pass *p;
    ts_graph *g;
    ts_status st;
    ts_err err;
} infer_lane;

static void print_ready(infer_pass *p, int64_t finished) {
    pthread_mutex_lock(&p->mu);
    p->done[finished] = 1;
    for (; p->next_print < p->n_batches && p->done[p->next_print]; p->next_print++) {
        int64_t first = p->next_print * p->batch;
        int64_t n = p->l->n - first < p->batch ? p->l->n - first : p->batch;
        for (int64_t i = first; i < first + n; i++)
            print_top(p->l->items[i].name, p->logits + i * p->classes, p->classes, p->a->top,
                      p->is_prob, p->fmnist);
    }
    fflush(stdout);
    pthread_mutex_unlock(&p->mu);
}

static ts_status classify_batch(infer_lane *ln, ts_tensor *x, int64_t b) {
    infer_pass *p = ln->p;
    size_t floats = (size_t)(x->size / p->batch);
    int64_t first = b * p->batch;
    int64_t n = p->l->n - first < p->batch ? p->l->n - first : p->batch;
    ts_tensor_fill(x, 0.0f);
    for (int64_t i = 0; i < n; i++)
        memcpy(x->data + i * floats, p->l->items[first + i].pixels, floats * sizeof(float));
    TS_TRY(ts_graph_forward(ln->g, x, &ln->err));
    const ts_tensor *y = ts_graph_result(ln->g);
    memcpy(p->logits + first * p->classes, y->data, (size_t)(n * p->classes) * sizeof(float));
    print_ready(p, b);
    return TS_OK;
}

static void *classify_lane(void *arg) {
    infer_lane *ln = arg;
    infer_pass *p = ln->p;
    ts_value_view iv = ts_graph_value(ln->g, ts_graph_input(ln->g));
    ts_tensor *x = ts_tensor_new(&iv.shape, &ln->err);
    ln->st = x ? TS_OK : TS_ERR_NOMEM;
    while (ln->st == TS_OK && !atomic_load(&p->failed)) {
        int64_t b = atomic_fetch_add(&p->next, 1);
        if (b >= p->n_batches) break;
        ln->st = classify_batch(ln, x, b);
    }
    if (ln->st != TS_OK) atomic_store(&p->failed, 1);
    ts_tensor_free(x);
    return NULL;
}

static ts_status run_lanes(infer_pass *p, ts_graph **graphs, int n_lanes, ts_err *err) {
    infer_lane lanes[TS_CLI_MAX_LANES];
    pthread_t tids[TS_CLI_MAX_LANES];
    int started = 1;
    for (int i = 0; i < n_lanes; i++)
        lanes[i] = (infer_lane){.p = p, .g = graphs[i], .st = TS_OK};
    for (; started < n_lanes; started++)
        if (pthread_create(&tids[started], NULL, classify_lane, &lanes[started]) != 0) break;
    ts_status st = TS_OK;
    if (started < n_lanes) {
        atomic_store(&p->failed, 1);
        st = ts_errorf(err, TS_ERR_IO, "cannot start inference lane %d", started);
    }
    classify_lane(&lanes[0]);
    for (int i = 1; i < started; i++)
        pthread_join(tids[i], NULL);
    for (int i = 0; i < started && st == TS_OK; i++)
        if (lanes[i].st != TS_OK) {
            st = lanes[i].st;
            if (err) *err = lanes[i].err;
        }
    return st;
}

static ts_status classify(ts_graph **graphs, int n_lanes, const item_list *l, int batch,
                          const infer_args *a, ts_err *err) {
    ts_graph *g = graphs[0];
    ts_value_view iv = ts_graph_value(g, ts_graph_input(g));
    ts_value_view ov = ts_graph_value(g, ts_graph_output(g));
    infer_pass p = {.l = l, .a = a, .batch = batch, .classes = ov.shape.shape[1]};
    p.is_prob = ts_graph_node(g, ts_graph_num_nodes(g) - 1).op == TS_OP_SOFTMAX;
    p.fmnist = p.classes == TS_FMNIST_CLASSES && iv.shape.shape[1] == 1 &&
               iv.shape.shape[2] == TS_FMNIST_SIDE && iv.shape.shape[3] == TS_FMNIST_SIDE;
    p.n_batches = (l->n + batch - 1) / batch;
    atomic_init(&p.next, 0);
    atomic_init(&p.failed, 0);
    p.logits = malloc((size_t)(l->n * p.classes) * sizeof(float) + 1);
    p.done = calloc((size_t)p.n_batches + 1, 1);
    ts_status st = p.logits && p.done ? TS_OK
                                      : ts_errorf(err, TS_ERR_NOMEM,
                                                  "out of memory for %lld "
                                                  "images' scores",
                                                  (long long)l->n);
    pthread_mutex_init(&p.mu, NULL);
    if (st == TS_OK) st = run_lanes(&p, graphs, n_lanes, err);
    pthread_mutex_destroy(&p.mu);
    free(p.logits);
    free(p.done);
    return st;
}

static ts_status check_model(ts_graph *g, ts_err *err) {
    int in = ts_graph_input(g);
    if (in < 0) return ts_errorf(err, TS_ERR_INVALID, "the model has no input");
    ts_value_view iv = ts_graph_value(g, in);
    if (iv.shape.ndim != 4 || iv.shape.shape[1] < 1 || iv.shape.shape[2] < 1 ||
        iv.shape.shape[3] < 1)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "infer needs a model with an image input [N,C,H,W]");
    ts_value_view ov = ts_graph_value(g, ts_graph_output(g));
    if (ov.shape.ndim != 2 || ov.shape.shape[1] < 1 || ov.shape.shape[1] > 4096)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "infer needs a classifier output [N, K] with K <= 4096");
    return TS_OK;
}

static int run_infer(const infer_args *a) {
    ts_err err = {0};
    ts_threads_set((int)a->threads);
    ts_graph *g = ts_cli_load_model(a->model, &err);
    item_list l = {0};
    ts_status st = g ? ts_graph_plan(g, 1, 0, &err) : TS_ERR_INVALID;
    if (st == TS_OK) st = check_model(g, &err);
    ts_shape in = st == TS_OK ? ts_graph_value(g, ts_graph_input(g)).shape : ts_shape2(1, 1);
    for (int i = 0; st == TS_OK && i < a->n_inputs; i++)
        st = looks_like_pnm(a->inputs[i]) ? add_pnm(&l, a->inputs[i], &in, &err)
                                          : add_idx(&l, a->inputs[i], &in, a->limit, &err);
    int batch = l.n < INFER_MAX_BATCH ? (int)(l.n ? l.n : 1) : INFER_MAX_BATCH;
    if (a->batch > 0 && a->batch < batch) batch = (int)a->batch;
    if (st == TS_OK) st = ts_graph_fold_batchnorm(g, &err);
    if (st == TS_OK) st = ts_graph_plan(g, batch, 0, &err);
    ts_cli_coded_session *cs = NULL;
    if (st == TS_OK && ts_cli_coded_active(&a->coded)) {
        cs = ts_cli_coded_begin(g, a->model, &a->coded, &err);
        if (!cs) st = err.status != TS_OK ? err.status : TS_ERR_UNAVAILABLE;
    }
    ts_graph **lanes = &g;
    int n_lanes = cs ? ts_cli_coded_lanes(cs, &lanes) : 1;
    if (st == TS_OK) st = classify(lanes, n_lanes, &l, batch, a, &err);
    ts_cli_coded_end(cs);
    free_items(&l);
    ts_graph_free(g);
    return st == TS_OK ? TS_EXIT_OK : ts_cli_fail(&err);
}

int ts_cmd_infer(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        infer_usage(stdout);
        return TS_EXIT_OK;
    }
    infer_args a = {.top = 3, .threads = 1};
    ts_cli_coded_init(&a.coded);
    a.inputs = calloc((size_t)argc, sizeof *a.inputs);
    if (!a.inputs) return TS_EXIT_FAIL;
    int rc = -1;
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *opt = argv[i];
        int is_val = !strcmp(opt, "--model") || !strcmp(opt, "--top") || !strcmp(opt, "--limit") ||
                     !strcmp(opt, "--threads") || !strcmp(opt, "--batch");
        if (is_val && i + 1 >= argc) {
            fprintf(stderr, "tessera: %s needs a value\n", opt);
            rc = TS_EXIT_USAGE;
        } else if (!strcmp(opt, "--model"))
            a.model = argv[++i];
        else if (!strcmp(opt, "--top")) {
            if (!ts_cli_parse_int(opt, argv[++i], 1, 4096, &a.top)) rc = TS_EXIT_USAGE;
        } else if (!strcmp(opt, "--limit")) {
            if (!ts_cli_parse_int(opt, argv[++i], 1, TS_DATA_MAX_ITEMS, &a.limit))
                rc = TS_EXIT_USAGE;
        } else if (!strcmp(opt, "--batch")) {
            if (!ts_cli_parse_int(opt, argv[++i], 1, INFER_MAX_BATCH, &a.batch)) rc = TS_EXIT_USAGE;
        } else if (!strcmp(opt, "--threads")) {
            if (!ts_cli_parse_int(opt, argv[++i], 1, 256, &a.threads)) rc = TS_EXIT_USAGE;
        } else if (opt[0] != '-' || !opt[1])
            a.inputs[a.n_inputs++] = argv[i];
        else {
            int r = ts_cli_coded_arg(&a.coded, argc, argv, &i);
            if (r < 0)
                rc = TS_EXIT_USAGE;
            else if (r == 0) {
                fprintf(stderr, "tessera infer: unexpected argument '%s'\n", opt);
                infer_usage(stderr);
                rc = TS_EXIT_USAGE;
            }
        }
    }
    if (rc < 0 && (!a.model || a.n_inputs == 0)) {
        fprintf(stderr, "tessera infer: %s\n", !a.model ? "--model is required" : "no IMAGE given");
        infer_usage(stderr);
        rc = TS_EXIT_USAGE;
    }
    if (rc < 0) rc = run_infer(&a);
    free(a.inputs);
    return rc;
}
