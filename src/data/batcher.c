/* batcher.c: seeded mini-batch iteration over a dataset. */
#include "tessera/data.h"

#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

struct ts_batcher {
    const ts_dataset *ds;
    int batch;
    uint64_t seed;
    int64_t *order;
    int64_t pos;
    ts_tensor *x;
    int32_t *labels;
};

ts_batcher *ts_batcher_new(const ts_dataset *ds, int batch, uint64_t seed, ts_err *err) {
    if (!ds || batch < 1) {
        ts_errorf(err, TS_ERR_INVALID, "a batcher needs a dataset and a batch size >= 1");
        return NULL;
    }
    ts_batcher *b = calloc(1, sizeof *b);
    if (!b) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory creating a batcher");
        return NULL;
    }
    b->ds = ds;
    b->batch = batch;
    b->seed = seed;
    b->order = malloc((size_t)ds->count * sizeof *b->order);
    b->labels = malloc((size_t)batch * sizeof *b->labels);
    b->x = ts_tensor_new4(batch, ds->c, ds->h, ds->w, err);
    if (!b->order || !b->labels || !b->x) {
        if (b->x) ts_errorf(err, TS_ERR_NOMEM, "out of memory creating a batcher");
        ts_batcher_free(b);
        return NULL;
    }
    for (int64_t i = 0; i < ds->count; i++)
        b->order[i] = i;
    return b;
}

void ts_batcher_free(ts_batcher *b) {
    if (!b) return;
    free(b->order);
    free(b->labels);
    ts_tensor_free(b->x);
    free(b);
}

void ts_batcher_shuffle(ts_batcher *b, uint64_t epoch) {
    ts_rng rng;
    /* distinct odd multiplier: (seed, epoch) pairs map to distinct streams */
    ts_rng_seed(&rng, b->seed ^ (epoch + 1) * 0x9E3779B97F4A7C15ULL);
    int64_t n = b->ds->count;
    for (int64_t i = 0; i < n; i++)
        b->order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ts_rng_below(&rng, (uint64_t)i + 1);
        int64_t t = b->order[i];
        b->order[i] = b->order[j];
        b->order[j] = t;
    }
    b->pos = 0;
}

void ts_batcher_rewind(ts_batcher *b) {
    b->pos = 0;
}

void ts_batcher_seek(ts_batcher *b, int64_t index) {
    int64_t count = b->ds->count;
    b->pos = index < 0 ? 0 : index >= (count + b->batch - 1) / b->batch ? count : index * b->batch;
}

int ts_batcher_next(ts_batcher *b, const ts_tensor **x, const int32_t **labels) {
    const ts_dataset *ds = b->ds;
    int64_t left = ds->count - b->pos;
    if (left <= 0) return 0;
    int n = left < b->batch ? (int)left : b->batch;
    size_t item = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    for (int k = 0; k < n; k++) {
        int64_t i = b->order[b->pos + k];
        ts_dataset_get(ds, i, b->x->data + (size_t)k * item);
        b->labels[k] = ds->labels ? ds->labels[i] : -1;
    }
    if (n < b->batch) {
        memset(b->x->data + (size_t)n * item, 0, (size_t)(b->batch - n) * item * sizeof(float));
        for (int k = n; k < b->batch; k++)
            b->labels[k] = -1;
    }
    b->pos += n;
    *x = b->x;
    *labels = b->labels;
    return n;
}

int64_t ts_batcher_num_batches(const ts_batcher *b, int drop_last) {
    int64_t n = b->ds->count;
    return drop_last ? n / b->batch : (n + b->batch - 1) / b->batch;
}
