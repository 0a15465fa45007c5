/* train.c: options, the optimizer step, the learning-rate schedule and the
 * epoch loop. */
#include "tessera/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "train_internal.h"

/* Warmup starts at this fraction of the peak rate rather than at zero, so
 * the very first step already moves the weights. */
#define WARMUP_START 0.01
/* Augmentation shifts by at most this many pixels in each direction. */
#define AUG_MAX_SHIFT 2

ts_train_opts ts_train_opts_default(void) {
    ts_train_opts o;
    memset(&o, 0, sizeof o);
    o.epochs = 10;
    o.batch = 64;
    o.optimizer = TS_OPTIM_ADAM;
    o.lr = 1e-3;
    o.momentum = 0.9;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.adam_eps = 1e-8;
    o.schedule = TS_SCHED_COSINE;
    o.step_epochs = 3;
    o.step_gamma = 0.1;
    o.seed = 1;
    return o;
}

const char *ts_optim_name(ts_optim_kind k) {
    return k == TS_OPTIM_ADAM ? "adam" : "sgd";
}

int ts_optim_parse(const char *s) {
    if (s && !strcmp(s, "sgd")) return TS_OPTIM_SGD;
    if (s && !strcmp(s, "adam")) return TS_OPTIM_ADAM;
    return -1;
}

int ts_sched_parse(const char *s) {
    if (s && !strcmp(s, "constant")) return TS_SCHED_CONSTANT;
    if (s && !strcmp(s, "cosine")) return TS_SCHED_COSINE;
    if (s && !strcmp(s, "step")) return TS_SCHED_STEP;
    return -1;
}

static int in_range(double v, double lo, double hi) {
    return isfinite(v) && v >= lo && v <= hi;
}

ts_status ts_train_opts_check(const ts_train_opts *o, ts_err *err) {
    if (!o) return ts_errorf(err, TS_ERR_INVALID, "no training options");
    if (o->epochs < 1 || o->epochs > 100000)
        return ts_errorf(err, TS_ERR_INVALID, "epochs must be in 1..100000, got %d", o->epochs);
    if (o->batch < 1 || o->batch > 65536)
        return ts_errorf(err, TS_ERR_INVALID, "batch must be in 1..65536, got %d", o->batch);
    if (o->optimizer != TS_OPTIM_SGD && o->optimizer != TS_OPTIM_ADAM)
        return ts_errorf(err, TS_ERR_INVALID, "unknown optimizer %d", (int)o->optimizer);
    if (!in_range(o->lr, 1e-12, 10.0) || o->lr <= 0)
        return ts_errorf(err, TS_ERR_INVALID, "learning rate must be in (0, 10], got %g", o->lr);
    if (!in_range(o->momentum, 0.0, 0.999))
        return ts_errorf(err, TS_ERR_INVALID, "momentum must be in [0, 0.999], got %g",
                         o->momentum);
    if (!in_range(o->beta1, 0.0, 0.9999) || !in_range(o->beta2, 0.0, 0.999999))
        return ts_errorf(err, TS_ERR_INVALID, "Adam betas must be in [0, 1), got %g and %g",
                         o->beta1, o->beta2);
    if (!in_range(o->adam_eps, 1e-12, 1.0))
        return ts_errorf(err, TS_ERR_INVALID, "Adam epsilon must be in [1e-12, 1], got %g",
                         o->adam_eps);
    if (!in_range(o->weight_decay, 0.0, 1.0))
        return ts_errorf(err, TS_ERR_INVALID, "weight decay must be in [0, 1], got %g",
                         o->weight_decay);
    if (o->schedule != TS_SCHED_CONSTANT && o->schedule != TS_SCHED_COSINE &&
        o->schedule != TS_SCHED_STEP)
        return ts_errorf(err, TS_ERR_INVALID, "unknown schedule %d", (int)o->schedule);
    if (!in_range(o->warmup_epochs, 0.0, (double)o->epochs))
        return ts_errorf(err, TS_ERR_INVALID, "warmup must be in [0, %d] epochs, got %g", o->epochs,
                         o->warmup_epochs);
    if (o->step_epochs < 1 || !in_range(o->step_gamma, 1e-6, 1.0))
        return ts_errorf(err, TS_ERR_INVALID,
                         "step schedule needs step_epochs >= 1 and gamma in (0, 1]");
    return TS_OK;
}

