/* bench_codes.c: the codes library measured.
 *
 *   bench_codes [--out DIR] [--quick] [--max-mb MB]
 *
 * Writes DIR/codes.md (default docs/results), DIR/codes-cond.csv and
 * DIR/codes-cond.png (gnuplot):
 *  1. worst-case condition numbers over all responder sets at n = 31 (the
 *     CRME paper's cases, digest 3.5), real Vandermonde against CRME;
 *  2. worst-case normalized MSE against SNR (digest 3.4), every code on its
 *     worst-conditioned responder set;
 *  3. encode and decode throughput (GB/s, bytes read + written) for block
 *     lengths 1e5..1e7 floats and k = 4..28, single thread, against memcpy
 *     measured the same way; combinations over --max-mb of memory (default
 *     1500) are skipped and marked; the decodes also as GFLOP/s against
 *     the core's double FMA peak (measured here), since beyond small k they
 *     are compute-bound;
 *  4. CRME decoding time against the uncoded conv it recovers, AlexNet and
 *     VGG-16 conv layers at batch 1, n = 8..20 with 2 stragglers;
 *  5. worst-case condition number against n = 4..40 with s = 2 and s = 3
 *     stragglers (exhaustive), the plot.
 * Timings: process CPU time (see cpu_now), one warm-up, then repeats until
 * 0.3 s (at least 3), median. The machine is shared: /proc/loadavg is
 * recorded at start and end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tessera/code.h"
#include "tessera/ops.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef void (*bench_fn)(void *ctx);

/* CPU time of the process: everything here runs on one thread, and on the
 * shared 2-core machine wall time also counts the time other jobs hold the
 * core (with a load average of 8 it inflated the conv times 3-9x). It does
 * not remove their competition for caches and memory bandwidth. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double time_median(bench_fn fn, void *ctx, double min_s) {
    double t[64];
    int n = 0;
    fn(ctx);
    double start = cpu_now();
    while (n < 64 && (n < 3 || cpu_now() - start < min_s)) {
        double t0 = cpu_now();
        fn(ctx);
        t[n++] = cpu_now() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    return t[n / 2];
}

static void loadavg(char *buf, size_t cap) {
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f) {
        if (!fgets(buf, (int)cap, f)) buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
}

static ts_code *make(ts_code_params p) {
    ts_err e = {0};
    ts_code *c = ts_code_new(&p, &e);
    if (!c) {
        fprintf(stderr, "bench_codes: %s\n", e.msg);
        exit(1);
    }
    return c;
}

static double worst_cond(ts_code *c, int *set, long *sets) {
    ts_err e = {0};
    ts_code_cond_report rep;
    if (ts_code_worst_cond(c, NULL, &rep, set, &e) != TS_OK) {
        fprintf(stderr, "bench_codes: %s\n", e.msg);
        exit(1);
    }
    if (sets) *sets = rep.sets;
    return rep.worst;
}

/* ---- 1. condition-number table ----------------------------------------- */

