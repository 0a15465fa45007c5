/* fftdec.c: decoding the codes evaluated at the n-th roots of unity (CRME
 * option B, its matrix-vector form, the complex Vandermonde code) by
 * filling in the missing workers' values and one FFT per column.
 *
 * Each of these decodes solves z = inv(V_S) y per column: the responders'
 * values y_j = sum_u z_u w^(j e_u) at the nodes w^j (w = e^(2 pi i / n), j in
 * the responder set S, |S| = k), with k exponents e_u that are distinct
 * residues mod n. Applying inv(V_S) costs k^2 complex multiply-adds per
 * column, which makes decoding arithmetic-bound from k of about 8 on
 * (docs/results/codes.md). But with the values of all n workers, one
 * DFT gives z: z_u = (1/n) sum_j y_j w^(-j e_u), and the n - k outputs at
 * the residues that are not exponents are zero. Those s = n - k equations
 * determine the s missing values: y_E = H y_S with H = -inv(M) G, M the
 * s x s and G the s x k block of the DFT matrix (rows: the zero outputs;
 * columns: missing and responding workers), built once per responder set.
 * So a column costs s k multiply-adds plus an FFT of length n: for n = 18,
 * k = 16 about a quarter of the flops of the solve. It is the same linear
 * map as inv(V_S), evaluated differently. Its round-off: y_E carries about
 * eps ||H|| ||y_S||, and ||H|| grows when the missing workers are
 * neighbours (n = 32, 4 missing: up to 7e3), but so does the solve's
 * inv(V_S); tests/test_code.c compares both with a long-double reference,
 * on every responder set of an n = 18 code and on clustered sets up to
 * n = 64, and the FFT's float64 error is 3-9x below the solve's there
 * (n = 32, 4 neighbours missing: 1.2e-13 against 4.8e-13).
 *
 * The FFT is a mixed-radix decimation in time over a plan built once per
 * responder set: butterflies of radix 4, 2, 3, 5 (and a plain DFT for
 * larger primes), each reading its r inputs from a gather table and
 * writing r outputs at stride m, in post order so that two work arrays
 * suffice. It runs on FX = 16 columns at a time (one cache line of every
 * float row), in double, over chunks of the nodes' values kept in L2
 * (ts_fftdec_apply). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"
#include "kernels.h"

/* The kernel's per-node arrays have this size (on its stack). */
#define FFT_MAX_N 64
/* Above this ||H||_inf (max row sum of |H|), the solve is kept, as a guard:
 * the sets the cost model admits (n <= 64, s <= 4) stay below 1.2e5. */
#define DECODE_MAX_H 1e6
/* See ts_fftdec_applies. */
#define FFT_PER_K 87.0

enum { FD_CRME, FD_CRME_MV, FD_COMPLEX };

typedef struct {
    int r;    /* radix */
    int m;    /* output stride */
    int in;   /* offset of the r input indices in idx */
    int tw;   /* offset of the r twiddles in twr/twi; -1: all ones */
    int w;    /* generic radix: offset of its r x r DFT matrix in gwr/gwi */
    int out0; /* first output */
    int src;  /* 0: the filled values y, 1: work array A, 2: work array B */
    int dst;  /* 1 or 2 */
} fft_bf;

struct ts_fftdec {
    int kind, n, k, s, halves, per, nb, kB;
    int ids[FFT_MAX_N], miss[FFT_MAX_N];
    int out[2][FFT_MAX_N]; /* DFT output of target group u, per half */
    double *hr, *hi;       /* H of each half: [halves][s][k] */
    double cr[4], ci[4];   /* complex code: i^(a+b) of product a*qb+b */
    int nbf;
    fft_bf *bf;
    int *idx;
    double *twr, *twi, *gwr, *gwi;
    int nidx, ntw, ngw;
};

void ts_fftdec_free(ts_fftdec *f) {
    if (!f) return;
    free(f->hr), free(f->hi), free(f->bf), free(f->idx);
    free(f->twr), free(f->twi), free(f->gwr), free(f->gwi);
    free(f);
}

/* ---- the plan ------------------------------------------------------------ */

/* Radices of n, outermost first: fours, then twos, threes, fives, the rest. */
static int factor(int n, int *rad) {
    int nr = 0;
    while (n % 4 == 0)
        rad[nr++] = 4, n /= 4;
    for (int p = 2; n > 1; p++)
        while (n % p == 0)
            rad[nr++] = p, n /= p;
    return nr;
}

/* Flops per column of one radix-r butterfly (real, counting a
 * multiply-add as two), without its twiddles. */
