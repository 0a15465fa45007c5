/* bench_fcdcc.c: numerical exactness and stability of FCDCC coded
 * convolution on AlexNet's conv layers (random weights, batch 1).
 *
 *   bench_fcdcc stability [--csv FILE] [--sets S]
 *       relative error of the coded output against the single-node conv,
 *       float32 workers, double decoding, for n = 4..32 workers with s = 2
 *       stragglers, schemes crme and polynomial (real Vandermonde); the
 *       worst over S random responder sets per layer (default 10).
 *   bench_fcdcc f64 [--workers N]
 *       the same pipeline with float64 workers (encode, conv, decode all in
 *       double): the mean squared error against a float64 single-node conv
 *       per layer, the FCDCC paper's "MSE about 1e-27" claim (N = 20).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/code.h"
#include "tessera/coded.h"
#include "tessera/zoo.h"

typedef struct {
    const char *name;
    ts_conv2d_params p;
    ts_tensor *x, *w;
} conv_layer;

/* AlexNet's conv layers with their real input activations (random image). */
static int alexnet_layers(conv_layer *out, int cap) {
    ts_err e = {0};
    ts_graph *g = ts_zoo_build("alexnet", 1, &e);
    if (!g || ts_graph_plan(g, 1, 1, &e) != TS_OK) { /* training plan: keeps every activation */
        fprintf(stderr, "bench_fcdcc: %s\n", e.msg);
        exit(1);
    }
    ts_rng r;
    ts_rng_seed(&r, 42);
    ts_tensor *img = ts_tensor_new4(1, 3, 224, 224, NULL);
    ts_rng_fill_normal(&r, img->data, img->size, 1.0f);
    if (ts_graph_forward(g, img, &e) != TS_OK) {
        fprintf(stderr, "bench_fcdcc: %s\n", e.msg);
        exit(1);
    }
    int n = 0;
    for (int i = 0; i < ts_graph_num_nodes(g) && n < cap; i++) {
        ts_node_view nv = ts_graph_node(g, i);
        if (nv.op != TS_OP_CONV) continue;
        const ts_tensor *x = ts_graph_value_tensor(g, nv.inputs[0]);
        out[n].p = nv.attrs->conv;
        out[n].x = x ? ts_tensor_clone(x, NULL) : NULL;
        out[n].w = ts_tensor_clone(ts_graph_value(g, nv.inputs[1]).init, NULL);
        if (!out[n].x) { /* a training plan keeps every activation */
            fprintf(stderr, "bench_fcdcc: the input of %s was not kept\n", nv.name);
            exit(1);
        }
        out[n].name = strdup(nv.name);
        n++;
    }
    ts_tensor_free(img);
    ts_graph_free(g);
    return n;
}

static ts_tensor *conv_f32(const ts_conv2d_params *p, const ts_tensor *x, const ts_tensor *w) {
    ts_shape ys;
    ts_conv2d_out_shape(p, &x->s, &w->s, &ys, NULL);
    ts_tensor *y = ts_tensor_new(&ys, NULL);
    size_t ws = ts_conv2d_workspace_floats(p, &x->s, &w->s);
    float *buf = ws ? malloc(ws * sizeof(float)) : NULL;
    ts_conv2d_forward(p, x, w, NULL, y, buf, NULL);
    free(buf);
    return y;
}

static void random_subset(int *a, int k, int n, ts_rng *r) {
    int pool[256];
    for (int i = 0; i < n; i++)
        pool[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)ts_rng_below(r, (uint64_t)(n - i));
        int t = pool[i];
        pool[i] = pool[j], pool[j] = t;
        a[i] = pool[i];
    }
}

/* The planner's (kA, kB) for one layer, as the coded model would choose
 * it, and its worst-case condition number. */
