/*
 * coded.h: coded layers. Every conv layer is cut into coded sub-tasks
 * (FCDCC / NSCTC: APCP input slabs x KCCP filter groups, encoded with a
 * product code from code/), and dense layers into coded GEMMs; any
 * `threshold` of the n workers suffice to decode the exact output.
 *
 * The pieces:
 * - geometry (partition.c): how a conv layer is cut. APCP splits the
 *   padded input along H into nA slabs that overlap by the halo
 *   (effective kernel height - stride), zero-padding the bottom so every
 *   slab has the same shape; KCCP splits the filters along output channels
 *   into nB groups, padding with zero filters. Grouped and depthwise convs
 *   are split along their conv groups instead (see docs/fcdcc.md).
 * - a backend (ts_coded_backend) runs per-worker tasks: the local thread
 *   pool here (embedded default), or the ZeroMQ master in runtime/. It
 *   keeps encoded filter shares deployed once per model and returns as
 *   soon as `need` workers have answered; late answers are dropped.
 * - the coded model (fcdcc.c): plans each layer, encodes and deploys filter
 *   shares, and installs a ts_layer_executor on the graph that encodes
 *   input slabs, runs the layer on the backend, decodes in double from the
 *   first responders, reassembles, crops and adds the bias.
 * - the planner (planner.c): (kA, kB) per layer for n workers and s
 *   stragglers, minimizing w_comm * bytes moved per inference + w_storage *
 *   bytes stored per worker + w_compute * FLOPs per worker.
 */
#ifndef TESSERA_CODED_H
#define TESSERA_CODED_H

#include "tessera/core.h"
#include "tessera/graph.h"
#include "tessera/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- schemes ---------------------------------------------------------- */

typedef enum {
    TS_SCHEME_UNCODED,     /* n disjoint tasks, wait for all */
    TS_SCHEME_REPLICATION, /* n/r distinct tasks, each on r workers */
    TS_SCHEME_MDS,         /* 1-D real MDS (Vandermonde) over output channels */
    TS_SCHEME_POLYNOMIAL,  /* 2-D polynomial code, real Vandermonde nodes */
    TS_SCHEME_CRME,        /* 2-D rotation-matrix embedding (FCDCC / NSCTC) */
} ts_scheme;

const char *ts_scheme_name(ts_scheme s);
/* Parses "uncoded", "replication", "mds", "polynomial", "crme". */
ts_status ts_scheme_parse(const char *name, ts_scheme *out, ts_err *err);

/* ---- conv geometry (partition.c) -------------------------------------- */

typedef struct {
    /* layer */
    int64_t batch, c, h, w;    /* input */
    int64_t n_filters, kh, kw; /* filters [N, C/groups, KH, KW] */
    ts_conv2d_params p;
    int64_t h_out, w_out;
    /* APCP */
    int n_slabs;   /* nA */
    int64_t h_o;   /* output rows per slab */
    int64_t h_in;  /* input rows per slab, halo included */
    int64_t w_pad; /* padded input width */
    /* KCCP: filter group j holds, for every conv group g, that group's
     * output channels j*per_group .. (j+1)*per_group-1 (zero filters past
     * the end). With one conv group this is the plain split of the filters
     * into consecutive blocks; with several (grouped, depthwise) every
     * filter group is itself a grouped conv over ALL input channels, so
     * linear combinations of filter groups stay valid grouped convs. */
    int n_groups;      /* nB */
    int64_t per_group; /* output channels per conv group in one filter group */
    int64_t n_b;       /* output channels of one filter group: groups * per_group */
} ts_conv_geometry;

/* Cuts a conv layer: x [B,C,H,W], w [N,C/g,KH,KW] into n_slabs x n_groups.
 * Refuses (TS_ERR_INVALID, saying what would work) a layer too small to
 * split that way, e.g. fewer output rows than slabs. */
ts_status ts_conv_geometry_make(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                                int n_slabs, int n_groups, ts_conv_geometry *g, ts_err *err);
/* The same, but more filter groups than the layer has filters (per conv
 * group) are allowed: the groups past the last filter are all zero. For the
 * 1-D schemes (uncoded, replication, mds), whose group count is fixed by
 * the number of workers: the extra workers compute zeros, and the plan
 * stays possible at any n. */
ts_status ts_conv_geometry_make_padded(const ts_conv2d_params *p, const ts_shape *x,
                                       const ts_shape *w, int n_slabs, int n_groups,
                                       ts_conv_geometry *g, ts_err *err);
/* Shape of one input slab [B, C, h_in, w_pad], one filter group
 * [n_b, C/g, KH, KW] and one block result [B, n_b, h_o, w_out]. */
ts_shape ts_geom_slab_shape(const ts_conv_geometry *g);
ts_shape ts_geom_filter_shape(const ts_conv_geometry *g);
ts_shape ts_geom_block_shape(const ts_conv_geometry *g);
/* The parameters a worker uses on a slab: stride, dilation and groups of
 * the layer, no padding (slabs are pre-padded). */