static double bf_flops(int r) {
    switch (r) {
    case 2: return 4;
    case 3: return 16;
    case 4: return 16;
    case 5: return 40;
    default: return 8.0 * (r - 1) * (r - 1) + 4.0 * (r - 1);
    }
}

static double fft_flops(int n) {
    int rad[32], nr = factor(n, rad), len = n;
    double fl = 0;
    for (int d = 0; d < nr; d++) {
        int m = len / rad[d];
        fl += (double)(n / rad[d]) * bf_flops(rad[d]);          /* n / r butterflies per level */
        fl += 6.0 * (double)(n / len) * (rad[d] - 1) * (m - 1); /* twiddles != 1 */
        len = m;
    }
    return fl;
}

int ts_fftdec_applies(const ts_code *c, int k) {
    int n = c->n;
    if (c->p.kind != TS_CODE_CRME && c->p.kind != TS_CODE_COMPLEX) return 0;
    if (n > FFT_MAX_N || k < 2 || k > n) return 0;
    double solve = 8.0 * k * k, fill = 8.0 * (n - k) * k;
    /* FFT_PER_K: what the FFT path costs beyond the solve per column and
     * responder (its node rows and staged targets pass through L2 once
     * more), in flops' worth; fitted to the measured break-even with two
     * stragglers: n = 16 (k = 14) 0-9% slower with the FFT, n = 18 (k = 16)
     * and n = 20 (k = 18) 1.2-1.8x faster, n = 22 and 26 (factors 11, 13)
     * slower (docs/results/codes.md, section 8). */
    return fft_flops(n) + fill + FFT_PER_K * k < solve;
}

typedef struct {
    ts_fftdec *f;
    int rad[32], nr;
    int cap_bf, cap_idx, cap_tw;
} plan_ctx;

static int grow_arr(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return 1;
    int c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return 0;
    *p = q, *cap = c;
    return 1;
}

/* The r x r DFT matrix of a generic radix, shared by its butterflies. */
static int generic_w(ts_fftdec *f, int r) {
    for (int b = 0; b < f->nbf; b++)
        if (f->bf[b].r == r && f->bf[b].w >= 0) return f->bf[b].w;
    int at = f->ngw;
    double *wr = realloc(f->gwr, (size_t)(at + r * r) * sizeof *wr);
    if (!wr) return -1;
    f->gwr = wr;
    double *wi = realloc(f->gwi, (size_t)(at + r * r) * sizeof *wi);
    if (!wi) return -1;
    f->gwi = wi;
    for (int q = 0; q < r; q++)
        for (int s = 0; s < r; s++) {
            double t = -6.283185307179586 * (double)((q * s) % r) / r;
            wr[at + q * r + s] = cos(t), wi[at + q * r + s] = sin(t);
        }
    f->ngw += r * r;
    return at;
}

/* Emits the butterflies of the DFT of y[idx[0..len)] (level d of the
 * recursion) into work array 1 + d % 2 at [base, base + len): the
 * sub-transforms first (post order), then this level's len / r butterflies.
 * Returns 0 when out of memory. */
static int build(plan_ctx *pc, int d, int base, const int *idx, int len) {
    ts_fftdec *f = pc->f;
    int r = pc->rad[d], m = len / r;
    if (m > 1) {
        int sub[FFT_MAX_N];
        for (int s = 0; s < r; s++) {
            for (int t = 0; t < m; t++)
                sub[t] = idx[s + r * t];
            if (!build(pc, d + 1, base + s * m, sub, m)) return 0;
        }
    }
    int w = -1;
    if (r > 5 && (w = generic_w(f, r)) < 0) return 0;
    for (int kk = 0; kk < m; kk++) {
        if (!grow_arr((void **)&f->bf, &pc->cap_bf, f->nbf + 1, sizeof *f->bf) ||
            !grow_arr((void **)&f->idx, &pc->cap_idx, f->nidx + r, sizeof *f->idx))
            return 0;
        fft_bf *b = &f->bf[f->nbf++];
        b->r = r, b->m = m, b->in = f->nidx, b->w = w, b->out0 = base + kk;
        b->src = m == 1 ? 0 : 1 + (d + 1) % 2;
        b->dst = 1 + d % 2;
        for (int s = 0; s < r; s++)
            f->idx[f->nidx++] = m == 1 ? idx[s] : base + s * m + kk;
        b->tw = -1;
        if (kk > 0) {
            int c = f->ntw, cap = pc->cap_tw;
            if (!grow_arr((void **)&f->twr, &pc->cap_tw, c + r, sizeof *f->twr)) return 0;
            if (pc->cap_tw != cap) { /* twi follows twr's capacity */
                double *ti = realloc(f->twi, (size_t)pc->cap_tw * sizeof *ti);
                if (!ti) return 0;
                f->twi = ti;
            }
            for (int s = 0; s < r; s++) {
                double t = -6.283185307179586 * (double)((s * kk) % len) / len;
                f->twr[c + s] = cos(t), f->twi[c + s] = sin(t);
            }
            b->tw = c, f->ntw += r;
        }
    }
    return 1;
}

