/* conv_internal.h: conv geometry and helpers shared by conv.c (API, checks,
 * im2col + OpenBLAS paths, backward), conv_fast.c (packed AVX-512 GEMM
 * forward), conv_winograd.c (Winograd F(4x4,3x3) forward) and conv_team.c
 * (threads for one call). */
#ifndef TS_CONV_INTERNAL_H
#define TS_CONV_INTERNAL_H

#include "tessera/ops.h"

/* Geometry of one conv call, derived once from params and shapes. */
typedef struct {
    int64_t n, c, h, w;     /* input */
    int64_t m, kh, kw;      /* filters */
    int64_t oh, ow;         /* output */
    int64_t groups, cg, mg; /* channels per group in and out */
    int64_t k;              /* cg * kh * kw: the GEMM inner dimension */
    int64_t p;              /* oh * ow */
    int direct;             /* 1x1 stride-1 unpadded: no im2col */
    int64_t chunk_rows;     /* output rows per im2col chunk (OpenBLAS paths) */
} conv_geom;

/* Which forward kernel a call uses (ts_conv_forward_path). */
typedef enum {
    TS_CONV_PATH_IM2COL,   /* im2col bands + cblas_sgemm (always available) */
    TS_CONV_PATH_DIRECT,   /* 1x1 stride-1 unpadded: cblas_sgemm on x itself */
    TS_CONV_PATH_PACKED,   /* conv_fast.c */
    TS_CONV_PATH_WINOGRAD, /* conv_winograd.c */
    TS_CONV_PATH_TAPS,     /* conv_direct.c: direct taps, vectorized over output channels */
    TS_CONV_PATH_COUNT
} ts_conv_path;

enum {
    TS_CONV_MAX_THREADS = 8,
    TS_CONV_MR = 12, /* micro-tile rows: 24 accumulators + 2 B + 1 A zmm <= 32 */
    TS_CONV_NR = 32, /* micro-tile columns: two zmm */
};

/* Below this much work per thread (~0.1 ms) a second thread costs about
 * what it saves: creating it and the barriers take 20-50 us on an idle
 * machine, and on a loaded one the new thread may wait a scheduler slice
 * (measured: 1x1/2 ResNet layers of 13 MFLOP went from 0.15 to 2.3 ms p50
 * at 2 threads under load 8). */
#define TS_CONV_MIN_FLOPS_PER_THREAD 1.5e7

/* ---- forward paths (conv.c) -------------------------------------------- */

/* The path ts_conv2d_forward takes for these shapes (IM2COL if invalid). */
ts_conv_path ts_conv_default_path(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w);
/* Forward on a chosen path (tests compare every path with IM2COL);
 * TS_ERR_UNSUPPORTED when the path does not apply to the shapes. */
ts_status ts_conv_forward_path(ts_conv_path path, const ts_conv2d_params *p, const ts_tensor *x,
                               const ts_tensor *w, const ts_tensor *b, ts_tensor *y, float *ws,
                               ts_err *err);
/* Scratch floats of that path (0 when it needs none or does not apply). */
size_t ts_conv_path_workspace_floats(ts_conv_path path, const ts_conv2d_params *p,
                                     const ts_shape *x, const ts_shape *w);

/* ---- threads (conv_team.c) ---------------------------------------------- */

typedef struct ts_conv_team ts_conv_team;
/* Body run by every member: tid in [0, size), size = threads asked for (a
 * member may start late or not at all; the work does not depend on it). */
typedef void (*ts_conv_team_fn)(void *ctx, int tid, int size, ts_conv_team *team);
/* Runs fn on up to `threads` threads (the caller is member 0) and returns
 * when all are done. */
void ts_conv_team_run(int threads, ts_conv_team_fn fn, void *ctx);

/* A member's place in the call's sequence of phases; start at
 * {.tid = tid} (tid as passed to the team's fn). */
typedef struct {
    int tid;           /* owns range tid of each phase */
    int scan;          /* ranges tried in this phase: own first */
    int64_t phase;     /* phases entered */
    int64_t base, end; /* the current phase's items, numbered across phases */
    int64_t held;      /* claimed, not yet reported finished */
} ts_conv_work;
/* Every member calls the same sequence of phases (SPMD). Starts a phase of
 * `items` items: returns once every item of the earlier phases is finished
 * (by whichever member claimed it), so the phase may read their results. */
void ts_conv_work_phase(ts_conv_team *team, ts_conv_work *w, int64_t items);
/* Claims the next run [lo, hi) of the current phase's items (0 when none
 * is left) and reports the previous claim finished. Loop until it returns
 * 0; a claimed run must be done before the next call. Member t's range
 * of a phase of n items is [n t / size, n (t + 1) / size); it claims
 * eighths of it, then of the other ranges. */
int ts_conv_work_claim(ts_conv_team *team, ts_conv_work *w, int64_t *lo, int64_t *hi);
/* Threads worth using for `flops` of work, at most `threads`. */
int ts_conv_team_size(int threads, double flops);

/* ---- packed GEMM forward (conv_fast.c) ---------------------------------- */

/* 1 when the packed AVX-512 forward applies (compiled in, not direct). */
int ts_conv_fast_usable(const conv_geom *g);
/* Floats of scratch the packed forward needs (independent of threads). */
size_t ts_conv_fast_workspace_floats(const conv_geom *g);
/* y = conv(x, w) + b for all images and groups, using up to `threads`
 * threads; ws holds ts_conv_fast_workspace_floats floats. */
void ts_conv_fast_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                          const float *w, const float *b, float *y, float *ws, int threads);
/* The micro-kernel: Y[0..mr)[0..32) (row stride ldy, columns masked by the
 * 16-bit lane masks m0 / m1) = (first ? bias-or-0 : Y) + A * B, with A
 * row-major (row stride lda) and B packed [kc][NR]. */
void ts_conv_micro_tile_rows(int mr, int64_t kc, const float *a, int64_t lda, const float *b,
                             float *y, int64_t ldy, unsigned m0, unsigned m1, int first,
                             const float *bias);

/* ---- Winograd F(4x4, 3x3) forward (conv_winograd.c) --------------------- */

/* 1 when Winograd can compute this conv (3x3, stride 1, dilation 1, AVX-512). */
int ts_conv_winograd_usable(const conv_geom *g, const ts_conv2d_params *p);
/* 1 when it is also expected to be faster than the packed GEMM. */
int ts_conv_winograd_preferred(const conv_geom *g, const ts_conv2d_params *p);
size_t ts_conv_winograd_workspace_floats(const conv_geom *g, const ts_conv2d_params *p);
void ts_conv_winograd_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                              const float *w, const float *b, float *y, float *ws, int threads);

/* ---- direct conv over output channels (conv_direct.c) ------------------ */

int ts_conv_direct_usable(const conv_geom *g, const ts_conv2d_params *p);
/* 1 when expected to beat the packed GEMM (strided layers). */
int ts_conv_direct_preferred(const conv_geom *g, const ts_conv2d_params *p);
size_t ts_conv_direct_workspace_floats(const conv_geom *g, const ts_conv2d_params *p);
void ts_conv_direct_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                            const float *w, const float *b, float *y, float *ws, int threads);

#endif
