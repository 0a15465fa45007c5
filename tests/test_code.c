/* test_code.c: the codes library. Every code is checked against the uncoded
 * product it replaces, over every responder set for small n and random sets
 * for larger n; bad parameters and bad responder lists must be refused with
 * a message; the condition numbers and the noise study of the CRME paper
 * are reproduced. The bilinear product used here is the elementwise product
 * (any bilinear map exercises the same algebra). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tessera/code.h"
#include "ts_test.h"

static int sanitized(void) {
    const char *s = getenv("TS_SANITIZED");
    return s && *s && strcmp(s, "0") != 0;
}

static int is_dot(ts_code_kind k) {
    return k == TS_CODE_MATDOT || k == TS_CODE_POLYDOT || k == TS_CODE_GPOLYDOT;
}

/* Everything needed to check decodes of one code: double operands, the
 * exact targets and every worker's products in double and in float. */
typedef struct {
    ts_code *c;
    int n, na, nb, qa, qb, per, k, nt;
    size_t len;
    double *A, *B, *T; /* na x len, nb x len, nt x len */
    double *P;         /* n x per x len, exact products of double shares */
    float *Pf;         /* n x per x len, float shares, float products */
} fixture;

static void encode_row(const double *g, int nblk, const double *blocks, size_t len, double *out) {
    for (size_t x = 0; x < len; x++)
        out[x] = 0;
    for (int i = 0; i < nblk; i++)
        for (size_t x = 0; x < len; x++)
            out[x] += g[i] * blocks[(size_t)i * len + x];
}

static int fixture_make(fixture *f, const ts_code_params *p, size_t len, uint64_t seed) {
    memset(f, 0, sizeof *f);
    ts_err e = {0};
    f->c = ts_code_new(p, &e);
    TS_CHECK_MSG(f->c != NULL, "%s: %s", ts_code_kind_name(p->kind), e.msg);
    if (!f->c) return 0;
    ts_code *c = f->c;
    f->n = ts_code_n(c), f->na = ts_code_a_blocks(c), f->nb = ts_code_b_blocks(c);
    f->qa = ts_code_a_shares(c), f->qb = ts_code_b_shares(c), f->per = f->qa * f->qb;
    f->k = ts_code_threshold(c), f->nt = ts_code_num_targets(c), f->len = len;
    const ts_code_params *q = ts_code_params_of(c);
    f->A = malloc(f->na * len * sizeof(double));
    f->B = malloc(f->nb * len * sizeof(double));
    f->T = calloc(f->nt * len, sizeof(double));
    f->P = malloc((size_t)f->n * f->per * len * sizeof(double));
    f->Pf = malloc((size_t)f->n * f->per * len * sizeof(float));
    double *ea = malloc(f->qa * len * sizeof(double)), *eb = malloc(f->qb * len * sizeof(double));
    float *fa = malloc(f->na * len * sizeof(float)), *fb = malloc(f->nb * len * sizeof(float));
    float *sa = malloc(f->qa * len * sizeof(float)), *sb = malloc(f->qb * len * sizeof(float));
    ts_rng r;
    ts_rng_seed(&r, seed);
    for (size_t x = 0; x < f->na * len; x++)
        fa[x] = (float)ts_rng_normal(&r), f->A[x] = fa[x];
    for (size_t x = 0; x < f->nb * len; x++)
        fb[x] = (float)ts_rng_normal(&r), f->B[x] = fb[x];
    for (int t = 0; t < f->nt; t++)
        for (size_t x = 0; x < len; x++) {
            double s = 0;
            if (is_dot(q->kind)) {
                int i = t / q->kB, l = t % q->kB;
                for (int m = 0; m < q->m; m++)
                    s += f->A[(i * q->m + m) * len + x] * f->B[(m * q->kB + l) * len + x];
            } else {
                s = f->A[(t / f->nb) * len + x] * f->B[(t % f->nb) * len + x];
            }
            f->T[t * len + x] = s;
        }
    const double *ga = ts_code_a_gen(c), *gb = ts_code_b_gen(c);
    const float *ap[1024], *bp[1024];
    for (int i = 0; i < f->na; i++)
        ap[i] = fa + i * len;
    for (int i = 0; i < f->nb; i++)
        bp[i] = fb + i * len;
    float *so_a[64], *so_b[64];
    for (int a = 0; a < f->qa; a++)
        so_a[a] = sa + a * len;
    for (int b = 0; b < f->qb; b++)
        so_b[b] = sb + b * len;
    for (int j = 0; j < f->n; j++) {
        for (int a = 0; a < f->qa; a++)
            encode_row(ga + ((size_t)j * f->qa + a) * f->na, f->na, f->A, len, ea + a * len);
        for (int b = 0; b < f->qb; b++)
            encode_row(gb + ((size_t)j * f->qb + b) * f->nb, f->nb, f->B, len, eb + b * len);
        TS_CHECK_OK(ts_code_encode_a(c, j, ap, len, so_a, &e), &e);
        TS_CHECK_OK(ts_code_encode_b(c, j, bp, len, so_b, &e), &e);
        for (int a = 0; a < f->qa; a++)
            for (int b = 0; b < f->qb; b++) {
                size_t o = ((size_t)j * f->per + a * f->qb + b) * len;
                for (size_t x = 0; x < len; x++) {
                    f->P[o + x] = ea[a * len + x] * eb[b * len + x];
                    f->Pf[o + x] = sa[a * len + x] * sb[b * len + x];
                }
            }
    }
    free(ea), free(eb), free(fa), free(fb), free(sa), free(sb);
    return 1;
}

static void fixture_free(fixture *f) {
    ts_code_free(f->c);
    free(f->A), free(f->B), free(f->T), free(f->P), free(f->Pf);
}

static double rel_err_d(const fixture *f, double *const *out) {
    double num = 0, den = 0;
    for (int t = 0; t < f->nt; t++)
        for (size_t x = 0; x < f->len; x++) {
            num = fmax(num, fabs(out[t][x] - f->T[t * f->len + x]));
            den = fmax(den, fabs(f->T[t * f->len + x]));
        }
    return num / den;
}

static double rel_err_f(const fixture *f, float *const *out) {
    double num = 0, den = 0;
    for (int t = 0; t < f->nt; t++)
        for (size_t x = 0; x < f->len; x++) {
            num = fmax(num, fabs(out[t][x] - f->T[t * f->len + x]));
            den = fmax(den, fabs(f->T[t * f->len + x]));
        }
    return num / den;
}

/* Decodes from resp (n_resp ids, any order) in double and in float; checks
 * the error against the condition number; returns the double error. */
static double check_set(fixture *f, const int *resp, int n_resp, int also_float, double *cond_out) {
    ts_err e = {0};
    const double *pp[2048];
    const float *pf[2048];
    double *td[1024];
    float *tf[1024];
    double *bufd = malloc(f->nt * f->len * sizeof(double));
    float *buff = malloc(f->nt * f->len * sizeof(float));
    for (int r = 0; r < n_resp; r++)
        for (int q = 0; q < f->per; q++) {
            pp[r * f->per + q] = f->P + ((size_t)resp[r] * f->per + q) * f->len;
            pf[r * f->per + q] = f->Pf + ((size_t)resp[r] * f->per + q) * f->len;
        }
    for (int t = 0; t < f->nt; t++)
        td[t] = bufd + t * f->len, tf[t] = buff + t * f->len;
    double cond = -1, err = INFINITY;
    ts_status s = ts_code_decode_f64(f->c, resp, n_resp, pp, f->len, td, &cond, &e);
    TS_CHECK_MSG(s == TS_OK, "%s: %s", ts_code_kind_name(ts_code_params_of(f->c)->kind), e.msg);
    if (s == TS_OK) {
        err = rel_err_d(f, td);
        TS_CHECK(cond >= 1.0 - 1e-9);
        TS_CHECK_MSG(err <= 1e-13 * fmax(cond, 1.0) * f->k, "%s n=%d: f64 error %.3g, cond %.3g",
                     ts_code_kind_name(ts_code_params_of(f->c)->kind), f->n, err, cond);
    }
    if (also_float && s == TS_OK) {
        double c2 = -1;
        s = ts_code_decode(f->c, resp, n_resp, pf, f->len, tf, &c2, &e);
        TS_CHECK_OK(s, &e);
        TS_CHECK(c2 == cond); /* same set, same cached system */
        double ef = rel_err_f(f, tf);
        TS_CHECK_MSG(ef <= 2e-6 * fmax(cond, 1.0) * f->k, "%s n=%d: float error %.3g, cond %.3g",
                     ts_code_kind_name(ts_code_params_of(f->c)->kind), f->n, ef, cond);
    }
    if (cond_out) *cond_out = cond;
    free(bufd);
    free(buff);
    return err;
}

static int next_subset(int *set, int k, int n) {
    int i = k - 1;
    while (i >= 0 && set[i] == n - k + i)
        i--;
    if (i < 0) return 0;
    set[i]++;
    for (int j = i + 1; j < k; j++)
        set[j] = set[j - 1] + 1;
    return 1;
}

static void shuffle(int *v, int n, ts_rng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)ts_rng_below(r, (uint64_t)i + 1), t = v[i];
        v[i] = v[j], v[j] = t;
    }
}

/* v = the ids 0..n-1 in a random order. */
static void random_ids(int *v, int n, ts_rng *r) {
    for (int j = 0; j < n; j++)
        v[j] = j;
    shuffle(v, n, r);
}

/* Every threshold-sized set (in a shuffled order, sometimes with an extra
 * responder appended, which must be ignored). */
static void exhaustive(const ts_code_params *p, size_t len) {
    fixture f;
    if (!fixture_make(&f, p, len, 7 + (uint64_t)p->kind)) return;
    int set[64], resp[64];
    ts_rng r;
    ts_rng_seed(&r, 99);
    for (int i = 0; i < f.k; i++)
        set[i] = i;
    long sets = 0;
    do {
        memcpy(resp, set, f.k * sizeof(int));
        shuffle(resp, f.k, &r);
        int nr = f.k;
        if (f.k < f.n && sets % 3 == 0) { /* append one worker not in the set */
            for (int j = 0; j < f.n; j++) {
                int in = 0;
                for (int i = 0; i < f.k; i++)
                    in |= set[i] == j;
                if (!in) {
                    resp[nr++] = j;
                    break;
                }
            }
        }
        check_set(&f, resp, nr, sets % 4 == 0, NULL);
        sets++;
    } while (next_subset(set, f.k, f.n));
    fixture_free(&f);
}