/* ---- filling in the missing values ---------------------------------------- */

static long long mod_n(long long a, int n) {
    long long m = a % n;
    return m < 0 ? m + n : m;
}

/* Exponent of target group u in half h (see ts_code's generators): column
 * (i, l) = i kB + l has w^(kB i + l) in the first half, w^(kB i - l) in
 * CRME's second. */
static long long exponent(const ts_fftdec *f, int h, int u) {
    int i = u / f->kB, l = u % f->kB;
    return h == 0 ? (long long)f->kB * i + l : (long long)f->kB * i - l;
}

/* H = -inv(M) G for half h: rows the s residues that are no exponent. */
static ts_status fill_matrix(ts_fftdec *f, int h, ts_err *err) {
    int n = f->n, k = f->k, s = f->s;
    unsigned char used[FFT_MAX_N] = {0};
    for (int u = 0; u < k; u++) {
        int m = (int)mod_n(exponent(f, h, u), n);
        f->out[h][u] = m;
        used[m] = 1;
    }
    if (s == 0) return TS_OK;
    int zero[FFT_MAX_N], nz = 0;
    for (int m = 0; m < n; m++)
        if (!used[m]) zero[nz++] = m;
    TS_ASSERT(nz == s);
    double complex *M = malloc((size_t)s * s * sizeof *M);
    if (!M) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for an FFT decoding plan");
    for (int a = 0; a < s; a++)
        for (int e = 0; e < s; e++)
            M[(size_t)a * s + e] = cexp(-I * 6.283185307179586 *
                                        (double)mod_n((long long)zero[a] * f->miss[e], n) / n);
    ts_status st = ts_la_zinverse(M, s, err);
    if (st != TS_OK) {
        free(M);
        return st;
    }
    double *hr = f->hr + (size_t)h * s * k, *hi = f->hi + (size_t)h * s * k;
    for (int e = 0; e < s; e++)
        for (int r = 0; r < k; r++) {
            double complex acc = 0;
            for (int a = 0; a < s; a++)
                acc += M[(size_t)e * s + a] *
                       cexp(-I * 6.283185307179586 *
                            (double)mod_n((long long)zero[a] * f->ids[r], n) / n);
            hr[(size_t)e * k + r] = -creal(acc), hi[(size_t)e * k + r] = -cimag(acc);
        }
    free(M);
    return TS_OK;
}

static double h_norm(const ts_fftdec *f) {
    double worst = 0;
    for (int h = 0; h < f->halves; h++)
        for (int e = 0; e < f->s; e++) {
            double row = 0;
            for (int r = 0; r < f->k; r++) {
                size_t o = ((size_t)h * f->s + e) * f->k + r;
                row += hypot(f->hr[o], f->hi[o]);
            }
            worst = fmax(worst, row);
        }
    return worst;
}