static ts_status plan_split(const conv_layer *L, ts_scheme scheme, int n, int s, int *kA, int *kB,
                            double *worst_cond, ts_err *e) {
    ts_coded_opts o = ts_coded_opts_default();
    o.n_workers = n, o.stragglers = s, o.scheme = scheme;
    ts_graph *g = ts_graph_new();
    int xi = ts_graph_add_input(g, "x", &L->x->s, e);
    int wi = ts_graph_add_init(g, "w", ts_tensor_clone(L->w, NULL), 1, e);
    ts_node_attrs a = ts_node_attrs_default(TS_OP_CONV);
    a.conv = L->p;
    int yi = ts_graph_add_node(g, TS_OP_CONV, L->name, (int[]){xi, wi}, 2, "y", &a, e);
    ts_graph_set_output(g, yi, e);
    ts_layer_plan *plans = NULL;
    int np = 0;
    ts_status st = ts_graph_plan(g, 1, 0, e);
    if (st == TS_OK) st = ts_coded_plan_graph(g, &o, &plans, &np, e);
    if (st == TS_OK) {
        *kA = plans[0].kA, *kB = plans[0].kB;
        *worst_cond = plans[0].worst_cond;
    }
    free(plans);
    ts_graph_free(g);
    return st;
}

/* Worst relative error over `sets` random responder sets of one layer coded
 * with (scheme, n, s). Returns -1 when the layer cannot be cut that way. */
static double coded_rel_err(const conv_layer *L, const ts_tensor *want, ts_scheme scheme, int n,
                            int s, int sets, double *worst_cond, int *kA_out, int *kB_out) {
    ts_err e = {0};
    int kA, kB;
    if (plan_split(L, scheme, n, s, &kA, &kB, worst_cond, &e) != TS_OK) return -1;
    ts_layer_coder *c = ts_coder_new_conv(&L->p, &L->x->s, &L->w->s, scheme, n, s, kA, kB, &e);
    if (!c) return -1;
    *kA_out = kA, *kB_out = kB;
    ts_coder_encode_input(c, L->x, &e);
    int qb = ts_coder_filter_shares(c);
    ts_tensor *f[4];
    for (int d = 0; d < qb; d++)
        f[d] = ts_coder_new_filter_share(c, NULL);
    for (int j = 0; j < n; j++) {
        ts_coder_encode_filters(c, L->w, 0, j, f, &e);
        ts_coder_compute(c, j, (const ts_tensor *const *)f, &e);
    }
    for (int d = 0; d < qb; d++)
        ts_tensor_free(f[d]);
    ts_tensor *y = ts_tensor_new(&want->s, NULL);
    ts_rng r;
    ts_rng_seed(&r, 7);
    int set[256], k = ts_coder_threshold(c);
    double worst = 0;
    for (int t = 0; t < sets; t++) {
        random_subset(set, k, n, &r);
        double cond;
        if (ts_coder_decode(c, set, k, NULL, 1, 1, y, &cond, &e) != TS_OK) {
            worst = INFINITY;
            break;
        }
        double err = ts_tensor_rel_err(y, want);
        if (!(err <= worst)) worst = err;
    }
    ts_tensor_free(y);
    ts_coder_free(c);
    return worst;
}

static int run_stability(int argc, char **argv) {
    const char *csv = NULL;
    int sets = 10;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--csv"))
            csv = argv[i + 1];
        else if (!strcmp(argv[i], "--sets"))
            sets = atoi(argv[i + 1]);
    }
    conv_layer L[8];
    int nl = alexnet_layers(L, 8);
    ts_tensor *want[8];
    for (int i = 0; i < nl; i++)
        want[i] = conv_f32(&L[i].p, L[i].x, L[i].w);
    FILE *f = csv ? fopen(csv, "w") : NULL;
    if (f) fprintf(f, "n,scheme,worst_rel_err,worst_cond\n");
    printf("AlexNet conv layers, batch 1, s = 2 stragglers, float32 workers, double decoding;\n"
           "worst relative error over %d random responder sets per layer, worst over layers\n\n",
           sets);
    printf(
        "| n | k | CRME rel err | CRME worst cond | polynomial rel err | polynomial worst cond |\n"
        "|---|---|---|---|---|---|\n");
    for (int n = 4; n <= 32; n += 2) {
        double err[2] = {0, 0}, cond[2] = {0, 0};
        const ts_scheme sc[2] = {TS_SCHEME_CRME, TS_SCHEME_POLYNOMIAL};
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < nl; i++) {
                double c = 0;
                int kA = 0, kB = 0;
                double e = coded_rel_err(&L[i], want[i], sc[s], n, 2, sets, &c, &kA, &kB);
                if (e < 0) continue;
                if (!(e <= err[s])) err[s] = e;
                if (!(c <= cond[s])) cond[s] = c;
            }
        printf("| %d | %d | %.2e | %.3g | %.2e | %.3g |\n", n, n - 2, err[0], cond[0], err[1],
               cond[1]);
        if (f) {
            fprintf(f, "%d,crme,%.6e,%.6e\n", n, err[0], cond[0]);
            fprintf(f, "%d,polynomial,%.6e,%.6e\n", n, err[1], cond[1]);
        }
        fflush(stdout);
    }
    if (f) fclose(f);
    return 0;
}

