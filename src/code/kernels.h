/* kernels.h: the vector types and load/store helpers shared by the decoding
 * kernels of code/ (decode.c, fftdec.c). Private to src/code. */
#ifndef TS_CODE_KERNELS_H
#define TS_CODE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

/* Eight doubles: one AVX-512 register (GCC and Clang split the type into
 * AVX2 or SSE registers on targets without AVX-512). */
typedef double dvec __attribute__((vector_size(64)));
/* The kernels pass these vectors only between static, always-inlined
 * functions, so no calling convention is involved; GCC still warns
 * (-Wpsabi) when AVX-512 is not enabled. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
typedef float fvec __attribute__((vector_size(32)));
#define VW 8
#define XB (2 * VW) /* columns per register block */

/* How targets are written (the "om" argument of the kernels): OUT_F64 for
 * double targets; OUT_STREAM for non-temporal stores, chosen when the
 * targets of one call exceed DEC_STREAM_BYTES. Such outputs leave the caches
 * before anyone reads them, so streaming skips the read-for-ownership of
 * every line (a third of the traffic, as memcpy does for large copies);
 * smaller ones are kept cached for the caller (the coded layer reassembles
 * its output from them right away). 32 MB: the L3 that one core can use on
 * current server parts (sysconf reports the whole socket's). */
#define OUT_F64 1
#define OUT_STREAM 2
#define DEC_STREAM_BYTES ((size_t)32 << 20)

/* The "om" of targets targets of len values each: OUT_F64 for double
 * targets, OUT_STREAM for float targets of stream_bytes or more in all. */
static inline int dec_out_mode(int f64, size_t targets, size_t len, size_t stream_bytes) {
    if (f64) return OUT_F64;
    return targets * len * sizeof(float) >= stream_bytes ? OUT_STREAM : 0;
}

/* GCC contracts a*b + c into one FMA only under -ffp-contract=fast, which
 * -std=c11 turns off; the kernels want it (one rounding instead of two, half
 * the instructions). Clang contracts within an expression by default. Every
 * kernel function carries the attribute so that GCC inlines them into each
 * other (it refuses to inline across different optimize attributes). */
#if defined(__GNUC__) && !defined(__clang__)
#define DEC_FMA __attribute__((optimize("fp-contract=fast")))
#else
#define DEC_FMA
#endif
#define DEC_INLINE static inline __attribute__((always_inline)) DEC_FMA

/* Chunked kernels convert a chunk of columns of every row to double into a
 * buffer of at most DEC_BUF_BYTES, which stays in L2. */
#define DEC_BUF_BYTES (256 * 1024)

/* Columns per chunk for rows rows: a multiple of XB, at least 4 slices,
 * at most 4096. */
static inline int dec_chunk_cols(int rows) {
    int x = DEC_BUF_BYTES / (int)sizeof(double) / (rows > 0 ? rows : 1) / XB * XB;
    return x < 4 * XB ? 4 * XB : x > 4096 ? 4096 : x;
}

/* Columns prefetched ahead in every stream by the one-pass kernels (2 KB of
 * floats). */
#define DIRECT_AHEAD 512

/* The loads of a chunk stall on memory when many rows (up to 4k = 112) are
 * each read for only a few KB: the hardware prefetchers do not follow that
 * many short streams. So while a chunk is computed, slice by slice, the same
 * slice of the next chunk (at, one cache line of every row) is prefetched. */
static inline void prefetch_slice(const void *const *src, int C, int f64, size_t at, size_t len) {
    if (at >= len) return;
    for (int j = 0; j < C; j++) {
        if (f64) {
            __builtin_prefetch((const double *)src[j] + at, 0, 2);
            __builtin_prefetch((const double *)src[j] + at + VW, 0, 2);
        } else {
            __builtin_prefetch((const float *)src[j] + at, 0, 2);
        }
    }
}

/* Products are float32 (the workers' arithmetic) or float64
 * (ts_code_decode_f64). Converts nx values at x0 to double and zeroes the
 * row up to the next multiple of XB, so that the kernels always run whole
 * slices (the padding columns are computed and never stored). */
static inline void load_row(const void *src, int f64, size_t x0, int nx, double *dst) {
    if (f64) {
        memcpy(dst, (const double *)src + x0, (size_t)nx * sizeof *dst);
    } else {
        const float *f = (const float *)src + x0;
        for (int x = 0; x < nx; x++)
            dst[x] = f[x];
    }
    for (int x = nx; x % XB; x++)
        dst[x] = 0;
}

DEC_INLINE dvec ldv(const double *p) {
    dvec v;
    memcpy(&v, p, sizeof v);
    return v;
}

DEC_INLINE void stv(double *p, dvec v) {
    memcpy(p, &v, sizeof v);
}

/* Writes one vector (VW values) to dst at off, as float or double. */
DEC_INLINE void put1(void *dst, int om, size_t off, dvec v) {
    if (om & OUT_F64) {
        stv((double *)dst + off, v);
        return;
    }
    fvec f = __builtin_convertvector(v, fvec);
    float *d = (float *)dst + off;
#if defined(__AVX__)
    if ((om & OUT_STREAM) && !((uintptr_t)d & 31)) {
        __m256 m;
        memcpy(&m, &f, sizeof m);
        _mm256_stream_ps(d, m);
        return;
    }
#endif
    memcpy(d, &f, sizeof f);
}

/* VW values of a product row at x, in double. */
DEC_INLINE dvec ld_prod(const void *row, int f64, size_t x) {
    if (f64) return ldv((const double *)row + x);
    fvec f;
    memcpy(&f, (const float *)row + x, sizeof f);
    return __builtin_convertvector(f, dvec);
}

#endif
