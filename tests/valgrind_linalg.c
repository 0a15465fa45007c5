/* valgrind_linalg.c: every LAPACK wrapper of src/code/linalg.c on square and
 * rectangular matrices of size 1..40, each answer checked. CTest runs it under
 * valgrind (memcheck, --error-exitcode), because the fault it guards against
 * is invisible to ASan: OpenBLAS 0.3.21's Haswell zgemv_n reads past the end
 * of the matrix zgesvd hands it, which crashed CI only when that end met an
 * unmapped page. Uninstrumented library code, so only valgrind sees every
 * such read; the wrappers' padded scratch copies (linalg.c, la_scratch) must
 * keep it clean. Built without -march=native so valgrind can run it. */
#include <complex.h>

#include "code/code_internal.h"
#include "ts_test.h"

static double uniform(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (*state >> 8) / 16777216.0 * 2 - 1;
}

/* The unitary DFT matrix scaled by sqrt(k): every singular value is sqrt(k). */
static void check_zsv(int k) {
    double complex *a = malloc((size_t)k * k * sizeof *a);
    for (int r = 0; r < k; r++)
        for (int i = 0; i < k; i++)
            a[(size_t)r * k + i] = cexp(I * 6.283185307179586 * r * i / k);
    double hi = 0, lo = 0;
    TS_CHECK_MSG(ts_la_zsv_range(a, k, k, &hi, &lo), "zsv_range k=%d failed", k);
    TS_CHECK_MSG(fabs(hi - sqrt(k)) < 1e-9 * k && fabs(lo - sqrt(k)) < 1e-9 * k,
                 "zsv_range k=%d: %.17g %.17g, expected sqrt(k)", k, hi, lo);
    TS_CHECK_MSG(fabs(ts_la_zcond(a, k, k) - 1) < 1e-9 * k, "zcond k=%d", k);
    free(a);
}

/* a diagonally dominant random matrix, inverted, times itself is I */
static void check_inverses(int k, unsigned *rng) {
    double *a = malloc((size_t)k * k * sizeof *a), *inv = malloc((size_t)k * k * sizeof *inv);
    double complex *z = malloc((size_t)k * k * sizeof *z), *zi = malloc((size_t)k * k * sizeof *zi);
    for (int i = 0; i < k * k; i++) {
        a[i] = uniform(rng) + (i % (k + 1) == 0 ? k : 0);
        z[i] = uniform(rng) + I * uniform(rng) + (i % (k + 1) == 0 ? k : 0);
        inv[i] = a[i], zi[i] = z[i];
    }
    ts_err err = {0};
    TS_CHECK_MSG(ts_la_inverse(inv, k, &err) == TS_OK, "inverse k=%d: %s", k, err.msg);
    TS_CHECK_MSG(ts_la_zinverse(zi, k, &err) == TS_OK, "zinverse k=%d: %s", k, err.msg);
    double worst = 0;
    for (int r = 0; r < k; r++)
        for (int c = 0; c < k; c++) {
            double s = 0;
            double complex zs = 0;
            for (int j = 0; j < k; j++)
                s += a[(size_t)r * k + j] * inv[(size_t)j * k + c],
                    zs += z[(size_t)r * k + j] * zi[(size_t)j * k + c];
            worst = fmax(worst, fmax(fabs(s - (r == c)), cabs(zs - (r == c))));
        }
    TS_CHECK_MSG(worst < 1e-12, "inverse k=%d: |A inv(A) - I| = %.3g", k, worst);
    free(a);
    free(inv);
    free(z);
    free(zi);
}

/* rows x cols: the SVD reproduces a, cond matches its singular values, and
 * the eigenpairs of a^T a satisfy G z = w z */
static void check_svd(int rows, int cols, unsigned *rng) {
    int m = rows < cols ? rows : cols;
    double *a = malloc((size_t)rows * cols * sizeof *a), *s = malloc((size_t)m * sizeof *s);
    double *u = malloc((size_t)rows * rows * sizeof *u),
           *vt = malloc((size_t)cols * cols * sizeof *vt);
    double *g = calloc((size_t)cols * cols, sizeof *g), *w = malloc((size_t)cols * sizeof *w);
    double *zv = malloc((size_t)cols * cols * sizeof *zv);
    for (int i = 0; i < rows * cols; i++)
        a[i] = uniform(rng);
    TS_CHECK_MSG(ts_la_svd(a, rows, cols, u, s, vt), "svd %dx%d failed", rows, cols);
    double worst = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double x = 0;
            for (int j = 0; j < m; j++)
                x += u[(size_t)r * rows + j] * s[j] * vt[(size_t)j * cols + c];
            worst = fmax(worst, fabs(x - a[(size_t)r * cols + c]));
        }
    TS_CHECK_MSG(worst < 1e-12 * (rows + cols), "svd %dx%d: |U S V^T - A| = %.3g", rows, cols,
                 worst);
    double cond = ts_la_cond(a, rows, cols);
    TS_CHECK_MSG(fabs(cond - s[0] / s[m - 1]) <= 1e-9 * cond, "cond %dx%d: %.17g vs %.17g", rows,
                 cols, cond, s[0] / s[m - 1]);
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++)
            for (int r = 0; r < rows; r++)
                g[(size_t)i * cols + j] += a[(size_t)r * cols + i] * a[(size_t)r * cols + j];
    TS_CHECK_MSG(ts_la_syev(g, cols, w, zv), "syev %d failed", cols);
    worst = 0;
    for (int e = 0; e < cols; e++)
        for (int i = 0; i < cols; i++) {
            double x = 0;
            for (int j = 0; j < cols; j++)
                x += g[(size_t)i * cols + j] * zv[(size_t)e * cols + j];
            worst = fmax(worst, fabs(x - w[e] * zv[(size_t)e * cols + i]));
        }
    TS_CHECK_MSG(worst < 1e-11 * rows * cols, "syev %d: |G z - w z| = %.3g", cols, worst);
    free(a);
    free(s);
    free(u);
    free(vt);
    free(g);
    free(w);
    free(zv);
}

static void test_every_wrapper(void) {
    unsigned rng = 12345;
    for (int k = 1; k <= 40; k++) {
        check_zsv(k);
        check_inverses(k, &rng);
        check_svd(k, k, &rng);
        check_svd(k, k + 3, &rng);
        check_svd(k + 5, k, &rng);
    }
}

int main(void) {
    TS_RUN(test_every_wrapper);
    return ts_test_summary();
}