ts_status ts_fftdec_new(const ts_code *c, const int *ids, int k, ts_fftdec **out, ts_err *err) {
    *out = NULL;
    int kind = c->p.kind == TS_CODE_COMPLEX ? FD_COMPLEX : c->p.matvec ? FD_CRME_MV : FD_CRME;
    if (!ts_fftdec_applies(c, k)) return TS_OK;
    ts_fftdec *f = calloc(1, sizeof *f);
    if (!f) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for an FFT decoding plan");
    f->kind = kind, f->n = c->n, f->k = k, f->s = c->n - k, f->halves = kind == FD_CRME ? 2 : 1;
    f->per = c->qa * c->qb, f->nb = c->nb, f->kB = c->p.kB;
    unsigned char resp[FFT_MAX_N] = {0};
    for (int r = 0; r < k; r++)
        f->ids[r] = ids[r], resp[ids[r]] = 1;
    for (int j = 0, e = 0; j < c->n; j++)
        if (!resp[j]) f->miss[e++] = j;
    for (int a = 0; a < c->qa; a++) /* i^(a+b): 1, i, -1 */
        for (int b = 0; b < c->qb; b++) {
            int q = a * c->qb + b, p = a + b;
            f->cr[q] = p == 0 ? 1 : p == 2 ? -1 : 0;
            f->ci[q] = p == 1 ? 1 : 0;
        }
    size_t hs = (size_t)f->halves * f->s * k + 1;
    f->hr = malloc(hs * sizeof *f->hr), f->hi = malloc(hs * sizeof *f->hi);
    plan_ctx pc = {.f = f};
    pc.nr = factor(c->n, pc.rad);
    int all[FFT_MAX_N];
    for (int j = 0; j < c->n; j++)
        all[j] = j;
    ts_status st = TS_OK;
    if (!f->hr || !f->hi || !build(&pc, 0, 0, all, c->n))
        st = ts_errorf(err, TS_ERR_NOMEM, "out of memory for an FFT decoding plan");
    for (int h = 0; st == TS_OK && h < f->halves; h++)
        st = fill_matrix(f, h, err);
    if (st != TS_OK || h_norm(f) > DECODE_MAX_H) { /* the solve path decodes instead */
        ts_fftdec_free(f);
        return st;
    }
    *out = f;
    return TS_OK;
}

/* ---- the kernel ------------------------------------------------------------ */

/* FX = FFT_NL vectors of VW columns: the columns one pass of the kernel
 * takes (FFT_NL = 2: one cache line of every float row). */
#define FFT_NL 2 /* 1 measured slower: 63 against 58 ns per column at n = 18 */
#define FX (VW * FFT_NL)

/* FX columns of a complex value: FFT_NL vectors each of the real and the
 * imaginary parts. */
typedef struct {
    dvec r[FFT_NL], i[FFT_NL];
} cv;

DEC_INLINE cv c_add(cv a, cv b) {
    for (int h = 0; h < FFT_NL; h++)
        a.r[h] += b.r[h], a.i[h] += b.i[h];
    return a;
}

DEC_INLINE cv c_sub(cv a, cv b) {
    for (int h = 0; h < FFT_NL; h++)
        a.r[h] -= b.r[h], a.i[h] -= b.i[h];
    return a;
}

/* a * (wr + i wi) for a scalar weight */
DEC_INLINE cv c_mul(cv a, double wr, double wi) {
    cv o;
    for (int h = 0; h < FFT_NL; h++) {
        o.r[h] = a.r[h] * wr - a.i[h] * wi;
        o.i[h] = a.r[h] * wi + a.i[h] * wr;
    }
    return o;
}

/* acc + a * (wr + i wi) */
DEC_INLINE cv c_fma(cv acc, cv a, double wr, double wi) {
    for (int h = 0; h < FFT_NL; h++) {
        acc.r[h] += a.r[h] * wr;
        acc.r[h] -= a.i[h] * wi;
        acc.i[h] += a.r[h] * wi;
        acc.i[h] += a.i[h] * wr;
    }
    return acc;
}

DEC_INLINE cv c_scale(cv a, double s) {
    for (int h = 0; h < FFT_NL; h++)
        a.r[h] *= s, a.i[h] *= s;
    return a;
}

/* -i a */
DEC_INLINE cv c_mi(cv a) {
    cv o;
    for (int h = 0; h < FFT_NL; h++)
        o.r[h] = a.i[h], o.i[h] = -a.r[h];
    return o;
}

/* The forward DFT of x[0..r) in place (w = e^(-2 pi i / r)). */
DEC_INLINE void bf2(cv *x) {
    cv a = x[0];
    x[0] = c_add(a, x[1]), x[1] = c_sub(a, x[1]);
}

DEC_INLINE void bf3(cv *x) {
    cv t1 = c_add(x[1], x[2]), t2 = c_sub(x[0], c_scale(t1, 0.5)),
       t3 = c_mi(c_scale(c_sub(x[1], x[2]), 0.8660254037844386));
    x[0] = c_add(x[0], t1), x[1] = c_add(t2, t3), x[2] = c_sub(t2, t3);
}

DEC_INLINE void bf4(cv *x) {
    cv t0 = c_add(x[0], x[2]), t1 = c_sub(x[0], x[2]), t2 = c_add(x[1], x[3]),
       t3 = c_mi(c_sub(x[1], x[3]));
    x[0] = c_add(t0, t2), x[2] = c_sub(t0, t2), x[1] = c_add(t1, t3), x[3] = c_sub(t1, t3);
}

