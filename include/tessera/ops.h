/*
 * ops.h: CPU kernels, forward and backward, one file per op family under
 * src/ops/ (conv.c, pool.c, dense.c, act.c, norm.c, loss.c, tensor_ops.c).
 *
 * Conventions
 * - Tensors are float32 NCHW (images) or [rows, cols] (dense).
 * - Each forward validates shapes and returns TS_ERR_SHAPE with a sentence
 *   naming the op and the shapes; it never allocates: scratch memory comes
 *   from the caller (sized by the matching *_workspace_floats function) so a
 *   planned graph runs without allocating in the steady state.
 * - Every backward ACCUMULATES (+=) into dx / dw / db, so a value consumed by
 *   two nodes (a residual) gets the sum of its gradients; the caller zeroes
 *   gradient buffers once per step. Any gradient pointer may be NULL when
 *   that gradient is not wanted.
 * - In-place calls (y == x) must work for: leaky_relu forward,
 *   batchnorm_forward_infer (the graph runs them in place to save memory).
 * - GEMM goes to OpenBLAS (cblas_sgemm); the thread count is the one set by
 *   ts_threads_set.
 */
#ifndef TESSERA_OPS_H
#define TESSERA_OPS_H

#include "tessera/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- convolution (conv.c) --------------------------------------------- */

typedef struct {
    int stride_h, stride_w;
    int pad_t, pad_l, pad_b, pad_r; /* explicit, possibly asymmetric */
    int dil_h, dil_w;
    int groups;
} ts_conv2d_params;

/* Defaults: stride 1, no padding, dilation 1, groups 1. */
ts_conv2d_params ts_conv2d_params_default(void);

/* x [N,C,H,W], w [M, C/groups, KH, KW] -> y [N, M, OH, OW]. */
ts_status ts_conv2d_out_shape(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                              ts_shape *y, ts_err *err);
/* Scratch floats needed by forward and backward (im2col of one image and
 * group; 0 for the direct 1x1 stride-1 unpadded path). */
size_t ts_conv2d_workspace_floats(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w);
/* b may be NULL (no bias). ws: at least ts_conv2d_workspace_floats floats. */
ts_status ts_conv2d_forward(const ts_conv2d_params *p, const ts_tensor *x, const ts_tensor *w,
                            const ts_tensor *b, ts_tensor *y, float *ws, ts_err *err);
ts_status ts_conv2d_backward(const ts_conv2d_params *p, const ts_tensor *x, const ts_tensor *w,
                             const ts_tensor *dy, ts_tensor *dx, ts_tensor *dw, ts_tensor *db,
                             float *ws, ts_err *err);

/* ---- pooling (pool.c) ------------------------------------------------- */

typedef struct {
    int kh, kw;
    int stride_h, stride_w;
    int pad_t, pad_l, pad_b, pad_r;
    int dil_h, dil_w;
    int ceil_mode;         /* ONNX ceil_mode */
    int count_include_pad; /* average pool only (ONNX count_include_pad) */
} ts_pool2d_params;

ts_status ts_pool2d_out_shape(const ts_pool2d_params *p, const ts_shape *x, ts_shape *y,
                              ts_err *err);
/* argmax (nullable): y->size int32 flat input indices, needed by backward. */
ts_status ts_maxpool2d_forward(const ts_pool2d_params *p, const ts_tensor *x, ts_tensor *y,
                               int32_t *argmax, ts_err *err);
ts_status ts_maxpool2d_backward(const ts_pool2d_params *p, const ts_tensor *dy,
                                const int32_t *argmax, ts_tensor *dx, ts_err *err);
ts_status ts_avgpool2d_forward(const ts_pool2d_params *p, const ts_tensor *x, ts_tensor *y,
                               ts_err *err);
ts_status ts_avgpool2d_backward(const ts_pool2d_params *p, const ts_tensor *dy, ts_tensor *dx,
                                ts_err *err);
/* [N,C,H,W] -> [N,C,1,1] */
ts_status ts_global_avgpool_forward(const ts_tensor *x, ts_tensor *y, ts_err *err);
ts_status ts_global_avgpool_backward(const ts_tensor *dy, ts_tensor *dx, ts_err *err);

/* ---- activations (act.c) ---------------------------------------------- */

/* alpha = 0 gives ReLU. In place is allowed (y == x). */
ts_status ts_leaky_relu_forward(const ts_tensor *x, float alpha, ts_tensor *y, ts_err *err);
/* Uses the forward input x (or output y: same sign) to gate dy. */
ts_status ts_leaky_relu_backward(const ts_tensor *x, float alpha, const ts_tensor *dy,
                                 ts_tensor *dx, ts_err *err);
