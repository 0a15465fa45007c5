/* pool.c: MaxPool, AveragePool and GlobalAveragePool (ONNX semantics).
 *
 * Window taps are iy = oy*stride - pad_t + i*dil. Max pooling treats padding
 * as -inf (so a pad never wins); average pooling divides by the number of
 * real input taps when count_include_pad = 0, else by the taps inside the
 * padded extent [-pad_t, H + pad_b) -- a ceil_mode window hanging past the
 * explicit padding does not count the overhang (ONNX reference and PyTorch
 * agree on this).
 */
#include "tessera/ops.h"

#include "ops_util.h"

#include <math.h>
#include <string.h>

typedef struct {
    int64_t n, c, h, w, oh, ow;
} pool_geom;

/* ONNX output size for one spatial dim; 0 or less means no valid window.
 * span may be negative: in ceil_mode a window hanging past the padding on
 * both sides still yields one output (ONNX reference behaviour). */
static int64_t pool_out_dim(int64_t in, int pad0, int pad1, int k, int stride, int dil,
                            int ceil_mode) {
    int64_t span = in + pad0 + pad1 - ((int64_t)(k - 1) * dil + 1);
    int64_t q = span / stride, r = span % stride; /* C truncates toward zero */
    int64_t fl = q - (r < 0), ce = q + (r > 0);
    if (!ceil_mode) return fl + 1;
    int64_t out = ce + 1;
    /* The last window must start inside the input or the left padding. */
    if ((out - 1) * stride >= in + pad0) out--;
    return out;
}

static ts_status pool_params_check(const ts_pool2d_params *p, ts_err *err) {
    if (!p) return ts_errorf(err, TS_ERR_INVALID, "pool2d: params is NULL");
    if (p->kh < 1 || p->kw < 1 || p->stride_h < 1 || p->stride_w < 1 || p->dil_h < 1 ||
        p->dil_w < 1)
        return ts_errorf(err, TS_ERR_INVALID,
                         "pool2d: kernel %dx%d, strides (%d, %d) and dilations (%d, %d) must "
                         "be >= 1",
                         p->kh, p->kw, p->stride_h, p->stride_w, p->dil_h, p->dil_w);
    if (p->pad_t < 0 || p->pad_l < 0 || p->pad_b < 0 || p->pad_r < 0)
        return ts_errorf(err, TS_ERR_INVALID, "pool2d: pads (%d, %d, %d, %d) must be >= 0",
                         p->pad_t, p->pad_l, p->pad_b, p->pad_r);
    return TS_OK;
}

