/* analysis.c: condition numbers over responder sets and noise studies.
 *
 * The worst case over all C(n,k) responder sets is what a deployment must
 * survive (a scheduler does not pick its stragglers), so it is enumerated
 * exhaustively when that is affordable and otherwise sampled, keeping the
 * worst set seen. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"

long ts_code_num_sets(int n, int k, long cap) {
    if (k < 0 || k > n) return 0;
    if (k > n - k) k = n - k;
    double v = 1;
    for (int i = 1; i <= k; i++) {
        v = v * (n - k + i) / i;
        if (v > (double)cap) return cap + 1;
    }
    return (long)llround(v);
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

static void random_subset(int *set, int k, int n, ts_rng *r) {
    int pool[TS_CODE_MAX_WORKERS];
    for (int i = 0; i < n; i++)
        pool[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)ts_rng_below(r, (uint64_t)(n - i));
        int t = pool[i];
        pool[i] = pool[j], pool[j] = t;
    }
    memcpy(set, pool, (size_t)k * sizeof *set);
    for (int a = 1; a < k; a++) /* sorted: the cache and the reports want it */
        for (int b = a; b > 0 && set[b - 1] > set[b]; b--) {
            int t = set[b];
            set[b] = set[b - 1], set[b - 1] = t;
        }
}

double ts_code_cond_of_set(const ts_code *c, const int *set) {
    int ids[TS_CODE_MAX_WORKERS], k = c->threshold;
    memcpy(ids, set, (size_t)k * sizeof *ids);
    for (int a = 1; a < k; a++)
        for (int b = a; b > 0 && ids[b - 1] > ids[b]; b--) {
            int t = ids[b];
            ids[b] = ids[b - 1], ids[b - 1] = t;
        }
    if (c->p.kind == TS_CODE_REPLICATION) return 1.0;
    return ts_code_set_cond(c, ids, k, TS_CODE_MODE_FAST);
}

ts_status ts_code_worst_cond(const ts_code *c, const ts_code_search *opt, ts_code_cond_report *out,
                             int *worst_set, ts_err *err) {
    if (!c || !out) return ts_errorf(err, TS_ERR_INVALID, "worst_cond needs a code and a report");
    ts_code_search o = {.max_exhaustive = 100000, .samples = 3000, .seed = 1};
    if (opt) {
        if (opt->max_exhaustive > 0) o.max_exhaustive = opt->max_exhaustive;
        if (opt->samples > 0) o.samples = opt->samples;
        o.seed = opt->seed;
    }
    int n = c->n, k = c->threshold, set[TS_CODE_MAX_WORKERS];
    long total = ts_code_num_sets(n, k, o.max_exhaustive);
    memset(out, 0, sizeof *out);
    out->exhaustive = total <= o.max_exhaustive;
    long todo = out->exhaustive ? total : o.samples;
    ts_rng r;
    ts_rng_seed(&r, o.seed);
    for (int i = 0; i < k; i++)
        set[i] = i;
    double sum = 0;
    for (long it = 0; it < todo; it++) {
        if (!out->exhaustive) random_subset(set, k, n, &r);
        double kappa = ts_code_cond_of_set(c, set);
        if (isnan(kappa))
            return ts_errorf(err, TS_ERR_NOMEM, "out of memory computing a condition number");
        sum += kappa;
        if (it == 0 || !(kappa <= out->worst)) {
            out->worst = kappa;
            if (worst_set) memcpy(worst_set, set, (size_t)k * sizeof *set);
        }
        out->sets++;
        if (out->exhaustive && !next_subset(set, k, n)) break;
    }
    out->mean = out->sets ? sum / out->sets : 0;
    return TS_OK;
}

/* ---- noise study (the CRME paper's experiment, digest 3.4) --------------
 * Operands with integer entries in [-50, 50), every worker's encoded shares
 * perturbed by N(0, 10^(-snr/10)) (the reference code's absolute noise
 * power; an operand that is not encoded gets one noise draw shared by all
 * workers), products A~_c^T B~_d computed in double, decoded in double from
 * the given set; normalized MSE = ||C - C^||^2 / ||C||^2. */

static void matmul_tn(const double *a, const double *b, int t, int ba, int bb, double *out) {
    for (int i = 0; i < ba; i++)
        for (int l = 0; l < bb; l++) {
            double s = 0;
            for (int x = 0; x < t; x++)
                s += a[(size_t)x * ba + i] * b[(size_t)x * bb + l];
            out[(size_t)i * bb + l] = s;
        }
}

static void encode_f64(const double *g, int nblk, const double *blocks, size_t len, double *out) {
    memset(out, 0, len * sizeof *out);
    for (int i = 0; i < nblk; i++)
        if (g[i] != 0)
            for (size_t x = 0; x < len; x++)
                out[x] += g[i] * blocks[(size_t)i * len + x];
}

/* Exact targets: A_i^T B_l for the product codes, sum_q A_{i,q}^T B_{q,l}
 * for the dot codes. */
