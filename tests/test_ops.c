/* test_ops.c: every CPU kernel against a naive double-precision reference
 * written here, and every backward against central finite differences of
 * its forward. Backward gradients are checked to ACCUMULATE: gradient
 * buffers start with random contents and the test subtracts them. */
#include "tessera/ops.h"

#include "ops/conv_internal.h"
#include "ts_test.h"

#include <math.h>
#include <string.h>

static ts_rng g_rng;

/* ---- helpers ----------------------------------------------------------- */

static ts_tensor *tnew(int nd, const int64_t *dims) {
    ts_shape s = ts_shape_make(nd, dims);
    ts_err err;
    ts_tensor *t = ts_tensor_new(&s, &err);
    TS_ASSERT(t);
    return t;
}

static ts_tensor *tnew4(int64_t n, int64_t c, int64_t h, int64_t w) {
    int64_t d[4] = {n, c, h, w};
    return tnew(4, d);
}

static ts_tensor *tnew2(int64_t r, int64_t c) {
    int64_t d[2] = {r, c};
    return tnew(2, d);
}

static ts_tensor *trand(int nd, const int64_t *dims) {
    ts_tensor *t = tnew(nd, dims);
    ts_rng_fill_uniform(&g_rng, t->data, t->size, -1.0f, 1.0f);
    return t;
}

static ts_tensor *trand4(int64_t n, int64_t c, int64_t h, int64_t w) {
    int64_t d[4] = {n, c, h, w};
    return trand(4, d);
}

static ts_tensor *tlike_rand(const ts_tensor *t) {
    return trand(t->s.ndim, t->s.shape);
}

static ts_tensor *tclone(const ts_tensor *t) {
    ts_err err;
    ts_tensor *c = ts_tensor_clone(t, &err);
    TS_ASSERT(c);
    return c;
}

static int irand(int lo, int hi) { /* [lo, hi] */
    return lo + (int)ts_rng_below(&g_rng, (uint64_t)(hi - lo + 1));
}

/* max |got - want| / (1 + max|want|) over n elements. */
static double max_err(const float *got, const double *want, int64_t n) {
    double e = 0, scale = 1;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (int64_t i = 0; i < n; i++)
        e = fmax(e, fabs(got[i] - want[i]));
    return e / scale;
}

static double dot_d(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Finite-difference check. loss(ctx) runs the forward and returns a scalar
 * (in double). For each probed element of p (all if n <= max_probe, else a
 * random subset) the central difference is compared with ana[i]. */
typedef double (*loss_fn)(void *ctx);

static int grad_check(const char *what, float *p, int64_t n, const float *ana, loss_fn loss,
                      void *ctx, double h, double atol, double rtol) {
    int bad = 0;
    int64_t probes = n < 60 ? n : 60;
    for (int64_t t = 0; t < probes; t++) {
        int64_t i = n <= 60 ? t : (int64_t)ts_rng_below(&g_rng, (uint64_t)n);
        float saved = p[i];
        p[i] = (float)(saved + h);
        double lp = loss(ctx);
        p[i] = (float)(saved - h);
        double lm = loss(ctx);
        p[i] = saved;
        /* The perturbation actually applied in float. */
        double hh = ((double)(float)(saved + h) - (double)(float)(saved - h)) / 2;
        double num = (lp - lm) / (2 * hh);
        double tol = atol + rtol * fmax(fabs(num), fabs(ana[i]));
        if (fabs(num - ana[i]) > tol) {
            if (bad < 3)
                fprintf(stderr, "  %s[%lld]: numeric %.6g analytic %.6g\n", what, (long long)i, num,
                        (double)ana[i]);
            bad++;
        }
    }
    TS_CHECK_MSG(bad == 0, "%s: %d of %lld probes disagree", what, bad, (long long)probes);
    return bad == 0;
}

/* grad after backward minus the random base it started from. */
static float *grad_delta(const ts_tensor *g, const ts_tensor *base) {
    float *d = malloc((size_t)g->size * sizeof *d);
    TS_ASSERT(d);
    for (int64_t i = 0; i < g->size; i++)
        d[i] = g->data[i] - base->data[i];
    return d;
}

/* ---- convolution ------------------------------------------------------- */

typedef struct {
    ts_conv2d_params p;
    int64_t n, c, h, w, m, kh, kw;
} conv_case;

static int ref_conv_out(const conv_case *cc, int64_t *oh, int64_t *ow) {
    const ts_conv2d_params *p = &cc->p;
    int64_t eh = (cc->kh - 1) * p->dil_h + 1, ew = (cc->kw - 1) * p->dil_w + 1;
    int64_t ph = cc->h + p->pad_t + p->pad_b, pw = cc->w + p->pad_l + p->pad_r;
    if (eh > ph || ew > pw) return 0;
    *oh = (ph - eh) / p->stride_h + 1;
    *ow = (pw - ew) / p->stride_w + 1;
    return 1;
}

/* Naive double conv: y[n][m][oy][ox] = b[m] + sum x * w. */
static void ref_conv(const conv_case *cc, const float *x, const float *w, const float *b, double *y,
                     int64_t oh, int64_t ow) {
    const ts_conv2d_params *p = &cc->p;
    int64_t cg = cc->c / p->groups, mg = cc->m / p->groups;
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t m = 0; m < cc->m; m++) {
            int64_t g = m / mg;
            for (int64_t oy = 0; oy < oh; oy++)
                for (int64_t ox = 0; ox < ow; ox++) {
                    double s = b ? b[m] : 0;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t i = 0; i < cc->kh; i++)
                            for (int64_t j = 0; j < cc->kw; j++) {
                                int64_t iy = oy * p->stride_h - p->pad_t + i * p->dil_h;
                                int64_t ix = ox * p->stride_w - p->pad_l + j * p->dil_w;
                                if (iy < 0 || iy >= cc->h || ix < 0 || ix >= cc->w) continue;
                                int64_t c = g * cg + ci;
                                s += (double)x[((n * cc->c + c) * cc->h + iy) * cc->w + ix] *
                                     w[((m * cg + ci) * cc->kh + i) * cc->kw + j];
                            }
                    y[((n * cc->m + m) * oh + oy) * ow + ox] = s;
                }
        }
}

/* Naive adjoints of ref_conv: dx and dw of sum(y * dy). */
static void ref_conv_grads(const conv_case *cc, const float *x, const float *w, const float *dy,
                           double *dx, double *dw, int64_t oh, int64_t ow) {
    const ts_conv2d_params *p = &cc->p;
    int64_t cg = cc->c / p->groups, mg = cc->m / p->groups;
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t m = 0; m < cc->m; m++) {
            int64_t g = m / mg;
            for (int64_t oy = 0; oy < oh; oy++)
                for (int64_t ox = 0; ox < ow; ox++) {
                    double gy = dy[((n * cc->m + m) * oh + oy) * ow + ox];
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int64_t i = 0; i < cc->kh; i++)
                            for (int64_t j = 0; j < cc->kw; j++) {
                                int64_t iy = oy * p->stride_h - p->pad_t + i * p->dil_h;
                                int64_t ix = ox * p->stride_w - p->pad_l + j * p->dil_w;
                                if (iy < 0 || iy >= cc->h || ix < 0 || ix >= cc->w) continue;
                                int64_t xi = ((n * cc->c + g * cg + ci) * cc->h + iy) * cc->w + ix;
                                int64_t wi = ((m * cg + ci) * cc->kh + i) * cc->kw + j;
                                dx[xi] += gy * w[wi];
                                dw[wi] += gy * x[xi];
                            }
                }
        }
}

static conv_case random_conv_case(void) {
    conv_case cc;
    memset(&cc, 0, sizeof cc);
    cc.p = ts_conv2d_params_default();
    int kind = irand(0, 4);
    int groups = kind == 0 ? irand(2, 3) : 1;
    int64_t cg = irand(1, 3), mg = irand(1, 3);
    if (kind == 1) { /* depthwise, optionally with a channel multiplier */
        groups = irand(2, 5);
        cg = 1;
    }
    cc.p.groups = groups;
    cc.n = irand(1, 2);
    cc.c = cg * groups;
    cc.m = mg * groups;
    cc.h = irand(1, 9);
    cc.w = irand(1, 9);
    cc.kh = irand(1, 3);
    cc.kw = irand(1, 3);
    if (kind == 2) { /* 1x1: direct path when stride 1 and unpadded */
        cc.kh = cc.kw = 1;
        return cc;
    }
    cc.p.stride_h = irand(1, 3);
    cc.p.stride_w = irand(1, 3);
    cc.p.dil_h = irand(1, 2);
    cc.p.dil_w = irand(1, 2);
    cc.p.pad_t = irand(0, 2);
    cc.p.pad_l = irand(0, 2);
    cc.p.pad_b = irand(0, 2);
    cc.p.pad_r = irand(0, 2);
    return cc;
}

typedef struct {
    conv_case cc;
    ts_tensor *x, *w, *b, *y, *r;
    float *ws;
} conv_fixture;

static int conv_fixture_make(conv_fixture *f, const conv_case *cc) {
    memset(f, 0, sizeof *f);
    f->cc = *cc;
    int64_t oh, ow;
    if (!ref_conv_out(cc, &oh, &ow)) return 0;
    f->x = trand4(cc->n, cc->c, cc->h, cc->w);
    f->w = trand4(cc->m, cc->c / cc->p.groups, cc->kh, cc->kw);
    int64_t bd[1] = {cc->m};
    f->b = trand(1, bd);
    f->y = tnew4(cc->n, cc->m, oh, ow);
    f->r = tlike_rand(f->y);
    size_t wsn = ts_conv2d_workspace_floats(&cc->p, &f->x->s, &f->w->s);
    f->ws = wsn ? ts_alloc(wsn * sizeof(float)) : NULL;
    return 1;
}

static void conv_fixture_free(conv_fixture *f) {
    ts_tensor_free(f->x);
    ts_tensor_free(f->w);
    ts_tensor_free(f->b);
    ts_tensor_free(f->y);
    ts_tensor_free(f->r);
    ts_free(f->ws);
}

