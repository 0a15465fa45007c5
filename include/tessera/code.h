/*
 * code.h: straggler codes for bilinear products (pure math: no threads, no
 * sockets). Every coded layer and every coded benchmark goes through here.
 *
 * The product is abstract. A code splits operand A into a_blocks() blocks
 * A_0..A_{nA-1} and operand B into b_blocks() blocks B_0..B_{nB-1} (flat
 * float arrays of equal length; what they are is the caller's business:
 * input slabs and filter groups of a conv, row blocks of a matrix, ...).
 * Worker j receives a_shares() encoded A shares and b_shares() encoded B
 * shares,
 *     Ã[j][c] = sum_i GA[j][c][i] A_i      Ã: a_gen() [n][qa][nA]
 *     B̃[j][d] = sum_l GB[j][d][l] B_l      B̃: b_gen() [n][qb][nB]
 * and returns the qa*qb products P[j][c*qb+d] = Ã[j][c] (*) B̃[j][d] for a
 * bilinear (*) (conv, matrix product, ...), all of one length.
 *
 * For the "product" codes used by coded convolution (uncoded, replication,
 * 1-D MDS, polynomial, CRME) the decoded targets are every pairwise product
 * T[i*nB + l] = A_i (*) B_l. Other codes (MatDot, PolyDot, Generalized
 * PolyDot, circulant) say in their constructor comment what their targets
 * are (num_targets() of them).
 *
 * Decoding works from ANY threshold-sized set of responders, in double, with
 * the factorization cached per responder set inside the code (so a ts_code
 * is used from one thread at a time).
 */
#ifndef TESSERA_CODE_H
#define TESSERA_CODE_H

#include "tessera/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TS_CODE_UNCODED,     /* nA*nB = n tasks, threshold n */
    TS_CODE_REPLICATION, /* n/replicas distinct tasks, each on `replicas` workers */
    TS_CODE_VANDERMONDE, /* 1-D real MDS, equispaced nodes on [-1,1] (kA = 1, kB = k) */
    TS_CODE_CHEBYSHEV,   /* 1-D real MDS, Chebyshev nodes */
    TS_CODE_RANDOM,      /* 1-D real MDS, Gaussian generator (seeded) */
    TS_CODE_POLYNOMIAL,  /* A in kA, B in kB blocks, real Vandermonde, threshold kA*kB */
    TS_CODE_CRME,        /* rotation-matrix embedding (q=2, theta=2pi/n), threshold kA*kB */
    TS_CODE_COMPLEX,     /* complex Vandermonde on the unit circle (condition-number studies) */
    TS_CODE_CIRCULANT,   /* circulant-permutation embedding (q prime >= n) */
    TS_CODE_MATDOT,      /* threshold 2m-1, target sum_i A_i B_i */
    TS_CODE_POLYDOT,
    TS_CODE_GPOLYDOT,    /* Generalized PolyDot, mat-vec mn+n-1, mat-mat mnd+n-1 */
} ts_code_kind;

typedef struct {
    ts_code_kind kind;
    int n;          /* workers */
    int kA, kB;     /* splits of A and B (1-D codes: kA = 1, kB = k) */
    int m, d;       /* PolyDot family extra splits (0: unused) */
    int replicas;   /* replication only */
    int systematic; /* 1-D MDS: first k workers hold plain blocks */
    uint64_t seed;  /* random codes */
} ts_code_params;

typedef struct ts_code ts_code;

/* Parses "uncoded", "replication", "vandermonde", "chebyshev", "random",
 * "polynomial", "crme", "complex", "circulant", "matdot", "polydot",
 * "gpolydot". */
ts_status ts_code_kind_parse(const char *name, ts_code_kind *out, ts_err *err);
const char *ts_code_kind_name(ts_code_kind k);

/* Builds a code; refuses impossible parameters (k > n, threshold > n, ...)
 * with a message that says what would work. */
ts_code *ts_code_new(const ts_code_params *p, ts_err *err);
void ts_code_free(ts_code *c); /* accepts NULL */

int ts_code_n(const ts_code *c);
int ts_code_threshold(const ts_code *c); /* responders needed */
int ts_code_a_blocks(const ts_code *c);  /* nA */
int ts_code_b_blocks(const ts_code *c);  /* nB */
int ts_code_a_shares(const ts_code *c);  /* qa per worker */
int ts_code_b_shares(const ts_code *c);  /* qb per worker */
int ts_code_num_targets(const ts_code *c);
/* Real generator matrices, row-major [n][qa][nA] and [n][qb][nB]. */
const double *ts_code_a_gen(const ts_code *c);
const double *ts_code_b_gen(const ts_code *c);

/* Encodes worker j's A shares: out[c] (len floats each) for c < qa, from
 * blocks[i] (len floats each) for i < nA. Likewise for B. Accumulation in
 * float64 is not needed here; the kernel is memory-bound. */
ts_status ts_code_encode_a(const ts_code *c, int worker, const float *const *blocks, size_t len,
                           float *const *out, ts_err *err);
ts_status ts_code_encode_b(const ts_code *c, int worker, const float *const *blocks, size_t len,
                           float *const *out, ts_err *err);

/* Decodes the targets from the products of the responders (distinct worker
 * ids, any order, at least threshold of them; extra ones are ignored).
 * products[r*qa*qb + c*qb + d] holds responder r's product (c, d), len
 * floats; targets[t] receives target t (len floats). Works in double.
 * cond (nullable) receives the 2-norm condition number of the system solved
 * for this responder set. TS_ERR_INVALID for duplicates, unknown ids or too
 * few responders. */
ts_status ts_code_decode(ts_code *c, const int *responders, int n_resp,
                         const float *const *products, size_t len, float *const *targets,
                         double *cond, ts_err *err);

#ifdef __cplusplus
}
#endif
#endif