static void cond_table(FILE *md) {
    struct {
        const char *name;
        ts_code_params vand, crme;
        double paper_vand, paper_crme;
    } rows[] = {
        {"mat-vec k=29",
         {.kind = TS_CODE_VANDERMONDE, .n = 31, .kB = 29},
         {.kind = TS_CODE_CRME, .n = 31, .kA = 1, .kB = 29, .matvec = 1},
         2.96e13,
         55.0},
        {"mat-vec k=28",
         {.kind = TS_CODE_VANDERMONDE, .n = 31, .kB = 28},
         {.kind = TS_CODE_CRME, .n = 31, .kA = 1, .kB = 28, .matvec = 1},
         2.29e13,
         404},
        {"mat-mat kA=4, kB=7",
         {.kind = TS_CODE_POLYNOMIAL, .n = 31, .kA = 4, .kB = 7},
         {.kind = TS_CODE_CRME, .n = 31, .kA = 4, .kB = 7},
         2.29e13,
         404},
    };
    fprintf(md, "## 1. Worst-case condition number, n = 31\n\n"
                "Over all responder sets (exhaustive: C(31,29) = 465, C(31,28) = 4495). "
                "Paper values: the CRME reference code recomputed (digest 3.5).\n\n"
                "| case | real Vandermonde (linspace -1..1) | paper | CRME | paper | sets |\n"
                "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ts_code *v = make(rows[i].vand), *c = make(rows[i].crme);
        long sets = 0;
        double wv = worst_cond(v, NULL, NULL), wc = worst_cond(c, NULL, &sets);
        fprintf(md, "| %s | %.3g | %.3g | %.2f | %.3g | %ld |\n", rows[i].name, wv,
                rows[i].paper_vand, wc, rows[i].paper_crme, sets);
        printf("cond %-20s vandermonde %.3g  crme %.2f\n", rows[i].name, wv, wc);
        ts_code_free(v);
        ts_code_free(c);
    }
    ts_code *ci = make((ts_code_params){.kind = TS_CODE_CIRCULANT, .n = 31, .kB = 29});
    ts_code *cx = make((ts_code_params){.kind = TS_CODE_COMPLEX, .n = 31, .kA = 4, .kB = 7});
    ts_code *ch = make((ts_code_params){.kind = TS_CODE_CHEBYSHEV, .n = 31, .kB = 29});
    fprintf(md,
            "\nAlso: circulant embedding (q = 31) mat-vec k=29: %.2f; complex Vandermonde "
            "mat-mat kA=4, kB=7: %.2f; Chebyshev (T_l at Chebyshev nodes) mat-vec k=29: %.3g.\n\n",
            worst_cond(ci, NULL, NULL), worst_cond(cx, NULL, NULL), worst_cond(ch, NULL, NULL));
    ts_code_free(ci);
    ts_code_free(cx);
    ts_code_free(ch);
}

/* ---- 2. normalized MSE against SNR ------------------------------------- */

static void mse_table(FILE *md, int quick) {
    struct {
        const char *name;
        ts_code_params p;
        int matvec;
        double paper100;
    } rows[] = {
        {"mat-mat complex Vandermonde",
         {.kind = TS_CODE_COMPLEX, .n = 31, .kA = 4, .kB = 7},
         0,
         2.45e-10},
        {"mat-mat CRME (rotation)", {.kind = TS_CODE_CRME, .n = 31, .kA = 4, .kB = 7}, 0, 2.45e-10},
        {"mat-mat real Vandermonde (polynomial)",
         {.kind = TS_CODE_POLYNOMIAL, .n = 31, .kA = 4, .kB = 7},
         0,
         NAN},
        {"mat-vec complex Vandermonde",
         {.kind = TS_CODE_COMPLEX, .n = 31, .kA = 1, .kB = 29},
         1,
         5.36e-13},
        {"mat-vec circulant (q = 31)", {.kind = TS_CODE_CIRCULANT, .n = 31, .kB = 29}, 1, 1.17e-13},
        {"mat-vec CRME (rotation)",
         {.kind = TS_CODE_CRME, .n = 31, .kA = 1, .kB = 29, .matvec = 1},
         1,
         4.98e-13},
        {"mat-vec real Vandermonde", {.kind = TS_CODE_VANDERMONDE, .n = 31, .kB = 29}, 1, NAN},
    };
    int t = quick ? 100 : 400;
    fprintf(md,
            "## 2. Worst-case normalized MSE against SNR\n\n"
            "The CRME paper's experiment (digest 3.4): integer operands in [-50, 50), Gaussian "
            "noise of power 10^(-SNR/10) on every share a worker receives (a vector that is not "
            "encoded gets one draw, as in the reference code), products in double, decoded in "
            "double from the responder set with the worst condition number; "
            "||C - C^||^2 / ||C||^2. Sizes: inner dimension t = %d, blocks %s; the ratio does "
            "not depend on them.\n\n"
            "| code | 80 dB | 90 dB | 100 dB | 110 dB | 120 dB | paper at 100 dB | ratio |\n"
            "|---|---|---|---|---|---|---|---|\n",
            t, "20 x 12 (mat-mat), 1 x 12 (mat-vec)");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ts_code *c = make(rows[i].p);
        int set[64];
        worst_cond(c, set, NULL);
        fprintf(md, "| %s |", rows[i].name);
        double at100 = NAN;
        for (int snr = 80; snr <= 120; snr += 10) {
            ts_code_noise_opts o = {
                .snr_db = snr, .t = t, .ba = rows[i].matvec ? 1 : 20, .bb = 12, .seed = 11};
            double m = NAN;
            ts_err e = {0};
            if (ts_code_noise_mse(c, set, &o, &m, &e) != TS_OK) fprintf(stderr, "%s\n", e.msg);
            fprintf(md, " %.3g |", m);
            if (snr == 100) at100 = m;
        }
        if (isnan(rows[i].paper100))
            fprintf(md, " (not in the paper's data) | |\n");
        else
            fprintf(md, " %.3g | %.2f |\n", rows[i].paper100, at100 / rows[i].paper100);
        printf("nmse %-40s 100 dB: %.3g\n", rows[i].name, at100);
        ts_code_free(c);
    }
    fprintf(md, "\n");
}