static void test_exhaustive_small_n(void) {
    const ts_code_params cases[] = {
        {.kind = TS_CODE_UNCODED, .n = 5},
        {.kind = TS_CODE_VANDERMONDE, .n = 8, .kB = 5},
        {.kind = TS_CODE_VANDERMONDE, .n = 8, .kB = 5, .systematic = 1},
        {.kind = TS_CODE_CHEBYSHEV, .n = 9, .kB = 6},
        {.kind = TS_CODE_CHEBYSHEV, .n = 7, .kB = 4, .systematic = 1},
        {.kind = TS_CODE_RANDOM, .n = 8, .kB = 4, .seed = 11},
        {.kind = TS_CODE_RANDOM, .n = 8, .kB = 4, .seed = 11, .systematic = 1},
        {.kind = TS_CODE_POLYNOMIAL, .n = 8, .kA = 2, .kB = 3},
        {.kind = TS_CODE_CRME, .n = 8, .kA = 2, .kB = 3},
        {.kind = TS_CODE_CRME, .n = 9, .kA = 3, .kB = 2},
        {.kind = TS_CODE_CRME, .n = 6, .kA = 1, .kB = 6},
        {.kind = TS_CODE_CRME, .n = 7, .kA = 1, .kB = 5, .matvec = 1},
        {.kind = TS_CODE_COMPLEX, .n = 8, .kA = 2, .kB = 3},
        {.kind = TS_CODE_COMPLEX, .n = 7, .kA = 1, .kB = 5},
        {.kind = TS_CODE_CIRCULANT, .n = 7, .kB = 5},
        {.kind = TS_CODE_CIRCULANT, .n = 6, .kB = 4},
        {.kind = TS_CODE_CIRCULANT, .n = 8, .kB = 5, .q = 13},
        {.kind = TS_CODE_MATDOT, .n = 8, .m = 3},
        {.kind = TS_CODE_POLYDOT, .n = 13, .kA = 2, .kB = 2, .m = 2},
        {.kind = TS_CODE_GPOLYDOT, .n = 9, .kA = 2, .kB = 1, .m = 3},
        {.kind = TS_CODE_GPOLYDOT, .n = 10, .kA = 2, .kB = 2, .m = 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        exhaustive(&cases[i], 13);
}

/* Replication decodes from any set that holds every task, including sets
 * smaller than the worst-case threshold, and refuses one that does not. */
static void test_replication(void) {
    ts_code_params p = {.kind = TS_CODE_REPLICATION, .n = 7, .replicas = 2};
    fixture f;
    if (!fixture_make(&f, &p, 9, 3)) return;
    TS_CHECK(f.nb == 3 && f.na == 1);
    TS_CHECK(f.k == 7 - 2 + 1); /* task 0 has 3 copies (0, 3, 6), tasks 1, 2 have 2 */
    int set[7];
    for (int i = 0; i < f.k; i++)
        set[i] = i;
    do
        check_set(&f, set, f.k, 1, NULL);
    while (next_subset(set, f.k, f.n));
    int cover[3] = {4, 6, 2}; /* tasks 1, 0, 2 */
    check_set(&f, cover, 3, 1, NULL);
    int miss[4] = {0, 3, 6, 1}; /* nobody holds task 2 */
    double *td[3], buf[27];
    const double *pp[4];
    for (int t = 0; t < 3; t++)
        td[t] = buf + 9 * t;
    for (int r = 0; r < 4; r++)
        pp[r] = f.P + (size_t)miss[r] * 9;
    ts_err e = {0};
    TS_CHECK(ts_code_decode_f64(f.c, miss, 4, pp, 9, td, NULL, &e) == TS_ERR_INVALID);
    TS_CHECK(strstr(e.msg, "task 2") != NULL);
    fixture_free(&f);
}

/* Larger n: random codes and random responder sets. */
static void test_random_properties(void) {
    ts_rng r;
    ts_rng_seed(&r, 2024);
    int rounds = sanitized() ? 8 : 40;
    for (int it = 0; it < rounds; it++) {
        ts_code_params p = {0};
        int n = 12 + (int)ts_rng_below(&r, 21); /* 12..32 */
        switch (it % 6) {
        case 0: p.kind = TS_CODE_CRME, p.kA = 1 + (int)ts_rng_below(&r, 4); break;
        case 1: p.kind = TS_CODE_COMPLEX, p.kA = 1 + (int)ts_rng_below(&r, 3); break;
        case 2: p.kind = TS_CODE_CHEBYSHEV, p.kA = 1; break;
        case 3: p.kind = TS_CODE_RANDOM, p.kA = 1, p.seed = it; break;
        case 4: p.kind = TS_CODE_CRME, p.kA = 1, p.matvec = 1; break;
        default: p.kind = TS_CODE_GPOLYDOT, p.kA = 2, p.m = 2; break;
        }
        p.n = n;
        int s = 1 + (int)ts_rng_below(&r, 3);
        if (p.kind == TS_CODE_GPOLYDOT)
            p.kB = (n - s - 1) / 4 > 0 ? (n - s - 1) / 4 : 1;
        else
            p.kB = (n - s) / p.kA;
        fixture f;
        if (!fixture_make(&f, &p, 11, (uint64_t)it)) continue;
        int perm[64];
        for (int j = 0; j < f.n; j++)
            perm[j] = j;
        for (int t = 0; t < 3; t++) {
            shuffle(perm, f.n, &r);
            check_set(&f, perm, f.k + (int)ts_rng_below(&r, (uint64_t)(f.n - f.k + 1)), t == 0,
                      NULL);
        }
        fixture_free(&f);
    }
}

/* CRME in float64 at n <= 32: relative error <= 1e-10 on every tested set,
 * for every (kA, kB) split of a few thresholds; real Vandermonde reported. */
static void test_crme_f64_accuracy(void) {
    int ns[] = {8, 16, 20, 31, 32};
    double worst_crme = 0, worst_vand = 0;
    ts_rng r;
    ts_rng_seed(&r, 5);
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        int n = ns[a];
        for (int kA = 1; kA <= 4; kA++) {
            int kB = (n - 2) / kA;
            if (kB < 1) continue;
            ts_code_params p = {.kind = TS_CODE_CRME, .n = n, .kA = kA, .kB = kB};
            fixture f;
            if (!fixture_make(&f, &p, 7, (uint64_t)n * 10 + kA)) continue;
            int perm[64];
            for (int j = 0; j < n; j++)
                perm[j] = j;
            for (int t = 0; t < (sanitized() ? 2 : 6); t++) {
                shuffle(perm, n, &r);
                double err = check_set(&f, perm, f.k, 0, NULL);
                TS_CHECK_MSG(err <= 1e-10, "CRME n=%d kA=%d kB=%d: %.3g", n, kA, kB, err);
                worst_crme = fmax(worst_crme, err);
            }
            fixture_free(&f);
        }
        ts_code_params v = {.kind = TS_CODE_VANDERMONDE, .n = n, .kB = n - 2};
        fixture f;
        if (!fixture_make(&f, &v, 7, 77)) continue;
        int perm[64];
        for (int j = 0; j < n; j++)
            perm[j] = j;
        shuffle(perm, n, &r);
        double cond;
        worst_vand = fmax(worst_vand, check_set(&f, perm, f.k, 0, &cond));
        fixture_free(&f);
    }
    printf("  float64 decode, n <= 32, k = n-2: CRME worst rel. error %.2e; real Vandermonde "
           "%.2e\n",
           worst_crme, worst_vand);
}

/* The decoding cache: more sets than slots, then the first set again, must
 * give the same answer and condition number as the first time. */
static void test_cache(void) {
    ts_code_params p = {.kind = TS_CODE_CRME, .n = 12, .kA = 2, .kB = 5};
    fixture f;
    if (!fixture_make(&f, &p, 40, 12)) return;
    ts_rng r;
    ts_rng_seed(&r, 12);
    int first[12], perm[12];
    for (int j = 0; j < 12; j++)
        first[j] = j;
    shuffle(first, 12, &r);
    double c0 = 0, c1 = 0, e0 = check_set(&f, first, f.k, 1, &c0);
    for (int t = 0; t < 20; t++) {
        memcpy(perm, first, sizeof perm);
        shuffle(perm, 12, &r);
        check_set(&f, perm, f.k, t % 2, NULL);
    }
    double e1 = check_set(&f, first, f.k, 1, &c1);
    TS_CHECK(c0 == c1 && e0 == e1);
    fixture_free(&f);
}

/* CRME's two complex k x k solves agree with the 4k x 4k real solve, and
 * the condition numbers coincide (digest 1.2.8). */
static void test_crme_fast_equals_dense(void) {
    ts_code_params p = {.kind = TS_CODE_CRME, .n = 13, .kA = 2, .kB = 5};
    fixture f;
    if (!fixture_make(&f, &p, 300, 9)) return;
    ts_rng r;
    ts_rng_seed(&r, 8);
    int perm[13];
    for (int j = 0; j < 13; j++)
        perm[j] = j;
    for (int t = 0; t < 5; t++) {
        shuffle(perm, 13, &r);
        const float *pf[64];
        for (int q = 0; q < f.k * 4; q++)
            pf[q] = f.Pf + ((size_t)perm[q / 4] * 4 + q % 4) * f.len;
        float *a[40], *b[40];
        float *ba = malloc(40 * f.len * sizeof(float)), *bb = malloc(40 * f.len * sizeof(float));
        for (int u = 0; u < f.nt; u++)
            a[u] = ba + u * f.len, b[u] = bb + u * f.len;
        ts_err e = {0};
        double c1 = 0, c2 = 0;
        TS_CHECK_OK(ts_code_decode(f.c, perm, f.k, pf, f.len, a, &c1, &e), &e);
        TS_CHECK_OK(ts_code_decode_dense(f.c, perm, f.k, pf, f.len, b, &c2, &e), &e);
        TS_CHECK_MSG(fabs(c1 - c2) <= 1e-8 * c2, "cond %.12g vs %.12g", c1, c2);
        double d = 0;
        for (size_t x = 0; x < f.nt * f.len; x++)
            d = fmax(d, fabs(ba[x] - bb[x]));
        TS_CHECK_MSG(d <= 1e-4, "fast and dense decodes differ by %.3g", d);
        free(ba), free(bb);
    }
    fixture_free(&f);
}

/* ---- decoding kernels against a straightforward reference ---------------
 * The decoders run cache-blocked, register-blocked kernels over slices of 16
 * columns (zero-padded tails, chunks of a few thousand columns, prefetches
 * of the next chunk; up to 8 targets in one pass without a chunk buffer). Here every product code's
 * decode, in float and in double, is compared with a plain solve of its real product system,
 * assembled from the public generators and factored in long double, one
 * column at a time: lengths 1..17 (shorter than a slice, every tail),
 * around and across chunk boundaries, random responder sets in random
 * order, odd and even k (the CRME kernel pairs target groups). */
static const size_t KERNEL_LENS[] = {1,  2,  3,  4,  5,  6,  7,  8,   9,    10,   11,   12,
                                     13, 14, 15, 16, 17, 31, 33, 250, 1361, 4095, 4097, 9001};

/* Row (r, c, d) of the real system, column (i, l) = target i*nB + l:
 * GA[j][c][i] GB[j][d][l]; LU with partial pivoting in long double. */
static int ref_factor(const fixture *f, const int *resp, long double *M, int *piv) {
    int N = f->k * f->per, na = f->na, nb = f->nb;
    if (N != na * nb) return 0;
    const double *ga = ts_code_a_gen(f->c), *gb = ts_code_b_gen(f->c);
    for (int r = 0; r < f->k; r++)
        for (int c = 0; c < f->qa; c++)
            for (int d = 0; d < f->qb; d++)
                for (int i = 0; i < na; i++)
                    for (int l = 0; l < nb; l++)
                        M[(size_t)(r * f->per + c * f->qb + d) * N + i * nb + l] =
                            (long double)ga[((size_t)resp[r] * f->qa + c) * na + i] *
                            gb[((size_t)resp[r] * f->qb + d) * nb + l];
    for (int k = 0; k < N; k++) {
        int p = k;
        for (int i = k + 1; i < N; i++)
            if (fabsl(M[(size_t)i * N + k]) > fabsl(M[(size_t)p * N + k])) p = i;
        piv[k] = p;
        for (int j = 0; j < N; j++) {
            long double t = M[(size_t)k * N + j];
            M[(size_t)k * N + j] = M[(size_t)p * N + j], M[(size_t)p * N + j] = t;
        }
        for (int i = k + 1; i < N; i++) {
            long double g = M[(size_t)i * N + k] /= M[(size_t)k * N + k];
            for (int j = k + 1; j < N; j++)
                M[(size_t)i * N + j] -= g * M[(size_t)k * N + j];
        }
    }
    return 1;
}

/* Reference targets (nt x len, double) from products b(row, x). */
static void ref_solve(const fixture *f, const long double *M, const int *piv, const int *resp,
                      int f64, double *out) {
    int N = f->k * f->per;
    long double *v = malloc((size_t)N * sizeof *v);
    for (size_t x = 0; x < f->len; x++) {
        for (int r = 0; r < f->k; r++)
            for (int q = 0; q < f->per; q++) {
                size_t o = ((size_t)resp[r] * f->per + q) * f->len + x;
                v[r * f->per + q] = f64 ? (long double)f->P[o] : (long double)f->Pf[o];
            }
        for (int k = 0; k < N; k++) {
            long double t = v[k];
            v[k] = v[piv[k]], v[piv[k]] = t;
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < i; j++)
                v[i] -= M[(size_t)i * N + j] * v[j];
        for (int i = N - 1; i >= 0; i--) {
            for (int j = i + 1; j < N; j++)
                v[i] -= M[(size_t)i * N + j] * v[j];
            v[i] /= M[(size_t)i * N + i];
        }
        for (int t = 0; t < N; t++)
            out[(size_t)t * f->len + x] = (double)v[t];
    }
    free(v);
}

/* max |got - ref| over all targets, relative to max |ref|. */
static double ref_diff(const fixture *f, const double *ref, const void *got, int f64) {
    double num = 0, den = 0;
    for (size_t x = 0; x < (size_t)f->nt * f->len; x++) {
        double g = f64 ? ((const double *)got)[x] : ((const float *)got)[x];
        num = fmax(num, fabs(g - ref[x]));
        den = fmax(den, fabs(ref[x]));
    }
    return den > 0 ? num / den : num;
}

/* mode 0: ts_code_decode, 1: ts_code_decode_f64, 2: ts_code_decode_dense.
 * The targets start shift elements past a 64-byte boundary. */
static double kernel_case(const fixture *f, const int *resp, int n_resp, int mode, size_t shift) {
    int N = f->k * f->per, f64 = mode == 1;
    long double *M = malloc((size_t)N * N * sizeof *M);
    int *piv = malloc((size_t)N * sizeof *piv);
    double *ref = malloc((size_t)f->nt * f->len * sizeof *ref);
    size_t esz = f64 ? sizeof(double) : sizeof(float);
    char *raw = aligned_alloc(64, ((size_t)f->nt * f->len + shift) * esz / 64 * 64 + 64);
    void *out = raw + shift * esz;
    const void *pp[2048];
    void *tp[1024];
    for (int r = 0; r < n_resp; r++)
        for (int q = 0; q < f->per; q++) {
            size_t o = ((size_t)resp[r] * f->per + q) * f->len;
            pp[r * f->per + q] = f64 ? (const void *)(f->P + o) : (const void *)(f->Pf + o);
        }
    for (int t = 0; t < f->nt; t++)
        tp[t] = f64 ? (void *)((double *)out + (size_t)t * f->len)
                    : (void *)((float *)out + (size_t)t * f->len);
    ts_err e = {0};
    double cond = 0;
    ts_status s = mode == 1   ? ts_code_decode_f64(f->c, resp, n_resp, (const double *const *)pp,
                                                   f->len, (double *const *)tp, &cond, &e)
                  : mode == 2 ? ts_code_decode_dense(f->c, resp, n_resp, (const float *const *)pp,
                                                     f->len, (float *const *)tp, &cond, &e)
                              : ts_code_decode(f->c, resp, n_resp, (const float *const *)pp, f->len,
                                               (float *const *)tp, &cond, &e);
    TS_CHECK_OK(s, &e);
    double d = -1;
    if (s == TS_OK && ref_factor(f, resp, M, piv)) {
        ref_solve(f, M, piv, resp, f64, ref);
        /* float outputs: a few float ulps of the largest target; double:
         * round-off of a backward-stable solve, cond * N * eps */
        double tol = 64 * fmax(cond, 1) * N * 1.1e-16 + (f64 ? 1e-15 : 4e-7);
        d = ref_diff(f, ref, out, f64);
        TS_CHECK_MSG(d <= tol,
                     "%s n=%d kA=%d kB=%d len=%zu mode %d: %.3g from the reference "
                     "(tol %.3g, cond %.3g)",
                     ts_code_kind_name(ts_code_params_of(f->c)->kind), f->n,
                     ts_code_params_of(f->c)->kA, ts_code_params_of(f->c)->kB, f->len, mode, d, tol,
                     cond);
    }
    free(M), free(piv), free(ref), free(raw);
    return d;
}

static void test_decode_kernels(void) {
    const ts_code_params cases[] = {
        {.kind = TS_CODE_UNCODED, .n = 5},
        {.kind = TS_CODE_VANDERMONDE, .n = 6, .kB = 4},
        {.kind = TS_CODE_VANDERMONDE, .n = 20, .kB = 18}, /* float decode through the LU */
        {.kind = TS_CODE_CHEBYSHEV, .n = 11, .kB = 9},
        {.kind = TS_CODE_RANDOM, .n = 9, .kB = 7, .seed = 3},
        {.kind = TS_CODE_VANDERMONDE, .n = 6, .kB = 4, .systematic = 1}, /* copies + s rows */
        {.kind = TS_CODE_CHEBYSHEV, .n = 20, .kB = 17, .systematic = 1},
        {.kind = TS_CODE_RANDOM, .n = 12, .kB = 9, .seed = 5, .systematic = 1},
        {.kind = TS_CODE_POLYNOMIAL, .n = 8, .kA = 2, .kB = 3},
        {.kind = TS_CODE_CRME, .n = 8, .kA = 2, .kB = 3},
        {.kind = TS_CODE_CRME, .n = 10, .kA = 3, .kB = 3}, /* k % 4 = 1 */
        {.kind = TS_CODE_CRME, .n = 8, .kA = 1, .kB = 7},  /* k % 4 = 3 */
        {.kind = TS_CODE_CRME, .n = 7, .kA = 1, .kB = 5},  /* mat-mat form with kA = 1 */
        {.kind = TS_CODE_CRME, .n = 20, .kA = 3, .kB = 6},
        {.kind = TS_CODE_CRME, .n = 6, .kA = 2, .kB = 2}, /* k <= 4: the direct CRME kernel */
        {.kind = TS_CODE_CRME, .n = 5, .kA = 3, .kB = 1},
        {.kind = TS_CODE_CRME, .n = 4, .kA = 1, .kB = 2},
        {.kind = TS_CODE_CRME, .n = 2, .kA = 1, .kB = 1},
        {.kind = TS_CODE_CRME, .n = 5, .kA = 1, .kB = 3, .matvec = 1}, /* one pass: 6 rows */
        {.kind = TS_CODE_CRME, .n = 8, .kA = 1, .kB = 6, .matvec = 1},
        {.kind = TS_CODE_CRME, .n = 31, .kA = 1, .kB = 29, .matvec = 1},
    };
    int nlens = (int)(sizeof KERNEL_LENS / sizeof KERNEL_LENS[0]);
    ts_rng r;
    ts_rng_seed(&r, 2024);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int li = 0; li < nlens; li++) {
            size_t len = KERNEL_LENS[li];
            if (sanitized() && len > 1000) continue;
            fixture f;
            if (!fixture_make(&f, &cases[ci], len, 100 + ci * 31 + (uint64_t)li)) continue;
            int resp[64];
            random_ids(resp, f.n, &r); /* the first k decode; an extra one is ignored */
            int n_resp = f.k < f.n ? f.k + 1 : f.k;
            kernel_case(&f, resp, n_resp, 0, 0);
            kernel_case(&f, resp, n_resp, 1, 0);
            if (cases[ci].kind == TS_CODE_CRME) kernel_case(&f, resp, n_resp, 2, 0);
            fixture_free(&f);
        }
}

