/* dense.c: ONNX Gemm, Y = alpha * op(A) * op(B) + beta * C, forward and
 * backward. Both products go to cblas_sgemm; C is broadcast by strides (a
 * dimension of C equal to 1 gets stride 0), so no copy of C is made. */
#include "tessera/ops.h"

#include "ops_util.h"

#include <cblas.h>

typedef struct {
    int64_t m, k, n;
    int64_t c_rs, c_cs; /* C strides over Y's rows and cols (0: broadcast) */
} gemm_geom;

static ts_status gemm_geom_make(const char *op, int ta, int tb, const ts_tensor *a,
                                const ts_tensor *b, const ts_tensor *c, gemm_geom *g, ts_err *err) {
    if (!ts_tensor_ok(a) || !ts_tensor_ok(b))
        return ts_errorf(err, TS_ERR_INVALID, "%s: A or B is NULL or has no data", op);
    if (a->s.ndim != 2 || b->s.ndim != 2)
        return ts_errorf(err, TS_ERR_SHAPE, "%s: A %s and B %s must be 2-D", op, SHP(&a->s),
                         SHP(&b->s));
    g->m = ta ? a->s.shape[1] : a->s.shape[0];
    g->k = ta ? a->s.shape[0] : a->s.shape[1];
    int64_t kb = tb ? b->s.shape[1] : b->s.shape[0];
    g->n = tb ? b->s.shape[0] : b->s.shape[1];
    if (kb != g->k || g->m < 1 || g->n < 1 || g->k < 1 || g->m > INT32_MAX || g->n > INT32_MAX ||
        g->k > INT32_MAX)
        return ts_errorf(err, TS_ERR_SHAPE,
                         "%s: op(A) of A %s (transA=%d) and op(B) of B %s (transB=%d) do not "
                         "agree on K",
                         op, SHP(&a->s), ta, SHP(&b->s), tb);
    g->c_rs = g->c_cs = 0;
    if (!c) return TS_OK;
    if (!ts_tensor_ok(c)) return ts_errorf(err, TS_ERR_INVALID, "%s: C has no data", op);
    /* Right-align C's dims against [M, N]; each must equal the target or 1. */
    int64_t cm = 1, cn = 1;
    int nd = c->s.ndim;
    if (nd > 2) goto bad;
    if (nd >= 1) cn = c->s.shape[nd - 1];
    if (nd == 2) cm = c->s.shape[0];
    if ((cm != 1 && cm != g->m) || (cn != 1 && cn != g->n)) goto bad;
    g->c_cs = cn == 1 ? 0 : 1;
    g->c_rs = cm == 1 ? 0 : cn;
    return TS_OK;
bad:
    return ts_errorf(err, TS_ERR_SHAPE, "%s: C %s is not broadcastable to Y [%lld, %lld]", op,
                     SHP(&c->s), (long long)g->m, (long long)g->n);
}

static ts_status gemm_check_y(const char *op, const char *name, const gemm_geom *g,
                              const ts_tensor *y, ts_err *err) {
    ts_shape want = ts_shape2(g->m, g->n);
    if (!ts_tensor_ok(y) || !ts_shape_eq(&y->s, &want))
        return ts_errorf(err, TS_ERR_SHAPE, "%s: %s %s must be %s", op, name,
                         y ? SHP(&y->s) : "(null)", SHP(&want));
    return TS_OK;
}

ts_status ts_gemm_forward(int trans_a, int trans_b, float alpha, float beta, const ts_tensor *a,
                          const ts_tensor *b, const ts_tensor *c, ts_tensor *y, ts_err *err) {
    const char *op = "gemm";
    gemm_geom g;
    TS_TRY(gemm_geom_make(op, trans_a, trans_b, a, b, c, &g, err));
    TS_TRY(gemm_check_y(op, "Y", &g, y, err));
    float sgemm_beta = 0.0f;
    if (c && beta != 0.0f) {
        for (int64_t i = 0; i < g.m; i++)
            for (int64_t j = 0; j < g.n; j++)
                y->data[i * g.n + j] = beta * c->data[i * g.c_rs + j * g.c_cs];
        sgemm_beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)g.m, (int)g.n, (int)g.k, alpha, a->data,
                (int)a->s.shape[1], b->data, (int)b->s.shape[1], sgemm_beta, y->data, (int)g.n);
    return TS_OK;
}

ts_status ts_gemm_backward(int trans_a, int trans_b, float alpha, float beta, const ts_tensor *a,
                           const ts_tensor *b, const ts_tensor *c, const ts_tensor *dy,
                           ts_tensor *da, ts_tensor *db, ts_tensor *dc, ts_err *err) {
    const char *op = "gemm backward";
    gemm_geom g;
    TS_TRY(gemm_geom_make(op, trans_a, trans_b, a, b, c, &g, err));
    TS_TRY(gemm_check_y(op, "dY", &g, dy, err));
    if (da && (!ts_tensor_ok(da) || !ts_shape_eq(&da->s, &a->s)))
        return ts_errorf(err, TS_ERR_SHAPE, "%s: dA %s must match A %s", op, SHP(&da->s),
                         SHP(&a->s));
    if (db && (!ts_tensor_ok(db) || !ts_shape_eq(&db->s, &b->s)))
        return ts_errorf(err, TS_ERR_SHAPE, "%s: dB %s must match B %s", op, SHP(&db->s),
                         SHP(&b->s));
    if (dc && (!c || !ts_tensor_ok(dc) || !ts_shape_eq(&dc->s, &c->s)))
        return ts_errorf(err, TS_ERR_SHAPE, "%s: dC %s must match C %s", op, SHP(&dc->s),
                         c ? SHP(&c->s) : "(none)");
    const int M = (int)g.m, N = (int)g.n, K = (int)g.k;
    const int lda = (int)a->s.shape[1], ldb = (int)b->s.shape[1];
    if (da) {
        if (!trans_a) /* dA[M,K] += alpha * dY * op(B)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasNoTrans : CblasTrans, M, K, N,
                        alpha, dy->data, N, b->data, ldb, 1.0f, da->data, lda);
        else /* dA[K,M] += alpha * op(B) * dY^T */
            cblas_sgemm(CblasRowMajor, trans_b ? CblasTrans : CblasNoTrans, CblasTrans, K, M, N,
                        alpha, b->data, ldb, dy->data, N, 1.0f, da->data, lda);
    }
    if (db) {
        if (!trans_b) /* dB[K,N] += alpha * op(A)^T * dY */
            cblas_sgemm(CblasRowMajor, trans_a ? CblasNoTrans : CblasTrans, CblasNoTrans, K, N, M,
                        alpha, a->data, lda, dy->data, N, 1.0f, db->data, ldb);
        else /* dB[N,K] += alpha * dY^T * op(A) */
            cblas_sgemm(CblasRowMajor, CblasTrans, trans_a ? CblasTrans : CblasNoTrans, N, K, M,
                        alpha, dy->data, N, a->data, lda, 1.0f, db->data, ldb);
    }
    if (dc)
        for (int64_t i = 0; i < g.m; i++)
            for (int64_t j = 0; j < g.n; j++)
                dc->data[i * g.c_rs + j * g.c_cs] += beta * dy->data[i * g.n + j];
    return TS_OK;
}