/* ---- 3. throughput ------------------------------------------------------ */

typedef struct {
    ts_code *c;
    int worker, b_side;
    const float **in;
    float **out;
    size_t len;
    int *resp, nresp;
} enc_ctx;

/* A markdown table's rule row: `lead` fixed columns, then `cols` more. */
static void md_rule(FILE *md, int lead, int cols) {
    fprintf(md, "\n|");
    for (int i = 0; i < lead + cols; i++)
        fprintf(md, "---|");
    fprintf(md, "\n");
}

static void run_encode(void *p) {
    enc_ctx *x = p;
    ts_err e = {0};
    if (x->b_side)
        ts_code_encode_b(x->c, x->worker, x->in, x->len, x->out, &e);
    else
        ts_code_encode_a(x->c, x->worker, x->in, x->len, x->out, &e);
}

static void run_decode(void *p) {
    enc_ctx *x = p;
    ts_err e = {0};
    if (ts_code_decode(x->c, x->resp, x->nresp, x->in, x->len, x->out, NULL, &e) != TS_OK)
        fprintf(stderr, "decode: %s\n", e.msg);
}

typedef struct {
    float *dst, *src;
    size_t n;
} cpy_ctx;

static void run_memcpy(void *p) {
    cpy_ctx *x = p;
    memcpy(x->dst, x->src, x->n * sizeof(float));
}

static float *big(size_t n) {
    float *p = ts_alloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_codes: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

static double memcpy_gbs(size_t n) {
    cpy_ctx x = {big(n), big(n), n};
    double t = time_median(run_memcpy, &x, 0.3);
    ts_free(x.dst);
    ts_free(x.src);
    return 2.0 * n * sizeof(float) / t / 1e9;
}

/* The core's double-precision FMA rate, for judging the decode kernels
 * (which are compute-bound beyond small k): 12 independent chains of
 * 8-wide FMAs. GCC contracts a*b + c only with fp-contract=fast (off under
 * -std=c11). */
typedef double peak_vec __attribute__((vector_size(64)));
#if defined(__GNUC__) && !defined(__clang__)
#define BENCH_FMA __attribute__((optimize("fp-contract=fast")))
#else
#define BENCH_FMA
#endif
static BENCH_FMA double fma_chains(long n, double a) {
    peak_vec b = {1 + 1e-9, 1, 1, 1, 1, 1, 1, 1}, c[12];
    for (int i = 0; i < 12; i++)
        c[i] = b * (double)i;
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 12; j++)
            c[j] = c[j] * b + a;
    double s = 0;
    for (int j = 0; j < 12; j++)
        for (int l = 0; l < 8; l++)
            s += c[j][l];
    return s;
}

static void run_peak(void *p) {
    *(double *)p += fma_chains(2000000, 1e-12);
}