/* A systematic code's targets held by responding systematic workers are
 * their products, bit for bit, whatever the other products hold; the
 * others are decoded (every set of an n = 11, k = 9 Chebyshev code, checked
 * against the reference as in test_decode_kernels). k = 9: above
 * DIRECT_ROWS (decode.c), the smallest k where the copies are taken. */
static void test_systematic_copies(void) {
    ts_code_params p = {.kind = TS_CODE_CHEBYSHEV, .n = 11, .kB = 9, .systematic = 1};
    fixture f;
    enum { LEN = 37 };
    TS_ASSERT(fixture_make(&f, &p, LEN, 77));
    int sets = 0;
    for (int mask = 0; mask < 1 << f.n; mask++) {
        if (__builtin_popcount((unsigned)mask) != f.k) continue;
        int resp[16], nr = 0;
        for (int j = 0; j < f.n; j++)
            if (mask >> j & 1) resp[nr++] = j;
        const float *pp[16];
        float out[16][LEN], *tp[16];
        for (int r = 0; r < nr; r++)
            pp[r] = f.Pf + (size_t)resp[r] * f.len;
        for (int t = 0; t < f.nt; t++)
            tp[t] = out[t];
        ts_err e = {0};
        TS_CHECK_OK(ts_code_decode(f.c, resp, nr, pp, f.len, tp, NULL, &e), &e);
        for (int r = 0; r < nr; r++)
            if (resp[r] < f.k)
                TS_CHECK_MSG(!memcmp(out[resp[r]], pp[r], f.len * sizeof(float)),
                             "set 0x%x: target %d is not worker %d's product", mask, resp[r],
                             resp[r]);
        kernel_case(&f, resp, nr, 0, 0);
        /* They do not even read the other products: NaN parity products
         * leave them exact (a full decode would mix the NaN in). */
        static float nan_row[LEN];
        for (size_t x = 0; x < f.len; x++)
            nan_row[x] = NAN;
        for (int r = 0; r < nr; r++)
            if (resp[r] >= f.k) pp[r] = nan_row;
        TS_CHECK_OK(ts_code_decode(f.c, resp, nr, pp, f.len, tp, NULL, &e), &e);
        for (int r = 0; r < nr; r++)
            if (resp[r] < f.k)
                TS_CHECK_MSG(!memcmp(out[resp[r]], pp[r], f.len * sizeof(float)),
                             "set 0x%x with NaN parity products: target %d changed", mask, resp[r]);
        sets++;
    }
    TS_CHECK(sets == 55);
    fixture_free(&f);
}