static double conv_loss(void *ctx) {
    conv_fixture *f = ctx;
    ts_err err;
    ts_status s = ts_conv2d_forward(&f->cc.p, f->x, f->w, f->b, f->y, f->ws, &err);
    TS_ASSERT(s == TS_OK);
    return dot_d(f->y->data, f->r->data, f->y->size);
}

static void check_conv_forward(const conv_case *cc, const char *label) {
    conv_fixture f;
    ts_err err;
    ts_shape ys;
    int64_t dims[4] = {cc->n, cc->c, cc->h, cc->w};
    int64_t wd[4] = {cc->m, cc->c / cc->p.groups, cc->kh, cc->kw};
    ts_shape xs = ts_shape_make(4, dims), wsh = ts_shape_make(4, wd);
    ts_status s = ts_conv2d_out_shape(&cc->p, &xs, &wsh, &ys, &err);
    if (!conv_fixture_make(&f, cc)) {
        TS_CHECK_MSG(s == TS_ERR_SHAPE, "%s: kernel larger than input must be rejected", label);
        return;
    }
    TS_CHECK_OK(s, &err);
    TS_CHECK(ts_shape_eq(&ys, &f.y->s));
    int use_bias = irand(0, 1);
    TS_CHECK_OK(ts_conv2d_forward(&cc->p, f.x, f.w, use_bias ? f.b : NULL, f.y, f.ws, &err), &err);
    double *ref = malloc((size_t)f.y->size * sizeof *ref);
    ref_conv(cc, f.x->data, f.w->data, use_bias ? f.b->data : NULL, ref, f.y->s.shape[2],
             f.y->s.shape[3]);
    double e = max_err(f.y->data, ref, f.y->size);
    TS_CHECK_MSG(e < 1e-5,
                 "%s: conv x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] s(%d,%d) "
                 "d(%d,%d) pads(%d,%d,%d,%d) g%d: err %.3g",
                 label, (long long)cc->n, (long long)cc->c, (long long)cc->h, (long long)cc->w,
                 (long long)cc->m, (long long)(cc->c / cc->p.groups), (long long)cc->kh,
                 (long long)cc->kw, cc->p.stride_h, cc->p.stride_w, cc->p.dil_h, cc->p.dil_w,
                 cc->p.pad_t, cc->p.pad_l, cc->p.pad_b, cc->p.pad_r, cc->p.groups, e);
    free(ref);
    conv_fixture_free(&f);
}

static void test_conv_forward_random(void) {
    for (int t = 0; t < 150; t++) {
        conv_case cc = random_conv_case();
        check_conv_forward(&cc, "random");
    }
}

/* Large enough that im2col runs in several chunks of output rows. */
static conv_case big_conv_case(int stride, int pads) {
    conv_case cc;
    memset(&cc, 0, sizeof cc);
    cc.p = ts_conv2d_params_default();
    cc.p.stride_h = cc.p.stride_w = stride;
    cc.p.pad_t = cc.p.pad_l = cc.p.pad_b = cc.p.pad_r = pads;
    cc.n = 2, cc.c = 48, cc.h = 70, cc.w = 70, cc.m = 20, cc.kh = 3, cc.kw = 3;
    return cc;
}

static void test_conv_forward_chunked_and_direct(void) {
    conv_case cc = big_conv_case(1, 1);
    size_t full = (size_t)(48 * 9 * 70 * 70);
    int64_t xd[4] = {cc.n, cc.c, cc.h, cc.w}, wd[4] = {cc.m, cc.c, 3, 3};
    ts_shape xs = ts_shape_make(4, xd), ws = ts_shape_make(4, wd);
    size_t wsn = ts_conv2d_workspace_floats(&cc.p, &xs, &ws);
    TS_CHECK_MSG(wsn > 0 && wsn < full, "workspace %zu should be a chunk of %zu", wsn, full);
    check_conv_forward(&cc, "chunked");
    cc = big_conv_case(2, 0);
    check_conv_forward(&cc, "chunked strided");
    /* 1x1 stride 1 unpadded: no workspace at all (direct sgemm). */
    cc.p = ts_conv2d_params_default();
    cc.kh = cc.kw = 1;
    cc.p.groups = 2;
    int64_t wd1[4] = {cc.m, cc.c / 2, 1, 1};
    ws = ts_shape_make(4, wd1);
    TS_CHECK(ts_conv2d_workspace_floats(&cc.p, &xs, &ws) == 0);
    check_conv_forward(&cc, "direct 1x1");
}

static void check_conv_backward_fd(const conv_case *cc, const char *label) {
    conv_fixture f;
    if (!conv_fixture_make(&f, cc)) return;
    ts_err err;
    ts_tensor *dx = tlike_rand(f.x), *dw = tlike_rand(f.w), *db = tlike_rand(f.b);
    ts_tensor *dx0 = tclone(dx), *dw0 = tclone(dw), *db0 = tclone(db);
    TS_CHECK_OK(ts_conv2d_backward(&cc->p, f.x, f.w, f.r, dx, dw, db, f.ws, &err), &err);
    float *gx = grad_delta(dx, dx0), *gw = grad_delta(dw, dw0), *gb = grad_delta(db, db0);
    char what[64];
    snprintf(what, sizeof what, "conv %s dx", label);
    grad_check(what, f.x->data, f.x->size, gx, conv_loss, &f, 0.05, 2e-3, 2e-3);
    snprintf(what, sizeof what, "conv %s dw", label);
    grad_check(what, f.w->data, f.w->size, gw, conv_loss, &f, 0.05, 2e-3, 2e-3);
    snprintf(what, sizeof what, "conv %s db", label);
    grad_check(what, f.b->data, f.b->size, gb, conv_loss, &f, 0.05, 2e-3, 2e-3);
    free(gx);
    free(gw);
    free(gb);
    ts_tensor_free(dx);
    ts_tensor_free(dw);
    ts_tensor_free(db);
    ts_tensor_free(dx0);
    ts_tensor_free(dw0);
    ts_tensor_free(db0);
    conv_fixture_free(&f);
}

static void test_conv_backward_fd(void) {
    for (int t = 0; t < 30; t++) {
        conv_case cc = random_conv_case();
        check_conv_backward_fd(&cc, "random");
    }
    conv_case cc;
    memset(&cc, 0, sizeof cc);
    cc.p = ts_conv2d_params_default();
    cc.n = 2, cc.c = 3, cc.h = 5, cc.w = 6, cc.m = 4, cc.kh = cc.kw = 1;
    check_conv_backward_fd(&cc, "direct 1x1");
    cc.p.stride_h = 2, cc.p.pad_b = 1;
    check_conv_backward_fd(&cc, "strided 1x1");
    cc.p = ts_conv2d_params_default();
    cc.p.groups = 3, cc.m = 6, cc.kh = cc.kw = 3, cc.p.pad_t = 1, cc.p.pad_r = 2;
    check_conv_backward_fd(&cc, "depthwise x2");
}

/* Multi-chunk backward against the naive adjoint (too big for FD). */
static void test_conv_backward_chunked_vs_naive(void) {
    for (int v = 0; v < 2; v++) {
        conv_case cc = big_conv_case(v ? 2 : 1, v ? 0 : 1);
        conv_fixture f;
        TS_ASSERT(conv_fixture_make(&f, &cc));
        ts_err err;
        ts_tensor *dx = tnew4(cc.n, cc.c, cc.h, cc.w), *dw = tnew4(cc.m, cc.c, 3, 3);
        TS_CHECK_OK(ts_conv2d_backward(&cc.p, f.x, f.w, f.r, dx, dw, NULL, f.ws, &err), &err);
        double *rx = calloc((size_t)dx->size, sizeof *rx),
               *rw = calloc((size_t)dw->size, sizeof *rw);
        ref_conv_grads(&cc, f.x->data, f.w->data, f.r->data, rx, rw, f.y->s.shape[2],
                       f.y->s.shape[3]);
        TS_CHECK_MSG(max_err(dx->data, rx, dx->size) < 1e-5, "chunked dx err %.3g",
                     max_err(dx->data, rx, dx->size));
        TS_CHECK_MSG(max_err(dw->data, rw, dw->size) < 1e-5, "chunked dw err %.3g",
                     max_err(dw->data, rw, dw->size));
        free(rx);
        free(rw);
        ts_tensor_free(dx);
        ts_tensor_free(dw);
        conv_fixture_free(&f);
    }
}

/* ---- conv forward paths ------------------------------------------------ */

static const char *const k_path_names[] = {"im2col", "direct", "packed", "winograd", "taps"};

/* Runs every forward path that applies to cc at `threads` threads and checks
 * each against the double reference. Float32 GEMM paths agree to ~1e-6 of
 * the output scale; Winograd F(4x4,3x3) rounds in its transforms (points up
 * to +-2 and 1/24 weights) and measures ~1e-5, so it gets 1e-4: a wrong
 * tile, lane or border is off by O(1). Returns the paths that ran as bits. */
