/* code_internal.h: the inside of a ts_code, shared by the files of code/.
 *
 * Every code is described by one real "product map": responder j's product
 * (c, d) is a fixed linear combination of U unknown vectors X_u,
 *     P[j][c*qb+d] = sum_u W[j][c*qb+d][u] X_u,
 * and each target is one of the unknowns (tsel). For the product codes the
 * unknowns are the targets A_i (*) B_l themselves and W[j] is the Kronecker
 * product of the generator rows; for MatDot / (Generalized) PolyDot they are
 * the coefficients of the product polynomial, of which only some are wanted.
 * A threshold-sized responder set gives a square system (threshold*qa*qb ==
 * U), solved once per set in double and cached as the rows of its inverse
 * that yield the targets. Codes over the complex numbers (complex
 * Vandermonde, CRME's fast path, circulant) have their own decoders. */
#ifndef TS_CODE_INTERNAL_H
#define TS_CODE_INTERNAL_H

#include <complex.h>

#include "tessera/code.h"

#define TS_CODE_MAX_WORKERS TS_CODE_MAX_N
#define TS_CODE_CACHE 8

typedef struct ts_fftdec ts_fftdec;

typedef struct {
    int *ids;             /* threshold sorted worker ids; NULL when the slot is empty */
    double *dec;          /* real path: N x N LU factors (N = threshold*qa*qb) */
    int *piv;             /* real path: row pivots of the LU */
    double *inv;          /* real path: target rows of inv(M) when well-conditioned, else NULL */
    double complex *zdec; /* complex paths: their own decoding matrices */
    ts_fftdec *fft;       /* CRME and complex codes: the FFT decode when cheaper, else NULL */
    double cond;          /* < 0: not computed yet */
    int mode;             /* TS_CODE_MODE_* the matrices were built for */
    uint64_t used;        /* LRU stamp */
} ts_code_cache_entry;

struct ts_code {
    ts_code_params p;
    int n, threshold, na, nb, qa, qb, ntargets, nunk;
    double *ga, *gb;       /* [n][qa][na], [n][qb][nb] */
    double *w;             /* [n][qa*qb][nunk] */
    int *tsel;             /* [ntargets] unknown index of each target */
    int *task_of;          /* replication: task held by each worker */
    double complex *nodes; /* complex codes: evaluation node of each worker */
    ts_code_cache_entry cache[TS_CODE_CACHE];
    uint64_t clock;
    int no_fft; /* ts_code_set_fft_decode(c, 0): always the k x k solve */
    /* decode scratch, grown on demand */
    double *buf;
    size_t buf_len;
};

/* generators (gen.c) */
ts_status ts_code_build(ts_code *c, ts_err *err);

/* linear algebra in double (linalg.c) */
/* Inverts the n x n row-major matrix a in place; TS_ERR_NUMERIC if singular. */
ts_status ts_la_inverse(double *a, int n, ts_err *err);
ts_status ts_la_lu(double *a, int n, int *piv, ts_err *err);
ts_status ts_la_zinverse(double complex *a, int n, ts_err *err);
/* 2-norm condition number sigma_max / sigma_min (inf when singular). */
double ts_la_cond(const double *a, int rows, int cols);
double ts_la_zcond(const double complex *a, int rows, int cols);
/* Largest and smallest singular values; 0 on allocation failure. */
int ts_la_zsv_range(const double complex *a, int rows, int cols, double *hi, double *lo);

int ts_la_svd(const double *a, int rows, int cols, double *u, double *s, double *vt);
int ts_la_syev(const double *g, int n, double *w, double *z);

/* circulant embedding (circulant.c) */
int ts_code_circ_default_q(int n);
ts_status ts_code_circ_check(ts_code_params *p, ts_err *err);
ts_status ts_code_circ_build(ts_code *c, ts_err *err);
double ts_code_circ_cond(const ts_code *c, const int *ids);
ts_status ts_code_circ_entry(const ts_code *c, ts_code_cache_entry *e, ts_err *err);
ts_status ts_code_circ_apply(ts_code *c, const ts_code_cache_entry *e, const void *const *prod,
                             size_t len, void *const *targets, int f64, ts_err *err);

/* decoding (decode.c) */
enum { TS_CODE_MODE_FAST = 0, TS_CODE_MODE_DENSE = 1 };
void ts_code_cache_clear(ts_code *c);
/* Checks ids (range, duplicates) and that there are at least need of them. */
ts_status ts_code_check_responders(const ts_code *c, const int *resp, int n_resp, int need,
                                   ts_err *err);
/* Condition number of the system of the sorted set ids[nset]. */
double ts_code_set_cond(const ts_code *c, const int *ids, int nset, int mode);
ts_status ts_code_decode_mode(ts_code *c, const int *resp, int n_resp, const void *const *prod,
                              size_t len, void *const *targets, int f64, double *cond, int mode,
                              ts_err *err);

/* FFT decoding of the codes at the n-th roots of unity (fftdec.c) */
/* 1 when c is a code at the roots of unity (CRME, complex) whose
 * threshold-k decode costs less by erasure filling + an FFT of length n
 * than by the k x k solve. */
int ts_fftdec_applies(const ts_code *c, int k);
/* The plan of the sorted set ids[k]; *out stays NULL (and TS_OK is returned)
 * when the solve is cheaper or safer. */
ts_status ts_fftdec_new(const ts_code *c, const int *ids, int k, ts_fftdec **out, ts_err *err);
void ts_fftdec_free(ts_fftdec *f);
/* Scratch doubles ts_fftdec_apply needs (64-byte alignment included). */
size_t ts_fftdec_scratch(const ts_fftdec *f);
/* prod: the responders' products in the order of ids; targets as
 * ts_code_decode's. */
ts_status ts_fftdec_apply(const ts_fftdec *f, const void *const *prod, size_t len,
                          void *const *targets, int f64, double *scratch);

#endif
