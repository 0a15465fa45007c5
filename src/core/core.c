/* core.c: errors, logging, aligned memory, tensors, RNG, time, threads. */
#include "tessera/core.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenBLAS exports this; declared here because cblas.h versions differ. */
void openblas_set_num_threads(int num_threads);

ts_status ts_errorf(ts_err *err, ts_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

const char *ts_status_name(ts_status s) {
    switch (s) {
    case TS_OK: return "ok";
    case TS_ERR_INVALID: return "invalid argument";
    case TS_ERR_NOMEM: return "out of memory";
    case TS_ERR_IO: return "I/O error";
    case TS_ERR_FORMAT: return "malformed input";
    case TS_ERR_UNSUPPORTED: return "unsupported";
    case TS_ERR_SHAPE: return "shape mismatch";
    case TS_ERR_NUMERIC: return "numerical failure";
    case TS_ERR_TIMEOUT: return "timeout";
    case TS_ERR_UNAVAILABLE: return "unavailable";
    }
    return "unknown status";
}

void ts_assert_fail(const char *file, int line, const char *what) {
    fprintf(stderr, "tessera: internal error at %s:%d: assertion '%s' failed\n", file, line, what);
    fflush(stderr);
    abort();
}

/* ---- logging ---------------------------------------------------------- */

static ts_log_fn g_log_fn;
static void *g_log_user;
static ts_log_level g_log_min = TS_LOG_WARN;

void ts_log_set(ts_log_fn fn, void *user, ts_log_level min_level) {
    g_log_fn = fn;
    g_log_user = user;
    g_log_min = min_level;
}

void ts_log(ts_log_level level, const char *fmt, ...) {
    if (level < g_log_min) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g_log_fn) {
        g_log_fn(level, buf, g_log_user);
        return;
    }
    static const char *names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "tessera: %s: %s\n", names[level], buf);
}

/* ---- memory ----------------------------------------------------------- */

/* Process-wide like the log callback: a diagnostic counter that tests read
 * to prove the steady state of inference and training allocates nothing.
 * Atomic because conv threads and runtime threads may allocate. */
static _Atomic uint64_t g_alloc_count;

void *ts_alloc(size_t n) {
    if (n == 0) return NULL;
    size_t rounded = (n + TS_ALIGN - 1) / TS_ALIGN * TS_ALIGN;
    if (rounded < n) return NULL;
    void *p = aligned_alloc(TS_ALIGN, rounded);
    if (p) atomic_fetch_add_explicit(&g_alloc_count, 1, memory_order_relaxed);
    return p;
}

uint64_t ts_alloc_count(void) {
    return atomic_load_explicit(&g_alloc_count, memory_order_relaxed);
}

void *ts_calloc(size_t n) {
    void *p = ts_alloc(n);
    if (p) memset(p, 0, n);
    return p;
}

void ts_free(void *p) {
    free(p);
}

/* ---- shapes and tensors ----------------------------------------------- */

ts_shape ts_shape_make(int ndim, const int64_t *dims) {
    ts_shape s;
    memset(&s, 0, sizeof s);
    TS_ASSERT(ndim >= 0 && ndim <= TS_MAX_DIMS);
    s.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        s.shape[i] = dims[i];
    return s;
}

ts_shape ts_shape4(int64_t n, int64_t c, int64_t h, int64_t w) {
    int64_t d[4] = {n, c, h, w};
    return ts_shape_make(4, d);
}

ts_shape ts_shape2(int64_t r, int64_t c) {
    int64_t d[2] = {r, c};
    return ts_shape_make(2, d);
}

int64_t ts_shape_numel(const ts_shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->shape[i];
    return n;
}

int ts_shape_eq(const ts_shape *a, const ts_shape *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *ts_shape_str(const ts_shape *s, char *buf, size_t len) {
    size_t off = 0;
    if (len == 0) return buf;
    buf[0] = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int i = 0; i < s->ndim && off < len; i++)
        off +=
            (size_t)snprintf(buf + off, len - off, i ? ", %lld" : "%lld", (long long)s->shape[i]);
    if (off < len) snprintf(buf + off, len - off, "]");
    return buf;
}

/* 2^31 elements (8 GiB of float) is far beyond any layer we run; a larger
 * request is a corrupt shape, not a real tensor. */
