/* gen.c: the generator matrices and product maps of every code (see
 * code_internal.h for the product-map model and code.h for the layouts). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"

static const double TWO_PI = 6.283185307179586476925286766559;

/* Angle of the m-th power of the n-th root of unity, reduced mod n first so
 * that large exponents do not lose digits (m*theta would). */
static double root_angle(long long m, int n) {
    long long r = m % n;
    if (r < 0) r += n;
    return TWO_PI * (double)r / (double)n;
}

static double linspace_node(int j, int n) {
    return n == 1 ? 0.0 : -1.0 + 2.0 * j / (n - 1);
}
static double chebyshev_node(int j, int n) {
    return cos((2.0 * j + 1.0) * M_PI / (2.0 * n));
}

static double *ga_at(ts_code *c, int j, int s) {
    return c->ga + ((size_t)j * c->qa + s) * c->na;
}
static double *gb_at(ts_code *c, int j, int s) {
    return c->gb + ((size_t)j * c->qb + s) * c->nb;
}

static ts_status alloc_gens(ts_code *c, ts_err *err) {
    c->ga = calloc((size_t)c->n * c->qa * c->na, sizeof *c->ga);
    c->gb = calloc((size_t)c->n * c->qb * c->nb, sizeof *c->gb);
    c->w = calloc((size_t)c->n * c->qa * c->qb * c->nunk, sizeof *c->w);
    c->tsel = calloc((size_t)c->ntargets, sizeof *c->tsel);
    if (!c->ga || !c->gb || !c->w || !c->tsel)
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for the generators of a %d-worker code",
                         c->n);
    return TS_OK;
}

/* Product codes: the unknowns are the targets A_i (*) B_l (u = i*nb + l) and
 * W[j][(c,d)] is the Kronecker product of the generator rows. */
static void product_map(ts_code *c) {
    for (int j = 0; j < c->n; j++)
        for (int a = 0; a < c->qa; a++)
            for (int b = 0; b < c->qb; b++) {
                double *row = c->w + (((size_t)j * c->qa + a) * c->qb + b) * c->nunk;
                const double *ra = ga_at(c, j, a), *rb = gb_at(c, j, b);
                for (int i = 0; i < c->na; i++)
                    for (int l = 0; l < c->nb; l++)
                        row[i * c->nb + l] = ra[i] * rb[l];
            }
    for (int t = 0; t < c->ntargets; t++)
        c->tsel[t] = t;
}

static void set_product_shape(ts_code *c, int na, int nb, int qa, int qb, int threshold) {
    c->na = na, c->nb = nb, c->qa = qa, c->qb = qb, c->threshold = threshold;
    c->ntargets = na * nb;
    c->nunk = na * nb;
}

static ts_status build_uncoded(ts_code *c, ts_err *err) {
    set_product_shape(c, 1, c->n, 1, 1, c->n);
    TS_TRY(alloc_gens(c, err));
    for (int j = 0; j < c->n; j++) {
        ga_at(c, j, 0)[0] = 1.0;
        gb_at(c, j, 0)[j] = 1.0;
    }
    product_map(c);
    return TS_OK;
}

/* Worker j holds task j mod T (T = n / replicas), so the first T workers are
 * exactly the uncoded split and every task has at least `replicas` copies.
 * Threshold: the worst case, n minus the fewest copies of a task, plus one. */
static ts_status build_replication(ts_code *c, ts_err *err) {
    int T = c->n / c->p.replicas;
    set_product_shape(c, 1, T, 1, 1, c->n - c->n / T + 1);
    TS_TRY(alloc_gens(c, err));
    c->task_of = calloc((size_t)c->n, sizeof *c->task_of);
    if (!c->task_of) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a replication code");
    for (int j = 0; j < c->n; j++) {
        c->task_of[j] = j % T;
        ga_at(c, j, 0)[0] = 1.0;
        gb_at(c, j, 0)[j % T] = 1.0;
    }
    product_map(c);
    return TS_OK;
}

/* Turns a 1-D generator systematic: GB <- GB * inv(GB[0..k-1]), so the first
 * k workers hold the plain blocks and the code stays MDS. */