/* Float targets of more than 32 MiB per call (12 MiB for the FFT decode)
 * are written with non-temporal stores where a row is 32-byte aligned: each
 * kernel (inverse rows, LU, CRME, FFT) with aligned rows, and with rows one
 * float off (ordinary stores). */
static void test_decode_streaming(void) {
    if (sanitized()) return; /* 100+ MB fixtures; the release build runs it */
    const struct {
        ts_code_params p;
        size_t len; /* targets * len * 4 over the threshold; len % 8 == 0, len % 16 != 0 */
        int mib;    /* the kernel's streaming threshold */
    } cases[] = {
        {{.kind = TS_CODE_VANDERMONDE, .n = 6, .kB = 4}, 2097160, 32},
        {{.kind = TS_CODE_VANDERMONDE, .n = 20, .kB = 18}, 466040, 32}, /* LU */
        {{.kind = TS_CODE_CRME, .n = 4, .kA = 2, .kB = 2}, 524296, 32},
        {{.kind = TS_CODE_CRME, .n = 20, .kA = 3, .kB = 6}, 46600, 12}, /* FFT decode */
    };
    ts_rng r;
    ts_rng_seed(&r, 5);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        fixture f;
        if (!fixture_make(&f, &cases[ci].p, cases[ci].len, 900 + ci)) continue;
        TS_CHECK((size_t)f.nt * f.len * sizeof(float) > ((size_t)cases[ci].mib << 20));
        int resp[64];
        random_ids(resp, f.n, &r);
        kernel_case(&f, resp, f.k, 0, 0);
        kernel_case(&f, resp, f.k, 0, 1);
        fixture_free(&f);
    }
}

/* Codes without a square real product system (complex Vandermonde, MatDot,
 * Generalized PolyDot: fewer targets than unknowns) are checked against the
 * exact targets, over the same lengths. */
static void test_decode_kernels_other(void) {
    const ts_code_params cases[] = {
        {.kind = TS_CODE_COMPLEX, .n = 8, .kA = 2, .kB = 3},
        {.kind = TS_CODE_COMPLEX, .n = 9, .kA = 1, .kB = 7},
        {.kind = TS_CODE_MATDOT, .n = 6, .m = 3},
        {.kind = TS_CODE_GPOLYDOT, .n = 10, .kA = 2, .m = 2, .kB = 2},
    };
    int nlens = (int)(sizeof KERNEL_LENS / sizeof KERNEL_LENS[0]);
    ts_rng r;
    ts_rng_seed(&r, 77);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int li = 0; li < nlens; li++) {
            if (sanitized() && KERNEL_LENS[li] > 1000) continue;
            fixture f;
            if (!fixture_make(&f, &cases[ci], KERNEL_LENS[li], 500 + ci * 37 + (uint64_t)li))
                continue;
            int resp[64];
            random_ids(resp, f.n, &r);
            check_set(&f, resp, f.k, 1, NULL);
            fixture_free(&f);
        }
}

/* The FFT decode (src/code/fftdec.c) of the codes at the n-th roots of
 * unity: where the cost model picks it, every decode, float and double,
 * matches the long-double reference as in test_decode_kernels, and the
 * same code with ts_code_set_fft_decode(c, 0) (the k x k solves) agrees
 * with it. Every responder set of an n = 18, k = 16 CRME code; radices 4,
 * 2, 3, 5 and a generic 7 (n = 56); 1, 2 and 4 missing workers; CRME
 * mat-mat, mat-vec and the complex Vandermonde code; lengths across slice
 * and chunk edges. */
static void fft_vs_solve(fixture *f, const int *resp) {
    int nt = f->nt;
    size_t len = f->len;
    double *a = malloc(nt * len * sizeof *a), *b = malloc(nt * len * sizeof *b);
    const double *pp[2048];
    double *ta[1024], *tb[1024];
    for (int r = 0; r < f->k; r++)
        for (int q = 0; q < f->per; q++)
            pp[r * f->per + q] = f->P + ((size_t)resp[r] * f->per + q) * len;
    for (int t = 0; t < nt; t++)
        ta[t] = a + t * len, tb[t] = b + t * len;
    ts_err e = {0};
    double cond = 0;
    ts_code_set_fft_decode(f->c, 1);
    TS_CHECK_OK(ts_code_decode_f64(f->c, resp, f->k, pp, len, ta, &cond, &e), &e);
    ts_code_set_fft_decode(f->c, 0);
    TS_CHECK_OK(ts_code_decode_f64(f->c, resp, f->k, pp, len, tb, NULL, &e), &e);
    ts_code_set_fft_decode(f->c, 1);
    double num = 0, den = 0;
    for (size_t x = 0; x < nt * len; x++)
        num = fmax(num, fabs(a[x] - b[x])), den = fmax(den, fabs(b[x]));
    double tol = 64 * fmax(cond, 1) * f->k * f->per * 1.1e-16;
    TS_CHECK_MSG(num <= tol * den, "%s n=%d k=%d len=%zu: FFT and solve differ by %.3g (tol %.3g)",
                 ts_code_kind_name(ts_code_params_of(f->c)->kind), f->n, f->k, len, num / den, tol);
    free(a), free(b);
}

static void test_fft_decode(void) {
    const ts_code_params cases[] = {
        {.kind = TS_CODE_CRME, .n = 18, .kA = 1, .kB = 16}, /* 2 x 3 x 3 */
        {.kind = TS_CODE_CRME, .n = 20, .kA = 3, .kB = 6},  /* 4 x 5 */
        {.kind = TS_CODE_CRME, .n = 24, .kA = 2, .kB = 11}, /* 4 x 2 x 3 */
        {.kind = TS_CODE_CRME, .n = 32, .kA = 4, .kB = 7},  /* 4 x 4 x 2, 4 missing */
        {.kind = TS_CODE_CRME, .n = 30, .kA = 1, .kB = 29}, /* 1 missing */
        {.kind = TS_CODE_CRME, .n = 32, .kA = 1, .kB = 30, .matvec = 1},
        {.kind = TS_CODE_CRME, .n = 56, .kA = 1, .kB = 54, .matvec = 1}, /* radix 7 */
        {.kind = TS_CODE_COMPLEX, .n = 32, .kA = 4, .kB = 7},
        {.kind = TS_CODE_COMPLEX, .n = 30, .kA = 1, .kB = 28},
    };
    const size_t lens[] = {1, 15, 16, 17, 33, 4097, 9001};
    ts_rng r;
    ts_rng_seed(&r, 4242);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            if (sanitized() && lens[li] > 1000) continue;
            fixture f;
            if (!fixture_make(&f, &cases[ci], lens[li], 900 + ci * 13 + li)) continue;
            TS_CHECK_MSG(ts_code_fft_decode_chosen(f.c), "n=%d k=%d: the FFT decode is not chosen",
                         f.n, f.k);
            int resp[64];
            random_ids(resp, f.n, &r);
            kernel_case(&f, resp, f.k, 0, 0);
            kernel_case(&f, resp, f.k, 1, 3);
            fft_vs_solve(&f, resp);
            fixture_free(&f);
        }
    /* every responder set of C(18, 16) = 153 */
    ts_code_params p = {.kind = TS_CODE_CRME, .n = 18, .kA = 2, .kB = 8};
    fixture f;
    if (!fixture_make(&f, &p, 33, 4243)) return;
    int sets = 0;
    for (int m1 = 0; m1 < 18; m1++)
        for (int m2 = m1 + 1; m2 < 18; m2++) {
            int resp[16], nr = 0;
            for (int j = 0; j < 18; j++)
                if (j != m1 && j != m2) resp[nr++] = j;
            shuffle(resp, nr, &r);
            kernel_case(&f, resp, nr, 1, 0);
            fft_vs_solve(&f, resp);
            sets++;
        }
    fixture_free(&f);
    TS_CHECK(sets == 153);
    /* clustered missing workers, the FFT's hardest case (largest ||H||):
     * within the solve's tolerance, and its error next to the solve's */
    const struct {
        ts_code_params p;
        int miss[4];
    } clusters[] = {
        {{.kind = TS_CODE_CRME, .n = 32, .kA = 4, .kB = 7}, {0, 1, 2, 3}},
        {{.kind = TS_CODE_CRME, .n = 32, .kA = 4, .kB = 7}, {14, 15, 16, 17}},
        {{.kind = TS_CODE_CRME, .n = 32, .kA = 4, .kB = 7}, {30, 31, 0, 1}},
        {{.kind = TS_CODE_CRME, .n = 30, .kA = 2, .kB = 14}, {5, 6, -1, -1}},
        {{.kind = TS_CODE_CRME, .n = 20, .kA = 3, .kB = 6}, {19, 0, -1, -1}},
        {{.kind = TS_CODE_CRME, .n = 64, .kA = 4, .kB = 15}, {30, 31, 32, 33}},
    };
    double worst_fft = 0, worst_solve = 0;
    for (size_t ci = 0; ci < sizeof clusters / sizeof clusters[0]; ci++) {
        if (!fixture_make(&f, &clusters[ci].p, 40, 4300 + ci)) continue;
        int resp[64], nr = 0;
        for (int j = 0; j < f.n; j++) {
            int gone = 0;
            for (int m = 0; m < 4; m++)
                gone |= clusters[ci].miss[m] == j;
            if (!gone) resp[nr++] = j;
        }
        TS_CHECK(nr == f.k && ts_code_fft_decode_chosen(f.c));
        double dfft = kernel_case(&f, resp, nr, 1, 0);
        ts_code_set_fft_decode(f.c, 0);
        double dsolve = kernel_case(&f, resp, nr, 1, 0);
        ts_code_set_fft_decode(f.c, 1);
        printf("  clustered: n=%d k=%d missing %d..: float64 rel. error FFT %.2e, solve %.2e\n",
               f.n, f.k, clusters[ci].miss[0], dfft, dsolve);
        worst_fft = fmax(worst_fft, dfft), worst_solve = fmax(worst_solve, dsolve);
        fixture_free(&f);
    }
    TS_CHECK_MSG(worst_fft <= 1e-10, "FFT decode rel. error %.3g at n <= 64", worst_fft);
    /* small n keeps the solve */
    ts_code_params small = {.kind = TS_CODE_CRME, .n = 8, .kA = 2, .kB = 3};
    ts_err e = {0};
    ts_code *c = ts_code_new(&small, &e);
    TS_CHECK(c && !ts_code_fft_decode_chosen(c));
    ts_code_free(c);
}