DEC_INLINE void bf5(cv *x) {
    const double c1 = 0.30901699437494745, c2 = -0.8090169943749475, s1 = 0.9510565162951535,
                 s2 = 0.5877852522924731;
    cv t1 = c_add(x[1], x[4]), t2 = c_add(x[2], x[3]), t3 = c_sub(x[1], x[4]),
       t4 = c_sub(x[2], x[3]);
    cv m1 = c_add(x[0], c_add(c_scale(t1, c1), c_scale(t2, c2)));
    cv m2 = c_add(x[0], c_add(c_scale(t1, c2), c_scale(t2, c1)));
    cv n1 = c_mi(c_add(c_scale(t3, s1), c_scale(t4, s2)));
    cv n2 = c_mi(c_sub(c_scale(t3, s2), c_scale(t4, s1)));
    x[0] = c_add(x[0], c_add(t1, t2));
    x[1] = c_add(m1, n1), x[4] = c_sub(m1, n1);
    x[2] = c_add(m2, n2), x[3] = c_sub(m2, n2);
}

/* The value of node j in a chunk of one half: its real part on row 2j,
 * its imaginary part on row 2j + 1 (rows X apart; yb: the slice's column). */
DEC_INLINE cv ld_node(const double *yb, size_t X, int j) {
    const double *p = yb + (size_t)2 * j * X;
    cv v;
    for (int h = 0; h < FFT_NL; h++)
        v.r[h] = ldv(p + h * VW), v.i[h] = ldv(p + X + h * VW);
    return v;
}

DEC_INLINE void st_node(double *yb, size_t X, int j, cv v) {
    double *p = yb + (size_t)2 * j * X;
    for (int h = 0; h < FFT_NL; h++)
        stv(p + h * VW, v.r[h]), stv(p + X + h * VW, v.i[h]);
}

/* Butterflies t..e-1, all of radix R (a constant after inlining, so that
 * x lives in registers). */
DEC_INLINE void bf_run(const ts_fftdec *f, int t, int e, int R, const double *yb, size_t X, cv *A,
                       cv *B) {
    for (; t < e; t++) {
        const fft_bf *b = &f->bf[t];
        const cv *src = b->src == 1 ? A : B;
        cv *dst = b->dst == 1 ? A : B, x[5];
        const int *in = f->idx + b->in;
        for (int s = 0; s < R; s++)
            x[s] = b->src == 0 ? ld_node(yb, X, in[s]) : src[in[s]];
        if (b->tw >= 0)
            for (int s = 1; s < R; s++)
                x[s] = c_mul(x[s], f->twr[b->tw + s], f->twi[b->tw + s]);
        switch (R) {
        case 2: bf2(x); break;
        case 3: bf3(x); break;
        case 4: bf4(x); break;
        default: bf5(x); break;
        }
        for (int q = 0; q < R; q++)
            dst[b->out0 + q * b->m] = x[q];
    }
}

/* Generic radix r > 5 (a plain DFT). */
static DEC_FMA void bf_run_generic(const ts_fftdec *f, int t, int e, const double *yb, size_t X,
                                   cv *A, cv *B) {
    for (; t < e; t++) {
        const fft_bf *b = &f->bf[t];
        const cv *src = b->src == 1 ? A : B;
        cv *dst = b->dst == 1 ? A : B, x[FFT_MAX_N];
        const int *in = f->idx + b->in;
        int r = b->r;
        for (int s = 0; s < r; s++) {
            x[s] = b->src == 0 ? ld_node(yb, X, in[s]) : src[in[s]];
            if (b->tw >= 0 && s > 0) x[s] = c_mul(x[s], f->twr[b->tw + s], f->twi[b->tw + s]);
        }
        for (int q = 0; q < r; q++) {
            cv acc = x[0];
            for (int s = 1; s < r; s++)
                acc = c_fma(acc, x[s], f->gwr[b->w + q * r + s], f->gwi[b->w + q * r + s]);
            dst[b->out0 + q * b->m] = acc;
        }
    }
}

/* Runs the plan on the values of one half (yb, see ld_node); the result is
 * in A (level 0 writes work array 1). Consecutive butterflies of one radix
 * run in one specialized loop. */
static DEC_FMA void run_fft(const ts_fftdec *f, const double *yb, size_t X, cv *A, cv *B) {
    for (int t = 0; t < f->nbf;) {
        int r = f->bf[t].r, e = t + 1;
        while (e < f->nbf && f->bf[e].r == r)
            e++;
        switch (r) {
        case 2: bf_run(f, t, e, 2, yb, X, A, B); break;
        case 3: bf_run(f, t, e, 3, yb, X, A, B); break;
        case 4: bf_run(f, t, e, 4, yb, X, A, B); break;
        case 5: bf_run(f, t, e, 5, yb, X, A, B); break;
        default: bf_run_generic(f, t, e, yb, X, A, B); break;
        }
        t = e;
    }
}

