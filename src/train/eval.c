/* eval.c: accuracy, loss and confusion matrix of a graph on a dataset. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/train.h"

static ts_status check_model(ts_graph *g, const ts_dataset *ds, int batch, ts_err *err) {
    ts_value_view iv = ts_graph_value(g, ts_graph_input(g));
    if (iv.shape.ndim != 4 || iv.shape.shape[0] != batch ||
        iv.shape.shape[1] != ts_dataset_channels(ds) ||
        iv.shape.shape[2] != ts_dataset_height(ds) || iv.shape.shape[3] != ts_dataset_width(ds)) {
        char s[96];
        return ts_errorf(err, TS_ERR_SHAPE,
                         "the model's input %s does not take batches of %d %dx%dx%d images",
                         ts_shape_str(&iv.shape, s, sizeof s), batch, ts_dataset_channels(ds),
                         ts_dataset_height(ds), ts_dataset_width(ds));
    }
    ts_value_view ov = ts_graph_value(g, ts_graph_output(g));
    if (ov.shape.ndim != 2 || ov.shape.shape[1] < ts_dataset_num_classes(ds)) {
        char s[96];
        return ts_errorf(err, TS_ERR_SHAPE,
                         "the model's output %s is not [batch, K] with K >= the dataset's %d "
                         "classes",
                         ts_shape_str(&ov.shape, s, sizeof s), ts_dataset_num_classes(ds));
    }
    return TS_OK;
}

static double row_xent(const float *row, int64_t k, int label) {
    float mx = row[0];
    for (int64_t j = 1; j < k; j++)
        mx = fmaxf(mx, row[j]);
    double sum = 0;
    for (int64_t j = 0; j < k; j++)
        sum += exp((double)row[j] - mx);
    return log(sum) - ((double)row[label] - mx);
}

static void tally(ts_eval_result *r, const ts_tensor *logits, const int32_t *labels, int n,
                  double *loss_sum) {
    int64_t k = logits->s.shape[1];
    for (int i = 0; i < n; i++) {
        const float *row = logits->data + (int64_t)i * k;
        int64_t best = 0;
        for (int64_t j = 1; j < k; j++)
            if (row[j] > row[best]) best = j;
        int truth = labels[i];
        r->correct += best == truth;
        /* a prediction outside the dataset's classes counts as wrong and
         * is left out of the matrix */
        if (best < r->classes) r->confusion[(int64_t)truth * r->classes + best]++;
        *loss_sum += row_xent(row, k, truth);
    }
    r->count += n;
}

/* One lane of an evaluation: its graph, its batcher, its own tallies. The
 * lanes take batch numbers from a shared counter; per-batch losses are kept
 * by batch number and summed in order, so the result does not depend on
 * which lane ran which batch. */
typedef struct eval_pass eval_pass;

typedef struct {
    eval_pass *pass;
    ts_graph *g;
    ts_eval_result r;
    ts_status st;
    ts_err err;
} eval_lane;

struct eval_pass {
    const ts_dataset *ds;
    int batch;
    int64_t n_batches;
    double *batch_loss;       /* [n_batches] */
    atomic_int_fast64_t next; /* next batch number to take */
    atomic_int failed;        /* a lane failed: the others stop */
};

static void *run_lane(void *arg) {
    eval_lane *l = arg;
    eval_pass *p = l->pass;
    ts_batcher *b = ts_batcher_new(p->ds, p->batch, 0, &l->err);
    l->st = b ? TS_OK : l->err.status;
    const ts_tensor *x;
    const int32_t *labels;
    while (l->st == TS_OK && !atomic_load(&p->failed)) {
        int64_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n_batches) break;
        ts_batcher_seek(b, i);
        int n = ts_batcher_next(b, &x, &labels);
        l->st = ts_graph_forward(l->g, x, &l->err);
        if (l->st == TS_OK) tally(&l->r, ts_graph_result(l->g), labels, n, &p->batch_loss[i]);
    }
    if (l->st != TS_OK) atomic_store(&p->failed, 1);
    ts_batcher_free(b);
    return NULL;
}

static ts_status start_lanes(eval_lane *lanes, int n_lanes, pthread_t *tids, int *started,
                             ts_err *err) {
    *started = 0;
    for (int i = 1; i < n_lanes; i++) {
        if (pthread_create(&tids[i], NULL, run_lane, &lanes[i]) != 0)
            return ts_errorf(err, TS_ERR_IO, "cannot start evaluation lane %d", i);
        (*started)++;
    }
    return TS_OK;
}

