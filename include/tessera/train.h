/*
 * train.h: mini-batch training and evaluation of a graph on a dataset.
 *
 * - A ts_trainer plans its graph for training at the batch size once and
 *   owns the optimizer state (SGD momentum buffers or Adam moments); a step
 *   allocates nothing.
 * - Optimizers: SGD with (Nesterov-free) momentum, and Adam. Weight decay is
 *   L2 added to the gradient (SGD) or decoupled (Adam, i.e. AdamW), and only
 *   touches weights of rank >= 2 (conv kernels, dense matrices): decaying
 *   biases and batch-norm scales only hurts.
 * - Learning rate: linear warmup over warmup_epochs, then constant, cosine
 *   to zero, or step decay; computed per step from the global step number so
 *   it is the same for a resumed run.
 * - Determinism: the shuffle of epoch e is a function of (seed, e), the
 *   augmentation of step s and the dropout masks of step s are functions of
 *   (seed, s). With the same thread count, a run resumed from the checkpoint
 *   of epoch e produces the same weights as an uninterrupted run.
 * - Checkpoints: after each epoch, <dir>/epoch-NNN.onnx (the model; BN
 *   running statistics included) and <dir>/epoch-NNN.onnx.state (optimizer
 *   state: a small versioned binary with a CRC-32, validated on load
 *   against the graph's parameter names and shapes).
 * - Progress is reported through a callback (the CLI draws a bar); the
 *   library prints nothing.
 */
#ifndef TESSERA_TRAIN_H
#define TESSERA_TRAIN_H

#include "tessera/core.h"
#include "tessera/data.h"
#include "tessera/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { TS_OPTIM_SGD, TS_OPTIM_ADAM } ts_optim_kind;
typedef enum { TS_SCHED_CONSTANT, TS_SCHED_COSINE, TS_SCHED_STEP } ts_sched_kind;

typedef struct {
    int epochs;
    int batch;
    ts_optim_kind optimizer;
    double lr;           /* peak learning rate */
    double momentum;     /* SGD */
    double beta1, beta2; /* Adam */
    double adam_eps;
    double weight_decay;
    ts_sched_kind schedule;
    double warmup_epochs; /* linear warmup from lr/100 (may be fractional) */
    int step_epochs;      /* TS_SCHED_STEP: multiply by step_gamma every N epochs */
    double step_gamma;
    int augment; /* 1: random horizontal flip + shift by up to 2 pixels */
    uint64_t seed;
    int64_t max_steps;          /* > 0: stop after this many steps in total (tests) */
    const char *checkpoint_dir; /* NULL: no checkpoints */
} ts_train_opts;

/* Defaults: 10 epochs, batch 64, Adam lr 1e-3 (beta 0.9/0.999, eps 1e-8),
 * SGD momentum 0.9, weight decay 0, cosine schedule, 0 warmup epochs, step
 * decay every 3 epochs by 0.1 (when chosen), no augmentation, seed 1. */
ts_train_opts ts_train_opts_default(void);
/* Checks ranges (epochs >= 1, batch in 1..65536, lr > 0 finite, ...);
 * names the bad option. */
ts_status ts_train_opts_check(const ts_train_opts *o, ts_err *err);
const char *ts_optim_name(ts_optim_kind k);
/* Parses "sgd"/"adam" and "constant"/"cosine"/"step"; -1 if unknown. */
int ts_optim_parse(const char *s);
int ts_sched_parse(const char *s);

/* What a progress callback sees (after every step and at epoch end). */
typedef struct {
    int epoch, epochs; /* 0-based current epoch, total */
    int64_t step_in_epoch, steps_per_epoch;
    int64_t step;          /* global step, 1-based after a step */
    double loss, accuracy; /* running means over the epoch so far */
    double lr;
    double images_per_s;    /* over this epoch so far */
    double eta_s;           /* for the whole run */
    int epoch_done;         /* 1 at the end of an epoch */
    double val_accuracy;    /* epoch end with a validation set, else -1 */
    const char *checkpoint; /* path written at epoch end, or NULL */
} ts_train_progress;
typedef void (*ts_train_progress_fn)(const ts_train_progress *p, void *user);