static ts_status pool_geom_make(const ts_pool2d_params *p, const ts_shape *x, pool_geom *g,
                                ts_err *err) {
    TS_TRY(pool_params_check(p, err));
    if (!x) return ts_errorf(err, TS_ERR_INVALID, "pool2d: x shape is NULL");
    if (x->ndim != 4 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return ts_errorf(err, TS_ERR_SHAPE, "pool2d: x %s must be 4-D NCHW with positive dims",
                         SHP(x));
    g->n = x->shape[0], g->c = x->shape[1], g->h = x->shape[2], g->w = x->shape[3];
    g->oh = pool_out_dim(g->h, p->pad_t, p->pad_b, p->kh, p->stride_h, p->dil_h, p->ceil_mode);
    g->ow = pool_out_dim(g->w, p->pad_l, p->pad_r, p->kw, p->stride_w, p->dil_w, p->ceil_mode);
    if (g->oh < 1 || g->ow < 1)
        return ts_errorf(err, TS_ERR_SHAPE,
                         "pool2d: kernel %dx%d (dilation %d, %d) does not fit padded x %s", p->kh,
                         p->kw, p->dil_h, p->dil_w, SHP(x));
    return TS_OK;
}

ts_status ts_pool2d_out_shape(const ts_pool2d_params *p, const ts_shape *x, ts_shape *y,
                              ts_err *err) {
    pool_geom g;
    TS_TRY(pool_geom_make(p, x, &g, err));
    *y = ts_shape4(g.n, g.c, g.oh, g.ow);
    return TS_OK;
}

static ts_status pool_check(const char *op, const ts_pool2d_params *p, const ts_tensor *x,
                            const ts_tensor *y, const char *xname, const char *yname, pool_geom *g,
                            ts_err *err) {
    if (!ts_tensor_ok(x) || !ts_tensor_ok(y))
        return ts_errorf(err, TS_ERR_INVALID, "%s: %s or %s is NULL or has no data", op, xname,
                         yname);
    TS_TRY(pool_geom_make(p, &x->s, g, err));
    ts_shape want = ts_shape4(g->n, g->c, g->oh, g->ow);
    if (!ts_shape_eq(&y->s, &want))
        return ts_errorf(err, TS_ERR_SHAPE, "%s: %s %s must be %s for %s %s", op, yname, SHP(&y->s),
                         SHP(&want), xname, SHP(&x->s));
    return TS_OK;
}

/* Taps i in [*lo, *hi) of a window starting at `start` land inside [0, n). */
static void valid_taps(int64_t start, int k, int dil, int64_t n, int *lo, int *hi) {
    int64_t a = start >= 0 ? 0 : (-start + dil - 1) / dil;
    int64_t b = n - start <= 0 ? 0 : (n - start - 1) / dil + 1;
    if (b > k) b = k;
    if (a > b) a = b;
    *lo = (int)a;
    *hi = (int)b;
}

/* ---- max pool ---------------------------------------------------------- */

/* Same rule as the general loop: the first maximum in window order wins
 * ties, and a NaN replaces a number. */
static inline void take_max(float v, int64_t at, float *best, int64_t *best_at) {
    if (v > *best || (isnan(v) && !isnan(*best))) *best = v, *best_at = at;
}

/* The common 2x2 stride-2 window with no padding or dilation, where every
 * window lies inside the input: no per-window bounds work (this loop is a
 * fifth of training time in the general form). */
static int maxpool_2x2_fits(const ts_pool2d_params *p, const pool_geom *g) {
    return p->kh == 2 && p->kw == 2 && p->stride_h == 2 && p->stride_w == 2 && p->dil_h == 1 &&
           p->dil_w == 1 && p->pad_t == 0 && p->pad_l == 0 && 2 * g->oh <= g->h &&
           2 * g->ow <= g->w;
}

static void maxpool_2x2(const pool_geom *g, const float *x, float *y, int32_t *argmax) {
    for (int64_t plane = 0; plane < g->n * g->c; plane++) {
        const float *xp = x + plane * g->h * g->w;
        int64_t base = plane * g->h * g->w;
        for (int64_t oy = 0; oy < g->oh; oy++) {
            const float *r0 = xp + 2 * oy * g->w, *r1 = r0 + g->w;
            float *yp = y + (plane * g->oh + oy) * g->ow;
            int32_t *ap = argmax ? argmax + (plane * g->oh + oy) * g->ow : NULL;
            for (int64_t ox = 0; ox < g->ow; ox++) {
                int64_t at0 = 2 * oy * g->w + 2 * ox;
                float best = r0[2 * ox];
                int64_t at = at0;
                take_max(r0[2 * ox + 1], at0 + 1, &best, &at);
                take_max(r1[2 * ox], at0 + g->w, &best, &at);
                take_max(r1[2 * ox + 1], at0 + g->w + 1, &best, &at);
                yp[ox] = best;
                if (ap) ap[ox] = (int32_t)(base + at);
            }
        }
    }
}

ts_status ts_maxpool2d_forward(const ts_pool2d_params *p, const ts_tensor *x, ts_tensor *y,
                               int32_t *argmax, ts_err *err) {
    pool_geom g;
    TS_TRY(pool_check("maxpool2d", p, x, y, "x", "y", &g, err));
    if (argmax && x->size > INT32_MAX)
        return ts_errorf(err, TS_ERR_SHAPE, "maxpool2d: x %s is too large for int32 argmax",
                         SHP(&x->s));
    if (maxpool_2x2_fits(p, &g)) {
        maxpool_2x2(&g, x->data, y->data, argmax);
        return TS_OK;
    }
    for (int64_t plane = 0; plane < g.n * g.c; plane++) {
        const float *xp = x->data + plane * g.h * g.w;
        float *yp = y->data + plane * g.oh * g.ow;
        int32_t *ap = argmax ? argmax + plane * g.oh * g.ow : NULL;
        for (int64_t oy = 0; oy < g.oh; oy++) {
            int64_t y0 = oy * p->stride_h - p->pad_t;
            int ilo, ihi;
            valid_taps(y0, p->kh, p->dil_h, g.h, &ilo, &ihi);
            for (int64_t ox = 0; ox < g.ow; ox++) {
                int64_t x0 = ox * p->stride_w - p->pad_l;
                int jlo, jhi;
                valid_taps(x0, p->kw, p->dil_w, g.w, &jlo, &jhi);
                float best = -INFINITY;
                int64_t best_at = -1;
                for (int i = ilo; i < ihi; i++) {
                    const float *row = xp + (y0 + (int64_t)i * p->dil_h) * g.w;
                    for (int j = jlo; j < jhi; j++) {
                        int64_t ix = x0 + (int64_t)j * p->dil_w;
                        float v = row[ix];
                        /* First maximum wins ties; a NaN propagates like NumPy's max. */
                        if (best_at < 0 || v > best || (isnan(v) && !isnan(best))) {
                            best = v;
                            best_at = (row - xp) + ix;
                        }
                    }
                }
                yp[oy * g.ow + ox] = best;
                if (ap)
                    ap[oy * g.ow + ox] = best_at < 0 ? -1 : (int32_t)(plane * g.h * g.w + best_at);
            }
        }
    }
    return TS_OK;
}

ts_status ts_maxpool2d_backward(const ts_pool2d_params *p, const ts_tensor *dy,
                                const int32_t *argmax, ts_tensor *dx, ts_err *err) {
    pool_geom g;
    TS_TRY(pool_check("maxpool2d backward", p, dx, dy, "dx", "dy", &g, err));
    if (!argmax) return ts_errorf(err, TS_ERR_INVALID, "maxpool2d backward: argmax is NULL");
    for (int64_t i = 0; i < dy->size; i++) {
        int32_t at = argmax[i];
        if (at < 0) continue; /* window saw only padding: no input to credit */
        if ((int64_t)at >= dx->size)
            return ts_errorf(err, TS_ERR_INVALID,
                             "maxpool2d backward: argmax[%lld] = %d is outside dx %s", (long long)i,
                             (int)at, SHP(&dx->s));
        dx->data[at] += dy->data[i];
    }
    return TS_OK;
}

/* ---- average pool ------------------------------------------------------ */

/* Taps of a window inside the padded extent [-pad0, n + pad1). */
static int padded_taps(int64_t start, int k, int dil, int64_t n, int pad0, int pad1) {
    int lo, hi;
    valid_taps(start + pad0, k, dil, n + pad0 + pad1, &lo, &hi);
    return hi - lo;
}

/* Divisor of the window at (y0, x0), given its real-input tap counts. */
static float avg_divisor(const ts_pool2d_params *p, const pool_geom *g, int64_t y0, int64_t x0,
                         int real_h, int real_w) {
    if (!p->count_include_pad) return (float)(real_h * real_w);
    int th = padded_taps(y0, p->kh, p->dil_h, g->h, p->pad_t, p->pad_b);
    int tw = padded_taps(x0, p->kw, p->dil_w, g->w, p->pad_l, p->pad_r);
    return (float)(th * tw);
}

ts_status ts_avgpool2d_forward(const ts_pool2d_params *p, const ts_tensor *x, ts_tensor *y,
                               ts_err *err) {
    pool_geom g;
    TS_TRY(pool_check("avgpool2d", p, x, y, "x", "y", &g, err));
    for (int64_t plane = 0; plane < g.n * g.c; plane++) {
        const float *xp = x->data + plane * g.h * g.w;
        float *yp = y->data + plane * g.oh * g.ow;
        for (int64_t oy = 0; oy < g.oh; oy++) {
            int64_t y0 = oy * p->stride_h - p->pad_t;
            int ilo, ihi;
            valid_taps(y0, p->kh, p->dil_h, g.h, &ilo, &ihi);
            for (int64_t ox = 0; ox < g.ow; ox++) {
                int64_t x0 = ox * p->stride_w - p->pad_l;
                int jlo, jhi;
                valid_taps(x0, p->kw, p->dil_w, g.w, &jlo, &jhi);
                float sum = 0.0f;
                for (int i = ilo; i < ihi; i++) {
                    const float *row = xp + (y0 + (int64_t)i * p->dil_h) * g.w + x0;
                    for (int j = jlo; j < jhi; j++)
                        sum += row[(int64_t)j * p->dil_w];
                }
                float d = avg_divisor(p, &g, y0, x0, ihi - ilo, jhi - jlo);
                /* A window of pure padding (count_include_pad = 0) averages nothing. */
                yp[oy * g.ow + ox] = d > 0 ? sum / d : 0.0f;
            }
        }
    }
    return TS_OK;
}

ts_status ts_avgpool2d_backward(const ts_pool2d_params *p, const ts_tensor *dy, ts_tensor *dx,
                                ts_err *err) {
    pool_geom g;
    TS_TRY(pool_check("avgpool2d backward", p, dx, dy, "dx", "dy", &g, err));
    for (int64_t plane = 0; plane < g.n * g.c; plane++) {
        float *dxp = dx->data + plane * g.h * g.w;
        const float *dyp = dy->data + plane * g.oh * g.ow;
        for (int64_t oy = 0; oy < g.oh; oy++) {
            int64_t y0 = oy * p->stride_h - p->pad_t;
            int ilo, ihi;
            valid_taps(y0, p->kh, p->dil_h, g.h, &ilo, &ihi);
            for (int64_t ox = 0; ox < g.ow; ox++) {
                int64_t x0 = ox * p->stride_w - p->pad_l;
                int jlo, jhi;
                valid_taps(x0, p->kw, p->dil_w, g.w, &jlo, &jhi);
                float d = avg_divisor(p, &g, y0, x0, ihi - ilo, jhi - jlo);
                if (d <= 0) continue;
                float v = dyp[oy * g.ow + ox] / d;
                for (int i = ilo; i < ihi; i++) {
                    float *row = dxp + (y0 + (int64_t)i * p->dil_h) * g.w + x0;
                    for (int j = jlo; j < jhi; j++)
                        row[(int64_t)j * p->dil_w] += v;
                }
            }
        }
    }
    return TS_OK;
}

/* ---- global average pool ----------------------------------------------- */

/* x [N, C, d1, ...] -> y [N, C, 1, ...]: y's shape must match exactly. */
static ts_status gap_check(const char *op, const ts_tensor *x, const ts_tensor *y,
                           const char *xname, const char *yname, ts_err *err) {
    if (!ts_tensor_ok(x) || !ts_tensor_ok(y))
        return ts_errorf(err, TS_ERR_INVALID, "%s: %s or %s is NULL or has no data", op, xname,
                         yname);
    ts_shape want = x->s;
    for (int i = 2; i < want.ndim; i++)
        want.shape[i] = 1;
    if (x->s.ndim < 3 || x->size == 0 || !ts_shape_eq(&y->s, &want))
        return ts_errorf(err, TS_ERR_SHAPE,
                         "%s: %s %s must be [N, C, spatial...] and %s %s "
                         "must be %s",
                         op, xname, SHP(&x->s), yname, SHP(&y->s), SHP(&want));
    return TS_OK;
}

ts_status ts_global_avgpool_forward(const ts_tensor *x, ts_tensor *y, ts_err *err) {
    TS_TRY(gap_check("global_avgpool", x, y, "x", "y", err));
    int64_t planes = y->size, hw = x->size / planes;
    for (int64_t i = 0; i < planes; i++) {
        const float *xp = x->data + i * hw;
        double s = 0.0;
        for (int64_t j = 0; j < hw; j++)
            s += xp[j];
        y->data[i] = (float)(s / (double)hw);
    }
    return TS_OK;
}

ts_status ts_global_avgpool_backward(const ts_tensor *dy, ts_tensor *dx, ts_err *err) {
    TS_TRY(gap_check("global_avgpool backward", dx, dy, "dx", "dy", err));
    int64_t planes = dy->size, hw = dx->size / planes;
    for (int64_t i = 0; i < planes; i++) {
        float v = dy->data[i] / (float)hw;
        float *dxp = dx->data + i * hw;
        for (int64_t j = 0; j < hw; j++)
            dxp[j] += v;
    }
    return TS_OK;
}
