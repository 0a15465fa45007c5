/* linalg.c: the few dense double-precision kernels the decoders need, on top
 * of the LAPACK that OpenBLAS ships. Matrices are row-major; LAPACK sees the
 * transpose, which changes neither an inverse (inv(A^T) = inv(A)^T, read back
 * row-major) nor singular values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"

/* LAPACK (Fortran ABI: every argument by pointer, hidden string lengths). */
void dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work,
             const int *lwork, int *info);
void zgetrf_(const int *m, const int *n, double complex *a, const int *lda, int *ipiv, int *info);
void zgetri_(const int *n, double complex *a, const int *lda, const int *ipiv, double complex *work,
             const int *lwork, int *info);
void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a,
             const int *lda, double *s, double *u, const int *ldu, double *vt, const int *ldvt,
             double *work, const int *lwork, int *info, size_t l1, size_t l2);
void zgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double complex *a,
             const int *lda, double *s, double complex *u, const int *ldu, double complex *vt,
             const int *ldvt, double complex *work, const int *lwork, double *rwork, int *info,
             size_t l1, size_t l2);

/* Every array LAPACK reads is a scratch copy with a zeroed tail: OpenBLAS
 * 0.3.21 (Debian bookworm) has a Haswell zgemv_n kernel that reads past the
 * end of its matrix (OpenBLAS issues #4013, #5000), which zgesvd reaches
 * through zlarf. Inside a caller's array that is harmless; at the end of a
 * heap block it can touch an unmapped page (a SEGV in CI under ASan).
 * valgrind saw reads 1-17 elements past a k x k matrix; the tail is two
 * columns' worth plus a margin (la_tail), which tests/valgrind_linalg.c
 * checks under valgrind. */
static size_t la_tail(int rows, int cols) {
    int most = rows > cols ? rows : cols;
    return 2 * (size_t)(most > 0 ? most : 0) + 32;
}

/* count elements of size bytes, then a zeroed tail of la_tail(rows, cols) */
static void *la_scratch(size_t count, size_t size, int rows, int cols) {
    return calloc(count + la_tail(rows, cols), size);
}

static void transpose(double *a, int n) {
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double t = a[(size_t)i * n + j];
            a[(size_t)i * n + j] = a[(size_t)j * n + i], a[(size_t)j * n + i] = t;
        }
}

/* Transposed around LAPACK so that its row pivoting acts on the rows of a
 * (see ts_la_lu). */
ts_status ts_la_inverse(double *a, int n, ts_err *err) {
    int info = 0, lwork = n * 64 > 1 ? n * 64 : 1;
    int *ipiv = malloc((size_t)n * sizeof *ipiv);
    double *work = la_scratch((size_t)lwork, sizeof *work, n, n);
    double *t = la_scratch((size_t)n * n, sizeof *t, n, n);
    if (!ipiv || !work || !t) {
        free(ipiv);
        free(work);
        free(t);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory inverting a %dx%d decoding matrix", n,
                         n);
    }
    memcpy(t, a, (size_t)n * n * sizeof *t);
    transpose(t, n);
    dgetrf_(&n, &n, t, &n, ipiv, &info);
    if (info == 0) dgetri_(&n, t, &n, ipiv, work, &lwork, &info);
    transpose(t, n);
    memcpy(a, t, (size_t)n * n * sizeof *t);
    free(ipiv);
    free(work);
    free(t);
    if (info != 0)
        return ts_errorf(err, TS_ERR_NUMERIC,
                         "the %dx%d decoding matrix of this responder set is singular", n, n);
    for (int i = 0; i < n * n; i++)
        if (!isfinite(a[i]))
            return ts_errorf(err, TS_ERR_NUMERIC,
                             "the %dx%d decoding matrix of this responder set is numerically "
                             "singular",
                             n, n);
    return TS_OK;
}

