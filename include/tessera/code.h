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
 *
 * Layouts (nA x nB blocks, qa x qb shares, targets, threshold):
 *   uncoded      nA = 1, nB = n, qa = qb = 1; worker j gets A_0 and B_j;
 *                targets A_0 (*) B_l; threshold n.
 *   replication  T = n / replicas distinct tasks laid out as nA = 1, nB = T;
 *                worker j holds task j mod T (the first T workers are the
 *                uncoded split); targets A_0 (*) B_t. Threshold is the worst
 *                case n - floor(n/T) + 1, but decode accepts ANY responder
 *                set that holds every task.
 *   vandermonde, chebyshev, random (1-D MDS, k = kB)
 *                nA = 1, nB = k, qa = qb = 1; B~_j = sum_l g_jl B_l with
 *                g_jl = x_j^l (x_j = -1 + 2j/(n-1)), T_l(cos((2j+1)pi/2n))
 *                (Chebyshev polynomials at Chebyshev nodes), or N(0,1) from
 *                seed; systematic = 1 makes workers 0..k-1 hold B_0..B_{k-1}.
 *                Targets A_0 (*) B_l; threshold k.
 *   polynomial   nA = kA, nB = kB, qa = qb = 1, A~_j = sum_i x_j^(kB i) A_i,
 *                B~_j = sum_l x_j^l B_l (x_j as vandermonde); threshold kA*kB.
 *   crme         nA = 2kA, nB = 2kB, qa = qb = 2 (4 products per worker),
 *                A~[j][c] = sum_i sum_a (R^(kB i j))[a][c] A_{2i+a},
 *                B~[j][d] = sum_l sum_b (R^(l j))[b][d] B_{2l+b}, R the
 *                rotation by 2pi/n; threshold kA*kB. With matvec = 1 (kA = 1)
 *                A is sent whole: nA = 1, qa = 1, 2 products per worker,
 *                targets A_0 (*) B_J, J < 2kB (the paper's matrix-vector
 *                scheme).
 *   complex      complex Vandermonde on the n-th roots of unity w^j, run over
 *                the reals: nA = kA, nB = kB, share 0 = Re, share 1 = Im of
 *                sum_i w^(kB i j) A_i (qa = 2 when kA > 1, else 1; same for
 *                B with w^(l j)); threshold kA*kB.
 *   circulant    circulant-permutation embedding, matrix-vector (kA = 1,
 *                k = kB), q prime >= n: nA = 1, qa = 1; B in k groups of q-1
 *                blocks (B_{i,c} at i*(q-1) + c), nB = k(q-1); qb = q shares,
 *                share s of worker j = sum_i B_{i,(s + i j) mod q} with
 *                B_{i,q-1} = -(B_{i,0} + ... + B_{i,q-2}) (generator entries
 *                0, +1, -1: no multiplications); q products per worker;
 *                targets A_0 (*) B_{i,c}; threshold k; decoded by a length-q
 *                DFT and q-1 complex k x k solves. cond = max_f sigma_max /
 *                min_f sigma_min over the per-frequency systems.
 *   matdot, polydot, gpolydot
 *                A is kA x m blocks (A_{i,q} at index i*m + q, q the inner
 *                index), B is m x kB blocks (B_{q,l} at q*kB + l), qa = qb = 1;
 *                num_targets = kA*kB, target i*kB + l is
 *                C_{i,l} = sum_q A_{i,q} (*) B_{q,l}. Real Chebyshev nodes.
 *                MatDot (kA = kB = 1) threshold 2m-1; PolyDot (2m-1)kA kB;
 *                Generalized PolyDot kA*m*kB + m - 1 (mat-vec: kB = 1).
 *                In the paper's letters: m_paper = kA, n_paper = m,
 *                d_paper = kB. The field d is unused (0).
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
    TS_CODE_GPOLYDOT, /* Generalized PolyDot, mat-vec mn+n-1, mat-mat mnd+n-1 */
} ts_code_kind;