ts_conv2d_params ts_geom_worker_params(const ts_conv_geometry *g);
/* Copies slab i of x (with zero padding) into out (slab shape). */
void ts_geom_extract_slab(const ts_conv_geometry *g, const ts_tensor *x, int i, float *out);
/* Copies filter group j of w (zero filters past N) into out. */
void ts_geom_extract_filters(const ts_conv_geometry *g, const ts_tensor *w, int j, float *out);
/* Writes block (i, j) (block shape) into y [B,N,H_out,W_out], cropping
 * padding rows and channels, plus bias (nullable). */
void ts_geom_place_block(const ts_conv_geometry *g, const float *block, int i, int j,
                         const ts_tensor *bias, ts_tensor *y);

/* ---- backends ---------------------------------------------------------- */

/* The layers above coded/ provide the workers: runtime/ implements this
 * interface over its master (worker threads on inproc:// by default, or
 * processes and hosts over ipc/tcp). coded/ never sees a socket. */

typedef enum { TS_SHARE_CONV = 1, TS_SHARE_GEMM = 2 } ts_share_kind;

/* One layer's work for all workers. Worker j computes, for every input
 * share c < n_in and every deployed share d < n_shares of this layer,
 * out[j * n_in * n_shares + c * n_shares + d] = op(input[j * n_in + c],
 * share d), where op is a valid conv (TS_SHARE_CONV, params conv) or
 * share_d x input^T (TS_SHARE_GEMM: share [m_b, K], input [B, K] -> [m_b, B]). */
typedef struct {
    int layer;
    ts_share_kind kind;
    ts_conv2d_params conv;
    int n_in, n_shares;
    const ts_tensor *const *inputs; /* [n_workers * n_in]; NULL row: worker unused */
    ts_tensor **outputs;            /* [n_workers * n_in * n_shares], caller-owned */
    int need;                       /* return once this many workers answered */
    /* NULL, or [n_workers]: workers with the same group compute the same
     * task (replication), and `need` counts groups: the layer is done once
     * every group has one answer, and later answers of a covered group are
     * not taken. */
    const int *group_of;
    double deadline_s; /* fail with TS_ERR_TIMEOUT after this */
    /* results */
    int *responded; /* [n_workers], set to 1 when that worker's outputs are valid */
    int n_responded;
} ts_layer_job;

typedef struct ts_coded_backend {
    /* Workers currently able to take tasks (slots 0..n-1). */
    int (*num_workers)(void *ctx);
    /* Changes whenever the set of workers changes (a worker died or joined):
     * the coded model then re-plans and re-deploys. */
    uint64_t (*epoch)(void *ctx);
    /* Stores share `share` of `layer` on worker slot `worker`. */
    ts_status (*deploy)(void *ctx, int worker, int layer, int share, const ts_tensor *w,
                        ts_err *err);
    /* Waits until every deploy so far is stored. */
    ts_status (*deploy_wait)(void *ctx, ts_err *err);
    /* Runs a job; returns TS_ERR_UNAVAILABLE (saying how many answered)
     * if fewer than job->need workers can answer. */
    ts_status (*run)(void *ctx, ts_layer_job *job, ts_err *err);
    void *ctx;
} ts_coded_backend;

/* ---- one coded layer (coder.c) ----------------------------------------
 * The math of one coded conv or dense layer, without workers: cut, encode,
 * decode, reassemble. The coded model drives one coder per layer through a
 * backend; tests and benchmarks drive it directly (every responder set,
 * products computed in-process).
 *
 * Dense layers (ONNX Gemm, y = alpha * x * op(W) + beta * c): the filters
 * are the rows of W as [M, K], split into nB row blocks; the input x [R, K]
 * is split into nA blocks of rows (batch), padded with zero rows. */

typedef struct ts_layer_coder ts_layer_coder;

/* Scheme to code: uncoded (kA = 1, kB = n), replication (s+1 copies of
 * n/(s+1) filter groups), mds (kA = 1, kB = k), polynomial and crme
 * (kA x kB). kA, kB as planned (see planner.c). */
ts_layer_coder *ts_coder_new_conv(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                                  ts_scheme scheme, int n, int stragglers, int kA, int kB,
                                  ts_err *err);
ts_layer_coder *ts_coder_new_gemm(int64_t rows, int64_t k, int64_t m, ts_scheme scheme, int n,
                                  int stragglers, int kA, int kB, ts_err *err);
void ts_coder_free(ts_layer_coder *c); /* accepts NULL */

int ts_coder_threshold(const ts_layer_coder *c);
int ts_coder_workers(const ts_layer_coder *c);
int ts_coder_in_shares(const ts_layer_coder *c);     /* qa */
int ts_coder_filter_shares(const ts_layer_coder *c); /* qb */
ts_share_kind ts_coder_kind(const ts_layer_coder *c);
ts_conv2d_params ts_coder_worker_conv(const ts_layer_coder *c);
const ts_conv_geometry *ts_coder_geometry(const ts_layer_coder *c); /* conv only, else NULL */

