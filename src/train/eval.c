/* eval.c: accuracy, loss and confusion matrix of a graph on a dataset. */
#include <math.h>
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

ts_status ts_evaluate(ts_graph *g, const ts_dataset *ds, int batch, int64_t limit, int plan,
                      ts_eval_result *r, ts_err *err) {
    memset(r, 0, sizeof *r);
    if (!g || !ds || batch < 1) return ts_errorf(err, TS_ERR_INVALID, "evaluate: bad arguments");
    if (!ts_dataset_labels(ds))
        return ts_errorf(err, TS_ERR_INVALID, "evaluation needs labels; this dataset has none");
    if (plan) TS_TRY(ts_graph_plan(g, batch, 0, err));
    TS_TRY(check_model(g, ds, batch, err));
    r->classes = ts_dataset_num_classes(ds);
    r->confusion = calloc((size_t)r->classes * (size_t)r->classes, sizeof *r->confusion);
    if (!r->confusion)
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for the confusion matrix");
    int64_t total = ts_dataset_count(ds);
    if (limit > 0 && limit < total) total = limit;
    ts_dataset *sub = NULL;
    if (total < ts_dataset_count(ds) && !(sub = ts_dataset_subset(ds, 0, total, err)))
        return err ? err->status : TS_ERR_NOMEM;
    ts_batcher *b = ts_batcher_new(sub ? sub : ds, batch, 0, err);
    ts_status st = b ? TS_OK : (err ? err->status : TS_ERR_NOMEM);
    double loss_sum = 0;
    const ts_tensor *x;
    const int32_t *labels;
    int n;
    while (st == TS_OK && (n = ts_batcher_next(b, &x, &labels)) > 0) {
        st = ts_graph_forward(g, x, err);
        if (st == TS_OK) tally(r, ts_graph_result(g), labels, n, &loss_sum);
    }
    r->loss = r->count ? loss_sum / (double)r->count : 0;
    ts_batcher_free(b);
    ts_dataset_free(sub);
    return st;
}

void ts_eval_result_free(ts_eval_result *r) {
    if (!r) return;
    free(r->confusion);
    r->confusion = NULL;
}
