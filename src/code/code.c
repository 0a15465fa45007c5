/* code.c: construction, parameter checks, accessors and encoding. */
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"

static const char *const KIND_NAMES[] = {
    [TS_CODE_UNCODED] = "uncoded",
    [TS_CODE_REPLICATION] = "replication",
    [TS_CODE_VANDERMONDE] = "vandermonde",
    [TS_CODE_CHEBYSHEV] = "chebyshev",
    [TS_CODE_RANDOM] = "random",
    [TS_CODE_POLYNOMIAL] = "polynomial",
    [TS_CODE_CRME] = "crme",
    [TS_CODE_COMPLEX] = "complex",
    [TS_CODE_CIRCULANT] = "circulant",
    [TS_CODE_MATDOT] = "matdot",
    [TS_CODE_POLYDOT] = "polydot",
    [TS_CODE_GPOLYDOT] = "gpolydot",
};
#define N_KINDS ((int)(sizeof KIND_NAMES / sizeof KIND_NAMES[0]))

ts_status ts_code_kind_parse(const char *name, ts_code_kind *out, ts_err *err) {
    for (int k = 0; name && k < N_KINDS; k++)
        if (!strcmp(name, KIND_NAMES[k])) {
            *out = (ts_code_kind)k;
            return TS_OK;
        }
    return ts_errorf(err, TS_ERR_INVALID,
                     "unknown code '%s' (use uncoded, replication, vandermonde, chebyshev, random, "
                     "polynomial, crme, complex, circulant, matdot, polydot or gpolydot)",
                     name ? name : "(null)");
}

const char *ts_code_kind_name(ts_code_kind k) {
    return (int)k >= 0 && (int)k < N_KINDS ? KIND_NAMES[k] : "unknown";
}

static int is_mds1(ts_code_kind k) {
    return k == TS_CODE_VANDERMONDE || k == TS_CODE_CHEBYSHEV || k == TS_CODE_RANDOM;
}