/* ---- float64 pipeline ---------------------------------------------------- */

/* y[M, OH*OW] = conv(x [C,H,W] (pre-padded, no padding), w [M, C/g, KH, KW]),
 * double, im2col + dgemm, groups supported. */
static void conv_f64(const ts_conv2d_params *p, int64_t c, int64_t h, int64_t wd, const double *x,
                     int64_t m, int64_t kh, int64_t kw, const double *w, double *y) {
    int64_t ekh = (kh - 1) * p->dil_h + 1, ekw = (kw - 1) * p->dil_w + 1;
    int64_t oh = (h - ekh) / p->stride_h + 1, ow = (wd - ekw) / p->stride_w + 1;
    int64_t cg = c / p->groups, mg = m / p->groups, kk = cg * kh * kw;
    double *col = malloc((size_t)(kk * oh * ow) * sizeof(double));
    for (int g = 0; g < p->groups; g++) {
        for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t a = 0; a < kh; a++)
                for (int64_t b = 0; b < kw; b++) {
                    double *dst = col + ((ci * kh + a) * kw + b) * oh * ow;
                    const double *src = x + (g * cg + ci) * h * wd;
                    for (int64_t r = 0; r < oh; r++)
                        for (int64_t q = 0; q < ow; q++)
                            dst[r * ow + q] = src[(r * p->stride_h + a * p->dil_h) * wd +
                                                  q * p->stride_w + b * p->dil_w];
                }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mg, (int)(oh * ow), (int)kk,
                    1.0, w + g * mg * kk, (int)kk, col, (int)(oh * ow), 0.0, y + g * mg * oh * ow,
                    (int)(oh * ow));
    }
    free(col);
}

/* Solves A X = B in place (A n x n, B n x cols), partial pivoting. */
static int solve(double *A, int n, double *B, int64_t cols) {
    for (int k = 0; k < n; k++) {
        int piv = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[piv * n + k])) piv = i;
        if (A[piv * n + k] == 0) return -1;
        if (piv != k) {
            for (int j = 0; j < n; j++) {
                double t = A[k * n + j];
                A[k * n + j] = A[piv * n + j], A[piv * n + j] = t;
            }
            for (int64_t j = 0; j < cols; j++) {
                double t = B[k * cols + j];
                B[k * cols + j] = B[piv * cols + j], B[piv * cols + j] = t;
            }
        }
        for (int i = k + 1; i < n; i++) {
            double f = A[i * n + k] / A[k * n + k];
            if (f == 0) continue;
            for (int j = k; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
            for (int64_t j = 0; j < cols; j++)
                B[i * cols + j] -= f * B[k * cols + j];
        }
    }
    for (int k = n - 1; k >= 0; k--) {
        for (int64_t j = 0; j < cols; j++) {
            double s = B[k * cols + j];
            for (int i = k + 1; i < n; i++)
                s -= A[k * n + i] * B[i * cols + j];
            B[k * cols + j] = s / A[k * n + k];
        }
    }
    return 0;
}

