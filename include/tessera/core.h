/*
 * core.h: the ground every Tessera module stands on.
 *
 * - Errors come in three tiers (see DESIGN.md). Broken internal invariants
 *   use TS_ASSERT (always on, prints file:line, aborts). Anything that can
 *   fail at run time returns a ts_status and, when the caller passed a
 *   ts_err, fills it with a sentence a user can act on. The library never
 *   calls exit().
 * - Tensors are float32, row-major (NCHW for images), 64-byte aligned. A
 *   ts_tensor is a small public struct (kernels index shape[] directly); its
 *   data is owned when created by ts_tensor_new and borrowed when made by
 *   ts_tensor_view.
 * - Randomness is explicit: a ts_rng passed by the caller, seeded, so every
 *   run is reproducible. There are no mutable globals but the log callback
 *   and the thread count, both set once.
 */
#ifndef TESSERA_CORE_H
#define TESSERA_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ------------------------------------------------ */

typedef enum {
    TS_OK = 0,
    TS_ERR_INVALID,     /* bad argument or option */
    TS_ERR_NOMEM,       /* allocation failed or a size cap was exceeded */
    TS_ERR_IO,          /* file or socket I/O failed */
    TS_ERR_FORMAT,      /* malformed, truncated or hostile input data */
    TS_ERR_UNSUPPORTED, /* well-formed but not supported (op, dtype, opset) */
    TS_ERR_SHAPE,       /* shapes do not agree */
    TS_ERR_NUMERIC,     /* ill-conditioned or non-finite result */
    TS_ERR_TIMEOUT,     /* a deadline passed */
    TS_ERR_UNAVAILABLE, /* not enough live workers / no feasible plan */
} ts_status;

/* Caller-owned error buffer: functions write one sentence into msg. */
typedef struct {
    ts_status status;
    char msg[512];
} ts_err;

/* Fills err (may be NULL) with a printf-style message; returns status. */
ts_status ts_errorf(ts_err *err, ts_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *ts_status_name(ts_status s);

#define TS_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) ts_assert_fail(__FILE__, __LINE__, #cond);                                    \
    } while (0)
void ts_assert_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* Propagate a failing status unchanged (the callee already filled err). */
#define TS_TRY(expr)                                                                               \
    do {                                                                                           \
        ts_status ts_try_s_ = (expr);                                                              \
        if (ts_try_s_ != TS_OK) return ts_try_s_;                                                  \
    } while (0)

/* ---- logging ---------------------------------------------------------- */

typedef enum { TS_LOG_DEBUG, TS_LOG_INFO, TS_LOG_WARN, TS_LOG_ERROR } ts_log_level;
typedef void (*ts_log_fn)(ts_log_level level, const char *msg, void *user);
/* Process-wide, set once at start-up; default prints WARN and above to stderr. */
void ts_log_set(ts_log_fn fn, void *user, ts_log_level min_level);
void ts_log(ts_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- memory ----------------------------------------------------------- */

#define TS_ALIGN 64
/* 64-byte aligned allocation; NULL on failure or n == 0. Free with ts_free. */
void *ts_alloc(size_t n);
void *ts_calloc(size_t n);
void ts_free(void *p);
/* Successful ts_alloc / ts_calloc calls so far in this process (a
 * diagnostic: tests use it to show a planned graph runs without allocating). */
uint64_t ts_alloc_count(void);

/* ---- tensors ---------------------------------------------------------- */

#define TS_MAX_DIMS 6

typedef struct {
    int ndim;
    int64_t shape[TS_MAX_DIMS];
} ts_shape;

typedef struct ts_tensor {
    ts_shape s;
    int64_t size; /* number of elements */
    float *data;
    int owns_data; /* 1: ts_tensor_free releases data */
} ts_tensor;

ts_shape ts_shape_make(int ndim, const int64_t *dims);
ts_shape ts_shape4(int64_t n, int64_t c, int64_t h, int64_t w);
ts_shape ts_shape2(int64_t r, int64_t c);
int64_t ts_shape_numel(const ts_shape *s);
int ts_shape_eq(const ts_shape *a, const ts_shape *b);
/* Writes "[1, 3, 224, 224]" into buf; returns buf. */
const char *ts_shape_str(const ts_shape *s, char *buf, size_t len);

/* New zeroed tensor (owned). NULL with err filled on failure. */
ts_tensor *ts_tensor_new(const ts_shape *s, ts_err *err);
ts_tensor *ts_tensor_new4(int64_t n, int64_t c, int64_t h, int64_t w, ts_err *err);
/* Tensor header over borrowed memory (not freed by ts_tensor_free). */
ts_tensor ts_tensor_view(float *data, const ts_shape *s);
ts_tensor *ts_tensor_clone(const ts_tensor *t, ts_err *err);
void ts_tensor_free(ts_tensor *t); /* accepts NULL */
/* Reinterprets the shape (same element count) in place. */
ts_status ts_tensor_reshape(ts_tensor *t, const ts_shape *s, ts_err *err);
void ts_tensor_fill(ts_tensor *t, float v);
/* max |a-b| / max(|b|, tiny), over all elements; shapes must agree. */
double ts_tensor_rel_err(const ts_tensor *a, const ts_tensor *b);

/* ---- randomness (xoshiro256**, seeded) -------------------------------- */

typedef struct {
    uint64_t s[4];
} ts_rng;

void ts_rng_seed(ts_rng *r, uint64_t seed);
uint64_t ts_rng_u64(ts_rng *r);
double ts_rng_uniform(ts_rng *r);             /* [0, 1) */
double ts_rng_normal(ts_rng *r);              /* N(0, 1) */
uint64_t ts_rng_below(ts_rng *r, uint64_t n); /* [0, n), unbiased */
void ts_rng_fill_normal(ts_rng *r, float *x, int64_t n, float stddev);
void ts_rng_fill_uniform(ts_rng *r, float *x, int64_t n, float lo, float hi);

/* ---- time and threads ------------------------------------------------- */

double ts_now(void); /* monotonic seconds */
/* Threads used by Tessera's own loops and by OpenBLAS (set together so they
 * do not oversubscribe the cores). Set once; default 1. */
void ts_threads_set(int n);
int ts_threads_get(void);

#ifdef __cplusplus
}
#endif
#endif