/* Encoding: float encode matches the generators; systematic workers and
 * the uncoded split produce exact copies. */
static void test_encode(void) {
    ts_code_params p = {.kind = TS_CODE_VANDERMONDE, .n = 6, .kB = 4, .systematic = 1};
    ts_err e = {0};
    ts_code *c = ts_code_new(&p, &e);
    TS_CHECK(c != NULL);
    if (!c) return;
    size_t len = 5000; /* more than one encoding chunk, not a multiple of it */
    float *blk = malloc(4 * len * sizeof(float)), *out = malloc(len * sizeof(float));
    ts_rng r;
    ts_rng_seed(&r, 1);
    ts_rng_fill_normal(&r, blk, 4 * len, 1);
    const float *bp[4] = {blk, blk + len, blk + 2 * len, blk + 3 * len};
    for (int j = 0; j < 6; j++) {
        TS_CHECK_OK(ts_code_encode_b(c, j, bp, len, &out, &e), &e);
        const double *g = ts_code_b_gen(c) + j * 4;
        double err = 0;
        for (size_t x = 0; x < len; x++) {
            double s = 0;
            for (int l = 0; l < 4; l++)
                s += g[l] * bp[l][x];
            err = fmax(err, fabs(s - out[x]));
        }
        if (j < 4)
            TS_CHECK(memcmp(out, bp[j], len * sizeof(float)) == 0);
        else
            TS_CHECK_MSG(err < 1e-4, "worker %d encode error %.3g", j, err);
    }
    TS_CHECK(ts_code_encode_b(c, 6, bp, len, &out, &e) == TS_ERR_INVALID);
    TS_CHECK(ts_code_encode_b(c, -1, bp, len, &out, &e) == TS_ERR_INVALID);
    TS_CHECK(ts_code_encode_b(c, 0, bp, 0, &out, &e) == TS_ERR_INVALID);
    TS_CHECK(strstr(e.msg, "zero-length") != NULL);
    const float *bad[4] = {blk, NULL, blk, blk};
    TS_CHECK(ts_code_encode_b(c, 0, bad, len, &out, &e) == TS_ERR_INVALID);
    free(blk), free(out);
    ts_code_free(c);
}