typedef struct ts_trainer ts_trainer;

/* Plans g for training at o->batch. g is borrowed: it must outlive the
 * trainer, and its weights are updated in place. */
ts_trainer *ts_trainer_new(ts_graph *g, const ts_train_opts *o, ts_err *err);
void ts_trainer_free(ts_trainer *t); /* accepts NULL */
void ts_trainer_set_progress(ts_trainer *t, ts_train_progress_fn fn, void *user);

/* One optimizer step on a full batch (x [batch,C,H,W], batch labels).
 * at the peak learning rate o->lr (the schedule belongs to ts_trainer_fit;
 * augmentation and dropout still follow the step count). Writes the batch's
 * mean loss and number of correct predictions (either may be NULL). */
ts_status ts_trainer_step(ts_trainer *t, const ts_tensor *x, const int32_t *labels, float *loss,
                          int *correct, ts_err *err);
/* Trains from the trainer's current epoch to o->epochs on `train`
 * (incomplete last batches are dropped, so every step sees a full batch),
 * evaluating on `val` (may be NULL) after each epoch and checkpointing when
 * a checkpoint_dir was given. On return the graph is still planned for
 * training. */
ts_status ts_trainer_fit(ts_trainer *t, const ts_dataset *train, const ts_dataset *val,
                         ts_err *err);
int ts_trainer_epoch(const ts_trainer *t); /* completed epochs */
int64_t ts_trainer_step_count(const ts_trainer *t);
/* Learning rate at a global step (0-based) with steps_per_epoch steps. */
double ts_trainer_lr_at(const ts_train_opts *o, int64_t step, int64_t steps_per_epoch);

/* Optimizer state side file (see the header comment). save writes
 * atomically (temp file + rename). load checks magic, version, CRC,
 * optimizer kind and every parameter's name and size, and sets the
 * completed-epoch and step counters. */
ts_status ts_trainer_save_state(const ts_trainer *t, const char *path, ts_err *err);
ts_status ts_trainer_load_state(ts_trainer *t, const char *path, ts_err *err);
/* Writes <dir>/epoch-NNN.onnx and its .state for the completed epochs;
 * the model path goes into path (may be NULL). */
ts_status ts_trainer_checkpoint(ts_trainer *t, const char *dir, char *path, size_t path_len,
                                ts_err *err);

/* ---- evaluation ------------------------------------------------------- */

typedef struct {
    int64_t count; /* items evaluated */
    int64_t correct;
    int classes;
    int64_t *confusion; /* classes x classes, [true][predicted]; owned */
    double loss;        /* mean cross-entropy */
} ts_eval_result;

/* Runs g (planned for inference at `batch` by the caller, or re-planned
 * here when plan = 1) over the first `limit` items of ds (limit <= 0: all)
 * and fills r. ds must be labelled; the graph's output must be [batch, K]
 * with K >= the dataset's class count. Free r with ts_eval_result_free. */
ts_status ts_evaluate(ts_graph *g, const ts_dataset *ds, int batch, int64_t limit, int plan,
                      ts_eval_result *r, ts_err *err);
/* The same over n_lanes graphs (copies of one model, e.g. each with its own
 * coded executor) run by n_lanes threads at once, the calling thread being
 * lane 0: batches are shared out as lanes become free, so several
 * inferences are in flight together (`--pipeline`). The result is the same
 * as ts_evaluate's whatever the timing (the loss is summed in batch order). */
#define TS_EVAL_MAX_LANES 64
ts_status ts_evaluate_lanes(ts_graph *const *g, int n_lanes, const ts_dataset *ds, int batch,
                            int64_t limit, int plan, ts_eval_result *r, ts_err *err);
void ts_eval_result_free(ts_eval_result *r);
static inline double ts_eval_accuracy(const ts_eval_result *r) {
    return r->count ? (double)r->correct / (double)r->count : 0.0;
}

#ifdef __cplusplus
}
#endif
#endif