static unsigned check_conv_paths(const conv_case *cc, int threads, const char *label) {
    conv_fixture f;
    TS_ASSERT(conv_fixture_make(&f, cc));
    double *ref = malloc((size_t)f.y->size * sizeof *ref);
    ref_conv(cc, f.x->data, f.w->data, f.b->data, ref, f.y->s.shape[2], f.y->s.shape[3]);
    ts_threads_set(threads);
    unsigned ran = 0;
    for (int path = 0; path < TS_CONV_PATH_COUNT; path++) {
        ts_err err;
        size_t wsn = ts_conv_path_workspace_floats((ts_conv_path)path, &cc->p, &f.x->s, &f.w->s);
        float *ws = wsn ? ts_alloc(wsn * sizeof(float)) : NULL;
        ts_tensor_fill(f.y, NAN); /* every output must be written */
        ts_status s =
            ts_conv_forward_path((ts_conv_path)path, &cc->p, f.x, f.w, f.b, f.y, ws, &err);
        ts_free(ws);
        if (s == TS_ERR_UNSUPPORTED) continue; /* path does not apply to these shapes */
        TS_CHECK_OK(s, &err);
        ran |= 1u << path;
        double e = max_err(f.y->data, ref, f.y->size), tol = path == 3 ? 1e-4 : 1e-5;
        int finite = 1;
        for (int64_t i = 0; i < f.y->size; i++)
            finite &= isfinite(f.y->data[i]);
        TS_CHECK_MSG(finite && e < tol,
                     "%s: %s path, %d threads: x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] "
                     "s(%d,%d) d(%d,%d) pads(%d,%d,%d,%d) g%d: err %.3g (finite %d)",
                     label, k_path_names[path], threads, (long long)cc->n, (long long)cc->c,
                     (long long)cc->h, (long long)cc->w, (long long)cc->m,
                     (long long)(cc->c / cc->p.groups), (long long)cc->kh, (long long)cc->kw,
                     cc->p.stride_h, cc->p.stride_w, cc->p.dil_h, cc->p.dil_w, cc->p.pad_t,
                     cc->p.pad_l, cc->p.pad_b, cc->p.pad_r, cc->p.groups, e, finite);
    }
    ts_threads_set(1);
    free(ref);
    conv_fixture_free(&f);
    return ran;
}

static conv_case make_case(int64_t n, int64_t c, int64_t h, int64_t w, int64_t m, int64_t k,
                           int stride, int groups) {
    conv_case cc;
    memset(&cc, 0, sizeof cc);
    cc.p = ts_conv2d_params_default();
    cc.p.stride_h = cc.p.stride_w = stride;
    cc.p.groups = groups;
    cc.n = n, cc.c = c, cc.h = h, cc.w = w, cc.m = m, cc.kh = cc.kw = k;
    return cc;
}

static void set_pads(conv_case *cc, int t, int l, int b, int r) {
    cc->p.pad_t = t, cc->p.pad_l = l, cc->p.pad_b = b, cc->p.pad_r = r;
}

/* Winograd: odd output sizes (partial 4x4 tiles), asymmetric pads, groups,
 * channel counts around the micro-tile (12 rows) and K block (256), tile
 * groups that span images and a partial last tile group, 1 and 2 threads. */
static void test_conv_winograd_vs_reference(void) {
    unsigned ran = 0;
    for (int t = 0; t < 24; t++) {
        static const int64_t cs[] = {1, 5, 17, 64}, ms[] = {1, 7, 13, 30};
        int groups = irand(1, 3);
        conv_case cc = make_case(irand(1, 3), cs[irand(0, 3)] * groups, irand(3, 13), irand(3, 13),
                                 ms[irand(0, 3)] * groups, 3, 1, groups);
        set_pads(&cc, irand(0, 2), irand(0, 2), irand(0, 2), irand(0, 2));
        ran |= check_conv_paths(&cc, irand(1, 2), "winograd random");
    }
    conv_case big = make_case(1, 300, 12, 9, 13, 3, 1, 1); /* C > K block */
    set_pads(&big, 1, 0, 2, 1);
    ran |= check_conv_paths(&big, 2, "winograd C=300");
    conv_case many = make_case(2, 8, 66, 70, 13, 3, 1, 1); /* 3 tile groups, last partial */
    set_pads(&many, 1, 1, 1, 1);
    ran |= check_conv_paths(&many, 1, "winograd many tiles");
    ran |= check_conv_paths(&many, 2, "winograd many tiles");
    conv_case tiny = make_case(1, 2, 3, 3, 3, 3, 1, 1); /* one output pixel */
    ran |= check_conv_paths(&tiny, 1, "winograd 1x1 output");
    if (!(ran & (1u << TS_CONV_PATH_WINOGRAD)))
        printf("  (winograd path not compiled in: no AVX-512 at build time)\n");
}

/* The packed GEMM path (and, on the same cases, the direct-taps path: tiles
 * of 6 positions across row ends, 64-channel blocks with a partial last
 * block): stride 1, 2 (permute packing) and 3 (gathers),
 * dilation, few panels (W read in place) and many (W packed), K and M above
 * their blocks (256, 144), both thread splits (panels, and M when a chunk
 * has few panels). */
static void test_conv_packed_vs_reference(void) {
    for (int t = 0; t < 30; t++) {
        int groups = irand(1, 2);
        conv_case cc = make_case(irand(1, 2), irand(1, 9) * groups, irand(5, 30), irand(5, 30),
                                 irand(1, 20) * groups, irand(1, 5), irand(1, 3), groups);
        cc.kw = irand(1, 5);
        cc.p.stride_w = irand(1, 3);
        cc.p.dil_h = irand(1, 2), cc.p.dil_w = irand(1, 2);
        set_pads(&cc, irand(0, 2), irand(0, 2), irand(0, 2), irand(0, 2));
        int64_t oh, ow;
        if (!ref_conv_out(&cc, &oh, &ow)) continue;
        check_conv_paths(&cc, irand(1, 2), "packed random");
    }
    conv_case deep = make_case(1, 40, 9, 9, 150, 3, 1, 1); /* K = 360, M = 150 */
    set_pads(&deep, 1, 1, 1, 1);
    check_conv_paths(&deep, 1, "packed deep");
    check_conv_paths(&deep, 2, "packed deep");
    /* Small images in a batch: the threads take whole images (each above
     * the 1-thread cutoff only as a batch). */
    conv_case batch = make_case(8, 64, 14, 14, 128, 3, 2, 1);
    set_pads(&batch, 1, 1, 1, 1);
    check_conv_paths(&batch, 2, "packed small images");
    conv_case wide = make_case(2, 3, 64, 61, 17, 7, 2, 1); /* resnet-like stem */
    set_pads(&wide, 3, 3, 2, 3);
    check_conv_paths(&wide, 1, "packed 7x7/2");
    check_conv_paths(&wide, 2, "packed 7x7/2");
}

/* Layers big enough (>= 30 MFLOP) that the kernels really run 2 threads:
 * Winograd (tile groups, filter blocks split), packed (chunks split),
 * taps split by positions (one 64-channel block) and by blocks (four). */
static void test_conv_paths_two_threads(void) {
    conv_case odd = make_case(1, 64, 47, 45, 64, 3, 1, 1);
    set_pads(&odd, 1, 2, 2, 0);
    unsigned ran = check_conv_paths(&odd, 2, "2 threads 3x3/1");
    TS_CHECK(ran & (1u << TS_CONV_PATH_IM2COL));
    conv_case wide = make_case(2, 32, 30, 30, 256, 3, 2, 1);
    set_pads(&wide, 1, 1, 0, 1);
    check_conv_paths(&wide, 2, "2 threads 3x3/2 M=256");
}

/* Taps with a batch: the images of a group are padded into their own
 * slots, then computed image-major (each thread on its own images). Whole
 * images per thread (8 on 2), an image shared by the threads (5 on 2),
 * groups (each (image, group) pair is a slot), and inputs too big to pad
 * at once (8 MiB: 4 images of 2 x 514 x 514 floats go as 3 + 1). */
static void test_conv_taps_batches(void) {
    conv_case b8 = make_case(8, 64, 14, 14, 128, 3, 2, 1);
    set_pads(&b8, 1, 1, 1, 1);
    unsigned ran = check_conv_paths(&b8, 2, "taps batch 8");
    conv_case b5 = make_case(5, 48, 15, 13, 70, 3, 2, 1);
    set_pads(&b5, 1, 0, 1, 2);
    ran &= check_conv_paths(&b5, 2, "taps batch 5");
    check_conv_paths(&b5, 3, "taps batch 5");
    conv_case grp = make_case(6, 2 * 32, 28, 28, 2 * 64, 3, 2, 2);
    set_pads(&grp, 1, 1, 1, 1);
    ran &= check_conv_paths(&grp, 2, "taps batch 6, 2 groups");
    conv_case big = make_case(4, 2, 512, 512, 20, 3, 4, 1);
    set_pads(&big, 1, 1, 1, 1);
    ran &= check_conv_paths(&big, 2, "taps 4 big images");
    ran &= check_conv_paths(&big, 1, "taps 4 big images");
    if (!(ran & (1u << TS_CONV_PATH_TAPS)))
        printf("  (taps path not compiled in: no AVX-512 at build time)\n");
}

static void test_conv_path_dispatch(void) {
    ts_conv2d_params p = ts_conv2d_params_default();
    p.pad_t = p.pad_l = p.pad_b = p.pad_r = 1;
    ts_shape x = ts_shape4(1, 64, 56, 56), w = ts_shape4(64, 64, 3, 3);
    ts_conv_path vgg = ts_conv_default_path(&p, &x, &w);
    p.stride_h = p.stride_w = 2;
    ts_conv_path s2 = ts_conv_default_path(&p, &x, &w);
    TS_CHECK(s2 != TS_CONV_PATH_WINOGRAD);
    if (ts_conv_path_workspace_floats(TS_CONV_PATH_WINOGRAD, &p, &x, &w) == 0 &&
        vgg != TS_CONV_PATH_WINOGRAD) {
        printf("  (winograd not available in this build)\n");
        return;
    }
    TS_CHECK(vgg == TS_CONV_PATH_WINOGRAD);
    /* The ResNet stem (7x7/2, 64 channels) takes the direct-taps kernel,
     * a 1x1/2 downsample does not (too few taps per output). */
    ts_conv2d_params stem = ts_conv2d_params_default();
    stem.stride_h = stem.stride_w = 2;
    stem.pad_t = stem.pad_l = stem.pad_b = stem.pad_r = 3;
    ts_shape sx = ts_shape4(1, 3, 224, 224), sw = ts_shape4(64, 3, 7, 7);
    TS_CHECK(ts_conv_default_path(&stem, &sx, &sw) == TS_CONV_PATH_TAPS);
    stem.pad_t = stem.pad_l = stem.pad_b = stem.pad_r = 0;
    ts_shape dx = ts_shape4(1, 64, 56, 56), dw = ts_shape4(128, 64, 1, 1);
    TS_CHECK(ts_conv_default_path(&stem, &dx, &dw) != TS_CONV_PATH_TAPS);
    /* Winograd's workspace is included in what the planner reserves. */
    p.stride_h = p.stride_w = 1;
    TS_CHECK(ts_conv2d_workspace_floats(&p, &x, &w) >=
             ts_conv_path_workspace_floats(TS_CONV_PATH_WINOGRAD, &p, &x, &w));
    /* A path that does not apply is refused, not run. */
    p = ts_conv2d_params_default();
    ts_err err;
    ts_tensor *xt = tnew4(1, 2, 6, 6), *wt = tnew4(2, 2, 5, 5), *yt = tnew4(1, 2, 2, 2);
    float ws[2 * 25 * 4];
    TS_CHECK(ts_conv_forward_path(TS_CONV_PATH_WINOGRAD, &p, xt, wt, NULL, yt, ws, &err) ==
             TS_ERR_UNSUPPORTED);
    TS_CHECK(ts_conv_forward_path(TS_CONV_PATH_DIRECT, &p, xt, wt, NULL, yt, ws, &err) ==
             TS_ERR_UNSUPPORTED);
    ts_tensor_free(xt), ts_tensor_free(wt), ts_tensor_free(yt);
}

