/* bench_fftdec.c: the FFT decode of CRME against the k x k solve, on the
 * same responder set, for the break-even of ts_fftdec_applies.
 *
 *   bench_fftdec [--n N] [--len L] [--reps R]
 *
 * CRME with kA = 1, kB = k = n - 2 (two stragglers), float products of L
 * columns, responders chosen with a stride coprime to n; prints the
 * minimum wall time of R decodes with the FFT and with the solve
 * (ts_code_set_fft_decode), and GB/s counting products and targets. When
 * the cost model does not choose the FFT for n, both rows are the solve. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/code.h"
#include "tessera/core.h"

static int gcd(int a, int b) {
    while (b) {
        int t = a % b;
        a = b, b = t;
    }
    return a;
}

int main(int argc, char **argv) {
    long n = 18, len = 1000000, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n"))
            n = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--len"))
            len = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_fftdec [--n N] [--len L] [--reps R]\n");
            return 2;
        }
    }
    if (n < 4 || n > 64 || len < 1 || reps < 1) {
        fprintf(stderr, "bench_fftdec: need 4 <= n <= 64, len >= 1, reps >= 1\n");
        return 2;
    }
    int k = (int)n - 2, rows = 4 * k;
    ts_err e = {0};
    ts_code_params p = {.kind = TS_CODE_CRME, .n = (int)n, .kA = 1, .kB = k};
    ts_code *c = ts_code_new(&p, &e);
    float *in = ts_alloc((size_t)rows * len * sizeof(float));
    float *out = ts_alloc((size_t)rows * len * sizeof(float));
    if (!c || !in || !out) {
        fprintf(stderr, "bench_fftdec: %s\n", c ? "out of memory" : e.msg);
        return 1;
    }
    for (size_t i = 0; i < (size_t)rows * len; i++)
        in[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    memset(out, 0, (size_t)rows * len * sizeof(float));
    const float **ip = malloc((size_t)rows * sizeof *ip);
    float **op = malloc((size_t)rows * sizeof *op);
    int resp[64], stride = 1;
    for (int s = 2; s < n; s++)
        if (gcd(s, (int)n) == 1) {
            stride = s;
            break;
        }
    for (int i = 0; i < rows; i++)
        ip[i] = in + (size_t)i * len, op[i] = out + (size_t)i * len;
    for (int i = 0; i < k; i++)
        resp[i] = (i * stride) % (int)n;
    printf("# crme n=%ld k=%d len=%ld reps=%ld; FFT chosen by the cost model: %s\n", n, k, len,
           reps, ts_code_fft_decode_chosen(c) ? "yes" : "no");
    for (int fft = 1; fft >= 0; fft--) {
        ts_code_set_fft_decode(c, fft);
        double best = 1e30;
        for (long r = 0; r < reps; r++) {
            double t0 = ts_now();
            if (ts_code_decode(c, resp, k, ip, (size_t)len, op, NULL, &e) != TS_OK) {
                fprintf(stderr, "bench_fftdec: %s\n", e.msg);
                return 1;
            }
            double t = ts_now() - t0;
            best = t < best ? t : best;
        }
        printf("%s n=%ld len=%ld: %.3f ms, %.2f GB/s\n", fft ? "fft  " : "solve", n, len,
               best * 1e3, 8.0 * rows * (double)len / best / 1e9);
    }
    free(ip), free(op), ts_free(in), ts_free(out), ts_code_free(c);
    return 0;
}