static double fma_peak_gflops(void) {
    double sink = 0, t = time_median(run_peak, &sink, 0.3);
    if (sink == 42) printf(" "); /* keeps the chains alive */
    return 2.0 * 8 * 12 * 2000000 / t / 1e9;
}

static void throughput(FILE *md, int quick, double max_mb) {
    size_t lens[] = {100000, 1000000, 10000000};
    int ks[] = {2, 4, 8, 16, 28}; /* 4..28 asked (issue 3); 2: the one-pass CRME kernel */
    int nl = quick ? 2 : 3;
    double mc[3], dram = memcpy_gbs(25000000); /* 100 MB: far beyond the caches */
    double peak = fma_peak_gflops(), gfl[2][5][3] = {{{0}}};
    for (int l = 0; l < nl; l++)
        mc[l] = memcpy_gbs(lens[l]);
    fprintf(md,
            "## 3. Encode and decode throughput (single thread)\n\n"
            "GB/s counts bytes read + written (k input blocks and the shares for encoding; the "
            "products and the targets for decoding); memcpy is counted the same way "
            "(%s bytes per float copied). Encode: one worker's shares, vandermonde (k blocks "
            "-> 1 share) and crme (k = 2kB blocks -> 2 shares, the filter side). Decode: "
            "vandermonde (k products -> k targets: rows of the inverse when the set is "
            "well-conditioned enough, else the LU) and crme (threshold k, 4k products -> 4k "
            "targets: two complex k x k solves, or from k = 16 (n = 18) on the FFT decode, "
            "erasure filling and two FFTs of length n; 'crme, k x k solve' is the solve on the "
            "same sets); chebyshev, systematic (the responder set "
            "misses 2 of the k systematic workers, 1 at k = 2: the others' products are "
            "copied and 2 targets decoded, the worst case with 2 stragglers; with every "
            "systematic worker answering, decoding is copies). Cells over %.0f MB of "
            "buffers are skipped (-).\n\n",
            "8", max_mb);
    fprintf(md,
            "memcpy: %.1f GB/s for 2.5e7 floats (the memory bandwidth: percentages below are "
            "against it); ",
            dram);
    for (int l = 0; l < nl; l++)
        fprintf(md, "%s%.1f GB/s at %zu floats", l ? ", " : "", mc[l], lens[l]);
    fprintf(md, "\n\n| op | code | k | ");
    for (int l = 0; l < nl; l++)
        fprintf(md, "%.0e floats | ", (double)lens[l]);
    md_rule(md, 3, nl);
    /* kind 2: systematic Chebyshev, decode only (encoding a parity share costs
     * what kind 0's does) */
    /* kind 3: CRME decoded by the k x k solves even where the FFT decode is
     * cheaper (ts_code_set_fft_decode(c, 0)): the same run's comparison */
    static const char *const kind_names[] = {"vandermonde", "crme", "chebyshev, systematic",
                                             "crme, k x k solve"};
    for (int op = 0; op < 2; op++)
        for (int kind = 0; kind < (op ? 4 : 2); kind++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                int k = ks[ki], crme = kind == 1 || kind == 3;
                fprintf(md, "| %s | %s | %d |", op ? "decode" : "encode", kind_names[kind], k);
                for (int l = 0; l < nl; l++) {
                    size_t L = lens[l];
                    size_t nin = op == 0 ? (size_t)k : (size_t)(crme ? 4 * k : k);
                    size_t nout = op == 0 ? (size_t)(crme ? 2 : 1) : nin;
                    double mb = (double)(nin + nout) * L * 4 / 1e6;
                    if (mb > max_mb) {
                        fprintf(md, " - |");
                        continue;
                    }
                    ts_code_params p = {.kind = crme        ? TS_CODE_CRME
                                                : kind == 2 ? TS_CODE_CHEBYSHEV
                                                            : TS_CODE_VANDERMONDE,
                                        .n = k + 2,
                                        .kA = 1,
                                        .kB = crme ? (op ? k : k / 2) : k,
                                        .systematic = kind == 2};
                    ts_code *c = make(p);
                    if (kind == 3) ts_code_set_fft_decode(c, 0);
                    float *in = big(nin * L), *out = big(nout * L);
                    const float **ip = malloc(nin * sizeof *ip);
                    float **op2 = malloc(nout * sizeof *op2);
                    int resp[64];
                    for (size_t i = 0; i < nin; i++)
                        ip[i] = in + i * L;
                    for (size_t i = 0; i < nout; i++)
                        op2[i] = out + i * L;
                    for (int i = 0; i < k; i++)
                        resp[i] = (i * 7 + 1) % (k + 2);
                    enc_ctx x = {c, k + 1, 1, ip, op2, L, resp, k};
                    if (op == 1) { /* distinct ids: a stride coprime with k + 2 */
                        int stride = 1;
                        for (int s = 2; s < k + 2; s++) {
                            int a = s, b = k + 2;
                            while (b) {
                                int t = a % b;
                                a = b, b = t;
                            }
                            if (a == 1) {
                                stride = s;
                                break;
                            }
                        }
                        for (int i = 0; i < k; i++)
                            resp[i] = (i * stride) % (k + 2);
                    }
                    double t = time_median(op ? run_decode : run_encode, &x, 0.3);
                    double gbs = (double)(nin + nout) * L * 4 / t / 1e9;
                    /* decode arithmetic per column: the k x k system (LU
                     * substitution or inverse rows) 2k^2 flops; CRME option
                     * B, 8k^2 multiply-adds (two complex k x k products) */
                    if (op && (kind == 0 || kind == 3))
                        gfl[kind ? 1 : 0][ki][l] = (crme ? 16.0 : 2.0) * k * k * L / t / 1e9;
                    fprintf(md, " %.1f (%.0f%%) |", gbs, 100 * gbs / dram);
                    printf("%s %-11s k=%-2d L=%-8zu %.2f GB/s (%.0f%% of memcpy)\n",
                           op ? "decode" : "encode", kind_names[kind], k, L, gbs, 100 * gbs / dram);
                    fflush(stdout);
                    free(ip);
                    free(op2);
                    ts_free(in);
                    ts_free(out);
                    ts_code_free(c);
                }
                fprintf(md, "\n");
            }
    fprintf(md, "\nIn parentheses: percent of the 2.5e7-float memcpy bandwidth. Blocks of 1e5 "
                "floats fit in the caches, so they can exceed it.\n\n");
    fprintf(md,
            "Decode arithmetic rate, GFLOP/s in double (vandermonde 2k^2 flops per column, "
            "crme 16k^2), against this core's FMA peak measured the same way: %.1f GFLOP/s (12 "
            "independent chains of 8-wide FMAs). Where the percent of peak is high, decoding is "
            "compute-bound.\n\n| code | k |",
            peak);
    for (int l = 0; l < nl; l++)
        fprintf(md, " %.0e floats |", (double)lens[l]);
    md_rule(md, 2, nl);
    for (int kind = 0; kind < 2; kind++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            fprintf(md, "| %s | %d |", kind ? "crme, k x k solve" : "vandermonde", ks[ki]);
            for (int l = 0; l < nl; l++)
                if (gfl[kind][ki][l] > 0)
                    fprintf(md, " %.1f (%.0f%%) |", gfl[kind][ki][l],
                            100 * gfl[kind][ki][l] / peak);
                else
                    fprintf(md, " - |");
            fprintf(md, "\n");
        }
    fprintf(md, "\n");
    printf("fma peak %.1f GFLOP/s\n", peak);
}

