/* conv.c: 2-D convolution (ONNX Conv semantics), forward and backward.
 *
 * Forward is im2col + one cblas_sgemm per image and group. The im2col buffer
 * is built in chunks of whole output rows, sized so that one chunk stays in
 * the L2 cache: im2col writes it, sgemm reads it back from cache instead of
 * DRAM (a full-image im2col of VGG's first layers is >100 MB). A 1x1,
 * stride-1, unpadded conv needs no im2col at all: the input image already is
 * the [C, H*W] matrix, so sgemm runs on it directly.
 *
 * Backward: dw += dy * col^T (sgemm over the same chunks), dx via
 * col = w^T * dy into the chunk buffer, then col2im (scatter-add).
 */
#include "tessera/ops.h"

#include "conv_internal.h"
#include "ops_util.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* Target size of one im2col chunk in floats (256 Ki floats = 1 MiB, about
 * one L2). Measured with bench_conv: smaller chunks starve sgemm of columns,
 * larger ones spill the chunk to L3/DRAM between im2col and sgemm. */
#define TS_CONV_CHUNK_FLOATS (256 * 1024)
/* Below this many output columns per chunk sgemm loses efficiency, so a
 * chunk never has fewer (unless the image has fewer). */
#define TS_CONV_MIN_CHUNK_COLS 256

/* ---- BLAS kernel selection -------------------------------------------- */

/* Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know AMD Zen 4/5 and
 * falls back to its AVX2 "Haswell" kernels on them, although the CPU has
 * AVX-512: sgemm runs at half speed (measured on the dev machine: 103 vs
 * 196 GFLOP/s for a 2048^3 sgemm on one core). When the user has not chosen
 * a core type (OPENBLAS_CORETYPE) and the CPU has the AVX-512 subsets the
 * SkylakeX kernels use, we redo OpenBLAS's own dynamic selection with
 * OPENBLAS_CORETYPE=SkylakeX -- exactly what setting the variable before
 * start-up would do. This runs as a constructor: after OpenBLAS's own
 * constructor (libtessera's users link it, so it initialises first) and
 * before main(), when no BLAS call can be in flight. The symbols are weak so
 * a BLAS without dynamic dispatch simply skips this. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));

__attribute__((constructor)) static void ts_conv_select_blas_kernels(void) {
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || !openblas_get_corename) return;
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *core = openblas_get_corename();
    if (!core || (strcmp(core, "Haswell") && strcmp(core, "Zen"))) return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return;
    if (setenv("OPENBLAS_CORETYPE", "SkylakeX", 0) != 0) return;
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE"); /* child processes make their own choice */
}

ts_conv2d_params ts_conv2d_params_default(void) {
    ts_conv2d_params p;
    memset(&p, 0, sizeof p);
    p.stride_h = p.stride_w = 1;
    p.dil_h = p.dil_w = 1;
    p.groups = 1;
    return p;
}

static ts_status conv_params_check(const ts_conv2d_params *p, ts_err *err) {
    if (!p) return ts_errorf(err, TS_ERR_INVALID, "conv2d: params is NULL");
    if (p->stride_h < 1 || p->stride_w < 1 || p->dil_h < 1 || p->dil_w < 1 || p->groups < 1)
        return ts_errorf(err, TS_ERR_INVALID,
                         "conv2d: strides (%d, %d), dilations (%d, %d) and groups (%d) must be "
                         ">= 1",
                         p->stride_h, p->stride_w, p->dil_h, p->dil_w, p->groups);
    if (p->pad_t < 0 || p->pad_l < 0 || p->pad_b < 0 || p->pad_r < 0)
        return ts_errorf(err, TS_ERR_INVALID, "conv2d: pads (%d, %d, %d, %d) must be >= 0",
                         p->pad_t, p->pad_l, p->pad_b, p->pad_r);
    return TS_OK;
}

static int64_t chunk_rows_for(int64_t k, int64_t oh, int64_t ow) {
    int64_t rows = TS_CONV_CHUNK_FLOATS / (k * ow);
    int64_t min_rows = (TS_CONV_MIN_CHUNK_COLS + ow - 1) / ow;
    if (rows < min_rows) rows = min_rows;
    if (rows < 1) rows = 1;
    if (rows > oh) rows = oh;
    return rows;
}