typedef struct {
    ts_code_kind kind;
    int n;          /* workers */
    int kA, kB;     /* splits of A and B (1-D codes: kA = 1, kB = k) */
    int m, d;       /* m: PolyDot family inner split; d: unused, must be 0 (B's column
                     * split, the paper's d, is kB) */
    int replicas;   /* replication only */
    int systematic; /* 1-D MDS: first k workers hold plain blocks */
    uint64_t seed;  /* random codes */
    int q;          /* circulant only: a prime >= n (0: the smallest such prime) */
    int backward;   /* set by ts_code_gpolydot_backward only (leave 0) */
    int matvec;     /* crme only: 1 = A is not split (matrix-vector, kA = 1): nA = qa = 1,
                     * nB = 2kB, 2 products per worker, threshold kB */
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

/* ---- additions -------------------------------------------------------- */

/* The (validated, defaults filled in) parameters the code was built with. */
const ts_code_params *ts_code_params_of(const ts_code *c);

/* Decoding the codes at the n-th roots of unity (CRME and the complex
 * Vandermonde code): when n has small prime factors and it costs fewer
 * flops than the k x k solve, the decoder fills in the missing workers'
 * values (s x k multiply-adds per column) and runs one FFT of length n
 * (docs/codes.md). ts_code_set_fft_decode(c, 0) always solves instead, for
 * tests and benchmarks that compare the two (the answers agree to
 * round-off); it clears the decoding cache. ts_code_fft_decode_chosen says
 * whether the FFT is used for c's threshold-sized sets. */
void ts_code_set_fft_decode(ts_code *c, int on);
int ts_code_fft_decode_chosen(const ts_code *c);

/* Like ts_code_decode, but always through the generic real system (for
 * CRME the 4k x 4k solve of digest 1.2.7 instead of the two complex k x k
 * solves). For cross-checks and benchmarks; the complex Vandermonde code,
 * whose real system is not square, is refused (TS_ERR_UNSUPPORTED). */
ts_status ts_code_decode_dense(ts_code *c, const int *responders, int n_resp,
                               const float *const *products, size_t len, float *const *targets,
                               double *cond, ts_err *err);

/* ---- analysis ---------------------------------------------------------- */

/* Number of k-subsets of n, or cap + 1 when it exceeds cap. */
long ts_code_num_sets(int n, int k, long cap);
/* 2-norm condition number of the system solved for one responder set
 * (threshold distinct ids, any order). */
double ts_code_cond_of_set(const ts_code *c, const int *set);

typedef struct {
    long max_exhaustive; /* enumerate every set when C(n, threshold) <= this (0: 1e5) */
    long samples;        /* otherwise this many random sets, worst kept (0: 3000) */
    uint64_t seed;       /* for the sampled case */
} ts_code_search;

typedef struct {
    double worst, mean; /* over the sets examined */
    long sets;          /* how many were examined */
    int exhaustive;     /* 1: all C(n, threshold) sets */
} ts_code_cond_report;

/* Worst-case condition number over responder sets (opt may be NULL for the
 * defaults); worst_set (nullable, threshold ints) receives the worst set,
 * sorted. */
ts_status ts_code_worst_cond(const ts_code *c, const ts_code_search *opt, ts_code_cond_report *out,
                             int *worst_set, ts_err *err);

/* The CRME paper's noise experiment (digest 3.4): A blocks t x ba and B
 * blocks t x bb with integer entries in [-50, 50), the bilinear product
 * A~^T B~, every share of the workers in set perturbed by Gaussian noise of
 * power 10^(-snr_db/10), decoded in double from set (threshold ids);
 * nmse = ||C - C^||^2 / ||C||^2 over all targets. */
typedef struct {
    double snr_db;
    int t, ba, bb;
    uint64_t seed;
} ts_code_noise_opts;
ts_status ts_code_noise_mse(ts_code *c, const int *set, const ts_code_noise_opts *o, double *nmse,
                            ts_err *err);

/* ---- soft errors ---------------------------------------------------------
 * Wrong results among P > threshold responses are located by the syndrome
 * method (up to P-Q-1 generic errors), verified against a least-squares fit
 * whose tolerance comes from float32 round-off and the conditioning of the
 * fitted workers, with a consistency search as fallback (which is exact up
 * to floor((P-Q)/2) adversarial errors). See docs/codes.md. */
#define TS_CODE_MAX_N 1024

typedef struct {
    double rel_noise; /* bound on a healthy value's relative error (0: derived from
                       * float32 round-off, 2^-24 (inner + nA + nB + 1)) */
    int inner;        /* terms summed per product element by the worker (0: 1) */
    long max_tries;   /* consistency-search seeds (0: 5000; exhaustive when fewer) */
    uint64_t seed;
} ts_code_locate_opts;

typedef struct {
    int n_bad;                   /* wrong workers found */
    int bad[TS_CODE_MAX_N];      /* their ids */
    double score[TS_CODE_MAX_N]; /* per responder (input order): residual / tolerance, > 1 wrong */
    double eps;                  /* the relative round-off bound used */
    int method;                  /* 0 no error seen, 1 syndrome, 2 consistency search */
    int syndrome_rank;           /* error dimensions the syndrome saw (-1: undecided) */
    int guaranteed;              /* 1: the healthy set exceeds (P+Q-1)/2, so the answer holds
                                  * even against adversarial errors */
} ts_code_locate_report;

/* Locates wrong products among n_resp > threshold responders (products as
 * in ts_code_decode). TS_ERR_NUMERIC when no consistent set is found. */
ts_status ts_code_locate(ts_code *c, const int *responders, int n_resp,
                         const float *const *products, size_t len, const ts_code_locate_opts *opt,
                         ts_code_locate_report *rep, ts_err *err);
/* ts_code_locate, then ts_code_decode from the responders found healthy.
 * rep (nullable) receives the location report. */
ts_status ts_code_decode_robust(ts_code *c, const int *responders, int n_resp,
                                const float *const *products, size_t len, float *const *targets,
                                const ts_code_locate_opts *opt, ts_code_locate_report *rep,
                                double *cond, ts_err *err);

/* Stored shares: every worker's shares of operand 0 (A, shares[j*qa + c])
 * or 1 (B, shares[j*qb + d]), len floats each. check_shares finds corrupted
 * ones (rep->bad); rebuild_share recomputes worker's shares (out[q]) from
 * the healthy workers' shares. */
ts_status ts_code_check_shares(const ts_code *c, int operand, const float *const *shares,
                               size_t len, const ts_code_locate_opts *opt,
                               ts_code_locate_report *rep, ts_err *err);
ts_status ts_code_rebuild_share(const ts_code *c, int operand, int worker, const int *healthy,
                                int n_healthy, const float *const *shares, size_t len,
                                float *const *out, ts_err *err);

/* ---- Generalized PolyDot training ----------------------------------------
 * A forward gpolydot code stores W (N_out x N_in) as kA x m blocks W_{i,q}
 * (rows i, columns q); worker p keeps its share W~_p (encode_a).
 *
 * The backward product W^T delta from the SAME shares: this returns a code
 * whose a_gen equals the forward's (the stored shares are reused as they
 * are) and whose B operand is delta in kA row blocks delta_i (nB = kA);
 * the worker's product is W~_p^T delta~_p; the m targets are the column
 * blocks (W^T delta)_q; threshold m(2kA-1). Refused when that exceeds n.
 * The caller frees it. */
ts_code *ts_code_gpolydot_backward(const ts_code *fwd, ts_err *err);

/* The rank-B update W += eta Delta X^T applied to worker p's stored share
 * in place (exact, no re-encoding): share is rows x cols row-major (rows =
 * N_out/kA, cols = N_in/m), delta[i] the kA row blocks of Delta (rows x
 * batch, row-major), x[q] the m row blocks of X (cols x batch). */
ts_status ts_code_gpolydot_update(const ts_code *c, int worker, float *share, int rows, int cols,
                                  const float *const *delta, const float *const *x, int batch,
                                  float eta, ts_err *err);
/* The coefficients used above: share += eta (sum_i cd[i] Delta_i)
 * (sum_q cx[q] X_q)^T, cd[kA], cx[m]. */
ts_status ts_code_gpolydot_update_coeffs(const ts_code *c, int worker, double *cd, double *cx,
                                         ts_err *err);

/* ts_code_decode with float64 products and targets (same layout), for
 * accuracy studies where the workers' arithmetic is exact to double. */
ts_status ts_code_decode_f64(ts_code *c, const int *responders, int n_resp,
                             const double *const *products, size_t len, double *const *targets,
                             double *cond, ts_err *err);

#ifdef __cplusplus
}
#endif
#endif