/* Refuses what cannot work, saying what would. */
static ts_status check_params(ts_code_params *p, ts_err *err) {
    const char *name = ts_code_kind_name(p->kind);
    int n = p->n;
    if ((int)p->kind < 0 || (int)p->kind >= N_KINDS)
        return ts_errorf(err, TS_ERR_INVALID, "unknown code kind %d", (int)p->kind);
    if (n < 1 || n > TS_CODE_MAX_WORKERS)
        return ts_errorf(err, TS_ERR_INVALID, "the %s code needs 1..%d workers, not %d", name,
                         TS_CODE_MAX_WORKERS, n);
    if (p->systematic && !is_mds1(p->kind))
        return ts_errorf(err, TS_ERR_INVALID,
                         "only the 1-D MDS codes (vandermonde, chebyshev, random) have a "
                         "systematic form, not %s",
                         name);
    if (p->backward)
        return ts_errorf(err, TS_ERR_INVALID,
                         "backward codes are made with ts_code_gpolydot_backward, not ts_code_new");
    if (p->matvec && p->kind != TS_CODE_CRME)
        return ts_errorf(err, TS_ERR_INVALID,
                         "matvec applies to the crme code only (the %s code is asked for)", name);
    if (p->matvec && p->kA > 1)
        return ts_errorf(err, TS_ERR_INVALID,
                         "matrix-vector CRME does not split A: set kA = 1 (not %d)", p->kA);
    if (p->matvec) p->kA = 1, p->matvec = 1;
    if (p->d)
        return ts_errorf(err, TS_ERR_INVALID,
                         "the d field is unused (set 0): the PolyDot family takes B's column "
                         "split (the paper's d) in kB");
    if (p->q && p->kind != TS_CODE_CIRCULANT)
        return ts_errorf(err, TS_ERR_INVALID, "q applies to the circulant code only, not %s", name);
    if (p->kA < 0 || p->kB < 0 || p->m < 0 || p->d < 0 || p->replicas < 0 || p->q < 0)
        return ts_errorf(err, TS_ERR_INVALID, "the %s code got a negative split", name);
    switch (p->kind) {
    case TS_CODE_UNCODED:
        if (p->kA > 1 || (p->kB && p->kB != n))
            return ts_errorf(err, TS_ERR_INVALID,
                             "uncoded splits into exactly n = %d tasks (kA = 1, kB = %d), not "
                             "kA = %d, kB = %d",
                             n, n, p->kA, p->kB);
        p->kA = 1, p->kB = n;
        return TS_OK;
    case TS_CODE_REPLICATION:
        if (p->replicas < 1 || p->replicas > n)
            return ts_errorf(err, TS_ERR_INVALID,
                             "replication needs 1 <= replicas <= workers (%d), not %d", n,
                             p->replicas);
        if (p->kA > 1 || (p->kB && p->kB != n / p->replicas))
            return ts_errorf(err, TS_ERR_INVALID,
                             "%d workers with %d replicas run %d distinct tasks: set kA = 1, "
                             "kB = %d (or 0)",
                             n, p->replicas, n / p->replicas, n / p->replicas);
        p->kA = 1, p->kB = n / p->replicas;
        return TS_OK;
    case TS_CODE_VANDERMONDE:
    case TS_CODE_CHEBYSHEV:
    case TS_CODE_RANDOM:
        if (p->kA > 1)
            return ts_errorf(err, TS_ERR_INVALID,
                             "the %s code is 1-D: set kA = 1 and k in kB (use polynomial or crme "
                             "to split both operands)",
                             name);
        if (p->kB < 1 || p->kB > n)
            return ts_errorf(err, TS_ERR_INVALID,
                             "the %s code needs 1 <= k <= n = %d (k = kB = %d): every worker "
                             "holds 1/k of the data and any k of them decode",
                             name, n, p->kB);
        p->kA = 1;
        return TS_OK;
    case TS_CODE_CIRCULANT: return ts_code_circ_check(p, err);
    case TS_CODE_POLYNOMIAL:
    case TS_CODE_CRME:
    case TS_CODE_COMPLEX:
        if (p->kA < 1 || p->kB < 1 || p->kA > n || p->kB > n || p->kA * p->kB > n)
            return ts_errorf(err, TS_ERR_INVALID,
                             "the %s code needs kA, kB >= 1 and kA*kB <= n: kA = %d, kB = %d "
                             "need %d workers but there are %d",
                             name, p->kA, p->kB, p->kA * p->kB, n);
        return TS_OK;
    case TS_CODE_MATDOT:
    case TS_CODE_POLYDOT:
    case TS_CODE_GPOLYDOT: {
        if (p->kind == TS_CODE_MATDOT) {
            if (p->kA > 1 || p->kB > 1)
                return ts_errorf(err, TS_ERR_INVALID,
                                 "MatDot splits only the inner dimension (m); use polydot or "
                                 "gpolydot to split kA = %d, kB = %d",
                                 p->kA, p->kB);
            p->kA = p->kB = 1;
        }
        if (p->kA < 1 || p->kB < 1 || p->m < 1 || p->kA > n || p->kB > n || p->m > n)
            return ts_errorf(err, TS_ERR_INVALID,
                             "the %s code needs kA, kB, m >= 1 (got kA = %d, kB = %d, m = %d)",
                             name, p->kA, p->kB, p->m);
        long q = p->kind == TS_CODE_GPOLYDOT ? (long)p->kA * p->m * p->kB + p->m - 1
                                             : (long)(2 * p->m - 1) * p->kA * p->kB;
        if (q > n)
            return ts_errorf(err, TS_ERR_INVALID,
                             "the %s code with kA = %d, m = %d, kB = %d needs %ld responders but "
                             "there are only %d workers",
                             name, p->kA, p->m, p->kB, q, n);
        return TS_OK;
    }
    default: break;
    }
    /* every kind is checked above; only an out-of-range value gets here */
    return ts_errorf(err, TS_ERR_INVALID, "unknown code kind %d (%s)", (int)p->kind, name);
}

ts_code *ts_code_new(const ts_code_params *p, ts_err *err) {
    if (!p) {
        ts_errorf(err, TS_ERR_INVALID, "ts_code_new needs parameters");
        return NULL;
    }
    ts_code_params q = *p;
    if (check_params(&q, err) != TS_OK) return NULL;
    ts_code *c = calloc(1, sizeof *c);
    if (!c) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for a code");
        return NULL;
    }
    c->p = q;
    c->n = q.n;
    if (ts_code_build(c, err) != TS_OK) {
        ts_code_free(c);
        return NULL;
    }
    return c;
}