static double f64_layer_mse(const conv_layer *L, int n, int s, double *max_abs) {
    ts_err e = {0};
    int kA, kB;
    double cond;
    if (plan_split(L, TS_SCHEME_CRME, n, s, &kA, &kB, &cond, &e) != TS_OK) {
        fprintf(stderr, "bench_fcdcc: %s\n", e.msg);
        exit(1);
    }
    /* the code the coded model uses for this split (mat-vec form at kA = 1) */
    ts_code_params cp = {.kind = TS_CODE_CRME, .n = n, .kA = kA, .kB = kB, .matvec = kA == 1};
    ts_code *code = ts_code_new(&cp, &e);
    ts_conv_geometry geo;
    if (!code || ts_conv_geometry_make(&L->p, &L->x->s, &L->w->s, ts_code_a_blocks(code),
                                       ts_code_b_blocks(code), &geo, &e) != TS_OK) {
        fprintf(stderr, "bench_fcdcc: %s\n", e.msg);
        exit(1);
    }
    int na = geo.n_slabs, nb = geo.n_groups, qa = ts_code_a_shares(code),
        qb = ts_code_b_shares(code), k = ts_code_threshold(code);
    const double *GA = ts_code_a_gen(code), *GB = ts_code_b_gen(code);
    ts_shape ss = ts_geom_slab_shape(&geo), fs = ts_geom_filter_shape(&geo),
             bs = ts_geom_block_shape(&geo);
    int64_t sl = ts_shape_numel(&ss), fl = ts_shape_numel(&fs), bl = ts_shape_numel(&bs);
    float *tmp = malloc((size_t)(sl > fl ? sl : fl) * sizeof(float));
    double *slab = malloc((size_t)(na * sl) * sizeof(double));
    double *filt = malloc((size_t)(nb * fl) * sizeof(double));
    for (int i = 0; i < na; i++) {
        ts_geom_extract_slab(&geo, L->x, i, tmp);
        for (int64_t t = 0; t < sl; t++)
            slab[i * sl + t] = tmp[t];
    }
    for (int l = 0; l < nb; l++) {
        ts_geom_extract_filters(&geo, L->w, l, tmp);
        for (int64_t t = 0; t < fl; t++)
            filt[l * fl + t] = tmp[t];
    }
    /* responders: a random set of k workers */
    ts_rng r;
    ts_rng_seed(&r, 5);
    int set[256];
    random_subset(set, k, n, &r);
    int eqs = k * qa * qb, unk = na * nb;
    double *P = malloc((size_t)eqs * bl * sizeof(double));
    double *M = calloc((size_t)eqs * unk, sizeof(double));
    double *ea = malloc((size_t)sl * sizeof(double)), *eb = malloc((size_t)fl * sizeof(double));
    ts_conv2d_params wp = ts_geom_worker_params(&geo);
    for (int ri = 0; ri < k; ri++) {
        int j = set[ri];
        for (int c = 0; c < qa; c++)
            for (int d = 0; d < qb; d++) {
                int row = (ri * qa + c) * qb + d;
                memset(ea, 0, (size_t)sl * sizeof(double));
                memset(eb, 0, (size_t)fl * sizeof(double));
                for (int i = 0; i < na; i++) {
                    double ga = GA[(j * qa + c) * na + i];
                    for (int64_t t = 0; t < sl; t++)
                        ea[t] += ga * slab[i * sl + t];
                }
                for (int l = 0; l < nb; l++) {
                    double gb = GB[(j * qb + d) * nb + l];
                    for (int64_t t = 0; t < fl; t++)
                        eb[t] += gb * filt[l * fl + t];
                }
                for (int i = 0; i < na; i++)
                    for (int l = 0; l < nb; l++)
                        M[row * unk + i * nb + l] =
                            GA[(j * qa + c) * na + i] * GB[(j * qb + d) * nb + l];
                for (int64_t b = 0; b < geo.batch; b++)
                    conv_f64(&wp, geo.c, geo.h_in, geo.w_pad, ea + b * geo.c * geo.h_in * geo.w_pad,
                             geo.n_b, geo.kh, geo.kw, eb,
                             P + (size_t)row * bl + b * geo.n_b * geo.h_o * geo.w_out);
            }
    }
    if (eqs != unk || solve(M, unk, P, bl) != 0) {
        fprintf(stderr, "bench_fcdcc: singular or non-square system (%d x %d)\n", eqs, unk);
        exit(1);
    }
    /* the reference: the whole layer in double, on the padded input */
    ts_conv_geometry whole;
    ts_conv_geometry_make(&L->p, &L->x->s, &L->w->s, 1, 1, &whole, &e);
    ts_shape ws1 = ts_geom_slab_shape(&whole);
    int64_t wl = ts_shape_numel(&ws1), ol = geo.n_filters * geo.h_out * geo.w_out;
    float *tw = malloc((size_t)wl * sizeof(float));
    double *xd = malloc((size_t)wl * sizeof(double)),
           *wd = malloc((size_t)L->w->size * sizeof(double));
    double *ref = malloc((size_t)(whole.n_b * whole.h_o * whole.w_out) * sizeof(double));
    ts_geom_extract_slab(&whole, L->x, 0, tw);
    for (int64_t t = 0; t < wl; t++)
        xd[t] = tw[t];
    for (int64_t t = 0; t < L->w->size; t++)
        wd[t] = L->w->data[t];
    conv_f64(&wp, whole.c, whole.h_in, whole.w_pad, xd, whole.n_filters, whole.kh, whole.kw, wd,
             ref);
    /* compare block by block (rows and channels past the layer are padding) */
    double se = 0;
    *max_abs = 0;
    for (int i = 0; i < na; i++)
        for (int l = 0; l < nb; l++) {
            const double *blk = P + (size_t)(i * nb + l) * bl;
            for (int64_t mm = 0; mm < geo.n_b; mm++) {
                int64_t ch = (int64_t)l * geo.n_b + mm; /* ungrouped AlexNet layers */
                if (ch >= geo.n_filters) continue;
                for (int64_t rr = 0; rr < geo.h_o; rr++) {
                    int64_t row = (int64_t)i * geo.h_o + rr;
                    if (row >= geo.h_out) continue;
                    for (int64_t q = 0; q < geo.w_out; q++) {
                        double ref_v = ref[(ch * geo.h_out + row) * geo.w_out + q];
                        double d = blk[(mm * geo.h_o + rr) * geo.w_out + q] - ref_v;
                        se += d * d;
                        if (fabs(ref_v) > *max_abs) *max_abs = fabs(ref_v);
                    }
                }
            }
        }
    free(tmp), free(slab), free(filt), free(P), free(M), free(ea), free(eb);
    free(tw), free(xd), free(wd), free(ref);
    ts_code_free(code);
    return se / (double)ol;
}

static int run_f64(int argc, char **argv) {
    int n = 20, s = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--workers"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--stragglers"))
            s = atoi(argv[i + 1]);
    }
    conv_layer L[8];
    int nl = alexnet_layers(L, 8);
    printf("float64 workers: CRME, n = %d, s = %d, one random responder set per layer\n\n", n, s);
    printf("| layer | MSE vs float64 single node | max |y| |\n|---|---|---|\n");
    double worst = 0;
    for (int i = 0; i < nl; i++) {
        double mx = 0, mse = f64_layer_mse(&L[i], n, s, &mx);
        if (mse > worst) worst = mse;
        printf("| %s | %.3e | %.3g |\n", L[i].name, mse, mx);
        fflush(stdout);
    }
    printf("\nmax MSE over layers: %.3e\n", worst);
    return 0;
}

int main(int argc, char **argv) {
    ts_threads_set(1);
    if (argc >= 2 && !strcmp(argv[1], "stability")) return run_stability(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "f64")) return run_f64(argc, argv);
    fprintf(stderr, "usage: bench_fcdcc stability [--csv FILE] [--sets S] | f64 [--workers N]\n");
    return 2;
}