static ts_status conv_geom_make(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                                conv_geom *g, ts_err *err) {
    TS_TRY(conv_params_check(p, err));
    if (!x || !w) return ts_errorf(err, TS_ERR_INVALID, "conv2d: x or w shape is NULL");
    if (x->ndim != 4 || w->ndim != 4)
        return ts_errorf(err, TS_ERR_SHAPE, "conv2d: x %s and w %s must both be 4-D", SHP(x),
                         SHP(w));
    for (int i = 0; i < 4; i++)
        if (x->shape[i] < 1 || w->shape[i] < 1)
            return ts_errorf(err, TS_ERR_SHAPE, "conv2d: x %s and w %s must have positive dims",
                             SHP(x), SHP(w));
    memset(g, 0, sizeof *g);
    g->n = x->shape[0], g->c = x->shape[1], g->h = x->shape[2], g->w = x->shape[3];
    g->m = w->shape[0], g->kh = w->shape[2], g->kw = w->shape[3];
    g->groups = p->groups;
    if (g->c % g->groups || g->m % g->groups || w->shape[1] * g->groups != g->c)
        return ts_errorf(err, TS_ERR_SHAPE,
                         "conv2d: x %s and w %s do not agree with groups=%d (need C = "
                         "w[1]*groups and M divisible by groups)",
                         SHP(x), SHP(w), p->groups);
    g->cg = g->c / g->groups;
    g->mg = g->m / g->groups;
    int64_t ekh = (g->kh - 1) * p->dil_h + 1, ekw = (g->kw - 1) * p->dil_w + 1;
    int64_t ph = g->h + p->pad_t + p->pad_b, pw = g->w + p->pad_l + p->pad_r;
    if (ekh > ph || ekw > pw)
        return ts_errorf(err, TS_ERR_SHAPE,
                         "conv2d: dilated kernel %lldx%lld of w %s is larger than padded input "
                         "%lldx%lld of x %s",
                         (long long)ekh, (long long)ekw, SHP(w), (long long)ph, (long long)pw,
                         SHP(x));
    g->oh = (ph - ekh) / p->stride_h + 1;
    g->ow = (pw - ekw) / p->stride_w + 1;
    g->k = g->cg * g->kh * g->kw;
    g->p = g->oh * g->ow;
    g->direct = g->kh == 1 && g->kw == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_t == 0 &&
                p->pad_l == 0 && p->pad_b == 0 && p->pad_r == 0;
    g->chunk_rows = chunk_rows_for(g->k, g->oh, g->ow);
    return TS_OK;
}

ts_status ts_conv2d_out_shape(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                              ts_shape *y, ts_err *err) {
    conv_geom g;
    TS_TRY(conv_geom_make(p, x, w, &g, err));
    *y = ts_shape4(g.n, g.m, g.oh, g.ow);
    return TS_OK;
}

static ts_conv_path default_path(const conv_geom *g, const ts_conv2d_params *p) {
    if (g->direct) return TS_CONV_PATH_DIRECT;
    if (ts_conv_winograd_preferred(g, p)) return TS_CONV_PATH_WINOGRAD;
    if (ts_conv_direct_preferred(g, p)) return TS_CONV_PATH_TAPS;
    if (ts_conv_fast_usable(g)) return TS_CONV_PATH_PACKED;
    return TS_CONV_PATH_IM2COL;
}

/* Scratch of one forward path (0 if the path does not apply). */
static size_t path_workspace_floats(ts_conv_path path, const conv_geom *g,
                                    const ts_conv2d_params *p) {
    switch (path) {
    case TS_CONV_PATH_DIRECT: return 0;
    case TS_CONV_PATH_IM2COL: return g->direct ? 0 : (size_t)(g->k * g->chunk_rows * g->ow);
    case TS_CONV_PATH_PACKED: return ts_conv_fast_workspace_floats(g);
    case TS_CONV_PATH_WINOGRAD: return ts_conv_winograd_workspace_floats(g, p);
    case TS_CONV_PATH_TAPS: return ts_conv_direct_workspace_floats(g, p);
    case TS_CONV_PATH_COUNT: break;
    }
    return 0;
}

size_t ts_conv2d_workspace_floats(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w) {
    conv_geom g;
    if (conv_geom_make(p, x, w, &g, NULL) != TS_OK || g.direct) return 0;
    /* The im2col band serves backward (and is the fallback forward). */
    size_t band = path_workspace_floats(TS_CONV_PATH_IM2COL, &g, p);
    size_t fwd = path_workspace_floats(default_path(&g, p), &g, p);
    return band > fwd ? band : fwd;
}

size_t ts_conv_path_workspace_floats(ts_conv_path path, const ts_conv2d_params *p,
                                     const ts_shape *x, const ts_shape *w) {
    conv_geom g;
    if (conv_geom_make(p, x, w, &g, NULL) != TS_OK) return 0;
    return path_workspace_floats(path, &g, p);
}