static void exact_targets(const ts_code *c, const double *A, const double *B, int t, int ba, int bb,
                          double *T) {
    size_t la = (size_t)t * ba, lb = (size_t)t * bb, lt = (size_t)ba * bb;
    double *tmp = malloc(lt * sizeof *tmp);
    int dot = c->p.kind == TS_CODE_MATDOT || c->p.kind == TS_CODE_POLYDOT ||
              c->p.kind == TS_CODE_GPOLYDOT;
    for (int u = 0; u < c->ntargets; u++) {
        double *o = T + (size_t)u * lt;
        if (!dot) {
            matmul_tn(A + (size_t)(u / c->nb) * la, B + (size_t)(u % c->nb) * lb, t, ba, bb, o);
            continue;
        }
        int m = c->p.m, kB = c->p.kB, i = u / kB, l = u % kB;
        memset(o, 0, lt * sizeof *o);
        for (int q = 0; q < m; q++) {
            matmul_tn(A + (size_t)(i * m + q) * la, B + (size_t)(q * kB + l) * lb, t, ba, bb, tmp);
            for (size_t x = 0; x < lt; x++)
                o[x] += tmp[x];
        }
    }
    free(tmp);
}

ts_status ts_code_noise_mse(ts_code *c, const int *set, const ts_code_noise_opts *o, double *nmse,
                            ts_err *err) {
    if (!c || !set || !o || !nmse)
        return ts_errorf(err, TS_ERR_INVALID, "noise_mse needs a code, a set, options and output");
    if (o->t < 1 || o->ba < 1 || o->bb < 1 || (long)o->t * o->ba > 100000000L ||
        (long)o->t * o->bb > 100000000L)
        return ts_errorf(err, TS_ERR_INVALID, "noise_mse: sizes t=%d ba=%d bb=%d out of range",
                         o->t, o->ba, o->bb);
    if (c->p.backward)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "noise_mse models forward products only (not a backward code)");
    int k = c->threshold, qa = c->qa, qb = c->qb, per = qa * qb, t = o->t;
    TS_TRY(ts_code_check_responders(c, set, k, k, err));
    size_t la = (size_t)t * o->ba, lb = (size_t)t * o->bb, lt = (size_t)o->ba * o->bb;
    double *A = malloc((size_t)c->na * la * sizeof *A), *B = malloc((size_t)c->nb * lb * sizeof *B);
    double *ea = malloc((size_t)qa * la * sizeof *ea), *eb = malloc((size_t)qb * lb * sizeof *eb);
    double *P = malloc((size_t)k * per * lt * sizeof *P);
    double *T = malloc((size_t)c->ntargets * lt * sizeof *T);
    double *D = malloc((size_t)c->ntargets * lt * sizeof *D);
    const double **pp = malloc((size_t)k * per * sizeof *pp);
    double **tp = malloc((size_t)c->ntargets * sizeof *tp);
    ts_status st = TS_OK;
    if (!A || !B || !ea || !eb || !P || !T || !D || !pp || !tp) {
        st = ts_errorf(err, TS_ERR_NOMEM, "out of memory for the noise study");
        goto done;
    }
    ts_rng r;
    ts_rng_seed(&r, o->seed);
    for (size_t x = 0; x < (size_t)c->na * la; x++)
        A[x] = (double)ts_rng_below(&r, 100) - 50;
    for (size_t x = 0; x < (size_t)c->nb * lb; x++)
        B[x] = (double)ts_rng_below(&r, 100) - 50;
    double sd = sqrt(pow(10.0, -o->snr_db / 10.0));
    /* An operand that is not encoded (mat-vec: the vector) is one message
     * to all workers in the reference experiment: its noise is drawn once. */
    int shared_a = c->na == 1 && qa == 1;
    if (shared_a) {
        memcpy(ea, A, la * sizeof *ea);
        for (size_t x = 0; x < la; x++)
            ea[x] += sd * ts_rng_normal(&r);
    }
    for (int s = 0; s < k; s++) {
        int j = set[s];
        for (int a = 0; a < qa && !shared_a; a++) {
            encode_f64(c->ga + ((size_t)j * qa + a) * c->na, c->na, A, la, ea + a * la);
            for (size_t x = 0; x < la; x++)
                ea[a * la + x] += sd * ts_rng_normal(&r);
        }
        for (int b = 0; b < qb; b++) {
            encode_f64(c->gb + ((size_t)j * qb + b) * c->nb, c->nb, B, lb, eb + b * lb);
            for (size_t x = 0; x < lb; x++)
                eb[b * lb + x] += sd * ts_rng_normal(&r);
        }
        for (int a = 0; a < qa; a++)
            for (int b = 0; b < qb; b++) {
                double *p = P + ((size_t)s * per + a * qb + b) * lt;
                matmul_tn(ea + a * la, eb + b * lb, t, o->ba, o->bb, p);
                pp[s * per + a * qb + b] = p;
            }
    }
    for (int u = 0; u < c->ntargets; u++)
        tp[u] = D + (size_t)u * lt;
    exact_targets(c, A, B, t, o->ba, o->bb, T);
    st = ts_code_decode_f64(c, set, k, pp, lt, tp, NULL, err);
    if (st == TS_OK) {
        double num = 0, den = 0;
        for (size_t x = 0; x < (size_t)c->ntargets * lt; x++) {
            num += (D[x] - T[x]) * (D[x] - T[x]);
            den += T[x] * T[x];
        }
        *nmse = den > 0 ? num / den : 0;
    }
done:
    free(A);
    free(B);
    free(ea);
    free(eb);
    free(P);
    free(T);
    free(D);
    free(pp);
    free(tp);
    return st;
}