void ts_code_free(ts_code *c) {
    if (!c) return;
    ts_code_cache_clear(c);
    free(c->ga);
    free(c->gb);
    free(c->w);
    free(c->tsel);
    free(c->task_of);
    free(c->nodes);
    free(c->buf);
    free(c);
}

int ts_code_n(const ts_code *c) {
    return c->n;
}
int ts_code_threshold(const ts_code *c) {
    return c->threshold;
}
int ts_code_a_blocks(const ts_code *c) {
    return c->na;
}
int ts_code_b_blocks(const ts_code *c) {
    return c->nb;
}
int ts_code_a_shares(const ts_code *c) {
    return c->qa;
}
int ts_code_b_shares(const ts_code *c) {
    return c->qb;
}
int ts_code_num_targets(const ts_code *c) {
    return c->ntargets;
}
const double *ts_code_a_gen(const ts_code *c) {
    return c->ga;
}
const double *ts_code_b_gen(const ts_code *c) {
    return c->gb;
}
const ts_code_params *ts_code_params_of(const ts_code *c) {
    return &c->p;
}

/* Encoding streams the blocks once: for each chunk (64 KB per block: long
 * enough runs for the prefetchers, while the output chunks stay in L2)
 * every block is read once and added into every share that uses it. Zero coefficients (uncoded,
 * replication, systematic workers) are skipped; 0 + 1*b is exact, so those shares are exact copies.
 */
#define ENC_CHUNK 16384

static ts_status encode(const double *g, int nblk, int nsh, const float *const *blocks, size_t len,
                        float *const *out, ts_err *err) {
    if (!blocks || !out) return ts_errorf(err, TS_ERR_INVALID, "encode needs blocks and outputs");
    if (len == 0) return ts_errorf(err, TS_ERR_INVALID, "cannot encode zero-length blocks");
    for (int i = 0; i < nblk; i++)
        if (!blocks[i]) return ts_errorf(err, TS_ERR_INVALID, "encode: block %d is NULL", i);
    for (int s = 0; s < nsh; s++)
        if (!out[s]) return ts_errorf(err, TS_ERR_INVALID, "encode: output share %d is NULL", s);
    for (size_t x0 = 0; x0 < len; x0 += ENC_CHUNK) {
        size_t nx = len - x0 < ENC_CHUNK ? len - x0 : ENC_CHUNK;
        for (int s = 0; s < nsh; s++)
            memset(out[s] + x0, 0, nx * sizeof(float));
        for (int i = 0; i < nblk; i++) {
            const float *b = blocks[i] + x0;
            for (int s = 0; s < nsh; s++) {
                float a = (float)g[(size_t)s * nblk + i];
                if (a == 0.0f) continue;
                float *restrict o = out[s] + x0;
                for (size_t x = 0; x < nx; x++)
                    o[x] += a * b[x];
            }
        }
    }
    return TS_OK;
}

ts_status ts_code_encode_a(const ts_code *c, int worker, const float *const *blocks, size_t len,
                           float *const *out, ts_err *err) {
    if (!c) return ts_errorf(err, TS_ERR_INVALID, "encode needs a code");
    if (worker < 0 || worker >= c->n)
        return ts_errorf(err, TS_ERR_INVALID, "worker %d is not one of the %d workers", worker,
                         c->n);
    return encode(c->ga + (size_t)worker * c->qa * c->na, c->na, c->qa, blocks, len, out, err);
}

ts_status ts_code_encode_b(const ts_code *c, int worker, const float *const *blocks, size_t len,
                           float *const *out, ts_err *err) {
    if (!c) return ts_errorf(err, TS_ERR_INVALID, "encode needs a code");
    if (worker < 0 || worker >= c->n)
        return ts_errorf(err, TS_ERR_INVALID, "worker %d is not one of the %d workers", worker,
                         c->n);
    return encode(c->gb + (size_t)worker * c->qb * c->nb, c->nb, c->qb, blocks, len, out, err);
}