static int msg_has(const ts_err *err, const char *needle) {
    return strstr(err->msg, needle) != NULL;
}

static void test_conv_shape_errors(void) {
    ts_err err;
    ts_conv2d_params p = ts_conv2d_params_default();
    ts_tensor *x = trand4(1, 4, 5, 5), *w = trand4(2, 3, 3, 3), *y = tnew4(1, 2, 3, 3);
    float ws[4 * 9 * 9];
    memset(&err, 0, sizeof err);
    TS_CHECK(ts_conv2d_forward(&p, x, w, NULL, y, ws, &err) == TS_ERR_SHAPE);
    TS_CHECK_MSG(msg_has(&err, "conv2d") && msg_has(&err, "[1, 4, 5, 5]") &&
                     msg_has(&err, "[2, 3, 3, 3]"),
                 "message: %s", err.msg);
    ts_tensor *w2 = trand4(2, 4, 3, 3), *ybad = tnew4(1, 2, 4, 4);
    TS_CHECK(ts_conv2d_forward(&p, x, w2, NULL, ybad, ws, &err) == TS_ERR_SHAPE);
    TS_CHECK_MSG(msg_has(&err, "[1, 2, 3, 3]"), "message: %s", err.msg);
    p.groups = 3; /* 4 channels do not split into 3 groups */
    TS_CHECK(ts_conv2d_forward(&p, x, w2, NULL, y, ws, &err) == TS_ERR_SHAPE);
    TS_CHECK(msg_has(&err, "groups"));
    p = ts_conv2d_params_default();
    ts_tensor *wbig = trand4(2, 4, 7, 7), *y1 = tnew4(1, 2, 1, 1);
    TS_CHECK(ts_conv2d_forward(&p, x, wbig, NULL, y1, ws, &err) == TS_ERR_SHAPE);
    p.stride_h = 0;
    TS_CHECK(ts_conv2d_forward(&p, x, w2, NULL, y, ws, &err) == TS_ERR_INVALID);
    p = ts_conv2d_params_default();
    int64_t bd[1] = {3};
    ts_tensor *b3 = trand(1, bd);
    TS_CHECK(ts_conv2d_forward(&p, x, w2, b3, y, ws, &err) == TS_ERR_SHAPE);
    TS_CHECK(ts_conv2d_forward(&p, x, w2, NULL, y, NULL, &err) == TS_ERR_INVALID);
    ts_tensor *dxbad = tnew4(1, 4, 5, 4);
    TS_CHECK(ts_conv2d_backward(&p, x, w2, y, dxbad, NULL, NULL, ws, &err) == TS_ERR_SHAPE);
    TS_CHECK(msg_has(&err, "dx"));
    ts_tensor_free(x);
    ts_tensor_free(w);
    ts_tensor_free(y);
    ts_tensor_free(w2);
    ts_tensor_free(ybad);
    ts_tensor_free(wbig);
    ts_tensor_free(y1);
    ts_tensor_free(b3);
    ts_tensor_free(dxbad);
}

/* ---- pooling ----------------------------------------------------------- */

/* ONNX's reference formula, written the way onnx/reference does it. */
static int64_t ref_pool_out(int64_t in, int p0, int p1, int k, int s, int d, int ceil_mode) {
    double dim = (double)(in + p0 + p1 - (int64_t)d * (k - 1) - 1) / s + 1;
    if (!ceil_mode) return (int64_t)floor(dim);
    int64_t o = (int64_t)ceil(dim);
    if ((o - 1) * s >= in + p0) o--;
    return o;
}

/* Naive pooling in double; max: -inf padding; avg: divisor per ONNX. */
static void ref_pool(const ts_pool2d_params *p, int is_max, const ts_tensor *x, double *y,
                     int64_t oh, int64_t ow) {
    int64_t H = x->s.shape[2], W = x->s.shape[3], planes = x->s.shape[0] * x->s.shape[1];
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                double best = -INFINITY, sum = 0;
                int real = 0, padded = 0;
                for (int i = 0; i < p->kh; i++)
                    for (int j = 0; j < p->kw; j++) {
                        int64_t iy = oy * p->stride_h - p->pad_t + (int64_t)i * p->dil_h;
                        int64_t ix = ox * p->stride_w - p->pad_l + (int64_t)j * p->dil_w;
                        int in_pad_extent = iy >= -p->pad_t && iy < H + p->pad_b &&
                                            ix >= -p->pad_l && ix < W + p->pad_r;
                        padded += in_pad_extent;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        double v = x->data[(pl * H + iy) * W + ix];
                        best = fmax(best, v);
                        sum += v;
                        real++;
                    }
                int div = p->count_include_pad ? padded : real;
                y[(pl * oh + oy) * ow + ox] = is_max ? best : (div ? sum / div : 0);
            }
}

static ts_pool2d_params random_pool_params(void) {
    ts_pool2d_params p;
    memset(&p, 0, sizeof p);
    p.kh = irand(1, 3), p.kw = irand(1, 3);
    p.stride_h = irand(1, 3), p.stride_w = irand(1, 3);
    p.dil_h = irand(1, 2), p.dil_w = irand(1, 2);
    /* ONNX requires pads smaller than the kernel extent. */
    p.pad_t = irand(0, p.kh - 1), p.pad_b = irand(0, p.kh - 1);
    p.pad_l = irand(0, p.kw - 1), p.pad_r = irand(0, p.kw - 1);
    p.ceil_mode = irand(0, 1);
    p.count_include_pad = irand(0, 1);
    return p;
}

static void test_pool_forward_random(void) {
    ts_err err;
    for (int t = 0; t < 200; t++) {
        ts_pool2d_params p = random_pool_params();
        int64_t n = irand(1, 2), c = irand(1, 3), h = irand(1, 9), w = irand(1, 9);
        ts_tensor *x = trand4(n, c, h, w);
        int64_t oh = ref_pool_out(h, p.pad_t, p.pad_b, p.kh, p.stride_h, p.dil_h, p.ceil_mode);
        int64_t ow = ref_pool_out(w, p.pad_l, p.pad_r, p.kw, p.stride_w, p.dil_w, p.ceil_mode);
        ts_shape ys;
        ts_status s = ts_pool2d_out_shape(&p, &x->s, &ys, &err);
        if (oh < 1 || ow < 1) {
            TS_CHECK_MSG(s == TS_ERR_SHAPE, "pool with no window must be rejected");
            ts_tensor_free(x);
            continue;
        }
        TS_CHECK_OK(s, &err);
        ts_tensor *y = tnew4(n, c, oh, ow);
        TS_CHECK_MSG(ts_shape_eq(&ys, &y->s), "pool out shape k%dx%d s%d,%d d%d,%d ceil%d", p.kh,
                     p.kw, p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.ceil_mode);
        double *ref = malloc((size_t)y->size * sizeof *ref);
        int32_t *am = malloc((size_t)y->size * sizeof *am);
        for (int is_max = 0; is_max < 2; is_max++) {
            if (is_max)
                TS_CHECK_OK(ts_maxpool2d_forward(&p, x, y, am, &err), &err);
            else
                TS_CHECK_OK(ts_avgpool2d_forward(&p, x, y, &err), &err);
            ref_pool(&p, is_max, x, ref, oh, ow);
            int ok = 1;
            for (int64_t i = 0; i < y->size; i++) {
                if (isinf(ref[i]))
                    ok &= isinf(y->data[i]) && y->data[i] < 0;
                else
                    ok &= fabs(y->data[i] - ref[i]) < 1e-6;
                if (is_max && !isinf(ref[i])) ok &= x->data[am[i]] == y->data[i];
            }
            TS_CHECK_MSG(ok,
                         "%s pool x[%lld,%lld,%lld,%lld] k%dx%d s%d,%d d%d,%d pads %d,%d,%d,%d "
                         "ceil%d cip%d",
                         is_max ? "max" : "avg", (long long)n, (long long)c, (long long)h,
                         (long long)w, p.kh, p.kw, p.stride_h, p.stride_w, p.dil_h, p.dil_w,
                         p.pad_t, p.pad_l, p.pad_b, p.pad_r, p.ceil_mode, p.count_include_pad);
        }
        free(ref);
        free(am);
        ts_tensor_free(x);
        ts_tensor_free(y);
    }
}

/* The 2x2 stride-2 fast path keeps the general rules: first maximum in
 * window order wins ties (argmax), NaN propagates; odd sizes drop the last
 * row/column (floor) and ceil_mode with bottom/right padding keeps them. */
