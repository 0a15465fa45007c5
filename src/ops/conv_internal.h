/* conv_internal.h: conv geometry shared by conv.c (API, checks, im2col +
 * OpenBLAS paths, backward) and conv_fast.c (packed AVX-512 forward). */
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

/* 1 when the packed AVX-512 forward applies (compiled in, not direct). */
int ts_conv_fast_usable(const conv_geom *g);
/* Floats of scratch the packed forward needs (independent of threads). */
size_t ts_conv_fast_workspace_floats(const conv_geom *g);
/* y = conv(x, w) + b for all images and groups, using up to `threads`
 * threads; ws holds ts_conv_fast_workspace_floats floats. */
void ts_conv_fast_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                          const float *w, const float *b, float *y, float *ws, int threads);

#endif