static void expect_refused(ts_code_params p, const char *needle) {
    ts_err e = {0};
    ts_code *c = ts_code_new(&p, &e);
    TS_CHECK_MSG(c == NULL, "%s n=%d kA=%d kB=%d m=%d accepted", ts_code_kind_name(p.kind), p.n,
                 p.kA, p.kB, p.m);
    ts_code_free(c);
    TS_CHECK(e.status == TS_ERR_INVALID);
    TS_CHECK_MSG(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
}

static void test_bad_params(void) {
    expect_refused((ts_code_params){.kind = TS_CODE_VANDERMONDE, .n = 5, .kB = 6}, "k <= n");
    expect_refused((ts_code_params){.kind = TS_CODE_CHEBYSHEV, .n = 5, .kB = 0}, "k <= n");
    expect_refused((ts_code_params){.kind = TS_CODE_RANDOM, .n = 5, .kA = 2, .kB = 2}, "1-D");
    expect_refused((ts_code_params){.kind = TS_CODE_CRME, .n = 10, .kA = 3, .kB = 4}, "kA*kB <= n");
    expect_refused((ts_code_params){.kind = TS_CODE_CRME, .n = 10, .kA = 0, .kB = 4}, "kA, kB");
    expect_refused((ts_code_params){.kind = TS_CODE_POLYNOMIAL, .n = 10, .kA = -1, .kB = 4},
                   "negative");
    expect_refused((ts_code_params){.kind = TS_CODE_CRME, .n = 0, .kA = 1, .kB = 1}, "workers");
    expect_refused((ts_code_params){.kind = TS_CODE_CRME, .n = 100000, .kA = 1, .kB = 1},
                   "workers");
    expect_refused((ts_code_params){.kind = TS_CODE_REPLICATION, .n = 4, .replicas = 5},
                   "replicas");
    expect_refused((ts_code_params){.kind = TS_CODE_REPLICATION, .n = 4, .replicas = 0},
                   "replicas");
    expect_refused((ts_code_params){.kind = TS_CODE_UNCODED, .n = 4, .kB = 3}, "exactly n");
    expect_refused((ts_code_params){.kind = TS_CODE_MATDOT, .n = 8, .m = 5}, "needs 9");
    expect_refused((ts_code_params){.kind = TS_CODE_MATDOT, .n = 8, .m = 2, .kA = 2}, "inner");
    expect_refused((ts_code_params){.kind = TS_CODE_GPOLYDOT, .n = 8, .m = 2, .kA = 2, .kB = 2},
                   "needs 9");
    expect_refused((ts_code_params){.kind = TS_CODE_POLYDOT, .n = 8, .m = 0, .kA = 1, .kB = 1},
                   "m >= 1");
    expect_refused(
        (ts_code_params){.kind = TS_CODE_CRME, .n = 8, .kA = 1, .kB = 2, .systematic = 1},
        "systematic");
    expect_refused(
        (ts_code_params){.kind = TS_CODE_POLYNOMIAL, .n = 8, .kA = 1, .kB = 2, .matvec = 1},
        "matvec");
    expect_refused((ts_code_params){.kind = (ts_code_kind)99, .n = 8}, "unknown");
    expect_refused(
        (ts_code_params){.kind = TS_CODE_GPOLYDOT, .n = 20, .kA = 2, .m = 2, .kB = 1, .d = 2},
        "unused");
    expect_refused((ts_code_params){.kind = TS_CODE_CIRCULANT, .n = 8, .kB = 5, .q = 9}, "prime");
    expect_refused((ts_code_params){.kind = TS_CODE_CIRCULANT, .n = 8, .kB = 5, .q = 7}, "prime");
    expect_refused((ts_code_params){.kind = TS_CODE_CIRCULANT, .n = 8, .kA = 2, .kB = 2},
                   "matrix-vector");
    expect_refused((ts_code_params){.kind = TS_CODE_CRME, .n = 8, .kA = 2, .kB = 2, .q = 11},
                   "circulant");
    ts_err e = {0};
    TS_CHECK(ts_code_new(NULL, &e) == NULL);
    ts_code_kind k;
    TS_CHECK(ts_code_kind_parse("crme", &k, &e) == TS_OK && k == TS_CODE_CRME);
    TS_CHECK(ts_code_kind_parse("gpolydot", &k, &e) == TS_OK && k == TS_CODE_GPOLYDOT);
    TS_CHECK(ts_code_kind_parse("reed-solomon", &k, &e) == TS_ERR_INVALID);
    TS_CHECK(strstr(e.msg, "reed-solomon") != NULL);
    TS_CHECK(ts_code_kind_parse(NULL, &k, &e) == TS_ERR_INVALID);
    for (int i = 0; i <= TS_CODE_GPOLYDOT; i++) {
        TS_CHECK(ts_code_kind_parse(ts_code_kind_name((ts_code_kind)i), &k, &e) == TS_OK);
        TS_CHECK((int)k == i);
    }
    ts_code_free(NULL);
}

static void test_bad_responders(void) {
    ts_code_params p = {.kind = TS_CODE_CRME, .n = 8, .kA = 2, .kB = 3};
    fixture f;
    if (!fixture_make(&f, &p, 4, 1)) return;
    const float *pf[32];
    float *tf[24], buf[96];
    for (int q = 0; q < 32; q++)
        pf[q] = f.Pf + q * 4;
    for (int t = 0; t < 24; t++)
        tf[t] = buf + 4 * t;
    ts_err e = {0};
    int few[5] = {0, 1, 2, 3, 4};
    TS_CHECK(ts_code_decode(f.c, few, 5, pf, 4, tf, NULL, &e) == TS_ERR_INVALID);
    TS_CHECK(strstr(e.msg, "too few") != NULL);
    int dup[6] = {0, 1, 2, 3, 4, 2};
    TS_CHECK(ts_code_decode(f.c, dup, 6, pf, 4, tf, NULL, &e) == TS_ERR_INVALID);
    TS_CHECK(strstr(e.msg, "twice") != NULL);
    int unk[6] = {0, 1, 2, 3, 4, 8};
    TS_CHECK(ts_code_decode(f.c, unk, 6, pf, 4, tf, NULL, &e) == TS_ERR_INVALID);
    TS_CHECK(strstr(e.msg, "not a worker") != NULL);
    int neg[6] = {0, 1, 2, -3, 4, 5};
    TS_CHECK(ts_code_decode(f.c, neg, 6, pf, 4, tf, NULL, &e) == TS_ERR_INVALID);
    int ok[6] = {0, 1, 2, 3, 4, 5};
    TS_CHECK(ts_code_decode(f.c, ok, 6, pf, 0, tf, NULL, &e) == TS_ERR_INVALID);
    TS_CHECK(strstr(e.msg, "zero-length") != NULL);
    TS_CHECK(ts_code_decode(f.c, NULL, 6, pf, 4, tf, NULL, &e) == TS_ERR_INVALID);
    TS_CHECK(ts_code_decode(f.c, ok, 0, pf, 4, tf, NULL, &e) == TS_ERR_INVALID);
    TS_CHECK(ts_code_decode(f.c, ok, 6, NULL, 4, tf, NULL, &e) == TS_ERR_INVALID);
    pf[7] = NULL;
    TS_CHECK(ts_code_decode(f.c, ok, 6, pf, 4, tf, NULL, &e) == TS_ERR_INVALID);
    int many[9] = {0, 1, 2, 3, 4, 5, 6, 7, 0};
    TS_CHECK(ts_code_decode(f.c, many, 9, pf, 4, tf, NULL, &e) == TS_ERR_INVALID);
    fixture_free(&f);
    /* the complex Vandermonde code has no square real system */
    ts_code_params q = {.kind = TS_CODE_COMPLEX, .n = 8, .kA = 2, .kB = 3};
    if (!fixture_make(&f, &q, 4, 1)) return;
    for (int r = 0; r < 24; r++)
        pf[r] = f.Pf + r * 4;
    TS_CHECK(ts_code_decode_dense(f.c, ok, 6, pf, 4, tf, NULL, &e) == TS_ERR_UNSUPPORTED);
    fixture_free(&f);
}

/* The must-reproduce table (digest 3.5): worst case over all responder
 * sets, n = 31, within 5%. */
static void expect_worst(ts_code_params p, double want) {
    ts_err e = {0};
    ts_code *c = ts_code_new(&p, &e);
    TS_CHECK_MSG(c != NULL, "%s", e.msg);
    if (!c) return;
    ts_code_cond_report rep;
    TS_CHECK_OK(ts_code_worst_cond(c, NULL, &rep, NULL, &e), &e);
    TS_CHECK(rep.exhaustive);
    TS_CHECK_MSG(fabs(rep.worst / want - 1) <= 0.05, "%s kA=%d kB=%d: worst %.4g, want %.4g",
                 ts_code_kind_name(p.kind), p.kA, p.kB, rep.worst, want);
    printf("  n=%d %-12s kA=%d kB=%-2d worst cond %.4g (paper %.3g) over %ld sets\n", p.n,
           ts_code_kind_name(p.kind), ts_code_params_of(c)->kA, p.kB, rep.worst, want, rep.sets);
    ts_code_free(c);
}

static void test_cond_table(void) {
    expect_worst((ts_code_params){.kind = TS_CODE_VANDERMONDE, .n = 31, .kB = 29}, 2.96e13);
    expect_worst((ts_code_params){.kind = TS_CODE_CRME, .n = 31, .kA = 1, .kB = 29, .matvec = 1},
                 55.0);
    expect_worst((ts_code_params){.kind = TS_CODE_VANDERMONDE, .n = 31, .kB = 28}, 2.29e13);
    expect_worst((ts_code_params){.kind = TS_CODE_CRME, .n = 31, .kA = 1, .kB = 28, .matvec = 1},
                 404);
    expect_worst((ts_code_params){.kind = TS_CODE_POLYNOMIAL, .n = 31, .kA = 4, .kB = 7}, 2.29e13);
    expect_worst((ts_code_params){.kind = TS_CODE_CRME, .n = 31, .kA = 4, .kB = 7}, 404);
    expect_worst((ts_code_params){.kind = TS_CODE_COMPLEX, .n = 31, .kA = 4, .kB = 7}, 404);
    expect_worst((ts_code_params){.kind = TS_CODE_CIRCULANT, .n = 31, .kB = 29}, 54.96);
    /* q > n: the nodes are not equispaced and conditioning suffers (digest 3.5) */
    expect_worst((ts_code_params){.kind = TS_CODE_CIRCULANT, .n = 20, .kB = 17, .q = 23}, 5.94e3);
    /* sampled search keeps the worst set it saw, and it is a real set */
    ts_err e = {0};
    ts_code_params p = {.kind = TS_CODE_CRME, .n = 20, .kA = 3, .kB = 3};
    ts_code *c = ts_code_new(&p, &e);
    ts_code_search s = {.max_exhaustive = 1000, .samples = 200, .seed = 3};
    ts_code_cond_report rep;
    int worst[9];
    TS_CHECK_OK(ts_code_worst_cond(c, &s, &rep, worst, &e), &e);
    TS_CHECK(!rep.exhaustive && rep.sets == 200 && rep.worst >= rep.mean);
    TS_CHECK_NEAR(ts_code_cond_of_set(c, worst), rep.worst, 1e-9 * rep.worst);
    ts_code_free(c);
}

/* The noise study of the CRME paper (digest 3.4), 100 dB, within 2x. */
static void test_noise_mse(void) {
    struct {
        ts_code_params p;
        int ba;
        double want;
    } rows[] = {
        {{.kind = TS_CODE_CRME, .n = 31, .kA = 4, .kB = 7}, 12, 2.45e-10},
        {{.kind = TS_CODE_COMPLEX, .n = 31, .kA = 4, .kB = 7}, 12, 2.45e-10},
        {{.kind = TS_CODE_CRME, .n = 31, .kA = 1, .kB = 29, .matvec = 1}, 1, 4.98e-13},
        {{.kind = TS_CODE_COMPLEX, .n = 31, .kA = 1, .kB = 29}, 1, 5.36e-13},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ts_err e = {0};
        ts_code *c = ts_code_new(&rows[i].p, &e);
        if (!c) continue;
        ts_code_cond_report rep;
        int set[32];
        TS_CHECK_OK(ts_code_worst_cond(c, NULL, &rep, set, &e), &e);
        ts_code_noise_opts o = {.snr_db = 100, .t = 60, .ba = rows[i].ba, .bb = 8, .seed = 4};
        double mse = 0;
        TS_CHECK_OK(ts_code_noise_mse(c, set, &o, &mse, &e), &e);
        TS_CHECK_MSG(mse <= 2 * rows[i].want && mse >= rows[i].want / 2, "%s: nmse %.3g want %.3g",
                     ts_code_kind_name(rows[i].p.kind), mse, rows[i].want);
        printf("  100 dB %-8s kA=%d kB=%d worst-set nmse %.3g (paper %.3g)\n",
               ts_code_kind_name(rows[i].p.kind), rows[i].p.kA, rows[i].p.kB, mse, rows[i].want);
        ts_code_free(c);
    }
}

/* ---- soft errors -------------------------------------------------------- */

/* Adds errors to the products of the workers in bad[]: random magnitude
 * (1e-3 .. 1e2 times the row's rms) on random entries of random rows, or,
 * adversarially, the products of another codeword (M_p Delta, all rows). */
static void inject(fixture *f, float *Pf, const int *bad, int nbad, int adversarial, ts_rng *r) {
    size_t L = f->len;
    const ts_code_params *q = ts_code_params_of(f->c);
    (void)q;
    double *delta = NULL;
    if (adversarial) { /* Delta: a random change of every block, seen through each product */
        fixture g;
        ts_code_params pp = *ts_code_params_of(f->c);
        if (!fixture_make(&g, &pp, L, ts_rng_u64(r))) return;
        delta = malloc((size_t)f->n * f->per * L * sizeof *delta);
        memcpy(delta, g.P, (size_t)f->n * f->per * L * sizeof *delta);
        fixture_free(&g);
    }
    for (int b = 0; b < nbad; b++) {
        int j = bad[b];
        for (int q2 = 0; q2 < f->per; q2++) {
            float *row = Pf + ((size_t)j * f->per + q2) * L;
            if (adversarial) {
                for (size_t x = 0; x < L; x++)
                    row[x] = (float)delta[((size_t)j * f->per + q2) * L + x];
                continue;
            }
            if (q2 > 0 && ts_rng_below(r, 2)) continue; /* some rows stay right */
            double rms = 0;
            for (size_t x = 0; x < L; x++)
                rms += row[x] * row[x];
            rms = sqrt(rms / L) + 1e-30;
            int hits = 1 + (int)ts_rng_below(r, L);
            for (int h = 0; h < hits; h++) {
                double mag = rms * pow(10.0, -3 + 5 * ts_rng_uniform(r));
                row[ts_rng_below(r, L)] += (float)(ts_rng_below(r, 2) ? mag : -mag);
            }
        }
    }
    free(delta);
}

static int same_set(const int *a, int na, const int *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++) {
        int in = 0;
        for (int j = 0; j < nb; j++)
            in |= a[i] == b[j];
        if (!in) return 0;
    }
    return 1;
}

