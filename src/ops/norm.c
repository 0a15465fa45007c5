/* norm.c: BatchNormalization over axis 1 of x [N, C, ...] (ONNX semantics),
 * inference, training (batch statistics), backward, and folding into a conv.
 * Per-channel sums are accumulated in double: a channel of a batch-8
 * 112x112 activation has 10^5 terms. */
#include "tessera/ops.h"

#include "ops_util.h"

#include <math.h>

typedef struct {
    int64_t n, c, inner; /* x viewed as [n, c, inner] */
} bn_geom;

static ts_status bn_geom_make(const char *op, const ts_tensor *x, bn_geom *g, ts_err *err) {
    if (!ts_tensor_ok(x)) return ts_errorf(err, TS_ERR_INVALID, "%s: x is NULL or has no data", op);
    if (x->s.ndim < 2 || x->size == 0)
        return ts_errorf(err, TS_ERR_SHAPE, "%s: x %s must be [N, C, ...] and non-empty", op,
                         SHP(&x->s));
    g->n = x->s.shape[0];
    g->c = x->s.shape[1];
    g->inner = x->size / (g->n * g->c);
    return TS_OK;
}

static ts_status bn_vec(const char *op, const char *name, const ts_tensor *v, int64_t c,
                        const ts_tensor *x, ts_err *err) {
    if (!ts_tensor_ok(v) || v->size != c)
        return ts_errorf(err, TS_ERR_SHAPE, "%s: %s %s must have C = %lld elements for x %s", op,
                         name, v ? SHP(&v->s) : "(null)", (long long)c, SHP(&x->s));
    return TS_OK;
}

static ts_status bn_same(const char *op, const char *name, const ts_tensor *t, const ts_tensor *x,
                         ts_err *err) {
    if (!ts_tensor_ok(t) || !ts_shape_eq(&t->s, &x->s))
        return ts_errorf(err, TS_ERR_SHAPE, "%s: %s %s must match x %s", op, name,
                         t ? SHP(&t->s) : "(null)", SHP(&x->s));
    return TS_OK;
}

ts_status ts_batchnorm_forward_infer(const ts_tensor *x, const ts_tensor *scale,
                                     const ts_tensor *bias, const ts_tensor *mean,
                                     const ts_tensor *var, float eps, ts_tensor *y, ts_err *err) {
    const char *op = "batchnorm";
    bn_geom g;
    TS_TRY(bn_geom_make(op, x, &g, err));
    TS_TRY(bn_vec(op, "scale", scale, g.c, x, err));
    TS_TRY(bn_vec(op, "bias", bias, g.c, x, err));
    TS_TRY(bn_vec(op, "mean", mean, g.c, x, err));
    TS_TRY(bn_vec(op, "var", var, g.c, x, err));
    TS_TRY(bn_same(op, "y", y, x, err));
    /* Per-channel affine map; y may alias x (each element is read before it is written). */
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t c = 0; c < g.c; c++) {
            float a = scale->data[c] / sqrtf(var->data[c] + eps);
            float b = bias->data[c] - mean->data[c] * a;
            const float *xp = x->data + (n * g.c + c) * g.inner;
            float *yp = y->data + (n * g.c + c) * g.inner;
            for (int64_t i = 0; i < g.inner; i++)
                yp[i] = xp[i] * a + b;
        }
    return TS_OK;
}

ts_status ts_batchnorm_forward_train(const ts_tensor *x, const ts_tensor *scale,
                                     const ts_tensor *bias, float eps, float momentum,
                                     ts_tensor *running_mean, ts_tensor *running_var, ts_tensor *y,
                                     float *save_mean, float *save_invstd, ts_err *err) {
    const char *op = "batchnorm (training)";
    bn_geom g;
    TS_TRY(bn_geom_make(op, x, &g, err));
    TS_TRY(bn_vec(op, "scale", scale, g.c, x, err));
    TS_TRY(bn_vec(op, "bias", bias, g.c, x, err));
    if (running_mean) TS_TRY(bn_vec(op, "running_mean", running_mean, g.c, x, err));
    if (running_var) TS_TRY(bn_vec(op, "running_var", running_var, g.c, x, err));
    TS_TRY(bn_same(op, "y", y, x, err));
    if (!save_mean || !save_invstd)
        return ts_errorf(err, TS_ERR_INVALID, "%s: save_mean and save_invstd must not be NULL", op);
    int64_t count = g.n * g.inner;
    for (int64_t c = 0; c < g.c; c++) {
        double s = 0.0, ss = 0.0;
        for (int64_t n = 0; n < g.n; n++) {
            const float *xp = x->data + (n * g.c + c) * g.inner;
            for (int64_t i = 0; i < g.inner; i++)
                s += xp[i];
        }
        double mu = s / (double)count;
        for (int64_t n = 0; n < g.n; n++) {
            const float *xp = x->data + (n * g.c + c) * g.inner;
            for (int64_t i = 0; i < g.inner; i++) {
                double d = xp[i] - mu;
                ss += d * d;
            }
        }
        double var = ss / (double)count;
        save_mean[c] = (float)mu;
        save_invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
        if (running_mean)
            running_mean->data[c] =
                momentum * running_mean->data[c] + (1.0f - momentum) * (float)mu;
        if (running_var) {
            double unbiased = count > 1 ? ss / (double)(count - 1) : var;
            running_var->data[c] =
                momentum * running_var->data[c] + (1.0f - momentum) * (float)unbiased;
        }
    }
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t c = 0; c < g.c; c++) {
            float a = scale->data[c] * save_invstd[c];
            float b = bias->data[c] - save_mean[c] * a;
            const float *xp = x->data + (n * g.c + c) * g.inner;
            float *yp = y->data + (n * g.c + c) * g.inner;
            for (int64_t i = 0; i < g.inner; i++)
                yp[i] = xp[i] * a + b;
        }
    return TS_OK;
}