ts_status ts_la_zinverse(double complex *a, int n, ts_err *err) {
    int info = 0, lwork = n * 64 > 1 ? n * 64 : 1;
    int *ipiv = malloc((size_t)n * sizeof *ipiv);
    double complex *work = la_scratch((size_t)lwork, sizeof *work, n, n);
    double complex *t = la_scratch((size_t)n * n, sizeof *t, n, n);
    if (!ipiv || !work || !t) {
        free(ipiv);
        free(work);
        free(t);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory inverting a %dx%d decoding matrix", n,
                         n);
    }
    memcpy(t, a, (size_t)n * n * sizeof *t);
    zgetrf_(&n, &n, t, &n, ipiv, &info);
    if (info == 0) zgetri_(&n, t, &n, ipiv, work, &lwork, &info);
    memcpy(a, t, (size_t)n * n * sizeof *t);
    free(ipiv);
    free(work);
    free(t);
    if (info != 0)
        return ts_errorf(err, TS_ERR_NUMERIC,
                         "the %dx%d complex decoding matrix of this responder set is singular", n,
                         n);
    for (int i = 0; i < n * n; i++)
        if (!isfinite(creal(a[i])) || !isfinite(cimag(a[i])))
            return ts_errorf(err, TS_ERR_NUMERIC,
                             "the %dx%d complex decoding matrix is numerically singular", n, n);
    return TS_OK;
}

/* LU with partial (row) pivoting of the row-major n x n matrix a, in place:
 * P a = L U with L unit lower. Row-major on purpose: pivoting on the rows of
 * a Vandermonde matrix (one row per node) is markedly more accurate than on
 * its transpose, which is what LAPACK would see. */
ts_status ts_la_lu(double *a, int n, int *piv, ts_err *err) {
    for (int k = 0; k < n; k++) {
        int p = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(a[(size_t)i * n + k]) > fabs(a[(size_t)p * n + k])) p = i;
        piv[k] = p;
        if (!(fabs(a[(size_t)p * n + k]) > 0) || !isfinite(a[(size_t)p * n + k]))
            return ts_errorf(err, TS_ERR_NUMERIC,
                             "the %dx%d decoding matrix of this responder set is singular", n, n);
        if (p != k)
            for (int j = 0; j < n; j++) {
                double t = a[(size_t)k * n + j];
                a[(size_t)k * n + j] = a[(size_t)p * n + j], a[(size_t)p * n + j] = t;
            }
        double inv = 1.0 / a[(size_t)k * n + k];
        for (int i = k + 1; i < n; i++) {
            double f = a[(size_t)i * n + k] *= inv;
            if (f != 0)
                for (int j = k + 1; j < n; j++)
                    a[(size_t)i * n + j] -= f * a[(size_t)k * n + j];
        }
    }
    return TS_OK;
}

static double cond_from_sv(const double *s, int k) {
    if (k < 1) return 1.0;
    double lo = s[k - 1], hi = s[0];
    if (!(lo > 0) || !isfinite(hi)) return INFINITY;
    return hi / lo;
}

double ts_la_cond(const double *a, int rows, int cols) {
    int m = cols, n = rows; /* LAPACK sees the transpose */
    int k = m < n ? m : n, info = 0, lwork = -1, one = 1;
    double q = 0, du = 0;
    double *cp = la_scratch((size_t)rows * cols, sizeof *cp, rows, cols);
    double *s = la_scratch((size_t)(k > 0 ? k : 1), sizeof *s, rows, cols);
    if (!cp || !s) {
        free(cp);
        free(s);
        return NAN;
    }
    memcpy(cp, a, (size_t)rows * cols * sizeof *cp);
    dgesvd_("N", "N", &m, &n, cp, &m, s, &du, &one, &du, &one, &q, &lwork, &info, 1, 1);
    lwork = (int)q + 1;
    double *work = la_scratch((size_t)lwork, sizeof *work, rows, cols);
    double c = NAN;
    if (work) {
        dgesvd_("N", "N", &m, &n, cp, &m, s, &du, &one, &du, &one, work, &lwork, &info, 1, 1);
        c = info == 0 ? cond_from_sv(s, k) : INFINITY;
    }
    free(work);
    free(cp);
    free(s);
    return c;
}