static void locate_case(const ts_code_params *p, int max_t, int adversarial, int rounds) {
    fixture f;
    if (!fixture_make(&f, p, 24, 100 + (uint64_t)p->kind)) return;
    ts_rng r;
    ts_rng_seed(&r, 7 + (uint64_t)p->n);
    size_t total = (size_t)f.n * f.per * f.len;
    float *Pf = malloc(total * sizeof(float));
    const float *pp[2048];
    float *tf[1024], *tg = malloc((size_t)f.nt * f.len * sizeof(float));
    for (int t = 0; t < f.nt; t++)
        tf[t] = tg + t * f.len;
    int by_method[3] = {0, 0, 0};
    for (int t = adversarial ? max_t : 0; t <= max_t; t++)
        for (int round = 0; round < rounds; round++) {
            memcpy(Pf, f.Pf, total * sizeof(float));
            int perm[64], bad[64];
            for (int j = 0; j < f.n; j++)
                perm[j] = j;
            shuffle(perm, f.n, &r);
            memcpy(bad, perm, t * sizeof(int));
            inject(&f, Pf, bad, t, adversarial, &r);
            shuffle(perm, f.n, &r); /* responders in any order */
            for (int i = 0; i < f.n; i++)
                for (int q = 0; q < f.per; q++)
                    pp[i * f.per + q] = Pf + ((size_t)perm[i] * f.per + q) * f.len;
            ts_err e = {0};
            ts_code_locate_report rep;
            ts_code_locate_opts o = {.seed = (uint64_t)round};
            double cond = 0;
            ts_status st =
                ts_code_decode_robust(f.c, perm, f.n, pp, f.len, tf, &o, &rep, &cond, &e);
            TS_CHECK_MSG(st == TS_OK, "%s t=%d: %s", ts_code_kind_name(p->kind), t, e.msg);
            if (st != TS_OK) continue;
            TS_CHECK_MSG(same_set(rep.bad, rep.n_bad, bad, t),
                         "%s n=%d t=%d%s: found %d wrong (method %d, rank %d), injected %d",
                         ts_code_kind_name(p->kind), f.n, t, adversarial ? " adversarial" : "",
                         rep.n_bad, rep.method, rep.syndrome_rank, t);
            if (adversarial) TS_CHECK(rep.guaranteed);
            for (int i = 0; i < f.n; i++) { /* scores: > 1 exactly for the wrong workers */
                int wrong = 0;
                for (int b = 0; b < t; b++)
                    wrong |= perm[i] == bad[b];
                TS_CHECK_MSG((rep.score[i] > 1) == wrong, "worker %d score %.3g (wrong %d)",
                             perm[i], rep.score[i], wrong);
            }
            if (rep.method >= 0 && rep.method < 3) by_method[rep.method]++;
            double err = rel_err_f(&f, tf);
            TS_CHECK_MSG(err <= 2e-6 * fmax(cond, 1) * f.k, "%s t=%d: decode error %.3g",
                         ts_code_kind_name(p->kind), t, err);
        }
    printf("  %-10s n=%-2d Q=%-2d t<=%d%s: located by syndrome %d, by consistency search %d, "
           "clean %d\n",
           ts_code_kind_name(p->kind), f.n, f.k, max_t, adversarial ? " (adversarial)" : "",
           by_method[1], by_method[2], by_method[0]);
    free(Pf);
    free(tg);
    fixture_free(&f);
}

static void test_locate_errors(void) {
    int rounds = sanitized() ? 1 : 3;
    /* up to P-Q-1 random errors */
    locate_case(&(ts_code_params){.kind = TS_CODE_CRME, .n = 12, .kA = 2, .kB = 2}, 7, 0, rounds);
    locate_case(&(ts_code_params){.kind = TS_CODE_CRME, .n = 10, .kA = 1, .kB = 6, .matvec = 1}, 3,
                0, rounds);
    locate_case(&(ts_code_params){.kind = TS_CODE_CHEBYSHEV, .n = 12, .kB = 8}, 3, 0, rounds);
    locate_case(&(ts_code_params){.kind = TS_CODE_GPOLYDOT, .n = 12, .kA = 2, .kB = 1, .m = 2}, 6,
                0, rounds);
    locate_case(&(ts_code_params){.kind = TS_CODE_POLYNOMIAL, .n = 10, .kA = 2, .kB = 3}, 3, 0,
                rounds);
    locate_case(&(ts_code_params){.kind = TS_CODE_CIRCULANT, .n = 7, .kB = 4}, 2, 0, rounds);
    /* the adversarial limit floor((P-Q)/2): wrong workers return another codeword */
    locate_case(&(ts_code_params){.kind = TS_CODE_CRME, .n = 12, .kA = 2, .kB = 2}, 4, 1, rounds);
    locate_case(&(ts_code_params){.kind = TS_CODE_CHEBYSHEV, .n = 12, .kB = 8}, 2, 1, rounds);
    locate_case(&(ts_code_params){.kind = TS_CODE_RANDOM, .n = 11, .kB = 6, .seed = 5}, 2, 1,
                rounds);
}