double ts_trainer_lr_at(const ts_train_opts *o, int64_t step, int64_t steps_per_epoch) {
    double epoch_f = (double)step / (double)(steps_per_epoch > 0 ? steps_per_epoch : 1);
    if (epoch_f < o->warmup_epochs) {
        double f = epoch_f / o->warmup_epochs;
        return o->lr * (WARMUP_START + (1.0 - WARMUP_START) * f);
    }
    switch (o->schedule) {
    case TS_SCHED_COSINE: {
        double span = (double)o->epochs - o->warmup_epochs;
        double f = span > 0 ? (epoch_f - o->warmup_epochs) / span : 1.0;
        if (f > 1.0) f = 1.0;
        return o->lr * 0.5 * (1.0 + cos(M_PI * f));
    }
    case TS_SCHED_STEP: return o->lr * pow(o->step_gamma, floor(epoch_f / o->step_epochs));
    default: return o->lr;
    }
}

/* ---- trainer ---------------------------------------------------------- */

ts_trainer *ts_trainer_new(ts_graph *g, const ts_train_opts *o, ts_err *err) {
    if (!g) {
        ts_errorf(err, TS_ERR_INVALID, "no graph to train");
        return NULL;
    }
    if (ts_train_opts_check(o, err) != TS_OK) return NULL;
    if (ts_graph_plan(g, o->batch, 1, err) != TS_OK) return NULL;
    int in = ts_graph_input(g);
    ts_value_view iv = ts_graph_value(g, in);
    ts_value_view ov = ts_graph_value(g, ts_graph_output(g));
    if (iv.shape.ndim != 4 || ov.shape.ndim != 2) {
        ts_errorf(err, TS_ERR_SHAPE,
                  "training needs an image input [N,C,H,W] and logits [N,K]; this model has "
                  "%d-D input and %d-D output",
                  iv.shape.ndim, ov.shape.ndim);
        return NULL;
    }
    ts_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory creating a trainer");
        return NULL;
    }
    t->g = g;
    t->o = *o;
    t->n_params = ts_graph_num_params(g);
    t->m = calloc((size_t)(t->n_params ? t->n_params : 1), sizeof *t->m);
    t->v = calloc((size_t)(t->n_params ? t->n_params : 1), sizeof *t->v);
    t->xaug = ts_tensor_new(&iv.shape, err);
    t->dlogits = ts_tensor_new(&ov.shape, err);
    int ok = t->m && t->v && t->xaug && t->dlogits;
    for (int i = 0; ok && i < t->n_params; i++) {
        size_t bytes = (size_t)ts_graph_param(g, i)->size * sizeof(float);
        t->m[i] = ts_calloc(bytes);
        if (o->optimizer == TS_OPTIM_ADAM) t->v[i] = ts_calloc(bytes);
        ok = t->m[i] && (o->optimizer != TS_OPTIM_ADAM || t->v[i]);
    }
    if (!ok) {
        if (t->xaug && t->dlogits)
            ts_errorf(err, TS_ERR_NOMEM, "out of memory for optimizer state");
        ts_trainer_free(t);
        return NULL;
    }
    return t;
}

void ts_trainer_free(ts_trainer *t) {
    if (!t) return;
    for (int i = 0; t->m && i < t->n_params; i++)
        ts_free(t->m[i]);
    for (int i = 0; t->v && i < t->n_params; i++)
        ts_free(t->v[i]);
    free(t->m);
    free(t->v);
    ts_tensor_free(t->xaug);
    ts_tensor_free(t->dlogits);
    free(t);
}

void ts_trainer_set_progress(ts_trainer *t, ts_train_progress_fn fn, void *user) {
    t->progress = fn;
    t->progress_user = user;
}

int ts_trainer_epoch(const ts_trainer *t) {
    return t->epoch;
}
int64_t ts_trainer_step_count(const ts_trainer *t) {
    return t->step;
}