/* ---- im2col / col2im over a band of output rows ------------------------ */

/* For kernel column offset `off` (kw * dil - pad_l), the output columns
 * [*lo, *hi) read input columns inside [0, w); the others read padding. */
static void valid_cols(int64_t off, int64_t stride, int64_t w, int64_t ow, int64_t *lo,
                       int64_t *hi) {
    int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int64_t b = w - off <= 0 ? 0 : (w - off - 1) / stride + 1;
    if (b > ow) b = ow;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* col[(c*kh+i)*kw+j][r*ow + ox] = x[c][oy*sh - pt + i*dh][ox*sw - pl + j*dw]
 * for output rows oy in [oy0, oy0+rows), zero where the tap is padding. */
static void im2col_band(const conv_geom *g, const ts_conv2d_params *p, const float *x, int64_t oy0,
                        int64_t rows, float *col) {
    const int64_t ncols = rows * g->ow;
    for (int64_t c = 0; c < g->cg; c++) {
        const float *xc = x + c * g->h * g->w;
        for (int64_t i = 0; i < g->kh; i++) {
            for (int64_t j = 0; j < g->kw; j++) {
                float *dst = col + ((c * g->kh + i) * g->kw + j) * ncols;
                int64_t off = j * p->dil_w - p->pad_l, lo, hi;
                valid_cols(off, p->stride_w, g->w, g->ow, &lo, &hi);
                for (int64_t r = 0; r < rows; r++, dst += g->ow) {
                    int64_t iy = (oy0 + r) * p->stride_h - p->pad_t + i * p->dil_h;
                    if (iy < 0 || iy >= g->h) {
                        memset(dst, 0, (size_t)g->ow * sizeof *dst);
                        continue;
                    }
                    /* off + lo * stride >= 0 by construction of lo. */
                    const float *src = xc + iy * g->w + off + lo * p->stride_w;
                    for (int64_t ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    if (p->stride_w == 1) {
                        memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof *dst);
                    } else {
                        const int64_t s = p->stride_w;
                        for (int64_t ox = lo; ox < hi; ox++)
                            dst[ox] = src[(ox - lo) * s];
                    }
                    for (int64_t ox = hi; ox < g->ow; ox++)
                        dst[ox] = 0.0f;
                }
            }
        }
    }
}

/* Adjoint of im2col_band: dx[...] += col[...] for every non-padding tap. */
static void col2im_band(const conv_geom *g, const ts_conv2d_params *p, const float *col,
                        int64_t oy0, int64_t rows, float *dx) {
    const int64_t ncols = rows * g->ow;
    for (int64_t c = 0; c < g->cg; c++) {
        float *dxc = dx + c * g->h * g->w;
        for (int64_t i = 0; i < g->kh; i++) {
            for (int64_t j = 0; j < g->kw; j++) {
                const float *src = col + ((c * g->kh + i) * g->kw + j) * ncols;
                int64_t off = j * p->dil_w - p->pad_l, lo, hi;
                valid_cols(off, p->stride_w, g->w, g->ow, &lo, &hi);
                const int64_t s = p->stride_w;
                for (int64_t r = 0; r < rows; r++, src += g->ow) {
                    int64_t iy = (oy0 + r) * p->stride_h - p->pad_t + i * p->dil_h;
                    if (iy < 0 || iy >= g->h) continue;
                    float *d = dxc + iy * g->w + off + lo * s;
                    for (int64_t ox = lo; ox < hi; ox++)
                        d[(ox - lo) * s] += src[ox];
                }
            }
        }
    }
}

/* ---- forward ----------------------------------------------------------- */

static ts_status conv_check_tensors(const ts_conv2d_params *p, const ts_tensor *x,
                                    const ts_tensor *w, conv_geom *g, ts_err *err) {
    if (!ts_tensor_ok(x) || !ts_tensor_ok(w))
        return ts_errorf(err, TS_ERR_INVALID, "conv2d: x or w is NULL or has no data");
    return conv_geom_make(p, &x->s, &w->s, g, err);
}

static ts_status conv_check_out(const char *what, const conv_geom *g, const ts_tensor *t,
                                const ts_tensor *x, const ts_tensor *w, ts_err *err) {
    ts_shape want = ts_shape4(g->n, g->m, g->oh, g->ow);
    if (!ts_tensor_ok(t) || !ts_shape_eq(&t->s, &want))
        return ts_errorf(err, TS_ERR_SHAPE, "conv2d: %s %s must be %s for x %s and w %s", what,
                         t ? SHP(&t->s) : "(null)", SHP(&want), SHP(&x->s), SHP(&w->s));
    return TS_OK;
}

static ts_status conv_check_bias(const conv_geom *g, const ts_tensor *b, const char *what,
                                 ts_err *err) {
    if (!b) return TS_OK;
    if (!ts_tensor_ok(b) || b->size != g->m)
        return ts_errorf(err, TS_ERR_SHAPE, "conv2d: %s %s must have M = %lld elements", what,
                         SHP(&b->s), (long long)g->m);
    return TS_OK;
}

/* y rows [Mg, P] of one group start as the bias (or zero). */
static void fill_bias(float *y, const float *b, int64_t mg, int64_t p) {
    for (int64_t m = 0; m < mg; m++) {
        float v = b ? b[m] : 0.0f;
        float *row = y + m * p;
        for (int64_t i = 0; i < p; i++)
            row[i] = v;
    }
}

static void conv_forward_group(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                               const float *w, const float *b, float *y, float *ws) {
    if (g->direct) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->mg, (int)g->p, (int)g->k,
                    1.0f, w, (int)g->k, x, (int)g->p, 0.0f, y, (int)g->p);
        if (b)
            for (int64_t m = 0; m < g->mg; m++) {
                float *row = y + m * g->p;
                for (int64_t i = 0; i < g->p; i++)
                    row[i] += b[m];
            }
        return;
    }
    fill_bias(y, b, g->mg, g->p);
    for (int64_t oy0 = 0; oy0 < g->oh; oy0 += g->chunk_rows) {
        int64_t rows = g->oh - oy0 < g->chunk_rows ? g->oh - oy0 : g->chunk_rows;
        int64_t ncols = rows * g->ow;
        im2col_band(g, p, x, oy0, rows, ws);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->mg, (int)ncols, (int)g->k,
                    1.0f, w, (int)g->k, ws, (int)ncols, 1.0f, y + oy0 * g->ow, (int)g->p);
    }
}