/* ---- 4. decoding against the uncoded conv ------------------------------ */

typedef struct {
    const char *net, *name;
    int c, h, n, k, s, p;
} conv_shape;

typedef struct {
    ts_conv2d_params p;
    ts_tensor *x, *w, *y;
    float *ws;
} conv_ctx;

static void run_conv(void *p) {
    conv_ctx *x = p;
    ts_err e = {0};
    ts_conv2d_forward(&x->p, x->x, x->w, NULL, x->y, x->ws, &e);
}

static void decode_vs_conv(FILE *md, int quick) {
    const conv_shape layers[] = {
        {"alexnet", "conv1", 3, 224, 64, 11, 4, 2},  {"alexnet", "conv2", 64, 27, 192, 5, 1, 2},
        {"alexnet", "conv3", 192, 13, 384, 3, 1, 1}, {"alexnet", "conv4", 384, 13, 256, 3, 1, 1},
        {"alexnet", "conv5", 256, 13, 256, 3, 1, 1}, {"vgg16", "conv1_1", 3, 224, 64, 3, 1, 1},
        {"vgg16", "conv1_2", 64, 224, 64, 3, 1, 1},  {"vgg16", "conv2_2", 128, 112, 128, 3, 1, 1},
        {"vgg16", "conv3_2", 256, 56, 256, 3, 1, 1}, {"vgg16", "conv4_2", 512, 28, 512, 3, 1, 1},
        {"vgg16", "conv5_2", 512, 14, 512, 3, 1, 1},
    };
    int ns[] = {8, 12, 16, 20};
    int nlayers = (int)(sizeof layers / sizeof layers[0]);
    if (quick) nlayers = 5;
    fprintf(md,
            "## 4. CRME decoding against the uncoded conv it recovers\n\n"
            "Batch 1, single thread. conv: ts_conv2d_forward of the whole layer (median). decode: "
            "ts_code_decode of CRME with n workers, s = 2 stragglers, threshold k = n - 2 = kA*kB "
            "(kA the largest divisor of k up to sqrt(k)), products of the layer's block length "
            "(output / 4k, padded), cached decoding matrix (the steady state). Cell: decode time "
            "as %% of the conv time; where the FFT decode is taken (src/code/fftdec.c), the "
            "k x k solve of the same run in parentheses. copy floor: a memcpy of the products "
            "into the targets (the bytes any decoder must at least read and write), as %% of the "
            "conv time, lowest and highest over the four n (they differ by padding): where it "
            "exceeds 5%%, no decoder that reads the products and writes the targets can meet "
            "the <= 5%% target at that layer.\n\n| layer | MACs/output | conv ms |");
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        fprintf(md, " n=%d |", ns[i]);
    fprintf(md, " copy floor |");
    md_rule(md, 3, (int)(sizeof ns / sizeof ns[0]) + 1);
    for (int li = 0; li < nlayers; li++) {
        const conv_shape *L = &layers[li];
        ts_err e = {0};
        conv_ctx cc = {.p = ts_conv2d_params_default()};
        cc.p.stride_h = cc.p.stride_w = L->s;
        cc.p.pad_t = cc.p.pad_l = cc.p.pad_b = cc.p.pad_r = L->p;
        cc.x = ts_tensor_new4(1, L->c, L->h, L->h, &e);
        cc.w = ts_tensor_new4(L->n, L->c, L->k, L->k, &e);
        ts_shape ys;
        if (!cc.x || !cc.w || ts_conv2d_out_shape(&cc.p, &cc.x->s, &cc.w->s, &ys, &e) != TS_OK) {
            fprintf(stderr, "bench_codes: %s\n", e.msg);
            exit(1);
        }
        cc.y = ts_tensor_new(&ys, &e);
        size_t wsn = ts_conv2d_workspace_floats(&cc.p, &cc.x->s, &cc.w->s);
        cc.ws = wsn ? ts_alloc(wsn * sizeof(float)) : NULL;
        ts_rng r;
        ts_rng_seed(&r, 1);
        ts_rng_fill_normal(&r, cc.x->data, cc.x->size, 1);
        ts_rng_fill_normal(&r, cc.w->data, cc.w->size, 0.05f);
        double tconv = time_median(run_conv, &cc, 0.3);
        fprintf(md, "| %s %s | %d | %.1f |", L->net, L->name, L->c * L->k * L->k, tconv * 1e3);
        double floor_lo = 1e300, floor_hi = 0;
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            int n = ns[ni], k = n - 2, kA = 1;
            for (int d = 1; d * d <= k; d++)
                if (k % d == 0) kA = d;
            int kB = k / kA;
            ts_code *c = make((ts_code_params){.kind = TS_CODE_CRME, .n = n, .kA = kA, .kB = kB});
            int64_t ho = (ys.shape[2] + 2 * kA - 1) / (2 * kA), nb = (L->n + 2 * kB - 1) / (2 * kB);
            size_t len = (size_t)(ho * ys.shape[3] * nb);
            float *prod = big(4 * (size_t)k * len), *tg = big(4 * (size_t)k * len);
            const float **pp = malloc(4 * (size_t)k * sizeof *pp);
            float **tp = malloc(4 * (size_t)k * sizeof *tp);
            int resp[64];
            for (int i = 0; i < 4 * k; i++)
                pp[i] = prod + i * len, tp[i] = tg + i * len;
            for (int i = 0; i < k; i++)
                resp[i] = i + 2; /* workers 0, 1 straggle */
            enc_ctx x = {.c = c, .in = pp, .out = tp, .len = len, .resp = resp, .nresp = k};
            double tdec = time_median(run_decode, &x, 0.2), tsolve = 0;
            if (ts_code_fft_decode_chosen(c)) { /* the same run's k x k solve */
                ts_code_set_fft_decode(c, 0);
                tsolve = time_median(run_decode, &x, 0.2);
                ts_code_set_fft_decode(c, 1);
                fprintf(md, " %.1f%% (%.1f%%) |", 100 * tdec / tconv, 100 * tsolve / tconv);
            } else {
                fprintf(md, " %.1f%% |", 100 * tdec / tconv);
            }
            cpy_ctx copy = {tg, prod, 4 * (size_t)k * len};
            double tcopy = time_median(run_memcpy, &copy, 0.2);
            if (tcopy < floor_lo) floor_lo = tcopy;
            if (tcopy > floor_hi) floor_hi = tcopy;
            printf("decode/conv %s %-8s n=%d: %.2f ms / %.2f ms = %.1f%%", L->net, L->name, n,
                   tdec * 1e3, tconv * 1e3, 100 * tdec / tconv);
            if (tsolve > 0) printf(" (k x k solve %.1f%%)", 100 * tsolve / tconv);
            printf(", copy floor %.1f%%\n", 100 * tcopy / tconv);
            fflush(stdout);
            free(pp);
            free(tp);
            ts_free(prod);
            ts_free(tg);
            ts_code_free(c);
        }
        fprintf(md, " %.1f-%.1f%% |\n", 100 * floor_lo / tconv, 100 * floor_hi / tconv);
        ts_tensor_free(cc.x);
        ts_tensor_free(cc.w);
        ts_tensor_free(cc.y);
        ts_free(cc.ws);
    }
    fprintf(md, "\n");
}