static void test_maxpool_2x2_fast_path(void) {
    ts_err err;
    for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
        ts_pool2d_params p = {.kh = 2,
                              .kw = 2,
                              .stride_h = 2,
                              .stride_w = 2,
                              .dil_h = 1,
                              .dil_w = 1,
                              .ceil_mode = ceil_mode};
        int64_t n = 2, c = 3, h = 7, w = 9;
        ts_tensor *x = trand4(n, c, h, w);
        for (int64_t i = 0; i < x->size; i++)
            x->data[i] = (float)(int)(x->data[i] * 2); /* ties */
        x->data[5] = NAN;
        x->data[w + 2] = NAN;
        ts_shape ys;
        TS_CHECK_OK(ts_pool2d_out_shape(&p, &x->s, &ys, &err), &err);
        ts_tensor *y = ts_tensor_new(&ys, NULL);
        int32_t *am = malloc((size_t)y->size * sizeof *am);
        TS_CHECK_OK(ts_maxpool2d_forward(&p, x, y, am, &err), &err);
        int64_t oh = ys.shape[2], ow = ys.shape[3];
        int ok = 1;
        for (int64_t pl = 0; pl < n * c; pl++)
            for (int64_t oy = 0; oy < oh; oy++)
                for (int64_t ox = 0; ox < ow; ox++) {
                    float best = 0;
                    int64_t at = -1;
                    for (int i = 0; i < 2; i++)
                        for (int j = 0; j < 2; j++) {
                            int64_t r = 2 * oy + i, q = 2 * ox + j;
                            if (r >= h || q >= w) continue;
                            int64_t k = pl * h * w + r * w + q;
                            float v = x->data[k];
                            if (at < 0 || v > best || (isnan(v) && !isnan(best))) best = v, at = k;
                        }
                    int64_t o = (pl * oh + oy) * ow + ox;
                    ok &= am[o] == at;
                    ok &= isnan(best) ? isnan(y->data[o]) : y->data[o] == best;
                }
        TS_CHECK_MSG(ok, "2x2 max pool (ceil_mode %d) differs from first-max reference", ceil_mode);
        free(am);
        ts_tensor_free(x);
        ts_tensor_free(y);
    }
}

/* The examples from the ONNX operator documentation (MaxPool/AveragePool
 * "2d_ceil": 4x4 input 1..16, kernel 3, stride 2, ceil_mode). */
static void test_pool_onnx_ceil_examples(void) {
    ts_err err;
    ts_tensor *x = tnew4(1, 1, 4, 4), *y = tnew4(1, 1, 2, 2);
    for (int i = 0; i < 16; i++)
        x->data[i] = (float)(i + 1);
    ts_pool2d_params p;
    memset(&p, 0, sizeof p);
    p.kh = p.kw = 3, p.stride_h = p.stride_w = 2, p.dil_h = p.dil_w = 1, p.ceil_mode = 1;
    TS_CHECK_OK(ts_maxpool2d_forward(&p, x, y, NULL, &err), &err);
    const float want_max[4] = {11, 12, 15, 16}, want_avg[4] = {6, 7.5f, 12, 13.5f};
    for (int i = 0; i < 4; i++)
        TS_CHECK_NEAR(y->data[i], want_max[i], 1e-6);
    TS_CHECK_OK(ts_avgpool2d_forward(&p, x, y, &err), &err);
    for (int i = 0; i < 4; i++)
        TS_CHECK_NEAR(y->data[i], want_avg[i], 1e-6);
    ts_tensor_free(x);
    ts_tensor_free(y);
}

typedef struct {
    ts_pool2d_params p;
    int is_max, global;
    ts_tensor *x, *y, *r;
    int32_t *am;
} pool_fixture;

static double pool_loss(void *ctx) {
    pool_fixture *f = ctx;
    ts_err err;
    ts_status s = f->global   ? ts_global_avgpool_forward(f->x, f->y, &err)
                  : f->is_max ? ts_maxpool2d_forward(&f->p, f->x, f->y, f->am, &err)
                              : ts_avgpool2d_forward(&f->p, f->x, f->y, &err);
    TS_ASSERT(s == TS_OK);
    return dot_d(f->y->data, f->r->data, f->y->size);
}

static void check_pool_backward(ts_pool2d_params p, int is_max, int global) {
    ts_err err;
    pool_fixture f;
    memset(&f, 0, sizeof f);
    f.p = p, f.is_max = is_max, f.global = global;
    int64_t n = 2, c = 2, h = irand(3, 7), w = irand(3, 7);
    f.x = trand4(n, c, h, w);
    if (is_max) { /* distinct values 0.01 apart so +-h never changes the argmax */
        for (int64_t i = 0; i < f.x->size; i++)
            f.x->data[i] = (float)(0.01 * i);
        for (int64_t i = f.x->size - 1; i > 0; i--) {
            int64_t j = (int64_t)ts_rng_below(&g_rng, (uint64_t)i + 1);
            float t = f.x->data[i];
            f.x->data[i] = f.x->data[j];
            f.x->data[j] = t;
        }
    }
    ts_shape ys = ts_shape4(n, c, 1, 1);
    if (!global && ts_pool2d_out_shape(&p, &f.x->s, &ys, &err) != TS_OK) {
        ts_tensor_free(f.x);
        return;
    }
    f.y = ts_tensor_new(&ys, &err);
    f.r = tlike_rand(f.y);
    f.am = malloc((size_t)f.y->size * sizeof *f.am);
    pool_loss(&f);
    ts_tensor *dx = tlike_rand(f.x), *dx0 = tclone(dx);
    if (global)
        TS_CHECK_OK(ts_global_avgpool_backward(f.r, dx, &err), &err);
    else if (is_max)
        TS_CHECK_OK(ts_maxpool2d_backward(&p, f.r, f.am, dx, &err), &err);
    else
        TS_CHECK_OK(ts_avgpool2d_backward(&p, f.r, dx, &err), &err);
    float *g = grad_delta(dx, dx0);
    grad_check(global   ? "global avgpool dx"
               : is_max ? "maxpool dx"
                        : "avgpool dx",
               f.x->data, f.x->size, g, pool_loss, &f, is_max ? 1e-3 : 0.05, 1e-3, 2e-3);
    free(g);
    free(f.am);
    ts_tensor_free(dx);
    ts_tensor_free(dx0);
    ts_tensor_free(f.x);
    ts_tensor_free(f.y);
    ts_tensor_free(f.r);
}

static void test_pool_backward_fd(void) {
    for (int t = 0; t < 25; t++) {
        ts_pool2d_params p = random_pool_params();
        check_pool_backward(p, 1, 0);
        check_pool_backward(p, 0, 0);
    }
    ts_pool2d_params p;
    memset(&p, 0, sizeof p);
    check_pool_backward(p, 0, 1);
}

static void test_global_avgpool_forward(void) {
    ts_err err;
    ts_tensor *x = trand4(2, 3, 4, 5), *y = tnew4(2, 3, 1, 1);
    TS_CHECK_OK(ts_global_avgpool_forward(x, y, &err), &err);
    for (int i = 0; i < 6; i++) {
        double s = 0;
        for (int j = 0; j < 20; j++)
            s += x->data[i * 20 + j];
        TS_CHECK_NEAR(y->data[i], s / 20, 1e-6);
    }
    ts_tensor *ybad = tnew4(2, 3, 2, 1);
    TS_CHECK(ts_global_avgpool_forward(x, ybad, &err) == TS_ERR_SHAPE);
    TS_CHECK(msg_has(&err, "global_avgpool"));
    ts_tensor_free(x);
    ts_tensor_free(y);
    ts_tensor_free(ybad);
}

static void test_pool_errors(void) {
    ts_err err;
    ts_pool2d_params p;
    memset(&p, 0, sizeof p);
    p.kh = p.kw = 5, p.stride_h = p.stride_w = 1, p.dil_h = p.dil_w = 1;
    ts_tensor *x = trand4(1, 1, 3, 3), *y = tnew4(1, 1, 1, 1);
    TS_CHECK(ts_maxpool2d_forward(&p, x, y, NULL, &err) == TS_ERR_SHAPE);
    TS_CHECK_MSG(msg_has(&err, "pool2d") && msg_has(&err, "[1, 1, 3, 3]"), "msg: %s", err.msg);
    p.kh = p.kw = 2;
    TS_CHECK(ts_avgpool2d_forward(&p, x, y, &err) == TS_ERR_SHAPE); /* y must be 2x2 */
    TS_CHECK_MSG(msg_has(&err, "avgpool2d") && msg_has(&err, "[1, 1, 2, 2]"), "msg: %s", err.msg);
    p.stride_w = 0;
    TS_CHECK(ts_avgpool2d_forward(&p, x, y, &err) == TS_ERR_INVALID);
    p.stride_w = 1;
    ts_tensor *y2 = tnew4(1, 1, 2, 2);
    int32_t am[4] = {0, 1, 2, 99};
    TS_CHECK(ts_maxpool2d_backward(&p, y2, am, x, &err) == TS_ERR_INVALID);
    ts_tensor_free(x);
    ts_tensor_free(y);
    ts_tensor_free(y2);
}

/* ---- activations, softmax, dropout ------------------------------------- */

typedef struct {
    ts_tensor *x, *y, *r;
    float alpha;
} act_fixture;

static double leaky_loss(void *ctx) {
    act_fixture *f = ctx;
    ts_err err;
    TS_ASSERT(ts_leaky_relu_forward(f->x, f->alpha, f->y, &err) == TS_OK);
    return dot_d(f->y->data, f->r->data, f->y->size);
}