int ts_la_zsv_range(const double complex *a, int rows, int cols, double *hi, double *lo) {
    int m = cols, n = rows;
    int k = m < n ? m : n, info = 0, lwork = -1, one = 1, ok = 0;
    double complex q = 0, du = 0;
    double complex *cp = la_scratch((size_t)rows * cols, sizeof *cp, rows, cols);
    double *s = la_scratch((size_t)(k > 0 ? k : 1), sizeof *s, rows, cols);
    double *rwork = la_scratch((size_t)(5 * k + 1), sizeof *rwork, rows, cols);
    if (!cp || !s || !rwork || k < 1) goto done;
    memcpy(cp, a, (size_t)rows * cols * sizeof *cp);
    zgesvd_("N", "N", &m, &n, cp, &m, s, &du, &one, &du, &one, &q, &lwork, rwork, &info, 1, 1);
    lwork = (int)creal(q) + 1;
    double complex *work = la_scratch((size_t)lwork, sizeof *work, rows, cols);
    if (work) {
        zgesvd_("N", "N", &m, &n, cp, &m, s, &du, &one, &du, &one, work, &lwork, rwork, &info, 1,
                1);
        if (info == 0) *hi = s[0], *lo = s[k - 1], ok = 1;
    }
    free(work);
done:
    free(cp);
    free(s);
    free(rwork);
    return ok;
}

double ts_la_zcond(const double complex *a, int rows, int cols) {
    double hi, lo;
    if (!ts_la_zsv_range(a, rows, cols, &hi, &lo)) return NAN;
    return lo > 0 && isfinite(hi) ? hi / lo : INFINITY;
}

void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
            double *work, const int *lwork, int *info, size_t l1, size_t l2);

/* Full SVD of the row-major rows x cols matrix a: u (rows x rows) and vt
 * (cols x cols) row-major (nullable), s (min(rows, cols)) descending. */
int ts_la_svd(const double *a, int rows, int cols, double *u, double *s, double *vt) {
    int m = rows, n = cols, info = 0, lwork = -1, one = 1;
    double q = 0, du = 0;
    double *cm = la_scratch((size_t)rows * cols, sizeof *cm, rows, cols);
    double *ucm = u ? la_scratch((size_t)rows * rows, sizeof *ucm, rows, cols) : NULL;
    double *vcm = vt ? la_scratch((size_t)cols * cols, sizeof *vcm, rows, cols) : NULL;
    int ok = 0;
    if (!cm || (u && !ucm) || (vt && !vcm)) goto done;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            cm[(size_t)j * rows + i] = a[(size_t)i * cols + j];
    const char *ju = u ? "A" : "N", *jv = vt ? "A" : "N";
    int ldu = u ? rows : 1, ldv = vt ? cols : 1;
    dgesvd_(ju, jv, &m, &n, cm, &m, s, ucm ? ucm : &du, &ldu, vcm ? vcm : &du, &ldv, &q, &lwork,
            &info, 1, 1);
    lwork = (int)q + 1;
    double *work = la_scratch((size_t)lwork, sizeof *work, rows, cols);
    if (!work) goto done;
    dgesvd_(ju, jv, &m, &n, cm, &m, s, ucm ? ucm : &du, &ldu, vcm ? vcm : &du, &ldv, work, &lwork,
            &info, 1, 1);
    free(work);
    if (info != 0) goto done;
    if (u)
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < rows; j++)
                u[(size_t)i * rows + j] = ucm[(size_t)j * rows + i];
    if (vt)
        for (int i = 0; i < cols; i++)
            for (int j = 0; j < cols; j++)
                vt[(size_t)i * cols + j] = vcm[(size_t)j * cols + i];
    ok = 1;
done:
    (void)one;
    free(cm);
    free(ucm);
    free(vcm);
    return ok;
}

/* Eigen-decomposition of the symmetric n x n matrix g: w ascending, z
 * row-major with eigenvector i in row i. */
int ts_la_syev(const double *g, int n, double *w, double *z) {
    int info = -1, lwork = -1;
    double q = 0;
    double *t = la_scratch((size_t)n * n, sizeof *t, n, n),
           *wt = la_scratch((size_t)n, sizeof *wt, n, n);
    double *work = NULL;
    if (t && wt) {
        memcpy(t, g, (size_t)n * n * sizeof *t);
        dsyev_("V", "U", &n, t, &n, wt, &q, &lwork, &info, 1, 1);
        lwork = (int)q + 1;
        work = info == 0 ? la_scratch((size_t)lwork, sizeof *work, n, n) : NULL;
        info = -1;
    }
    if (work) dsyev_("V", "U", &n, t, &n, wt, work, &lwork, &info, 1, 1);
    if (info == 0) { /* column-major eigenvectors of a symmetric matrix, read row-major: rows */
        memcpy(z, t, (size_t)n * n * sizeof *z);
        memcpy(w, wt, (size_t)n * sizeof *w);
    }
    free(work);
    free(t);
    free(wt);
    return info == 0;
}