static int path_applies(ts_conv_path path, const conv_geom *g, const ts_conv2d_params *p) {
    switch (path) {
    case TS_CONV_PATH_DIRECT: return g->direct;
    case TS_CONV_PATH_IM2COL: return 1;
    case TS_CONV_PATH_PACKED: return ts_conv_fast_usable(g);
    case TS_CONV_PATH_WINOGRAD: return ts_conv_winograd_usable(g, p);
    case TS_CONV_PATH_TAPS: return ts_conv_direct_usable(g, p);
    case TS_CONV_PATH_COUNT: break;
    }
    return 0;
}

static ts_status conv_forward_on(ts_conv_path path, const ts_conv2d_params *p, const ts_tensor *x,
                                 const ts_tensor *w, const ts_tensor *b, ts_tensor *y, float *ws,
                                 ts_err *err) {
    conv_geom g;
    TS_TRY(conv_check_tensors(p, x, w, &g, err));
    TS_TRY(conv_check_bias(&g, b, "bias", err));
    TS_TRY(conv_check_out("y", &g, y, x, w, err));
    if (!path_applies(path, &g, p))
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "conv2d: forward path %d does not apply to x %s "
                         "and w %s",
                         (int)path, SHP(&x->s), SHP(&w->s));
    if (path_workspace_floats(path, &g, p) && !ws)
        return ts_errorf(err, TS_ERR_INVALID, "conv2d: workspace is NULL (need %zu floats)",
                         path_workspace_floats(path, &g, p));
    const float *bd = b ? b->data : NULL;
    switch (path) {
    case TS_CONV_PATH_WINOGRAD:
        ts_conv_winograd_forward(&g, p, x->data, w->data, bd, y->data, ws, ts_threads_get());
        return TS_OK;
    case TS_CONV_PATH_PACKED:
        ts_conv_fast_forward(&g, p, x->data, w->data, bd, y->data, ws, ts_threads_get());
        return TS_OK;
    case TS_CONV_PATH_TAPS:
        ts_conv_direct_forward(&g, p, x->data, w->data, bd, y->data, ws, ts_threads_get());
        return TS_OK;
    case TS_CONV_PATH_DIRECT:
    case TS_CONV_PATH_IM2COL:
    case TS_CONV_PATH_COUNT: break;
    }
    conv_geom band = g;
    band.direct = path == TS_CONV_PATH_DIRECT; /* im2col also handles 1x1 */
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t gi = 0; gi < g.groups; gi++)
            conv_forward_group(&band, p, x->data + (n * g.c + gi * g.cg) * g.h * g.w,
                               w->data + gi * g.mg * g.k, bd ? bd + gi * g.mg : NULL,
                               y->data + (n * g.m + gi * g.mg) * g.p, ws);
    return TS_OK;
}