/* Softmax along the last axis of a [rows, cols] view (ONNX opset >= 13
 * semantics with axis mapped by the caller). */
ts_status ts_softmax_forward(const ts_tensor *x, int axis, ts_tensor *y, ts_err *err);
/* Inverted dropout: y = x * mask / (1 - ratio); mask (x->size bytes) is
 * written by forward and read by backward. training = 0 copies x. */
ts_status ts_dropout_forward(const ts_tensor *x, float ratio, int training, ts_rng *rng,
                             uint8_t *mask, ts_tensor *y, ts_err *err);
ts_status ts_dropout_backward(const ts_tensor *dy, float ratio, const uint8_t *mask, ts_tensor *dx,
                              ts_err *err);

/* ---- normalization (norm.c) ------------------------------------------- */

/* Per-channel (axis 1) batch normalization of x [N,C,...]. */
ts_status ts_batchnorm_forward_infer(const ts_tensor *x, const ts_tensor *scale,
                                     const ts_tensor *bias, const ts_tensor *mean,
                                     const ts_tensor *var, float eps, ts_tensor *y, ts_err *err);
/* Training: normalizes with batch statistics, updates running stats with
 * running = momentum * running + (1 - momentum) * batch (ONNX convention;
 * running_var uses the unbiased batch variance), and saves mean and
 * 1/sqrt(var+eps) (C floats each) for backward. */
ts_status ts_batchnorm_forward_train(const ts_tensor *x, const ts_tensor *scale,
                                     const ts_tensor *bias, float eps, float momentum,
                                     ts_tensor *running_mean, ts_tensor *running_var, ts_tensor *y,
                                     float *save_mean, float *save_invstd, ts_err *err);
ts_status ts_batchnorm_backward(const ts_tensor *x, const ts_tensor *scale, const float *save_mean,
                                const float *save_invstd, const ts_tensor *dy, ts_tensor *dx,
                                ts_tensor *dscale, ts_tensor *dbias, ts_err *err);
/* Folds inference BN into the preceding conv: w [M,...] and b [M] are
 * rewritten in place (b must exist, zero if the conv had none). */
ts_status ts_batchnorm_fold(ts_tensor *w, ts_tensor *b, const ts_tensor *scale,
                            const ts_tensor *bias, const ts_tensor *mean, const ts_tensor *var,
                            float eps, ts_err *err);

/* ---- dense (dense.c) -------------------------------------------------- */

/* ONNX Gemm: Y = alpha * op(A) * op(B) + beta * C, A and B 2-D, C NULL or
 * unidirectionally broadcastable to Y ([M,N], [N], [1,N], [M,1], [1], ...). */
ts_status ts_gemm_forward(int trans_a, int trans_b, float alpha, float beta, const ts_tensor *a,
                          const ts_tensor *b, const ts_tensor *c, ts_tensor *y, ts_err *err);
ts_status ts_gemm_backward(int trans_a, int trans_b, float alpha, float beta, const ts_tensor *a,
                           const ts_tensor *b, const ts_tensor *c, const ts_tensor *dy,
                           ts_tensor *da, ts_tensor *db, ts_tensor *dc, ts_err *err);

/* ---- element-wise and layout (tensor_ops.c) --------------------------- */

/* y = a + b with ONNX multidirectional broadcasting. */
ts_status ts_add_out_shape(const ts_shape *a, const ts_shape *b, ts_shape *y, ts_err *err);
ts_status ts_add_forward(const ts_tensor *a, const ts_tensor *b, ts_tensor *y, ts_err *err);
/* Reduces dy over the broadcast dimensions into da and db. */
ts_status ts_add_backward(const ts_tensor *dy, ts_tensor *da, ts_tensor *db, ts_err *err);
/* Concatenation along axis (any axis; channels = 1 for NCHW). */
ts_status ts_concat_out_shape(const ts_shape *const *xs, int n, int axis, ts_shape *y, ts_err *err);
ts_status ts_concat_forward(const ts_tensor *const *xs, int n, int axis, ts_tensor *y, ts_err *err);
ts_status ts_concat_backward(const ts_tensor *dy, int axis, ts_tensor *const *dxs, int n,
                             ts_err *err);

/* ---- loss (loss.c) ---------------------------------------------------- */

/* Softmax cross-entropy over logits [N,K] with integer labels in [0,K).
 * Writes probabilities (nullable), returns the mean loss in *loss, and
 * dlogits (nullable) = (softmax - onehot) / N (overwritten, not
 * accumulated: it starts the backward pass). */
ts_status ts_softmax_xent(const ts_tensor *logits, const int32_t *labels, ts_tensor *probs,
                          float *loss, ts_tensor *dlogits, ts_err *err);

#ifdef __cplusplus
}
#endif
#endif