static void test_leaky_relu(void) {
    ts_err err;
    float alphas[2] = {0.0f, 0.1f};
    for (int a = 0; a < 2; a++) {
        act_fixture f;
        f.alpha = alphas[a];
        f.x = trand4(2, 3, 4, 5);
        for (int64_t i = 0; i < f.x->size; i++) /* keep |x| >= 0.05: away from the kink */
            if (fabsf(f.x->data[i]) < 0.05f) f.x->data[i] = 0.5f;
        f.y = tlike_rand(f.x);
        f.r = tlike_rand(f.x);
        TS_CHECK_OK(ts_leaky_relu_forward(f.x, f.alpha, f.y, &err), &err);
        int ok = 1;
        for (int64_t i = 0; i < f.x->size; i++) {
            float v = f.x->data[i];
            ok &= f.y->data[i] == (v > 0 ? v : f.alpha * v);
        }
        TS_CHECK(ok);
        ts_tensor *inplace = tclone(f.x);
        TS_CHECK_OK(ts_leaky_relu_forward(inplace, f.alpha, inplace, &err), &err);
        TS_CHECK(memcmp(inplace->data, f.y->data, (size_t)f.y->size * sizeof(float)) == 0);
        ts_tensor *dx = tlike_rand(f.x), *dx0 = tclone(dx);
        TS_CHECK_OK(ts_leaky_relu_backward(f.x, f.alpha, f.r, dx, &err), &err);
        float *g = grad_delta(dx, dx0);
        grad_check("leaky_relu dx", f.x->data, f.x->size, g, leaky_loss, &f, 1e-2, 1e-3, 1e-3);
        free(g);
        ts_tensor_free(inplace);
        ts_tensor_free(dx);
        ts_tensor_free(dx0);
        ts_tensor_free(f.x);
        ts_tensor_free(f.y);
        ts_tensor_free(f.r);
    }
}

static void test_softmax_axes(void) {
    ts_err err;
    int64_t d[3] = {3, 4, 5};
    ts_tensor *x = trand(3, d), *y = tnew(3, d);
    for (int64_t i = 0; i < x->size; i++)
        x->data[i] *= 20; /* large logits: stability */
    for (int axis = -3; axis < 3; axis++) {
        TS_CHECK_OK(ts_softmax_forward(x, axis, y, &err), &err);
        int ax = axis < 0 ? axis + 3 : axis;
        int64_t st[3] = {20, 5, 1};
        double worst = 0;
        for (int64_t i = 0; i < x->size; i++) {
            int64_t idx[3] = {i / 20, i / 5 % 4, i % 5};
            int64_t base = i - idx[ax] * st[ax];
            double mx = -INFINITY, s = 0;
            for (int64_t k = 0; k < d[ax]; k++)
                mx = fmax(mx, x->data[base + k * st[ax]]);
            for (int64_t k = 0; k < d[ax]; k++)
                s += exp(x->data[base + k * st[ax]] - mx);
            worst = fmax(worst, fabs(y->data[i] - exp(x->data[i] - mx) / s));
        }
        TS_CHECK_MSG(worst < 1e-6, "softmax axis %d err %.3g", axis, worst);
    }
    TS_CHECK(ts_softmax_forward(x, 3, y, &err) == TS_ERR_SHAPE);
    TS_CHECK(msg_has(&err, "softmax"));
    ts_tensor_free(x);
    ts_tensor_free(y);
}

typedef struct {
    ts_tensor *x, *y, *r;
    float ratio;
    uint8_t *mask;
} drop_fixture;

/* Dropout with a fixed mask is linear: y = x * mask / (1 - ratio). */
static double dropout_loss(void *ctx) {
    drop_fixture *f = ctx;
    double s = 0;
    for (int64_t i = 0; i < f->x->size; i++)
        s += f->mask[i] ? (double)f->x->data[i] / (1 - f->ratio) * f->r->data[i] : 0;
    return s;
}

static void test_dropout(void) {
    ts_err err;
    drop_fixture f;
    f.ratio = 0.3f;
    int64_t d[2] = {64, 64};
    f.x = trand(2, d);
    f.y = tnew(2, d);
    f.r = trand(2, d);
    f.mask = malloc((size_t)f.x->size);
    ts_rng rng;
    ts_rng_seed(&rng, 7);
    TS_CHECK_OK(ts_dropout_forward(f.x, f.ratio, 1, &rng, f.mask, f.y, &err), &err);
    int64_t kept = 0;
    int ok = 1;
    for (int64_t i = 0; i < f.x->size; i++) {
        kept += f.mask[i];
        ok &= f.y->data[i] == (f.mask[i] ? f.x->data[i] / (1 - f.ratio) : 0) ||
              fabsf(f.y->data[i] - f.x->data[i] / (1 - f.ratio)) < 1e-6f;
    }
    TS_CHECK(ok);
    double frac = (double)kept / (double)f.x->size; /* 4096 draws: sd ~ 0.007 */
    TS_CHECK_MSG(fabs(frac - 0.7) < 0.04, "kept fraction %.3f", frac);
    /* Forward against the closed form used by the FD loss. */
    TS_CHECK_NEAR(dot_d(f.y->data, f.r->data, f.y->size), dropout_loss(&f), 1e-3);
    ts_tensor *dx = tlike_rand(f.x), *dx0 = tclone(dx);
    TS_CHECK_OK(ts_dropout_backward(f.r, f.ratio, f.mask, dx, &err), &err);
    float *g = grad_delta(dx, dx0);
    grad_check("dropout dx", f.x->data, f.x->size, g, dropout_loss, &f, 0.05, 1e-4, 1e-4);
    free(g);
    /* Inference copies x. */
    TS_CHECK_OK(ts_dropout_forward(f.x, f.ratio, 0, NULL, NULL, f.y, &err), &err);
    TS_CHECK(memcmp(f.x->data, f.y->data, (size_t)f.x->size * sizeof(float)) == 0);
    TS_CHECK(ts_dropout_forward(f.x, 1.0f, 1, &rng, f.mask, f.y, &err) == TS_ERR_INVALID);
    ts_tensor_free(dx);
    ts_tensor_free(dx0);
    free(f.mask);
    ts_tensor_free(f.x);
    ts_tensor_free(f.y);
    ts_tensor_free(f.r);
}

/* ---- batch normalization ----------------------------------------------- */

typedef struct {
    ts_tensor *x, *scale, *bias, *y, *r;
    float *mean, *invstd;
} bn_fixture;

static double bn_loss(void *ctx) {
    bn_fixture *f = ctx;
    ts_err err;
    TS_ASSERT(ts_batchnorm_forward_train(f->x, f->scale, f->bias, 1e-5f, 0.9f, NULL, NULL, f->y,
                                         f->mean, f->invstd, &err) == TS_OK);
    return dot_d(f->y->data, f->r->data, f->y->size);
}

static void test_batchnorm(void) {
    ts_err err;
    const int64_t N = 3, C = 4, H = 3, W = 2, M = N * H * W;
    int64_t cd[1] = {C};
    bn_fixture f;
    f.x = trand4(N, C, H, W);
    for (int64_t i = 0; i < f.x->size; i++)
        f.x->data[i] = f.x->data[i] * 2 + 1;
    f.scale = trand(1, cd), f.bias = trand(1, cd);
    f.y = tlike_rand(f.x), f.r = tlike_rand(f.x);
    f.mean = malloc(C * sizeof(float)), f.invstd = malloc(C * sizeof(float));
    ts_tensor *rm = trand(1, cd), *rv = trand(1, cd), *rm0, *rv0;
    for (int c = 0; c < C; c++)
        rv->data[c] = fabsf(rv->data[c]) + 0.5f;
    rm0 = tclone(rm), rv0 = tclone(rv);
    TS_CHECK_OK(ts_batchnorm_forward_train(f.x, f.scale, f.bias, 1e-5f, 0.9f, rm, rv, f.y, f.mean,
                                           f.invstd, &err),
                &err);
    for (int64_t c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < H * W; i++)
                s += f.x->data[(n * C + c) * H * W + i];
        double mu = s / M;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < H * W; i++) {
                double dd = f.x->data[(n * C + c) * H * W + i] - mu;
                ss += dd * dd;
            }
        double var = ss / M;
        TS_CHECK_NEAR(f.mean[c], mu, 1e-5);
        TS_CHECK_NEAR(f.invstd[c], 1 / sqrt(var + 1e-5), 1e-4);
        TS_CHECK_NEAR(rm->data[c], 0.9 * rm0->data[c] + 0.1 * mu, 1e-5);
        TS_CHECK_NEAR(rv->data[c], 0.9 * rv0->data[c] + 0.1 * ss / (M - 1), 1e-5);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < H * W; i++) {
                int64_t k = (n * C + c) * H * W + i;
                double want =
                    (f.x->data[k] - mu) / sqrt(var + 1e-5) * f.scale->data[c] + f.bias->data[c];
                TS_CHECK_NEAR(f.y->data[k], want, 1e-5);
            }
    }
    /* Inference with the running statistics. */
    TS_CHECK_OK(ts_batchnorm_forward_infer(f.x, f.scale, f.bias, rm, rv, 1e-3f, f.y, &err), &err);
    double worst = 0;
    for (int64_t k = 0; k < f.x->size; k++) {
        int64_t c = k / (H * W) % C;
        double want = (f.x->data[k] - rm->data[c]) / sqrt(rv->data[c] + 1e-3) * f.scale->data[c] +
                      f.bias->data[c];
        worst = fmax(worst, fabs(f.y->data[k] - want));
    }
    TS_CHECK_MSG(worst < 1e-5, "bn infer err %.3g", worst);
    /* Backward against FD of the training forward (batch statistics move with x). */
    bn_loss(&f);
    ts_tensor *dx = tlike_rand(f.x), *dsc = tlike_rand(f.scale), *dbi = tlike_rand(f.bias);
    ts_tensor *dx0 = tclone(dx), *dsc0 = tclone(dsc), *dbi0 = tclone(dbi);
    TS_CHECK_OK(ts_batchnorm_backward(f.x, f.scale, f.mean, f.invstd, f.r, dx, dsc, dbi, &err),
                &err);
    float *gx = grad_delta(dx, dx0), *gs = grad_delta(dsc, dsc0), *gb = grad_delta(dbi, dbi0);
    grad_check("batchnorm dx", f.x->data, f.x->size, gx, bn_loss, &f, 1e-2, 2e-3, 1e-2);
    grad_check("batchnorm dscale", f.scale->data, C, gs, bn_loss, &f, 1e-2, 2e-3, 1e-2);
    grad_check("batchnorm dbias", f.bias->data, C, gb, bn_loss, &f, 1e-2, 2e-3, 1e-2);
    free(gx), free(gs), free(gb);
    /* Shape errors. */
    int64_t c3[1] = {3};
    ts_tensor *s3 = trand(1, c3);
    TS_CHECK(ts_batchnorm_forward_infer(f.x, s3, f.bias, rm, rv, 1e-5f, f.y, &err) == TS_ERR_SHAPE);
    TS_CHECK_MSG(msg_has(&err, "batchnorm") && msg_has(&err, "scale"), "msg: %s", err.msg);
    ts_tensor_free(s3);
    ts_tensor_free(dx), ts_tensor_free(dsc), ts_tensor_free(dbi);
    ts_tensor_free(dx0), ts_tensor_free(dsc0), ts_tensor_free(dbi0);
    ts_tensor_free(rm), ts_tensor_free(rv), ts_tensor_free(rm0), ts_tensor_free(rv0);
    ts_tensor_free(f.x), ts_tensor_free(f.scale), ts_tensor_free(f.bias);
    ts_tensor_free(f.y), ts_tensor_free(f.r);
    free(f.mean), free(f.invstd);
}