/* The responders' values of columns x0..x0+nx-1 into the chunk, in double:
 * node j of half h on rows 2(h n + j) (real) and 2(h n + j) + 1
 * (imaginary), zero-padded to whole slices. One pass over the products,
 * row after row. */
static DEC_FMA void load_nodes(const ts_fftdec *f, const void *const *prod, int f64, size_t x0,
                               int nx, double *ch, size_t X, int r0, int r1) {
    int pad = (nx + FX - 1) / FX * FX;
    for (int r = r0; r < r1; r++) {
        size_t j = (size_t)f->ids[r];
        double *pr = ch + 2 * j * X, *pi = pr + X;
        if (f->kind == FD_CRME) { /* P = (a-d) - i(b+c), Q = (a+d) + i(b-c) */
            double *qr = ch + 2 * ((size_t)f->n + j) * X, *qi = qr + X;
            const void *const *o = prod + 4 * r;
            int x = 0;
            for (; x + VW <= nx; x += VW) { /* GCC alone vectorizes this 4 wide */
                dvec a = ld_prod(o[0], f64, x0 + x), b = ld_prod(o[1], f64, x0 + x),
                     c = ld_prod(o[2], f64, x0 + x), d = ld_prod(o[3], f64, x0 + x);
                stv(pr + x, a - d), stv(pi + x, -(b + c)), stv(qr + x, a + d), stv(qi + x, b - c);
            }
            for (; x < nx; x++) {
                double a = f64 ? ((const double *)o[0])[x0 + x] : ((const float *)o[0])[x0 + x];
                double b = f64 ? ((const double *)o[1])[x0 + x] : ((const float *)o[1])[x0 + x];
                double c = f64 ? ((const double *)o[2])[x0 + x] : ((const float *)o[2])[x0 + x];
                double d = f64 ? ((const double *)o[3])[x0 + x] : ((const float *)o[3])[x0 + x];
                pr[x] = a - d, pi[x] = -(b + c), qr[x] = a + d, qi[x] = b - c;
            }
            for (; x < pad; x++)
                pr[x] = pi[x] = qr[x] = qi[x] = 0;
        } else if (f->kind == FD_CRME_MV) { /* o0 - i o1 */
            load_row(prod[2 * r], f64, x0, nx, pr);
            load_row(prod[2 * r + 1], f64, x0, nx, pi);
            for (int x = 0; x < pad; x++)
                pi[x] = -pi[x];
        } else { /* sum over the products of i^(a+b) P */
            for (int x = 0; x < pad; x++)
                pr[x] = pi[x] = 0;
            for (int q = 0; q < f->per; q++) {
                const void *src = prod[f->per * r + q];
                double wr = f->cr[q], wi = f->ci[q];
                for (int x = 0; x < nx; x++) {
                    double v = f64 ? ((const double *)src)[x0 + x] : ((const float *)src)[x0 + x];
                    pr[x] += wr * v, pi[x] += wi * v;
                }
            }
        }
    }
}

/* Missing values e0..e0+E-1 (E <= FILL_AT_ONCE, a constant after inlining)
 * of one half: one pass over the responders with E accumulators, each split
 * in two (even and odd responders) so that the FMA chains overlap. */
#define FILL_AT_ONCE 4

DEC_INLINE void fill_group(const ts_fftdec *f, int h, int e0, int E, double *yh, size_t X) {
    cv acc[FILL_AT_ONCE][2];
    memset(acc, 0, sizeof acc);
    const double *hr = f->hr + ((size_t)h * f->s + e0) * f->k,
                 *hi = f->hi + ((size_t)h * f->s + e0) * f->k;
    for (int r = 0; r < f->k; r++) {
        cv v = ld_node(yh, X, f->ids[r]);
        for (int e = 0; e < E; e++)
            acc[e][r & 1] =
                c_fma(acc[e][r & 1], v, hr[(size_t)e * f->k + r], hi[(size_t)e * f->k + r]);
    }
    for (int e = 0; e < E; e++)
        st_node(yh, X, f->miss[e0 + e], c_add(acc[e][0], acc[e][1]));
}