static ts_status make_systematic(ts_code *c, ts_err *err) {
    int k = c->nb;
    double *top = malloc((size_t)k * k * sizeof *top);
    double *row = malloc((size_t)k * sizeof *row);
    if (!top || !row) {
        free(top);
        free(row);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a systematic generator");
    }
    memcpy(top, c->gb, (size_t)k * k * sizeof *top);
    ts_status st = ts_la_inverse(top, k, err);
    for (int j = 0; st == TS_OK && j < c->n; j++) {
        double *g = gb_at(c, j, 0);
        for (int l = 0; l < k; l++) {
            double s = 0;
            for (int m = 0; m < k; m++)
                s += g[m] * top[m * k + l];
            row[l] = s;
        }
        if (j < k)
            for (int l = 0; l < k; l++)
                row[l] = l == j ? 1.0 : 0.0; /* exact, not 1 - 1e-16 */
        memcpy(g, row, (size_t)k * sizeof *row);
    }
    free(top);
    free(row);
    return st;
}

static ts_status build_mds1(ts_code *c, ts_err *err) {
    int k = c->p.kB;
    set_product_shape(c, 1, k, 1, 1, k);
    TS_TRY(alloc_gens(c, err));
    ts_rng r;
    ts_rng_seed(&r, c->p.seed);
    for (int j = 0; j < c->n; j++) {
        ga_at(c, j, 0)[0] = 1.0;
        double *g = gb_at(c, j, 0);
        for (int l = 0; l < k; l++) {
            switch (c->p.kind) {
            case TS_CODE_VANDERMONDE: g[l] = pow(linspace_node(j, c->n), l); break;
            /* Chebyshev polynomials T_l at the Chebyshev nodes (the
             * orthogonal-polynomial code of Fahim & Cadambe): far better
             * conditioned than monomials at the same nodes. */
            case TS_CODE_CHEBYSHEV: g[l] = cos(l * (2.0 * j + 1.0) * M_PI / (2.0 * c->n)); break;
            default: g[l] = ts_rng_normal(&r); break;
            }
        }
    }
    if (c->p.systematic) TS_TRY(make_systematic(c, err));
    product_map(c);
    return TS_OK;
}

static ts_status build_polynomial(ts_code *c, ts_err *err) {
    int kA = c->p.kA, kB = c->p.kB;
    set_product_shape(c, kA, kB, 1, 1, kA * kB);
    TS_TRY(alloc_gens(c, err));
    for (int j = 0; j < c->n; j++) {
        double x = linspace_node(j, c->n);
        for (int i = 0; i < kA; i++)
            ga_at(c, j, 0)[i] = pow(x, (double)kB * i);
        for (int l = 0; l < kB; l++)
            gb_at(c, j, 0)[l] = pow(x, l);
    }
    product_map(c);
    return TS_OK;
}

/* CRME (digest 1.2.5): GA block (i,j) = R^{kB*i*j}, GB block (l,j) = R^{l*j},
 * R the rotation by theta = 2pi/n; share c of worker j is column c of its
 * block column: A~[j][c] = sum_i sum_a (R^{kB i j})[a][c] A_{2i+a}. */
static ts_status build_crme(ts_code *c, ts_err *err) {
    int kA = c->p.kA, kB = c->p.kB, mv = c->p.matvec;
    if (mv)
        set_product_shape(c, 1, 2 * kB, 1, 2, kB);
    else
        set_product_shape(c, 2 * kA, 2 * kB, 2, 2, kA * kB);
    TS_TRY(alloc_gens(c, err));
    c->nodes = calloc((size_t)c->n, sizeof *c->nodes);
    if (!c->nodes) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a CRME code");
    if (mv)
        for (int j = 0; j < c->n; j++)
            ga_at(c, j, 0)[0] = 1.0;
    for (int j = 0; j < c->n; j++) {
        c->nodes[j] = cexp(I * root_angle(j, c->n));
        for (int i = 0; i < kA && !mv; i++) {
            double t = root_angle((long long)kB * i * j, c->n), co = cos(t), si = sin(t);
            ga_at(c, j, 0)[2 * i] = co, ga_at(c, j, 0)[2 * i + 1] = si;
            ga_at(c, j, 1)[2 * i] = -si, ga_at(c, j, 1)[2 * i + 1] = co;
        }
        for (int l = 0; l < kB; l++) {
            double t = root_angle((long long)l * j, c->n), co = cos(t), si = sin(t);
            gb_at(c, j, 0)[2 * l] = co, gb_at(c, j, 0)[2 * l + 1] = si;
            gb_at(c, j, 1)[2 * l] = -si, gb_at(c, j, 1)[2 * l + 1] = co;
        }
    }
    product_map(c);
    return TS_OK;
}