static void test_batchnorm_fold(void) {
    ts_err err;
    conv_case cc;
    memset(&cc, 0, sizeof cc);
    cc.p = ts_conv2d_params_default();
    cc.p.pad_t = cc.p.pad_l = cc.p.pad_b = cc.p.pad_r = 1;
    cc.n = 2, cc.c = 3, cc.h = 6, cc.w = 5, cc.m = 4, cc.kh = cc.kw = 3;
    conv_fixture f;
    TS_ASSERT(conv_fixture_make(&f, &cc));
    int64_t md[1] = {4};
    ts_tensor *sc = trand(1, md), *bi = trand(1, md), *mu = trand(1, md), *var = trand(1, md);
    for (int i = 0; i < 4; i++)
        var->data[i] = fabsf(var->data[i]) + 0.1f;
    TS_CHECK_OK(ts_conv2d_forward(&cc.p, f.x, f.w, f.b, f.y, f.ws, &err), &err);
    ts_tensor *bn = tlike_rand(f.y);
    TS_CHECK_OK(ts_batchnorm_forward_infer(f.y, sc, bi, mu, var, 1e-5f, bn, &err), &err);
    TS_CHECK_OK(ts_batchnorm_fold(f.w, f.b, sc, bi, mu, var, 1e-5f, &err), &err);
    TS_CHECK_OK(ts_conv2d_forward(&cc.p, f.x, f.w, f.b, f.y, f.ws, &err), &err);
    double worst = 0;
    for (int64_t i = 0; i < bn->size; i++)
        worst = fmax(worst, fabs(bn->data[i] - f.y->data[i]));
    TS_CHECK_MSG(worst < 1e-4, "folded conv differs by %.3g", worst);
    ts_tensor_free(sc), ts_tensor_free(bi), ts_tensor_free(mu), ts_tensor_free(var);
    ts_tensor_free(bn);
    conv_fixture_free(&f);
}

/* ---- gemm -------------------------------------------------------------- */

typedef struct {
    int ta, tb;
    float alpha, beta;
    ts_tensor *a, *b, *c, *y, *r;
} gemm_fixture;

static double gemm_loss(void *ctx) {
    gemm_fixture *f = ctx;
    ts_err err;
    TS_ASSERT(ts_gemm_forward(f->ta, f->tb, f->alpha, f->beta, f->a, f->b, f->c, f->y, &err) ==
              TS_OK);
    return dot_d(f->y->data, f->r->data, f->y->size);
}

static void test_gemm(void) {
    ts_err err;
    const int64_t M = 5, K = 4, N = 3;
    /* C shapes: none, [M,N], [N], [1,N], [M,1], [1], scalar ([]) */
    int64_t cshapes[7][3] = {{-1}, {2, M, N}, {1, N}, {2, 1, N}, {2, M, 1}, {1, 1}, {0}};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int ci = 0; ci < 7; ci++) {
                gemm_fixture f;
                f.ta = ta, f.tb = tb, f.alpha = 0.7f, f.beta = ci ? 1.3f : 0.0f;
                f.a = ta ? trand(2, (int64_t[]){K, M}) : trand(2, (int64_t[]){M, K});
                f.b = tb ? trand(2, (int64_t[]){N, K}) : trand(2, (int64_t[]){K, N});
                f.c = cshapes[ci][0] < 0 ? NULL : trand((int)cshapes[ci][0], cshapes[ci] + 1);
                f.y = tnew2(M, N);
                f.r = tnew2(M, N);
                ts_rng_fill_uniform(&g_rng, f.r->data, f.r->size, -1, 1);
                TS_CHECK_OK(ts_gemm_forward(ta, tb, f.alpha, f.beta, f.a, f.b, f.c, f.y, &err),
                            &err);
                double worst = 0;
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double s = 0;
                        for (int64_t k = 0; k < K; k++)
                            s += (double)(ta ? f.a->data[k * M + i] : f.a->data[i * K + k]) *
                                 (tb ? f.b->data[j * K + k] : f.b->data[k * N + j]);
                        double cv = 0;
                        if (f.c) {
                            int nd = f.c->s.ndim;
                            int64_t cn = nd >= 1 ? f.c->s.shape[nd - 1] : 1;
                            int64_t cm = nd == 2 ? f.c->s.shape[0] : 1;
                            cv = f.c->data[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
                        }
                        worst = fmax(worst, fabs(f.y->data[i * N + j] - (0.7 * s + f.beta * cv)));
                    }
                TS_CHECK_MSG(worst < 1e-5, "gemm ta%d tb%d c%d err %.3g", ta, tb, ci, worst);
                ts_tensor *da = tlike_rand(f.a), *db = tlike_rand(f.b);
                ts_tensor *dc = f.c ? tlike_rand(f.c) : NULL;
                ts_tensor *da0 = tclone(da), *db0 = tclone(db), *dc0 = dc ? tclone(dc) : NULL;
                TS_CHECK_OK(
                    ts_gemm_backward(ta, tb, f.alpha, f.beta, f.a, f.b, f.c, f.r, da, db, dc, &err),
                    &err);
                float *ga = grad_delta(da, da0), *gb = grad_delta(db, db0);
                grad_check("gemm dA", f.a->data, f.a->size, ga, gemm_loss, &f, 0.05, 1e-4, 1e-3);
                grad_check("gemm dB", f.b->data, f.b->size, gb, gemm_loss, &f, 0.05, 1e-4, 1e-3);
                if (dc) {
                    float *gc = grad_delta(dc, dc0);
                    grad_check("gemm dC", f.c->data, f.c->size, gc, gemm_loss, &f, 0.05, 1e-4,
                               1e-3);
                    free(gc);
                }
                free(ga), free(gb);
                ts_tensor_free(da), ts_tensor_free(db), ts_tensor_free(dc);
                ts_tensor_free(da0), ts_tensor_free(db0), ts_tensor_free(dc0);
                ts_tensor_free(f.a), ts_tensor_free(f.b), ts_tensor_free(f.c);
                ts_tensor_free(f.y), ts_tensor_free(f.r);
            }
    /* Shape errors: K mismatch, C not broadcastable, wrong Y. */
    ts_tensor *a = trand(2, (int64_t[]){M, K}), *b = trand(2, (int64_t[]){K + 1, N});
    ts_tensor *y = tnew2(M, N), *b_ok = trand(2, (int64_t[]){K, N});
    ts_tensor *cbad = trand(1, (int64_t[]){M}), *ybad = tnew2(N, M);
    TS_CHECK(ts_gemm_forward(0, 0, 1, 1, a, b, NULL, y, &err) == TS_ERR_SHAPE);
    TS_CHECK_MSG(msg_has(&err, "gemm") && msg_has(&err, "[5, 4]") && msg_has(&err, "[5, 3]"),
                 "msg: %s", err.msg);
    TS_CHECK(ts_gemm_forward(0, 0, 1, 1, a, b_ok, cbad, y, &err) == TS_ERR_SHAPE);
    TS_CHECK(msg_has(&err, "broadcast"));
    TS_CHECK(ts_gemm_forward(0, 0, 1, 1, a, b_ok, NULL, ybad, &err) == TS_ERR_SHAPE);
    ts_tensor_free(a), ts_tensor_free(b), ts_tensor_free(y), ts_tensor_free(b_ok);
    ts_tensor_free(cbad), ts_tensor_free(ybad);
}

/* ---- add and concat ---------------------------------------------------- */

typedef struct {
    ts_tensor *a, *b, *y, *r;
} add_fixture;

static double add_loss(void *ctx) {
    add_fixture *f = ctx;
    ts_err err;
    TS_ASSERT(ts_add_forward(f->a, f->b, f->y, &err) == TS_OK);
    return dot_d(f->y->data, f->r->data, f->y->size);
}