/* y_E = H y_S for every half, for the slice at yb (chunk rows X apart). */
static DEC_FMA void fill_missing(const ts_fftdec *f, double *yb, size_t X) {
    for (int h = 0; h < f->halves; h++) {
        double *yh = yb + (size_t)2 * h * f->n * X;
        for (int e0 = 0; e0 < f->s; e0 += FILL_AT_ONCE) {
            switch (f->s - e0) {
            case 1: fill_group(f, h, e0, 1, yh, X); break;
            case 2: fill_group(f, h, e0, 2, yh, X); break;
            case 3: fill_group(f, h, e0, 3, yh, X); break;
            default: fill_group(f, h, e0, 4, yh, X); break;
            }
        }
    }
}

/* The targets of one slice from the DFT outputs Z (halves n apart). */
static DEC_FMA void store_targets(const ts_fftdec *f, const cv *Z, void *const *targets, int f64,
                                  size_t x) {
    double sc = 1.0 / f->n, hs = 0.5 * sc;
    int om = f64 ? OUT_F64 : 0;
    for (int u = 0; u < f->k; u++) {
        cv p = Z[f->out[0][u]];
        if (f->kind == FD_CRME) { /* digest 1.2.8; P and Q carry a factor 2 */
            cv q = Z[f->n + f->out[1][u]];
            int i = u / f->kB, l = u % f->kB;
            void *const *t = targets + (size_t)(2 * i) * f->nb + 2 * l;
            void *const *t1 = targets + (size_t)(2 * i + 1) * f->nb + 2 * l;
            for (int h = 0; h < FFT_NL; h++) {
                size_t xh = x + (size_t)h * VW;
                put1(t[0], om, xh, (p.r[h] + q.r[h]) * hs);
                put1(t[1], om, xh, (q.i[h] - p.i[h]) * hs);
                put1(t1[0], om, xh, -(p.i[h] + q.i[h]) * hs);
                put1(t1[1], om, xh, (q.r[h] - p.r[h]) * hs);
            }
        } else if (f->kind == FD_CRME_MV) { /* Y_2l = Re z_l, Y_2l+1 = -Im z_l */
            for (int h = 0; h < FFT_NL; h++) {
                put1(targets[2 * u], om, x + (size_t)h * VW, p.r[h] * sc);
                put1(targets[2 * u + 1], om, x + (size_t)h * VW, -p.i[h] * sc);
            }
        } else {
            for (int h = 0; h < FFT_NL; h++)
                put1(targets[u], om, x + (size_t)h * VW, p.r[h] * sc);
        }
    }
}

/* Chunk rows: the real and imaginary parts of every node of every half. */
static int node_rows(const ts_fftdec *f) {
    return 2 * f->halves * f->n;
}

/* Columns per chunk: two chunks of node rows (in double) and two stages of
 * targets stay in L2 (256 KB each way); at least 4 slices. */
static size_t chunk_cols(const ts_fftdec *f) {
    return (size_t)dec_chunk_cols(node_rows(f));
}

static int target_rows(const ts_fftdec *f) {
    return f->kind == FD_CRME ? 4 * f->k : f->kind == FD_CRME_MV ? 2 * f->k : f->k;
}

size_t ts_fftdec_scratch(const ts_fftdec *f) {
    /* A and B of every half, two chunks, two stages of targets; 64-byte
     * aligned */
    size_t X = chunk_cols(f);
    return (size_t)2 * f->halves * f->n * (sizeof(cv) / sizeof(double)) +
           2 * ((size_t)node_rows(f) + (size_t)target_rows(f)) * X + 8;
}

/* This kernel streams its float targets from 12 MiB on, not from
 * DEC_STREAM_BYTES (32 MiB) as the solve's kernels do: it writes them out
 * row after row from its staging buffer, whole lines, and a decode
 * followed by the caller's copy of every target (as the coded layer
 * reassembles its output) measured faster with non-temporal stores from
 * about 13 MB of targets on (CRME, 1 thread, minimum of 30 in CPU time:
 * k = 16, 16.4 MB: 7.1 against 8.2 ms; 25.6 MB: 11.1-11.4 against
 * 14.1-15.2; k = 28, 13.4 MB: 4.9-5.1 against 5.1-5.6), equal at 8 MB
 * and slower at 12.3 MB (4.7-5.1 against 4.3-4.9). The solve's kernels
 * measured slower with them even at 32 MB (CRME k = 8: 12.3-12.9 against
 * 9.7-10.8 ms), so DEC_STREAM_BYTES stays. */
#define FFT_STREAM_BYTES ((size_t)12 << 20)