ts_status ts_batchnorm_backward(const ts_tensor *x, const ts_tensor *scale, const float *save_mean,
                                const float *save_invstd, const ts_tensor *dy, ts_tensor *dx,
                                ts_tensor *dscale, ts_tensor *dbias, ts_err *err) {
    const char *op = "batchnorm backward";
    bn_geom g;
    TS_TRY(bn_geom_make(op, x, &g, err));
    TS_TRY(bn_vec(op, "scale", scale, g.c, x, err));
    TS_TRY(bn_same(op, "dy", dy, x, err));
    if (dx) TS_TRY(bn_same(op, "dx", dx, x, err));
    if (dscale) TS_TRY(bn_vec(op, "dscale", dscale, g.c, x, err));
    if (dbias) TS_TRY(bn_vec(op, "dbias", dbias, g.c, x, err));
    if (!save_mean || !save_invstd)
        return ts_errorf(err, TS_ERR_INVALID, "%s: save_mean and save_invstd must not be NULL", op);
    double count = (double)(g.n * g.inner);
    for (int64_t c = 0; c < g.c; c++) {
        double mu = save_mean[c], inv = save_invstd[c];
        double sdy = 0.0, sdyxh = 0.0; /* sum(dy), sum(dy * xhat) */
        for (int64_t n = 0; n < g.n; n++) {
            const float *xp = x->data + (n * g.c + c) * g.inner;
            const float *gp = dy->data + (n * g.c + c) * g.inner;
            for (int64_t i = 0; i < g.inner; i++) {
                sdy += gp[i];
                sdyxh += gp[i] * ((xp[i] - mu) * inv);
            }
        }
        if (dscale) dscale->data[c] += (float)sdyxh;
        if (dbias) dbias->data[c] += (float)sdy;
        if (!dx) continue;
        /* dx = scale*inv/m * (m*dy - sum(dy) - xhat*sum(dy*xhat)) */
        double k = scale->data[c] * inv / count;
        for (int64_t n = 0; n < g.n; n++) {
            const float *xp = x->data + (n * g.c + c) * g.inner;
            const float *gp = dy->data + (n * g.c + c) * g.inner;
            float *dp = dx->data + (n * g.c + c) * g.inner;
            for (int64_t i = 0; i < g.inner; i++) {
                double xh = (xp[i] - mu) * inv;
                dp[i] += (float)(k * (count * gp[i] - sdy - xh * sdyxh));
            }
        }
    }
    return TS_OK;
}

ts_status ts_batchnorm_fold(ts_tensor *w, ts_tensor *b, const ts_tensor *scale,
                            const ts_tensor *bias, const ts_tensor *mean, const ts_tensor *var,
                            float eps, ts_err *err) {
    const char *op = "batchnorm fold";
    if (!ts_tensor_ok(w) || w->s.ndim < 1 || w->size == 0)
        return ts_errorf(err, TS_ERR_SHAPE, "%s: w %s must be [M, ...] and non-empty", op,
                         w ? SHP(&w->s) : "(null)");
    int64_t m = w->s.shape[0], per = w->size / m;
    TS_TRY(bn_vec(op, "b", b, m, w, err));
    TS_TRY(bn_vec(op, "scale", scale, m, w, err));
    TS_TRY(bn_vec(op, "bias", bias, m, w, err));
    TS_TRY(bn_vec(op, "mean", mean, m, w, err));
    TS_TRY(bn_vec(op, "var", var, m, w, err));
    for (int64_t i = 0; i < m; i++) {
        double a = scale->data[i] / sqrt((double)var->data[i] + (double)eps);
        float *wp = w->data + i * per;
        for (int64_t j = 0; j < per; j++)
            wp[j] = (float)(wp[j] * a);
        b->data[i] = (float)((b->data[i] - mean->data[i]) * a + bias->data[i]);
    }
    return TS_OK;
}