static void test_add_broadcast(void) {
    ts_err err;
    struct {
        int na, nb;
        int64_t a[4], b[4], y[4];
        int ny;
    } cases[] = {
        {4, 4, {2, 3, 4, 5}, {2, 3, 4, 5}, {2, 3, 4, 5}, 4},
        {4, 1, {2, 3, 4, 5}, {5}, {2, 3, 4, 5}, 4},
        {4, 3, {2, 3, 4, 5}, {3, 1, 1}, {2, 3, 4, 5}, 4},
        {2, 3, {4, 1}, {3, 1, 5}, {3, 4, 5}, 3},
        {4, 4, {1, 3, 1, 5}, {2, 1, 4, 1}, {2, 3, 4, 5}, 4},
        {1, 0, {6}, {0}, {6}, 1},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        add_fixture f;
        f.a = trand(cases[t].na, cases[t].a);
        f.b = trand(cases[t].nb, cases[t].b);
        ts_shape ys;
        TS_CHECK_OK(ts_add_out_shape(&f.a->s, &f.b->s, &ys, &err), &err);
        ts_shape want = ts_shape_make(cases[t].ny, cases[t].y);
        TS_CHECK(ts_shape_eq(&ys, &want));
        f.y = ts_tensor_new(&ys, &err);
        f.r = tlike_rand(f.y);
        TS_CHECK_OK(ts_add_forward(f.a, f.b, f.y, &err), &err);
        /* Reference: index each operand by right-aligned coordinates. */
        int ok = 1;
        int nd = ys.ndim;
        for (int64_t i = 0; i < f.y->size; i++) {
            int64_t rem = i, idx[4] = {0};
            for (int d = nd - 1; d >= 0; d--)
                idx[d] = rem % ys.shape[d], rem /= ys.shape[d];
            const ts_tensor *ops[2] = {f.a, f.b};
            double v = 0;
            for (int k = 0; k < 2; k++) {
                int64_t off = 0;
                int o = nd - ops[k]->s.ndim;
                for (int d = 0; d < ops[k]->s.ndim; d++)
                    off = off * ops[k]->s.shape[d] + (ops[k]->s.shape[d] == 1 ? 0 : idx[d + o]);
                v += ops[k]->data[off];
            }
            ok &= fabs(f.y->data[i] - v) < 1e-6;
        }
        TS_CHECK_MSG(ok, "add case %zu", t);
        ts_tensor *da = tlike_rand(f.a), *db = tlike_rand(f.b);
        ts_tensor *da0 = tclone(da), *db0 = tclone(db);
        TS_CHECK_OK(ts_add_backward(f.r, da, db, &err), &err);
        float *ga = grad_delta(da, da0), *gb = grad_delta(db, db0);
        grad_check("add da", f.a->data, f.a->size, ga, add_loss, &f, 0.05, 1e-4, 1e-4);
        grad_check("add db", f.b->data, f.b->size, gb, add_loss, &f, 0.05, 1e-4, 1e-4);
        free(ga), free(gb);
        ts_tensor_free(da), ts_tensor_free(db), ts_tensor_free(da0), ts_tensor_free(db0);
        ts_tensor_free(f.a), ts_tensor_free(f.b), ts_tensor_free(f.y), ts_tensor_free(f.r);
    }
    ts_tensor *a = trand(2, (int64_t[]){3, 4}), *b = trand(2, (int64_t[]){2, 4});
    ts_tensor *y = tnew2(3, 4);
    TS_CHECK(ts_add_forward(a, b, y, &err) == TS_ERR_SHAPE);
    TS_CHECK_MSG(msg_has(&err, "add") && msg_has(&err, "[3, 4]") && msg_has(&err, "[2, 4]"),
                 "msg: %s", err.msg);
    TS_CHECK(ts_add_backward(y, b, NULL, &err) == TS_ERR_SHAPE);
    ts_tensor_free(a), ts_tensor_free(b), ts_tensor_free(y);
}

typedef struct {
    ts_tensor *xs[3], *y, *r;
    int axis;
} concat_fixture;

static double concat_loss(void *ctx) {
    concat_fixture *f = ctx;
    ts_err err;
    TS_ASSERT(ts_concat_forward((const ts_tensor *const *)f->xs, 3, f->axis, f->y, &err) == TS_OK);
    return dot_d(f->y->data, f->r->data, f->y->size);
}

static void test_concat(void) {
    ts_err err;
    for (int axis = -4; axis < 4; axis++) {
        int ax = axis < 0 ? axis + 4 : axis;
        concat_fixture f;
        f.axis = axis;
        int64_t base[4] = {2, 3, 2, 3};
        for (int i = 0; i < 3; i++) {
            int64_t d[4];
            memcpy(d, base, sizeof d);
            d[ax] = i + 1;
            f.xs[i] = trand(4, d);
        }
        int64_t yd[4];
        memcpy(yd, base, sizeof yd);
        yd[ax] = 6;
        f.y = trand(4, yd);
        f.r = trand(4, yd);
        TS_CHECK_OK(ts_concat_forward((const ts_tensor *const *)f.xs, 3, axis, f.y, &err), &err);
        int ok = 1;
        for (int64_t i = 0; i < f.y->size; i++) {
            int64_t rem = i, idx[4];
            for (int d = 3; d >= 0; d--)
                idx[d] = rem % yd[d], rem /= yd[d];
            int part = idx[ax] < 1 ? 0 : idx[ax] < 3 ? 1 : 2;
            idx[ax] -= part == 0 ? 0 : part == 1 ? 1 : 3;
            const ts_tensor *x = f.xs[part];
            int64_t off = 0;
            for (int d = 0; d < 4; d++)
                off = off * x->s.shape[d] + idx[d];
            ok &= f.y->data[i] == x->data[off];
        }
        TS_CHECK_MSG(ok, "concat axis %d", axis);
        ts_tensor *dx[3], *dx0[3];
        for (int i = 0; i < 3; i++)
            dx[i] = tlike_rand(f.xs[i]), dx0[i] = tclone(dx[i]);
        TS_CHECK_OK(ts_concat_backward(f.r, axis, dx, 3, &err), &err);
        for (int i = 0; i < 3; i++) {
            float *g = grad_delta(dx[i], dx0[i]);
            grad_check("concat dx", f.xs[i]->data, f.xs[i]->size, g, concat_loss, &f, 0.05, 1e-4,
                       1e-4);
            free(g);
        }
        for (int i = 0; i < 3; i++)
            ts_tensor_free(dx[i]), ts_tensor_free(dx0[i]), ts_tensor_free(f.xs[i]);
        ts_tensor_free(f.y), ts_tensor_free(f.r);
    }
    ts_tensor *a = trand4(1, 2, 3, 3), *b = trand4(1, 2, 4, 3), *y = tnew4(1, 4, 3, 3);
    const ts_tensor *xs[2] = {a, b};
    TS_CHECK(ts_concat_forward(xs, 2, 1, y, &err) == TS_ERR_SHAPE);
    TS_CHECK_MSG(msg_has(&err, "concat") && msg_has(&err, "[1, 2, 4, 3]"), "msg: %s", err.msg);
    TS_CHECK(ts_concat_forward(xs, 2, 5, y, &err) == TS_ERR_SHAPE);
    ts_tensor_free(a), ts_tensor_free(b), ts_tensor_free(y);
}

/* ---- softmax cross-entropy --------------------------------------------- */

typedef struct {
    ts_tensor *logits;
    int32_t *labels;
} xent_fixture;

static double xent_loss(void *ctx) {
    xent_fixture *f = ctx;
    float loss;
    ts_err err;
    TS_ASSERT(ts_softmax_xent(f->logits, f->labels, NULL, &loss, NULL, &err) == TS_OK);
    return loss;
}

static void test_softmax_xent(void) {
    ts_err err;
    const int64_t N = 4, K = 6;
    xent_fixture f;
    f.logits = tnew2(N, K);
    ts_rng_fill_uniform(&g_rng, f.logits->data, f.logits->size, -3, 3);
    int32_t labels[4] = {0, 5, 2, 2};
    f.labels = labels;
    ts_tensor *probs = tnew2(N, K), *dl = tnew2(N, K);
    float loss;
    TS_CHECK_OK(ts_softmax_xent(f.logits, labels, probs, &loss, dl, &err), &err);
    double want = 0;
    for (int64_t i = 0; i < N; i++) {
        double s = 0;
        for (int64_t j = 0; j < K; j++)
            s += exp(f.logits->data[i * K + j]);
        for (int64_t j = 0; j < K; j++)
            TS_CHECK_NEAR(probs->data[i * K + j], exp(f.logits->data[i * K + j]) / s, 1e-6);
        want -= log(exp(f.logits->data[i * K + labels[i]]) / s);
    }
    TS_CHECK_NEAR(loss, want / N, 1e-5);
    grad_check("softmax_xent dlogits", f.logits->data, f.logits->size, dl->data, xent_loss, &f,
               1e-2, 1e-4, 1e-2);
    /* Huge logits stay finite. */
    f.logits->data[0] = 1e4f;
    TS_CHECK_OK(ts_softmax_xent(f.logits, labels, probs, &loss, dl, &err), &err);
    TS_CHECK(isfinite(loss));
    labels[1] = 6;
    TS_CHECK(ts_softmax_xent(f.logits, labels, probs, &loss, dl, &err) == TS_ERR_INVALID);
    TS_CHECK(msg_has(&err, "label"));
    labels[1] = 5;
    ts_tensor *pbad = tnew2(N, K + 1);
    TS_CHECK(ts_softmax_xent(f.logits, labels, pbad, &loss, dl, &err) == TS_ERR_SHAPE);
    TS_CHECK(msg_has(&err, "softmax_xent"));
    ts_tensor_free(pbad), ts_tensor_free(probs), ts_tensor_free(dl), ts_tensor_free(f.logits);
}

int main(void) {
    ts_rng_seed(&g_rng, 12345);
    TS_RUN(test_conv_forward_random);
    TS_RUN(test_conv_forward_chunked_and_direct);
    TS_RUN(test_conv_backward_fd);
    TS_RUN(test_conv_backward_chunked_vs_naive);
    TS_RUN(test_conv_shape_errors);
    TS_RUN(test_conv_winograd_vs_reference);
    TS_RUN(test_conv_packed_vs_reference);
    TS_RUN(test_conv_paths_two_threads);
    TS_RUN(test_conv_taps_batches);
    TS_RUN(test_conv_path_dispatch);
    TS_RUN(test_pool_forward_random);
    TS_RUN(test_pool_onnx_ceil_examples);
    TS_RUN(test_maxpool_2x2_fast_path);
    TS_RUN(test_pool_backward_fd);
    TS_RUN(test_global_avgpool_forward);
    TS_RUN(test_pool_errors);
    TS_RUN(test_leaky_relu);
    TS_RUN(test_softmax_axes);
    TS_RUN(test_dropout);
    TS_RUN(test_batchnorm);
    TS_RUN(test_batchnorm_fold);
    TS_RUN(test_gemm);
    TS_RUN(test_add_broadcast);
    TS_RUN(test_concat);
    TS_RUN(test_softmax_xent);
    return ts_test_summary();
}