/* A stream per (seed, step, purpose): resumed runs draw the same numbers. */
static uint64_t step_seed(uint64_t seed, int64_t step, uint64_t purpose) {
    uint64_t z =
        seed ^ ((uint64_t)step + 1) * 0x9E3779B97F4A7C15ULL ^ purpose * 0xD1B54A32D192ED03ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Random horizontal flip and a shift of up to AUG_MAX_SHIFT pixels; pixels
 * shifted in take the normalized value of a black (0) pixel, the
 * background of Fashion-MNIST. */
static void augment_batch(ts_trainer *t, const ts_tensor *x) {
    ts_rng rng;
    ts_rng_seed(&rng, step_seed(t->o.seed, t->step, 2));
    int64_t n = x->s.shape[0], c = x->s.shape[1], h = x->s.shape[2], w = x->s.shape[3];
    const float bg = -TS_DATA_MEAN / TS_DATA_STD;
    for (int64_t i = 0; i < n; i++) {
        int flip = (int)ts_rng_below(&rng, 2);
        int dy = (int)ts_rng_below(&rng, 2 * AUG_MAX_SHIFT + 1) - AUG_MAX_SHIFT;
        int dx = (int)ts_rng_below(&rng, 2 * AUG_MAX_SHIFT + 1) - AUG_MAX_SHIFT;
        for (int64_t k = 0; k < c; k++) {
            const float *src = x->data + (i * c + k) * h * w;
            float *dst = t->xaug->data + (i * c + k) * h * w;
            for (int64_t y = 0; y < h; y++) {
                int64_t sy = y - dy;
                for (int64_t xx = 0; xx < w; xx++) {
                    int64_t sx = (flip ? w - 1 - xx : xx) - dx;
                    dst[y * w + xx] =
                        sy >= 0 && sy < h && sx >= 0 && sx < w ? src[sy * w + sx] : bg;
                }
            }
        }
    }
}

static int count_correct(const ts_tensor *logits, const int32_t *labels, int n) {
    int64_t k = logits->s.shape[1];
    int correct = 0;
    for (int i = 0; i < n; i++) {
        const float *row = logits->data + (int64_t)i * k;
        int64_t best = 0;
        for (int64_t j = 1; j < k; j++)
            if (row[j] > row[best]) best = j;
        correct += best == labels[i];
    }
    return correct;
}

/* Weight decay only for kernels and matrices (rank >= 2), see train.h. */
static int decays(const ts_tensor *w) {
    return w->s.ndim >= 2;
}

static void update_sgd(ts_trainer *t, int i, float lr) {
    ts_tensor *w = ts_graph_param(t->g, i);
    const float *gr = ts_graph_param_grad(t->g, i)->data;
    float *vel = t->m[i];
    const float mu = (float)t->o.momentum;
    const float wd = decays(w) ? (float)t->o.weight_decay : 0.0f;
    for (int64_t k = 0; k < w->size; k++) {
        float gk = gr[k] + wd * w->data[k];
        vel[k] = mu * vel[k] + gk;
        w->data[k] -= lr * vel[k];
    }
}

static void update_adam(ts_trainer *t, int i, float lr) {
    ts_tensor *w = ts_graph_param(t->g, i);
    const float *gr = ts_graph_param_grad(t->g, i)->data;
    float *m = t->m[i], *v = t->v[i];
    const float b1 = (float)t->o.beta1, b2 = (float)t->o.beta2, eps = (float)t->o.adam_eps;
    const double tt = (double)t->step; /* already counts this step */
    const float c1 = (float)(1.0 / (1.0 - pow(t->o.beta1, tt)));
    const float c2 = (float)(1.0 / (1.0 - pow(t->o.beta2, tt)));
    const float wd = decays(w) ? (float)t->o.weight_decay : 0.0f;
    for (int64_t k = 0; k < w->size; k++) {
        m[k] = b1 * m[k] + (1.0f - b1) * gr[k];
        v[k] = b2 * v[k] + (1.0f - b2) * gr[k] * gr[k];
        float upd = (m[k] * c1) / (sqrtf(v[k] * c2) + eps);
        w->data[k] -= lr * (upd + wd * w->data[k]);
    }
}

static ts_status step_with_lr(ts_trainer *t, const ts_tensor *x, const int32_t *labels, double lr,
                              float *loss, int *correct, ts_err *err) {
    if (!x || !labels || !ts_shape_eq(&x->s, &t->xaug->s))
        return ts_errorf(err, TS_ERR_SHAPE, "a training batch must have the planned input shape");
    const ts_tensor *in = x;
    if (t->o.augment) {
        augment_batch(t, x);
        in = t->xaug;
    }
    ts_graph_set_seed(t->g, step_seed(t->o.seed, t->step, 1));
    TS_TRY(ts_graph_forward(t->g, in, err));
    const ts_tensor *logits = ts_graph_result(t->g);
    TS_TRY(ts_softmax_xent(logits, labels, NULL, loss, t->dlogits, err));
    if (!isfinite(*loss))
        return ts_errorf(err, TS_ERR_NUMERIC,
                         "the loss became %g at step %lld: lower the learning rate", *loss,
                         (long long)t->step + 1);
    if (correct) *correct = count_correct(logits, labels, (int)logits->s.shape[0]);
    TS_TRY(ts_graph_backward(t->g, t->dlogits, err));
    t->step++;
    for (int i = 0; i < t->n_params; i++) {
        if (t->o.optimizer == TS_OPTIM_ADAM)
            update_adam(t, i, (float)lr);
        else
            update_sgd(t, i, (float)lr);
    }
    return TS_OK;
}

ts_status ts_trainer_step(ts_trainer *t, const ts_tensor *x, const int32_t *labels, float *loss,
                          int *correct, ts_err *err) {
    float l;
    return step_with_lr(t, x, labels, t->o.lr, loss ? loss : &l, correct, err);
}

/* ---- the epoch loop --------------------------------------------------- */

typedef struct {
    double t0;           /* this run's start */
    int64_t step0;       /* step count at this run's start */
    int64_t total_steps; /* for the whole schedule */
} run_clock;

static void report(ts_trainer *t, ts_train_progress *p, const run_clock *rc, double epoch_t0) {
    if (!t->progress) return;
    double now = ts_now();
    double done = (double)(t->step - rc->step0);
    double per_step = done > 0 ? (now - rc->t0) / done : 0;
    p->step = t->step;
    p->images_per_s = now > epoch_t0 ? (double)p->step_in_epoch * t->o.batch / (now - epoch_t0) : 0;
    p->eta_s = per_step * (double)(rc->total_steps - t->step);
    t->progress(p, t->progress_user);
}

static ts_status validate(ts_trainer *t, const ts_dataset *val, double *acc, ts_err *err) {
    ts_eval_result r;
    ts_status st = ts_evaluate(t->g, val, t->o.batch, 0, 1, &r, err);
    if (st == TS_OK) *acc = ts_eval_accuracy(&r);
    ts_eval_result_free(&r);
    ts_status st2 = ts_graph_plan(t->g, t->o.batch, 1, st == TS_OK ? err : NULL);
    return st != TS_OK ? st : st2;
}

static ts_status run_epoch(ts_trainer *t, ts_batcher *b, int64_t steps, const run_clock *rc,
                           ts_train_progress *p, ts_err *err) {
    ts_batcher_shuffle(b, (uint64_t)t->epoch);
    double epoch_t0 = ts_now(), loss_sum = 0;
    int64_t correct = 0;
    for (int64_t s = 0; s < steps; s++) {
        const ts_tensor *x;
        const int32_t *labels;
        int n = ts_batcher_next(b, &x, &labels);
        TS_ASSERT(n == t->o.batch); /* steps counts full batches only */
        float loss;
        int c;
        double lr = ts_trainer_lr_at(&t->o, t->step, steps);
        TS_TRY(step_with_lr(t, x, labels, lr, &loss, &c, err));
        loss_sum += loss;
        correct += c;
        p->step_in_epoch = s + 1;
        p->loss = loss_sum / (double)(s + 1);
        p->accuracy = (double)correct / ((double)(s + 1) * t->o.batch);
        p->lr = lr;
        report(t, p, rc, epoch_t0);
    }
    return TS_OK;
}

ts_status ts_trainer_fit(ts_trainer *t, const ts_dataset *train, const ts_dataset *val,
                         ts_err *err) {
    if (!train || !ts_dataset_labels(train))
        return ts_errorf(err, TS_ERR_INVALID, "training needs a labelled dataset");
    ts_value_view iv = ts_graph_value(t->g, ts_graph_input(t->g));
    if (iv.shape.shape[1] != ts_dataset_channels(train) ||
        iv.shape.shape[2] != ts_dataset_height(train) ||
        iv.shape.shape[3] != ts_dataset_width(train))
        return ts_errorf(err, TS_ERR_SHAPE,
                         "the model takes %lldx%lldx%lld images, the dataset holds %dx%dx%d",
                         (long long)iv.shape.shape[1], (long long)iv.shape.shape[2],
                         (long long)iv.shape.shape[3], ts_dataset_channels(train),
                         ts_dataset_height(train), ts_dataset_width(train));
    ts_value_view ov = ts_graph_value(t->g, ts_graph_output(t->g));
    if (ov.shape.shape[1] < ts_dataset_num_classes(train))
        return ts_errorf(err, TS_ERR_SHAPE, "the model has %lld outputs for %d classes",
                         (long long)ov.shape.shape[1], ts_dataset_num_classes(train));
    ts_batcher *b = ts_batcher_new(train, t->o.batch, t->o.seed, err);
    if (!b) return err ? err->status : TS_ERR_NOMEM;
    int64_t steps = ts_batcher_num_batches(b, 1);
    ts_status st = TS_OK;
    if (steps < 1)
        st = ts_errorf(err, TS_ERR_INVALID,
                       "the dataset (%lld items) is smaller than one batch (%d)",
                       (long long)ts_dataset_count(train), t->o.batch);
    /* a resumed state must continue the same sequence of batches */
    else if (t->step != (int64_t)t->epoch * steps)
        st = ts_errorf(err, TS_ERR_INVALID,
                       "the optimizer state is at step %lld after %d epochs, but %lld steps per "
                       "epoch here: resume with the original --batch and dataset",
                       (long long)t->step, t->epoch, (long long)steps);
    run_clock rc = {ts_now(), t->step, steps * t->o.epochs};
    char ckpt[4096];
    while (st == TS_OK && t->epoch < t->o.epochs) {
        ts_train_progress p = {
            .epoch = t->epoch, .epochs = t->o.epochs, .steps_per_epoch = steps, .val_accuracy = -1};
        double epoch_t0 = ts_now();
        st = run_epoch(t, b, steps, &rc, &p, err);
        if (st != TS_OK) break;
        t->epoch++;
        if (val) st = validate(t, val, &p.val_accuracy, err);
        if (st == TS_OK && t->o.checkpoint_dir) {
            st = ts_trainer_checkpoint(t, t->o.checkpoint_dir, ckpt, sizeof ckpt, err);
            p.checkpoint = ckpt;
        }
        p.epoch_done = 1;
        if (st == TS_OK) report(t, &p, &rc, epoch_t0);
    }
    ts_batcher_free(b);
    return st;
}

ts_status ts_trainer_checkpoint(ts_trainer *t, const char *dir, char *path, size_t path_len,
                                ts_err *err) {
    if (mkdir(dir, 0777) != 0) {
        struct stat sb;
        if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return ts_errorf(err, TS_ERR_IO, "cannot create checkpoint directory %s", dir);
    }
    char model[4096], state[4200];
    int len = snprintf(model, sizeof model, "%s/epoch-%03d.onnx", dir, t->epoch);
    if (len < 0 || (size_t)len >= sizeof model)
        return ts_errorf(err, TS_ERR_INVALID, "checkpoint directory name is too long");
    snprintf(state, sizeof state, "%s.state", model);
    TS_TRY(ts_onnx_save(t->g, model, err));
    TS_TRY(ts_trainer_save_state(t, state, err));
    if (path) snprintf(path, path_len, "%s", model);
    return TS_OK;
}
