/* gpolydot.c: the training-side operations of Generalized PolyDot (digest
 * coded-matmul-polydot.md 2.4 and 3.2) on the shares of W stored at the
 * workers: the backward product W^T delta and the in-place rank-B update.
 *
 * With W in kA x m blocks W_{i,q} (rows i, columns q) stored as
 * W~_p = sum W_{i,q} b_p^(m i + q):
 *  - backward: delta~_p = sum_i delta_i b_p^(m (kA-1-i)) and z_p = W~_p^T delta~_p
 *    hold (W^T delta)_q at exponent m (kA-1) + q; the garbage terms cannot
 *    be aligned (they land on m (kA-1+i-i') + q), so the backward threshold
 *    is m (2 kA - 1);
 *  - update: W + eta Delta X^T changes block (i,q) by eta Delta_i X_q^T, so
 *    W~_p += eta (sum_i Delta_i b^(m i)) (sum_q X_q b^q)^T: a rank-B change
 *    of every stored share, exact, without re-encoding W. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"

static double node(const ts_code *c, int j) {
    return cos((2.0 * j + 1.0) * M_PI / (2.0 * c->n)); /* the forward's Chebyshev nodes */
}

ts_code *ts_code_gpolydot_backward(const ts_code *fwd, ts_err *err) {
    if (!fwd || fwd->p.kind != TS_CODE_GPOLYDOT || fwd->p.backward) {
        ts_errorf(err, TS_ERR_INVALID, "the backward code is made from a forward gpolydot code");
        return NULL;
    }
    int kA = fwd->p.kA, m = fwd->p.m, n = fwd->n, Q = m * (2 * kA - 1);
    if (Q > n) {
        ts_errorf(err, TS_ERR_INVALID,
                  "the backward product W^T delta of gpolydot (kA = %d, m = %d) needs m(2kA-1) = "
                  "%d responders but there are only %d workers",
                  kA, m, Q, n);
        return NULL;
    }
    ts_code *c = calloc(1, sizeof *c);
    if (!c) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for a backward code");
        return NULL;
    }
    c->p = fwd->p;
    c->p.backward = 1;
    c->n = n, c->na = kA * m, c->nb = kA, c->qa = c->qb = 1;
    c->threshold = Q, c->ntargets = m, c->nunk = Q;
    c->ga = malloc((size_t)n * c->na * sizeof *c->ga);
    c->gb = malloc((size_t)n * c->nb * sizeof *c->gb);
    c->w = malloc((size_t)n * Q * sizeof *c->w);
    c->tsel = malloc((size_t)m * sizeof *c->tsel);
    if (!c->ga || !c->gb || !c->w || !c->tsel) {
        ts_code_free(c);
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for a backward code");
        return NULL;
    }
    memcpy(c->ga, fwd->ga, (size_t)n * c->na * sizeof *c->ga); /* the same stored shares */
    for (int j = 0; j < n; j++) {
        double x = node(fwd, j);
        for (int i = 0; i < kA; i++)
            c->gb[(size_t)j * kA + i] = pow(x, (double)m * (kA - 1 - i));
        for (int e = 0; e < Q; e++)
            c->w[(size_t)j * Q + e] = pow(x, e);
    }
    for (int q = 0; q < m; q++)
        c->tsel[q] = m * (kA - 1) + q;
    return c;
}

ts_status ts_code_gpolydot_update_coeffs(const ts_code *c, int worker, double *cd, double *cx,
                                         ts_err *err) {
    if (!c || c->p.kind != TS_CODE_GPOLYDOT || c->p.backward)
        return ts_errorf(err, TS_ERR_INVALID, "coded updates apply to a forward gpolydot code");
    if (worker < 0 || worker >= c->n)
        return ts_errorf(err, TS_ERR_INVALID, "worker %d is not one of the %d workers", worker,
                         c->n);
    double x = node(c, worker);
    for (int i = 0; i < c->p.kA; i++)
        cd[i] = pow(x, (double)c->p.m * i);
    for (int q = 0; q < c->p.m; q++)
        cx[q] = pow(x, q);
    return TS_OK;
}

ts_status ts_code_gpolydot_update(const ts_code *c, int worker, float *share, int rows, int cols,
                                  const float *const *delta, const float *const *x, int batch,
                                  float eta, ts_err *err) {
    if (!share || !delta || !x || rows < 1 || cols < 1 || batch < 1)
        return ts_errorf(err, TS_ERR_INVALID,
                         "coded update needs a share, delta and x blocks and positive sizes");
    int kA = c ? c->p.kA : 0, m = c ? c->p.m : 0;
    double cd[TS_CODE_MAX_WORKERS], cx[TS_CODE_MAX_WORKERS];
    TS_TRY(ts_code_gpolydot_update_coeffs(c, worker, cd, cx, err));
    for (int i = 0; i < kA; i++)
        if (!delta[i])
            return ts_errorf(err, TS_ERR_INVALID, "coded update: delta block %d is NULL", i);
    for (int q = 0; q < m; q++)
        if (!x[q]) return ts_errorf(err, TS_ERR_INVALID, "coded update: x block %d is NULL", q);
    size_t ld = (size_t)rows * batch, lx = (size_t)cols * batch;
    float *dt = malloc(ld * sizeof *dt), *xt = malloc(lx * sizeof *xt);
    if (!dt || !xt) {
        free(dt);
        free(xt);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a coded update");
    }
    memset(dt, 0, ld * sizeof *dt);
    memset(xt, 0, lx * sizeof *xt);
    for (int i = 0; i < kA; i++)
        cblas_saxpy((int)ld, (float)cd[i], delta[i], 1, dt, 1);
    for (int q = 0; q < m; q++)
        cblas_saxpy((int)lx, (float)cx[q], x[q], 1, xt, 1);
    /* share (rows x cols) += eta * dt (rows x batch) * xt^T (batch x cols) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, batch, eta, dt, batch, xt,
                batch, 1.0f, share, cols);
    free(dt);
    free(xt);
    return TS_OK;
}