/* Cuts w (conv [N, C/g, KH, KW]; gemm [M, K] when trans_b, else [K, M])
 * into filter groups and encodes worker `worker`'s filter shares into
 * out[d], d < qb (tensors of the filter share shape, caller-owned: use
 * ts_coder_new_filter_share). */
ts_tensor *ts_coder_new_filter_share(const ts_layer_coder *c, ts_err *err);
ts_status ts_coder_encode_filters(ts_layer_coder *c, const ts_tensor *w, int trans_b, int worker,
                                  ts_tensor *const *out, ts_err *err);
/* The filter groups cut from w are kept for the next worker's shares (the
 * same w pointer and trans_b); this frees them (after deploying). */
void ts_coder_forget_filters(ts_layer_coder *c);
/* Cuts x and encodes every worker's input shares (ts_coder_input). */
ts_status ts_coder_encode_input(ts_layer_coder *c, const ts_tensor *x, ts_err *err);
/* Worker j's input share c < qa, and its product slot c*qb + d. */
const ts_tensor *ts_coder_input(const ts_layer_coder *c, int worker, int share);
ts_tensor *ts_coder_product(ts_layer_coder *c, int worker, int index);
/* Computes worker j's products in this process from its filter shares
 * (filters[d], d < qb) and its input shares: what a worker does. */
ts_status ts_coder_compute(ts_layer_coder *c, int worker, const ts_tensor *const *filters,
                           ts_err *err);
/* Decodes from the products of the responders (at least threshold of
 * them) and writes y: conv y [B, N, H_out, W_out] plus bias (nullable);
 * gemm y [R, M] = alpha * (decoded x op(W)) + beta * bias (bias nullable,
 * [M] or [R, M]). cond receives the condition number of the solve. */
/* Worst 2-norm condition number of the decoding system over responder
 * sets of threshold size: all of them when there are at most max_sets,
 * else max_sets sampled ones (exhaustive says which). */
ts_status ts_coder_worst_cond(ts_layer_coder *c, int max_sets, double *worst, int *exhaustive,
                              ts_err *err);
ts_status ts_coder_decode(ts_layer_coder *c, const int *responders, int n_resp,
                          const ts_tensor *bias, float alpha, float beta, ts_tensor *y,
                          double *cond, ts_err *err);

/* ---- coded model (fcdcc.c) ------------------------------------------- */

typedef struct {
    int n_workers;
    int stragglers; /* workers that may fail to answer per layer */
    ts_scheme scheme;
    double w_comm, w_storage, w_compute; /* planner weights */
    double deadline_s;                   /* per layer, before the run fails */
    /* A layer decoded through a system with a larger condition number fails
     * (TS_ERR_NUMERIC) instead of returning an answer float32 round-off
     * may have spoiled (relative error up to about cond x 6e-8). 0: the
     * default, TS_CODED_MAX_COND; INFINITY: no limit. */
    double max_cond;
} ts_coded_opts;

#define TS_CODED_MAX_COND 1e5

ts_coded_opts ts_coded_opts_default(void);

/* Per-layer plan, as `tessera plan` prints it. */
typedef struct {
    int node;
    ts_op op;
    int kA, kB;                                /* APCP x KCCP split (dense: kA = 1) */
    int threshold;                             /* workers needed */
    int64_t bytes_in, bytes_out, bytes_stored; /* per worker */
    double flops_worker, flops_uncoded;
    double worst_cond;   /* worst-case condition number over responder sets */
    int cond_exhaustive; /* 1: over all responder sets, 0: sampled */
} ts_layer_plan;

typedef struct ts_coded_model ts_coded_model;

/* Plans every conv and Gemm layer of g (planned at `batch`), encodes and
 * deploys the filter shares to the backend, and installs the coded
 * executor on g. The graph and backend are borrowed and must outlive the
 * model. Refuses impossible plans with a message saying what would work. */
ts_coded_model *ts_coded_model_new(ts_graph *g, const ts_coded_opts *o, ts_coded_backend be,
                                   ts_err *err);
void ts_coded_model_free(ts_coded_model *m); /* also removes the executor */
int ts_coded_model_num_layers(const ts_coded_model *m);
const ts_layer_plan *ts_coded_model_layer(const ts_coded_model *m, int i);
/* Largest condition number of a system actually solved so far. */
double ts_coded_model_max_cond(const ts_coded_model *m);
/* Workers the current plan is for, and how many times the model planned
 * and deployed (1 + re-plans after the worker set changed). */
int ts_coded_model_workers(const ts_coded_model *m);
uint64_t ts_coded_model_replans(const ts_coded_model *m);

/* Plans a model without a backend (for `tessera plan`). */
ts_status ts_coded_plan_graph(ts_graph *g, const ts_coded_opts *o, ts_layer_plan **plans,
                              int *n_plans, ts_err *err);

#ifdef __cplusplus
}
#endif
#endif