#define TS_MAX_TENSOR_ELEMS ((int64_t)1 << 31)

ts_tensor *ts_tensor_new(const ts_shape *s, ts_err *err) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->shape[i] < 0 || (s->shape[i] > 0 && n > TS_MAX_TENSOR_ELEMS / s->shape[i])) {
            char b[128];
            ts_errorf(err, TS_ERR_NOMEM, "tensor shape %s is negative or too large",
                      ts_shape_str(s, b, sizeof b));
            return NULL;
        }
        n *= s->shape[i];
    }
    ts_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory allocating a tensor header");
        return NULL;
    }
    t->s = *s;
    t->size = n;
    t->owns_data = 1;
    if (n > 0) {
        t->data = ts_calloc((size_t)n * sizeof(float));
        if (!t->data) {
            free(t);
            ts_errorf(err, TS_ERR_NOMEM, "out of memory allocating %lld floats", (long long)n);
            return NULL;
        }
    }
    return t;
}

ts_tensor *ts_tensor_new4(int64_t n, int64_t c, int64_t h, int64_t w, ts_err *err) {
    ts_shape s = ts_shape4(n, c, h, w);
    return ts_tensor_new(&s, err);
}

ts_tensor ts_tensor_view(float *data, const ts_shape *s) {
    ts_tensor t;
    memset(&t, 0, sizeof t);
    t.s = *s;
    t.size = ts_shape_numel(s);
    t.data = data;
    t.owns_data = 0;
    return t;
}

ts_tensor *ts_tensor_clone(const ts_tensor *src, ts_err *err) {
    ts_tensor *t = ts_tensor_new(&src->s, err);
    if (t && src->size) memcpy(t->data, src->data, (size_t)src->size * sizeof(float));
    return t;
}

void ts_tensor_free(ts_tensor *t) {
    if (!t) return;
    if (t->owns_data) ts_free(t->data);
    free(t);
}

ts_status ts_tensor_reshape(ts_tensor *t, const ts_shape *s, ts_err *err) {
    if (ts_shape_numel(s) != t->size) {
        char a[128], b[128];
        return ts_errorf(err, TS_ERR_SHAPE, "cannot reshape %s to %s: element counts differ",
                         ts_shape_str(&t->s, a, sizeof a), ts_shape_str(s, b, sizeof b));
    }
    t->s = *s;
    return TS_OK;
}

void ts_tensor_fill(ts_tensor *t, float v) {
    for (int64_t i = 0; i < t->size; i++)
        t->data[i] = v;
}

double ts_tensor_rel_err(const ts_tensor *a, const ts_tensor *b) {
    TS_ASSERT(a->size == b->size);
    double num = 0, den = 0;
    for (int64_t i = 0; i < a->size; i++) {
        double d = fabs((double)a->data[i] - (double)b->data[i]);
        if (d > num) num = d;
        double m = fabs((double)b->data[i]);
        if (m > den) den = m;
    }
    return num / (den > 1e-30 ? den : 1e-30);
}

/* ---- RNG: xoshiro256** seeded through splitmix64 ----------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ts_rng_seed(ts_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t ts_rng_u64(ts_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ts_rng_uniform(ts_rng *r) {
    return (double)(ts_rng_u64(r) >> 11) * 0x1.0p-53;
}

double ts_rng_normal(ts_rng *r) {
    /* Box-Muller; the 1-u keeps log away from zero. */
    double u1 = 1.0 - ts_rng_uniform(r), u2 = ts_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t ts_rng_below(ts_rng *r, uint64_t n) {
    TS_ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = ts_rng_u64(r);
    while (x >= limit);
    return x % n;
}

void ts_rng_fill_normal(ts_rng *r, float *x, int64_t n, float stddev) {
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(ts_rng_normal(r) * stddev);
}

void ts_rng_fill_uniform(ts_rng *r, float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)ts_rng_uniform(r);
}

/* ---- time and threads ------------------------------------------------- */

double ts_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int g_threads = 1;

void ts_threads_set(int n) {
    if (n < 1) n = 1;
    g_threads = n;
    openblas_set_num_threads(n);
}

int ts_threads_get(void) {
    return g_threads;
}
