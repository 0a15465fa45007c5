/* train_internal.h: the trainer struct, shared by train.c and state.c. */
#ifndef TS_TRAIN_INTERNAL_H
#define TS_TRAIN_INTERNAL_H

#include "tessera/train.h"

struct ts_trainer {
    ts_graph *g;
    ts_train_opts o;
    int n_params;
    /* per parameter: SGD velocity in m; Adam first moment in m, second in v */
    float **m, **v;
    int64_t step;       /* optimizer steps taken */
    int epoch;          /* completed epochs */
    ts_tensor *xaug;    /* augmented batch */
    ts_tensor *dlogits; /* d(loss)/d(logits) */
    ts_train_progress_fn progress;
    void *progress_user;
};

/* Slots of optimizer state per parameter (1 for SGD, 2 for Adam). */
static inline int ts_trainer_slots(const struct ts_trainer *t) {
    return t->o.optimizer == TS_OPTIM_ADAM ? 2 : 1;
}

#endif