/* Staged targets t0..t1-1 (row t at stage + t X elements, already float or
 * double) out to their rows at x0, row after row as memcpy writes; float
 * rows over FFT_STREAM_BYTES (om) with non-temporal stores. */
static void flush_targets(const void *stage, size_t X, int t0, int t1, void *const *targets, int om,
                          size_t x0, int nx) {
    size_t esz = (om & OUT_F64) ? sizeof(double) : sizeof(float);
    for (int t = t0; t < t1; t++) {
        const char *s = (const char *)stage + (size_t)t * X * esz;
        char *d = (char *)targets[t] + x0 * esz;
        int x = 0;
#if defined(__AVX__)
        if ((om & OUT_STREAM) && !((uintptr_t)d & 31))
            for (; x + VW <= nx; x += VW) {
                __m256 v;
                memcpy(&v, s + (size_t)x * esz, sizeof v);
                _mm256_stream_ps((float *)d + x, v);
            }
#endif
        memcpy(d + (size_t)x * esz, s + (size_t)x * esz, (size_t)(nx - x) * esz);
    }
}

/* The products are read in chunks of columns, combined into the nodes'
 * values (double) in a buffer that stays in L2, and the chunk decoded slice
 * by slice from it; the targets are staged the same way and written out
 * row after row. Read and written a cache line per row and slice instead
 * (4k rows and 4k targets: too many streams for the prefetchers, and a
 * burst of stores that each wait for their line), the decode measured
 * 1.5-3x slower (section 8 of docs/results/codes.md). The buffers are
 * doubled: while chunk c is decoded, slice by slice, chunk c + 1 is read
 * and chunk c - 1 written out a few rows at a time in between, so that the
 * memory traffic overlaps the arithmetic instead of alternating with it.
 * Targets over FFT_STREAM_BYTES are written with non-temporal stores. */
ts_status ts_fftdec_apply(const ts_fftdec *f, const void *const *prod, size_t len,
                          void *const *targets, int f64, double *scratch) {
    cv *A = (cv *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    size_t hn = (size_t)f->halves * f->n, X = chunk_cols(f);
    cv *B = A + hn;
    int nt = target_rows(f), k = f->k;
    double *ch[2];
    char *stage[2];
    ch[0] = (double *)(B + hn), ch[1] = ch[0] + (size_t)node_rows(f) * X;
    /* staged targets in their own type: half the L2 traffic for floats */
    size_t esz = f64 ? sizeof(double) : sizeof(float);
    stage[0] = (char *)(ch[1] + (size_t)node_rows(f) * X), stage[1] = stage[0] + nt * X * esz;
    int om = dec_out_mode(f64, (size_t)nt, len, FFT_STREAM_BYTES);
    void *srows[2][4 * FFT_MAX_N];
    for (int t = 0; t < nt; t++)
        srows[0][t] = stage[0] + t * X * esz, srows[1][t] = stage[1] + t * X * esz;
    size_t nch = (len + X - 1) / X;
    load_nodes(f, prod, f64, 0, (int)(len < X ? len : X), ch[0], X, 0, k);
    for (size_t c = 0; c < nch; c++) {
        size_t x0 = c * X, x1 = x0 + X;
        int nx = len - x0 < X ? (int)(len - x0) : (int)X, cur = (int)(c % 2);
        int nx1 = x1 < len ? (len - x1 < X ? (int)(len - x1) : (int)X) : 0;
        int nsl = (nx + FX - 1) / FX;
        for (int sl = 0; sl < nsl; sl++) {
            int xb = sl * FX;
            fill_missing(f, ch[cur] + xb, X);
            for (int h = 0; h < f->halves; h++)
                run_fft(f, ch[cur] + (size_t)2 * h * f->n * X + xb, X, A + (size_t)h * f->n,
                        B + (size_t)h * f->n);
            store_targets(f, A, srows[cur], f64, (size_t)xb);
            if (nx1) /* the next chunk's responders sl k / nsl .. */
                load_nodes(f, prod, f64, x1, nx1, ch[!cur], X, sl * k / nsl, (sl + 1) * k / nsl);
            if (c > 0) /* the previous chunk's targets */
                flush_targets(stage[!cur], X, sl * nt / nsl, (sl + 1) * nt / nsl, targets, om,
                              x0 - X, (int)X);
        }
    }
    size_t xl = (nch - 1) * X;
    flush_targets(stage[(nch - 1) % 2], X, 0, nt, targets, om, xl, (int)(len - xl));
#if defined(__AVX__)
    if (om & OUT_STREAM) _mm_sfence();
#endif
    return TS_OK;
}