/* Complex Vandermonde on the n-th roots of unity, run over the reals: share
 * 0 is the real part of sum_i w^{kB i j} A_i, share 1 the imaginary part (an
 * operand that is not split needs no imaginary share). */
static ts_status build_complex(ts_code *c, ts_err *err) {
    int kA = c->p.kA, kB = c->p.kB;
    set_product_shape(c, kA, kB, kA > 1 ? 2 : 1, kB > 1 ? 2 : 1, kA * kB);
    TS_TRY(alloc_gens(c, err));
    c->nodes = calloc((size_t)c->n, sizeof *c->nodes);
    if (!c->nodes) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a complex code");
    for (int j = 0; j < c->n; j++) {
        c->nodes[j] = cexp(I * root_angle(j, c->n));
        for (int i = 0; i < kA; i++) {
            double t = root_angle((long long)kB * i * j, c->n);
            ga_at(c, j, 0)[i] = cos(t);
            if (c->qa == 2) ga_at(c, j, 1)[i] = sin(t);
        }
        for (int l = 0; l < kB; l++) {
            double t = root_angle((long long)l * j, c->n);
            gb_at(c, j, 0)[l] = cos(t);
            if (c->qb == 2) gb_at(c, j, 1)[l] = sin(t);
        }
    }
    product_map(c);
    return TS_OK;
}

/* MatDot / PolyDot / Generalized PolyDot: A is kA x m blocks (A_{i,j} at
 * i*m + j, j the inner index), B is m x kB blocks (B_{j,l} at j*kB + l);
 * the target C_{i,l} = sum_j A_{i,j} (*) B_{j,l} (index i*kB + l) is one
 * coefficient of the product polynomial, evaluated at real Chebyshev nodes.
 *   PolyDot:      eA = j + (2m-1) i,  eB = m-1-j + (2m-1) kA l,
 *                 Q = (2m-1) kA kB (MatDot: kA = kB = 1, Q = 2m-1)
 *   Gen. PolyDot: eA = m i + j,       eB = m-1-j + kA m l,
 *                 Q = kA m kB + m - 1 (the garbage terms align) */
static ts_status build_dot(ts_code *c, ts_err *err) {
    int kA = c->p.kA, kB = c->p.kB, m = c->p.m;
    int gen = c->p.kind == TS_CODE_GPOLYDOT;
    int stride = gen ? m : 2 * m - 1;
    int Q = gen ? kA * m * kB + m - 1 : (2 * m - 1) * kA * kB;
    c->na = kA * m, c->nb = m * kB, c->qa = c->qb = 1, c->threshold = Q;
    c->ntargets = kA * kB, c->nunk = Q;
    TS_TRY(alloc_gens(c, err));
    for (int j = 0; j < c->n; j++) {
        double x = chebyshev_node(j, c->n);
        for (int i = 0; i < kA; i++)
            for (int q = 0; q < m; q++)
                ga_at(c, j, 0)[i * m + q] = pow(x, stride * i + q);
        for (int q = 0; q < m; q++)
            for (int l = 0; l < kB; l++)
                gb_at(c, j, 0)[q * kB + l] = pow(x, m - 1 - q + (double)stride * kA * l);
        for (int e = 0; e < Q; e++)
            c->w[(size_t)j * Q + e] = pow(x, e);
    }
    for (int i = 0; i < kA; i++)
        for (int l = 0; l < kB; l++)
            c->tsel[i * kB + l] = m - 1 + stride * (i + kA * l);
    return TS_OK;
}

ts_status ts_code_build(ts_code *c, ts_err *err) {
    switch (c->p.kind) {
    case TS_CODE_UNCODED: return build_uncoded(c, err);
    case TS_CODE_REPLICATION: return build_replication(c, err);
    case TS_CODE_VANDERMONDE:
    case TS_CODE_CHEBYSHEV:
    case TS_CODE_RANDOM: return build_mds1(c, err);
    case TS_CODE_POLYNOMIAL: return build_polynomial(c, err);
    case TS_CODE_CRME: return build_crme(c, err);
    case TS_CODE_COMPLEX: return build_complex(c, err);
    case TS_CODE_CIRCULANT: return ts_code_circ_build(c, err);
    case TS_CODE_MATDOT:
    case TS_CODE_POLYDOT:
    case TS_CODE_GPOLYDOT: return build_dot(c, err);
    default: break;
    }
    /* every kind is built above; only an out-of-range value gets here */
    return ts_errorf(err, TS_ERR_INVALID, "unknown code kind %d", (int)c->p.kind);
}
