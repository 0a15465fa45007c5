/* coded_internal.h: shared by the planner and the coded model. */
#ifndef TS_CODED_INTERNAL_H
#define TS_CODED_INTERNAL_H

#include "tessera/code.h"
#include "tessera/coded.h"

/* What the planner needs to know about a layer. */
typedef struct {
    int node;
    ts_op op;
    /* conv */
    ts_conv2d_params conv;
    ts_shape x, w;
    /* gemm: x [rows, k], W as [m, k] */
    int64_t rows, k, m;
} ts_coded_layer_shape;

ts_code *ts_coder_code(ts_layer_coder *c);
/* Per-worker bytes and FLOPs of the coder's split into pl. */
void ts_coder_costs(const ts_layer_coder *c, ts_layer_plan *pl);
ts_layer_coder *ts_coded_make_coder(const ts_coded_layer_shape *ls, ts_scheme scheme, int n, int s,
                                    int kA, int kB, ts_err *err);
ts_status ts_coded_plan_layer(const ts_coded_layer_shape *ls, const ts_coded_opts *o,
                              ts_layer_plan *plan, ts_err *err);
ts_status ts_coded_worst_cond(const ts_coded_layer_shape *ls, const ts_coded_opts *o,
                              const ts_layer_plan *plan, int max_sets, double *worst,
                              int *exhaustive, ts_err *err);

#endif