ts_status ts_conv_forward_path(ts_conv_path path, const ts_conv2d_params *p, const ts_tensor *x,
                               const ts_tensor *w, const ts_tensor *b, ts_tensor *y, float *ws,
                               ts_err *err) {
    return conv_forward_on(path, p, x, w, b, y, ws, err);
}

ts_status ts_conv2d_forward(const ts_conv2d_params *p, const ts_tensor *x, const ts_tensor *w,
                            const ts_tensor *b, ts_tensor *y, float *ws, ts_err *err) {
    conv_geom g;
    TS_TRY(conv_check_tensors(p, x, w, &g, err));
    return conv_forward_on(default_path(&g, p), p, x, w, b, y, ws, err);
}

ts_conv_path ts_conv_default_path(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w) {
    conv_geom g;
    if (conv_geom_make(p, x, w, &g, NULL) != TS_OK) return TS_CONV_PATH_IM2COL;
    return default_path(&g, p);
}

/* ---- backward ---------------------------------------------------------- */

static void conv_backward_group(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                                const float *w, const float *dy, float *dx, float *dw, float *ws) {
    const int M = (int)g->mg, K = (int)g->k, P = (int)g->p;
    if (g->direct) {
        if (dw)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, P, 1.0f, dy, P, x, P, 1.0f,
                        dw, K);
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, M, 1.0f, w, K, dy, P, 1.0f,
                        dx, P);
        return;
    }
    for (int64_t oy0 = 0; oy0 < g->oh; oy0 += g->chunk_rows) {
        int64_t rows = g->oh - oy0 < g->chunk_rows ? g->oh - oy0 : g->chunk_rows;
        int ncols = (int)(rows * g->ow);
        const float *dyc = dy + oy0 * g->ow;
        if (dw) {
            im2col_band(g, p, x, oy0, rows, ws);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, ncols, 1.0f, dyc, P, ws,
                        ncols, 1.0f, dw, K);
        }
        if (dx) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ncols, M, 1.0f, w, K, dyc, P,
                        0.0f, ws, ncols);
            col2im_band(g, p, ws, oy0, rows, dx);
        }
    }
}

static void conv_bias_grad(const conv_geom *g, const float *dy, float *db) {
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t m = 0; m < g->m; m++) {
            const float *row = dy + (n * g->m + m) * g->p;
            double s = 0.0;
            for (int64_t i = 0; i < g->p; i++)
                s += row[i];
            db[m] += (float)s;
        }
}

ts_status ts_conv2d_backward(const ts_conv2d_params *p, const ts_tensor *x, const ts_tensor *w,
                             const ts_tensor *dy, ts_tensor *dx, ts_tensor *dw, ts_tensor *db,
                             float *ws, ts_err *err) {
    conv_geom g;
    TS_TRY(conv_check_tensors(p, x, w, &g, err));
    TS_TRY(conv_check_out("dy", &g, dy, x, w, err));
    if (dx && (!ts_tensor_ok(dx) || !ts_shape_eq(&dx->s, &x->s)))
        return ts_errorf(err, TS_ERR_SHAPE, "conv2d backward: dx %s must match x %s", SHP(&dx->s),
                         SHP(&x->s));
    if (dw && (!ts_tensor_ok(dw) || !ts_shape_eq(&dw->s, &w->s)))
        return ts_errorf(err, TS_ERR_SHAPE, "conv2d backward: dw %s must match w %s", SHP(&dw->s),
                         SHP(&w->s));
    TS_TRY(conv_check_bias(&g, db, "db", err));
    if (!g.direct && !ws && (dx || dw))
        return ts_errorf(err, TS_ERR_INVALID,
                         "conv2d backward: workspace is NULL (need %zu "
                         "floats)",
                         ts_conv2d_workspace_floats(p, &x->s, &w->s));
    if (db) conv_bias_grad(&g, dy->data, db->data);
    if (!dx && !dw) return TS_OK;
    for (int64_t n = 0; n < g.n; n++)
        for (int64_t gi = 0; gi < g.groups; gi++) {
            int64_t xoff = (n * g.c + gi * g.cg) * g.h * g.w;
            conv_backward_group(&g, p, x->data + xoff, w->data + gi * g.mg * g.k,
                                dy->data + (n * g.m + gi * g.mg) * g.p, dx ? dx->data + xoff : NULL,
                                dw ? dw->data + gi * g.mg * g.k : NULL, ws);
        }
    return TS_OK;
}
