/* act.c: LeakyRelu / Relu, Softmax (ONNX opset 13, any axis) and Dropout. */
#include "tessera/ops.h"

#include "ops_util.h"

#include <math.h>
#include <string.h>

static ts_status same_shape(const char *op, const ts_tensor *a, const ts_tensor *b, const char *an,
                            const char *bn, ts_err *err) {
    if (!ts_tensor_ok(a) || !ts_tensor_ok(b))
        return ts_errorf(err, TS_ERR_INVALID, "%s: %s or %s is NULL or has no data", op, an, bn);
    if (!ts_shape_eq(&a->s, &b->s))
        return ts_errorf(err, TS_ERR_SHAPE, "%s: %s %s and %s %s must have the same shape", op, an,
                         SHP(&a->s), bn, SHP(&b->s));
    return TS_OK;
}

/* ---- leaky relu -------------------------------------------------------- */

ts_status ts_leaky_relu_forward(const ts_tensor *x, float alpha, ts_tensor *y, ts_err *err) {
    TS_TRY(same_shape("leaky_relu", x, y, "x", "y", err));
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t i = 0; i < x->size; i++)
        yd[i] = xd[i] > 0.0f ? xd[i] : alpha * xd[i];
    return TS_OK;
}

ts_status ts_leaky_relu_backward(const ts_tensor *x, float alpha, const ts_tensor *dy,
                                 ts_tensor *dx, ts_err *err) {
    TS_TRY(same_shape("leaky_relu backward", x, dy, "x", "dy", err));
    TS_TRY(same_shape("leaky_relu backward", x, dx, "x", "dx", err));
    const float *xd = x->data, *g = dy->data;
    float *d = dx->data;
    for (int64_t i = 0; i < x->size; i++)
        d[i] += xd[i] > 0.0f ? g[i] : alpha * g[i];
    return TS_OK;
}

/* ---- softmax ----------------------------------------------------------- */

ts_status ts_softmax_forward(const ts_tensor *x, int axis, ts_tensor *y, ts_err *err) {
    TS_TRY(same_shape("softmax", x, y, "x", "y", err));
    int nd = x->s.ndim;
    if (nd < 1 || axis < -nd || axis >= nd)
        return ts_errorf(err, TS_ERR_SHAPE, "softmax: axis %d is out of range for x %s", axis,
                         SHP(&x->s));
    if (axis < 0) axis += nd;
    /* Viewed as [outer, dim, inner]; softmax runs over dim. */
    int64_t outer = 1, dim = x->s.shape[axis], inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= x->s.shape[i];
    for (int i = axis + 1; i < nd; i++)
        inner *= x->s.shape[i];
    if (x->size == 0) return TS_OK;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t in = 0; in < inner; in++) {
            const float *xp = x->data + o * dim * inner + in;
            float *yp = y->data + o * dim * inner + in;
            float mx = -INFINITY;
            for (int64_t k = 0; k < dim; k++)
                mx = fmaxf(mx, xp[k * inner]);
            double sum = 0.0;
            for (int64_t k = 0; k < dim; k++) {
                float e = expf(xp[k * inner] - mx);
                yp[k * inner] = e;
                sum += e;
            }
            float inv = (float)(1.0 / sum);
            for (int64_t k = 0; k < dim; k++)
                yp[k * inner] *= inv;
        }
    }
    return TS_OK;
}

/* ---- dropout ----------------------------------------------------------- */

static ts_status dropout_ratio_check(float ratio, ts_err *err) {
    if (!(ratio >= 0.0f && ratio < 1.0f))
        return ts_errorf(err, TS_ERR_INVALID, "dropout: ratio %g must be in [0, 1)", (double)ratio);
    return TS_OK;
}

ts_status ts_dropout_forward(const ts_tensor *x, float ratio, int training, ts_rng *rng,
                             uint8_t *mask, ts_tensor *y, ts_err *err) {
    TS_TRY(same_shape("dropout", x, y, "x", "y", err));
    TS_TRY(dropout_ratio_check(ratio, err));
    if (!training) {
        if (y->data != x->data && x->size)
            memmove(y->data, x->data, (size_t)x->size * sizeof(float));
        if (mask && x->size) memset(mask, 1, (size_t)x->size);
        return TS_OK;
    }
    if (!rng || !mask)
        return ts_errorf(err, TS_ERR_INVALID, "dropout: training needs an rng and a mask");
    float scale = 1.0f / (1.0f - ratio);
    for (int64_t i = 0; i < x->size; i++) {
        mask[i] = ts_rng_uniform(rng) >= (double)ratio;
        y->data[i] = mask[i] ? x->data[i] * scale : 0.0f;
    }
    return TS_OK;
}

ts_status ts_dropout_backward(const ts_tensor *dy, float ratio, const uint8_t *mask, ts_tensor *dx,
                              ts_err *err) {
    TS_TRY(same_shape("dropout backward", dy, dx, "dy", "dx", err));
    TS_TRY(dropout_ratio_check(ratio, err));
    if (!mask) return ts_errorf(err, TS_ERR_INVALID, "dropout backward: mask is NULL");
    float scale = 1.0f / (1.0f - ratio);
    for (int64_t i = 0; i < dy->size; i++)
        if (mask[i]) dx->data[i] += dy->data[i] * scale;
    return TS_OK;
}