static void test_locate_refusals(void) {
    ts_code_params p = {.kind = TS_CODE_CRME, .n = 8, .kA = 2, .kB = 2};
    fixture f;
    if (!fixture_make(&f, &p, 8, 1)) return;
    const float *pp[64];
    for (int i = 0; i < 32; i++)
        pp[i] = f.Pf + i * f.len;
    int resp[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    ts_code_locate_report rep;
    ts_err e = {0};
    TS_CHECK(ts_code_locate(f.c, resp, 4, pp, f.len, NULL, &rep, &e) == TS_ERR_INVALID);
    TS_CHECK(strstr(e.msg, "too few") != NULL); /* P = Q: no redundancy */
    TS_CHECK(ts_code_locate(f.c, resp, 8, pp, 0, NULL, &rep, &e) == TS_ERR_INVALID);
    int dup[6] = {0, 1, 2, 3, 4, 4};
    TS_CHECK(ts_code_locate(f.c, dup, 6, pp, f.len, NULL, &rep, &e) == TS_ERR_INVALID);
    /* clean data: nothing wrong, no method needed */
    TS_CHECK_OK(ts_code_locate(f.c, resp, 8, pp, f.len, NULL, &rep, &e), &e);
    TS_CHECK(rep.n_bad == 0 && rep.method == 0 && rep.guaranteed);
    /* everything scrambled: no consistent set */
    float *junk = malloc(32 * f.len * sizeof(float));
    ts_rng r;
    ts_rng_seed(&r, 3);
    ts_rng_fill_normal(&r, junk, 32 * f.len, 1);
    for (int i = 0; i < 32; i++)
        pp[i] = junk + i * f.len;
    ts_code_locate_opts o = {.max_tries = 50};
    TS_CHECK(ts_code_locate(f.c, resp, 8, pp, f.len, &o, &rep, &e) == TS_ERR_NUMERIC);
    TS_CHECK(strstr(e.msg, "agree") != NULL);
    free(junk);
    fixture_free(&f);
}

/* Stored shares: a corrupted share is found by the periodic check and
 * rebuilt from the healthy ones. */
static void test_stored_shares(void) {
    ts_code_params p = {.kind = TS_CODE_CRME, .n = 9, .kA = 2, .kB = 3};
    ts_err e = {0};
    ts_code *c = ts_code_new(&p, &e);
    if (!c) return;
    for (int operand = 0; operand < 2; operand++) {
        int nblk = operand ? 6 : 4, q = 2;
        size_t len = 50;
        float *blk = malloc(nblk * len * sizeof(float)), *sh = malloc(9 * q * len * sizeof(float));
        float *orig = malloc(9 * q * len * sizeof(float));
        ts_rng r;
        ts_rng_seed(&r, 4 + operand);
        ts_rng_fill_normal(&r, blk, nblk * len, 1);
        const float *bp[8];
        for (int i = 0; i < nblk; i++)
            bp[i] = blk + i * len;
        for (int j = 0; j < 9; j++) {
            float *o[2] = {sh + (j * q) * len, sh + (j * q + 1) * len};
            TS_CHECK_OK(operand ? ts_code_encode_b(c, j, bp, len, o, &e)
                                : ts_code_encode_a(c, j, bp, len, o, &e),
                        &e);
        }
        memcpy(orig, sh, 9 * q * len * sizeof(float));
        const float *sp[18];
        for (int i = 0; i < 18; i++)
            sp[i] = sh + i * len;
        ts_code_locate_report rep;
        TS_CHECK_OK(ts_code_check_shares(c, operand, sp, len, NULL, &rep, &e), &e);
        TS_CHECK(rep.n_bad == 0);
        int victim = 5;
        sh[(victim * q + 1) * len + 7] += 0.5f; /* a bit flip's worth */
        sh[(victim * q) * len + 30] *= -1.0f;
        TS_CHECK_OK(ts_code_check_shares(c, operand, sp, len, NULL, &rep, &e), &e);
        TS_CHECK_MSG(rep.n_bad == 1 && rep.bad[0] == victim, "operand %d: %d bad, first %d",
                     operand, rep.n_bad, rep.n_bad ? rep.bad[0] : -1);
        int healthy[8], nh = 0;
        for (int j = 0; j < 9; j++)
            if (j != victim) healthy[nh++] = j;
        float *out[2] = {sh + (victim * q) * len, sh + (victim * q + 1) * len};
        TS_CHECK_OK(ts_code_rebuild_share(c, operand, victim, healthy, nh, sp, len, out, &e), &e);
        double d = 0;
        for (size_t x = 0; x < 18 * len; x++)
            d = fmax(d, fabs(sh[x] - orig[x]));
        TS_CHECK_MSG(d < 1e-5, "rebuilt share differs by %.3g", d);
        TS_CHECK_OK(ts_code_check_shares(c, operand, sp, len, NULL, &rep, &e), &e);
        TS_CHECK(rep.n_bad == 0);
        TS_CHECK(ts_code_rebuild_share(c, operand, victim, healthy, 1, sp, len, out, &e) ==
                 TS_ERR_INVALID);
        healthy[0] = victim;
        TS_CHECK(ts_code_rebuild_share(c, operand, victim, healthy, nh, sp, len, out, &e) ==
                 TS_ERR_INVALID);
        TS_CHECK(ts_code_check_shares(c, 2, sp, len, NULL, &rep, &e) == TS_ERR_INVALID);
        free(blk), free(sh), free(orig);
    }
    ts_code_free(c);
}

/* Generalized PolyDot training: forward W x, backward W^T delta from the
 * same stored shares, and the in-place rank-B update of the shares. */
static void matvec_f(const float *w, const float *x, int rows, int cols, int trans, float *y) {
    int out = trans ? cols : rows;
    for (int o = 0; o < out; o++) {
        double s = 0;
        if (trans)
            for (int r = 0; r < rows; r++)
                s += (double)w[r * cols + o] * x[r];
        else
            for (int c = 0; c < cols; c++)
                s += (double)w[o * cols + c] * x[c];
        y[o] = (float)s;
    }
}

static void pick(int *set, int k, int n, ts_rng *r) {
    int perm[64];
    for (int j = 0; j < n; j++)
        perm[j] = j;
    shuffle(perm, n, r);
    memcpy(set, perm, k * sizeof(int));
}

static void test_gpolydot_training(void) {
    enum { KA = 2, M = 3, R = 4, C = 5, B = 3, N = 12 };
    ts_code_params p = {.kind = TS_CODE_GPOLYDOT, .n = N, .kA = KA, .kB = 1, .m = M};
    ts_err e = {0};
    ts_code *fw = ts_code_new(&p, &e);
    TS_CHECK_MSG(fw != NULL, "%s", e.msg);
    if (!fw) return;
    ts_code *bw = ts_code_gpolydot_backward(fw, &e);
    TS_CHECK_MSG(bw != NULL, "%s", e.msg);
    if (!bw) {
        ts_code_free(fw);
        return;
    }
    TS_CHECK(ts_code_threshold(fw) == KA * M + M - 1);
    TS_CHECK(ts_code_threshold(bw) == M * (2 * KA - 1));
    TS_CHECK(ts_code_num_targets(bw) == M && ts_code_b_blocks(bw) == KA);
    TS_CHECK(memcmp(ts_code_a_gen(fw), ts_code_a_gen(bw), sizeof(double) * N * KA * M) == 0);
    ts_rng r;
    ts_rng_seed(&r, 31);
    float W[KA * M][R * C], x[M][C], d[KA][R], D[KA][R * B], X[M][C * B];
    float sh[N][R * C], ref[N][R * C];
    ts_rng_fill_normal(&r, &W[0][0], KA * M * R * C, 1);
    ts_rng_fill_normal(&r, &x[0][0], M * C, 1);
    ts_rng_fill_normal(&r, &d[0][0], KA * R, 1);
    ts_rng_fill_normal(&r, &D[0][0], KA * R * B, 1);
    ts_rng_fill_normal(&r, &X[0][0], M * C * B, 1);
    const float *wb[KA * M], *xb[M], *db[KA], *Db[KA], *Xb[M];
    for (int i = 0; i < KA * M; i++)
        wb[i] = W[i];
    for (int q = 0; q < M; q++)
        xb[q] = x[q], Xb[q] = X[q];
    for (int i = 0; i < KA; i++)
        db[i] = d[i], Db[i] = D[i];
    for (int j = 0; j < N; j++) {
        float *o = sh[j];
        TS_CHECK_OK(ts_code_encode_a(fw, j, wb, R * C, &o, &e), &e);
    }
    for (int round = 0; round < 2; round++) { /* before and after the update */
        /* forward: (W x)_i = sum_q W_{i,q} x_q */
        int set[N], k = ts_code_threshold(fw);
        pick(set, k, N, &r);
        float prod[N][R], tg[KA][R], xt[C];
        const float *pp[N];
        float *tp[KA] = {tg[0], tg[1]};
        for (int s = 0; s < k; s++) {
            float *o = xt;
            TS_CHECK_OK(ts_code_encode_b(fw, set[s], xb, C, &o, &e), &e);
            matvec_f(sh[set[s]], xt, R, C, 0, prod[s]);
            pp[s] = prod[s];
        }
        double cond = 0, err = 0, mx = 0;
        TS_CHECK_OK(ts_code_decode(fw, set, k, pp, R, tp, &cond, &e), &e);
        for (int i = 0; i < KA; i++)
            for (int o = 0; o < R; o++) {
                double s = 0;
                for (int q = 0; q < M; q++)
                    for (int c = 0; c < C; c++)
                        s += (double)W[i * M + q][o * C + c] * x[q][c];
                err = fmax(err, fabs(s - tg[i][o]));
                mx = fmax(mx, fabs(s));
            }
        TS_CHECK_MSG(err <= 1e-5 * cond * mx, "forward W x error %.3g (cond %.3g)", err / mx, cond);
        /* backward: (W^T d)_q = sum_i W_{i,q}^T d_i, from the same shares */
        k = ts_code_threshold(bw);
        pick(set, k, N, &r);
        float zp[N][C], zt[M][C], dt[R];
        float *zq[M] = {zt[0], zt[1], zt[2]};
        for (int s = 0; s < k; s++) {
            float *o = dt;
            TS_CHECK_OK(ts_code_encode_b(bw, set[s], db, R, &o, &e), &e);
            matvec_f(sh[set[s]], dt, R, C, 1, zp[s]);
            pp[s] = zp[s];
        }
        TS_CHECK_OK(ts_code_decode(bw, set, k, pp, C, zq, &cond, &e), &e);
        err = 0, mx = 0;
        for (int q = 0; q < M; q++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int i = 0; i < KA; i++)
                    for (int o = 0; o < R; o++)
                        s += (double)W[i * M + q][o * C + c] * d[i][o];
                err = fmax(err, fabs(s - zt[q][c]));
                mx = fmax(mx, fabs(s));
            }
        TS_CHECK_MSG(err <= 1e-5 * cond * mx, "backward W^T d error %.3g (cond %.3g)", err / mx,
                     cond);
        if (round == 1) break;
        /* update every share in place; W itself moves to W + eta D X^T */
        float eta = 0.1f;
        for (int j = 0; j < N; j++)
            TS_CHECK_OK(ts_code_gpolydot_update(fw, j, sh[j], R, C, Db, Xb, B, eta, &e), &e);
        for (int i = 0; i < KA; i++)
            for (int q = 0; q < M; q++)
                for (int o = 0; o < R; o++)
                    for (int c = 0; c < C; c++) {
                        double s = 0;
                        for (int b = 0; b < B; b++)
                            s += (double)D[i][o * B + b] * X[q][c * B + b];
                        W[i * M + q][o * C + c] += eta * (float)s;
                    }
        double dmax = 0;
        for (int j = 0; j < N; j++) {
            float *o = ref[j];
            TS_CHECK_OK(ts_code_encode_a(fw, j, wb, R * C, &o, &e), &e);
            for (int t = 0; t < R * C; t++)
                dmax = fmax(dmax, fabs(ref[j][t] - sh[j][t]));
        }
        TS_CHECK_MSG(dmax < 1e-4, "updated shares differ from re-encoded ones by %.3g", dmax);
    }
    TS_CHECK(ts_code_gpolydot_update(bw, 0, sh[0], R, C, Db, Xb, B, 0.1f, &e) == TS_ERR_INVALID);
    TS_CHECK(ts_code_gpolydot_update(fw, N, sh[0], R, C, Db, Xb, B, 0.1f, &e) == TS_ERR_INVALID);
    TS_CHECK(ts_code_gpolydot_backward(bw, &e) == NULL);
    ts_code_params small = {.kind = TS_CODE_GPOLYDOT, .n = 8, .kA = 2, .kB = 1, .m = 3};
    ts_code *sm = ts_code_new(&small, &e);
    TS_CHECK(sm != NULL);
    TS_CHECK(ts_code_gpolydot_backward(sm, &e) == NULL && strstr(e.msg, "needs m(2kA-1) = 9"));
    ts_code_free(sm);
    ts_code_free(bw);
    ts_code_free(fw);
}

/* `tessera codes`: the documented exact form prints the worst-case line;
 * bad arguments are usage errors (2), impossible codes runtime errors (1). */
static int run_cli(const char *args, char *out, size_t cap) {
    const char *cli = getenv("TS_CLI");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", cli, args);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    if (!getenv("TS_CLI")) {
        printf("  (TS_CLI not set: skipped)\n");
        return;
    }
    char out[8192];
    int rc = run_cli("codes --code crme --workers 31 --k 29 --worst-cond", out, sizeof out);
    TS_CHECK(rc == 0);
    TS_CHECK_MSG(strstr(out, "worst-case condition number: 54.96\n") != NULL, "%s", out);
    TS_CHECK(strstr(out, "recovery threshold: 29 of 31") != NULL);
    TS_CHECK(strstr(out, "storage per worker") && strstr(out, "communication per worker"));
    TS_CHECK(strstr(out, "decoding: k x k complex solve") != NULL); /* n = 31: prime */
    rc = run_cli("codes --code crme --workers 31 --kA 4 --kB 7 --worst-cond", out, sizeof out);
    TS_CHECK(rc == 0 && strstr(out, "worst-case condition number: 404.3") != NULL);
    rc = run_cli("codes --code crme --workers 30 --kA 4 --kB 7", out, sizeof out);
    TS_CHECK_MSG(rc == 0 && strstr(out, "decoding: fill in the missing workers' values") != NULL,
                 "%s", out);
    rc = run_cli("codes --code vandermonde --workers 31 --k 32", out, sizeof out);
    TS_CHECK(rc == 1 && strstr(out, "k <= n") != NULL);
    rc = run_cli("codes --code nonsense --workers 4", out, sizeof out);
    TS_CHECK(rc == 2 && strstr(out, "unknown code") != NULL);
    rc = run_cli("codes --code crme --workers 0 --k 2", out, sizeof out);
    TS_CHECK(rc == 2);
    rc = run_cli("codes --code crme --k 2", out, sizeof out);
    TS_CHECK(rc == 2 && strstr(out, "--workers") != NULL);
    rc = run_cli("codes --code crme --workers 8 --k 2 --kA 2", out, sizeof out);
    TS_CHECK(rc == 2);
    rc = run_cli("codes --bogus", out, sizeof out);
    TS_CHECK(rc == 2);
}

int main(void) {
    TS_RUN(test_bad_params);
    TS_RUN(test_bad_responders);
    TS_RUN(test_encode);
    TS_RUN(test_exhaustive_small_n);
    TS_RUN(test_replication);
    TS_RUN(test_random_properties);
    TS_RUN(test_crme_f64_accuracy);
    TS_RUN(test_crme_fast_equals_dense);
    TS_RUN(test_decode_kernels);
    TS_RUN(test_systematic_copies);
    TS_RUN(test_decode_kernels_other);
    TS_RUN(test_fft_decode);
    TS_RUN(test_decode_streaming);
    TS_RUN(test_cache);
    TS_RUN(test_cond_table);
    TS_RUN(test_noise_mse);
    TS_RUN(test_gpolydot_training);
    TS_RUN(test_locate_refusals);
    TS_RUN(test_locate_errors);
    TS_RUN(test_stored_shares);
    TS_RUN(test_cli);
    return ts_test_summary();
}