/* ---- 5. condition number against n, plot ------------------------------- */

static void cond_vs_n(FILE *md, const char *dir, int quick) {
    char path[1024];
    snprintf(path, sizeof path, "%s/codes-cond.csv", dir);
    FILE *csv = fopen(path, "w");
    if (!csv) {
        fprintf(stderr, "bench_codes: cannot write %s\n", path);
        exit(1);
    }
    const ts_code_kind kinds[] = {TS_CODE_VANDERMONDE, TS_CODE_CHEBYSHEV, TS_CODE_RANDOM,
                                  TS_CODE_COMPLEX, TS_CODE_CRME};
    fprintf(csv, "s,n,vandermonde,chebyshev,random,complex,crme\n");
    int nmax = quick ? 24 : 40;
    for (int s = 2; s <= 3; s++)
        for (int n = 4; n <= nmax; n++) {
            fprintf(csv, "%d,%d", s, n);
            for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
                ts_code_params p = {.kind = kinds[i],
                                    .n = n,
                                    .kA = 1,
                                    .kB = n - s,
                                    .seed = 1,
                                    .matvec = kinds[i] == TS_CODE_CRME};
                ts_code *c = make(p);
                fprintf(csv, ",%.6g", worst_cond(c, NULL, NULL));
                ts_code_free(c);
            }
            fprintf(csv, "\n");
            fflush(csv);
        }
    fclose(csv);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "gnuplot > /dev/null 2>&1");
    FILE *gp = popen("gnuplot", "w");
    if (gp) {
        fprintf(gp,
                "set terminal pngcairo size 1200,520 font ',10'\n"
                "set output '%s/codes-cond.png'\n"
                "set datafile separator ','\n"
                "set logscale y\nset format y '10^{%%L}'\nset grid\nset key top left\n"
                "set yrange [1:1e20]\n"
                "set xlabel 'workers n'\nset ylabel 'worst-case condition number'\n"
                "set multiplot layout 1,2\n",
                dir);
        for (int s = 2; s <= 3; s++) {
            fprintf(gp,
                    "set title 'k = n - %d (%d stragglers), all responder sets'\n"
                    "plot '%s' every ::1 using ($1==%d?$2:1/0):3 w lp t 'real Vandermonde', "
                    "'' every ::1 using ($1==%d?$2:1/0):4 w lp t 'Chebyshev', "
                    "'' every ::1 using ($1==%d?$2:1/0):5 w lp t 'random Gaussian', "
                    "'' every ::1 using ($1==%d?$2:1/0):6 w lp t 'complex Vandermonde', "
                    "'' every ::1 using ($1==%d?$2:1/0):7 w p pt 6 ps 2 lc rgb 'black' "
                    "t 'CRME (rotation embedding)'\n",
                    s, s, path, s, s, s, s, s);
        }
        fprintf(gp, "unset multiplot\n");
        if (pclose(gp) != 0) fprintf(stderr, "bench_codes: gnuplot failed\n");
    }
    (void)cmd;
    fprintf(md, "## 5. Worst-case condition number against n\n\n"
                "![worst-case condition number](codes-cond.png)\n\n"
                "1-D codes (kA = 1, k = n - s; CRME in its matrix-vector form), worst over all "
                "C(n, k) responder sets; data in codes-cond.csv. Random: one Gaussian generator "
                "(seed 1). CRME coincides with the complex Vandermonde code (same singular values, "
                "digest 1.2.8). Real Vandermonde values beyond about 1e16 (n > 34) exceed what a "
                "double-precision SVD resolves: they only say 'singular in double'.\n\n");
}