static void merge_lane(ts_eval_result *r, const ts_eval_result *l) {
    r->count += l->count;
    r->correct += l->correct;
    for (int64_t i = 0; i < (int64_t)r->classes * r->classes; i++)
        r->confusion[i] += l->confusion[i];
}

static ts_status run_lanes(ts_graph *const *g, int n_lanes, eval_pass *p, ts_eval_result *r,
                           ts_err *err) {
    eval_lane lanes[TS_EVAL_MAX_LANES];
    pthread_t tids[TS_EVAL_MAX_LANES];
    memset(lanes, 0, sizeof lanes);
    ts_status st = TS_OK;
    for (int i = 0; i < n_lanes && st == TS_OK; i++) {
        lanes[i] = (eval_lane){.pass = p, .g = g[i], .r = {.classes = r->classes}};
        lanes[i].r.confusion = calloc((size_t)r->classes * (size_t)r->classes, sizeof(int64_t));
        if (!lanes[i].r.confusion) st = ts_errorf(err, TS_ERR_NOMEM, "out of memory");
    }
    int started = 0;
    if (st == TS_OK) st = start_lanes(lanes, n_lanes, tids, &started, err);
    if (st != TS_OK) atomic_store(&p->failed, 1);
    run_lane(&lanes[0]); /* this thread is lane 0 (after a failure it stops at once) */
    for (int i = 1; i <= started; i++)
        pthread_join(tids[i], NULL);
    for (int i = 0; i < n_lanes; i++) {
        if (st == TS_OK && lanes[i].st != TS_OK) {
            st = lanes[i].st;
            if (err) *err = lanes[i].err;
        }
        if (lanes[i].r.confusion) merge_lane(r, &lanes[i].r);
        free(lanes[i].r.confusion);
    }
    return st;
}

ts_status ts_evaluate_lanes(ts_graph *const *g, int n_lanes, const ts_dataset *ds, int batch,
                            int64_t limit, int plan, ts_eval_result *r, ts_err *err) {
    memset(r, 0, sizeof *r);
    if (!g || n_lanes < 1 || n_lanes > TS_EVAL_MAX_LANES || !ds || batch < 1)
        return ts_errorf(err, TS_ERR_INVALID,
                         "evaluate: bad arguments (lanes must be 1..%d, batch >= 1)",
                         TS_EVAL_MAX_LANES);
    if (!ts_dataset_labels(ds))
        return ts_errorf(err, TS_ERR_INVALID, "evaluation needs labels; this dataset has none");
    for (int i = 0; i < n_lanes; i++) {
        if (!g[i]) return ts_errorf(err, TS_ERR_INVALID, "evaluate: lane %d has no graph", i);
        if (plan) TS_TRY(ts_graph_plan(g[i], batch, 0, err));
        TS_TRY(check_model(g[i], ds, batch, err));
    }
    r->classes = ts_dataset_num_classes(ds);
    r->confusion = calloc((size_t)r->classes * (size_t)r->classes, sizeof *r->confusion);
    if (!r->confusion)
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for the confusion matrix");
    int64_t total = ts_dataset_count(ds);
    if (limit > 0 && limit < total) total = limit;
    ts_dataset *sub = NULL;
    if (total < ts_dataset_count(ds) && !(sub = ts_dataset_subset(ds, 0, total, err)))
        return err ? err->status : TS_ERR_NOMEM;
    eval_pass p = {.ds = sub ? sub : ds, .batch = batch, .n_batches = (total + batch - 1) / batch};
    atomic_init(&p.next, 0);
    atomic_init(&p.failed, 0);
    p.batch_loss = calloc((size_t)p.n_batches + 1, sizeof *p.batch_loss);
    ts_status st = p.batch_loss ? run_lanes(g, n_lanes, &p, r, err)
                                : ts_errorf(err, TS_ERR_NOMEM, "out of memory");
    double loss_sum = 0;
    for (int64_t i = 0; p.batch_loss && i < p.n_batches; i++)
        loss_sum += p.batch_loss[i];
    r->loss = r->count ? loss_sum / (double)r->count : 0;
    free(p.batch_loss);
    ts_dataset_free(sub);
    return st;
}

ts_status ts_evaluate(ts_graph *g, const ts_dataset *ds, int batch, int64_t limit, int plan,
                      ts_eval_result *r, ts_err *err) {
    return ts_evaluate_lanes(&g, 1, ds, batch, limit, plan, r, err);
}

void ts_eval_result_free(ts_eval_result *r) {
    if (!r) return;
    free(r->confusion);
    r->confusion = NULL;
}