int main(int argc, char **argv) {
    const char *dir = "docs/results";
    int quick = 0;
    double max_mb = 1500;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--max-mb") && i + 1 < argc)
            max_mb = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_codes [--out DIR] [--quick] [--max-mb MB]\n");
            return 2;
        }
    }
    ts_threads_set(1);
    char path[1024], la0[128], la1[128];
    snprintf(path, sizeof path, "%s/codes.md", dir);
    FILE *md = fopen(path, "w");
    if (!md) {
        fprintf(stderr, "bench_codes: cannot write %s\n", path);
        return 1;
    }
    loadavg(la0, sizeof la0);
    fprintf(md,
            "# Codes: conditioning, noise, throughput\n\n"
            "Produced by `bench_codes%s` (build/bench_codes from bench/bench_codes.c, "
            "Release build, one thread, timings in process CPU time). Load average at start: %s "
            "(2 cores shared with other jobs, which also compete for caches and memory "
            "bandwidth: the timings of sections 3 and 4 vary between runs; condition numbers "
            "and MSEs are deterministic).\n\n",
            quick ? " --quick" : "", la0);
    cond_table(md);
    mse_table(md, quick);
    throughput(md, quick, max_mb);
    decode_vs_conv(md, quick);
    cond_vs_n(md, dir, quick);
    loadavg(la1, sizeof la1);
    fprintf(md, "Load average at end: %s.\n", la1);
    fclose(md);
    printf("wrote %s\n", path);
    return 0;
}
