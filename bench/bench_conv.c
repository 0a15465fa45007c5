/* bench_conv.c: per-layer conv forward throughput of Tessera's CPU kernel.
 *
 * Every distinct conv layer of AlexNet, VGG-16 and ResNet-18 at 3x224x224,
 * for each batch size and thread count asked for. Each point is timed
 * `repeats` times after one warm-up run; repeats adapt to the layer size
 * (at least 3, at most 30, and enough to fill ~0.4 s) so that a full run
 * stays in a few minutes. Prints one CSV row per point:
 *   net,layer,batch,threads,gflop,median_ms,p95_ms,gflops
 * bench/torch_conv.py prints the same rows for PyTorch; run_conv_bench.sh
 * joins them.
 *
 * usage: bench_conv [-b 1,8] [-t 1,2] [-n alexnet,vgg16,resnet18] [-s seconds]
 */
#include "tessera/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *net, *name;
    int c, h, m, k, stride, pad, bias;
} layer;

/* Input spatial size is square (h = w), kernels square, pads symmetric. */
static const layer k_layers[] = {
    {"alexnet", "conv1", 3, 224, 64, 11, 4, 2, 1},
    {"alexnet", "conv2", 64, 27, 192, 5, 1, 2, 1},
    {"alexnet", "conv3", 192, 13, 384, 3, 1, 1, 1},
    {"alexnet", "conv4", 384, 13, 256, 3, 1, 1, 1},
    {"alexnet", "conv5", 256, 13, 256, 3, 1, 1, 1},
    {"vgg16", "conv1_1", 3, 224, 64, 3, 1, 1, 1},
    {"vgg16", "conv1_2", 64, 224, 64, 3, 1, 1, 1},
    {"vgg16", "conv2_1", 64, 112, 128, 3, 1, 1, 1},
    {"vgg16", "conv2_2", 128, 112, 128, 3, 1, 1, 1},
    {"vgg16", "conv3_1", 128, 56, 256, 3, 1, 1, 1},
    {"vgg16", "conv3_2", 256, 56, 256, 3, 1, 1, 1},
    {"vgg16", "conv4_1", 256, 28, 512, 3, 1, 1, 1},
    {"vgg16", "conv4_2", 512, 28, 512, 3, 1, 1, 1},
    {"vgg16", "conv5_1", 512, 14, 512, 3, 1, 1, 1},
    {"resnet18", "conv1", 3, 224, 64, 7, 2, 3, 0},
    {"resnet18", "layer1_conv", 64, 56, 64, 3, 1, 1, 0},
    {"resnet18", "layer2_conv1", 64, 56, 128, 3, 2, 1, 0},
    {"resnet18", "layer2_conv2", 128, 28, 128, 3, 1, 1, 0},
    {"resnet18", "layer2_down", 64, 56, 128, 1, 2, 0, 0},
    {"resnet18", "layer3_conv1", 128, 28, 256, 3, 2, 1, 0},
    {"resnet18", "layer3_conv2", 256, 14, 256, 3, 1, 1, 0},
    {"resnet18", "layer3_down", 128, 28, 256, 1, 2, 0, 0},
    {"resnet18", "layer4_conv1", 256, 14, 512, 3, 2, 1, 0},
    {"resnet18", "layer4_conv2", 512, 7, 512, 3, 1, 1, 0},
    {"resnet18", "layer4_down", 256, 14, 512, 1, 2, 0, 0},
};

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_layer(const layer *L, int batch, int threads, double min_seconds) {
    ts_err err;
    ts_conv2d_params p = ts_conv2d_params_default();
    p.stride_h = p.stride_w = L->stride;
    p.pad_t = p.pad_l = p.pad_b = p.pad_r = L->pad;
    ts_tensor *x = ts_tensor_new4(batch, L->c, L->h, L->h, &err);
    ts_tensor *w = ts_tensor_new4(L->m, L->c, L->k, L->k, &err);
    int64_t bd[1] = {L->m};
    ts_shape bs = ts_shape_make(1, bd), ys;
    ts_tensor *b = ts_tensor_new(&bs, &err);
    if (!x || !w || !b || ts_conv2d_out_shape(&p, &x->s, &w->s, &ys, &err) != TS_OK) {
        fprintf(stderr, "bench_conv: %s\n", err.msg);
        return 1;
    }
    ts_tensor *y = ts_tensor_new(&ys, &err);
    size_t wsn = ts_conv2d_workspace_floats(&p, &x->s, &w->s);
    float *ws = wsn ? ts_alloc(wsn * sizeof(float)) : NULL;
    if (!y || (wsn && !ws)) {
        fprintf(stderr, "bench_conv: out of memory\n");
        return 1;
    }
    ts_rng rng;
    ts_rng_seed(&rng, 1);
    ts_rng_fill_uniform(&rng, x->data, x->size, -1, 1);
    ts_rng_fill_uniform(&rng, w->data, w->size, -0.1f, 0.1f);
    ts_rng_fill_uniform(&rng, b->data, b->size, -0.1f, 0.1f);
    ts_threads_set(threads);
    const ts_tensor *bias = L->bias ? b : NULL;
    double gflop = 2.0 * (double)ys.shape[0] * (double)ys.shape[1] * (double)ys.shape[2] *
                   (double)ys.shape[3] * L->c * L->k * L->k / 1e9;
    enum { MAX_REPS = 30, MIN_REPS = 3 };
    double t[MAX_REPS];
    int reps = 0;
    double total = 0;
    if (ts_conv2d_forward(&p, x, w, bias, y, ws, &err) != TS_OK) { /* warm-up */
        fprintf(stderr, "bench_conv: %s\n", err.msg);
        return 1;
    }
    while (reps < MAX_REPS && (reps < MIN_REPS || total < min_seconds)) {
        double t0 = ts_now();
        ts_conv2d_forward(&p, x, w, bias, y, ws, &err);
        t[reps] = ts_now() - t0;
        total += t[reps++];
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    int i95 = (int)(0.95 * (reps - 1) + 0.999);
    double p95 = t[i95 < reps ? i95 : reps - 1];
    printf("%s,%s,%d,%d,%.4f,%.3f,%.3f,%.2f\n", L->net, L->name, batch, threads, gflop, med * 1e3,
           p95 * 1e3, gflop / med);
    fflush(stdout);
    ts_tensor_free(x);
    ts_tensor_free(w);
    ts_tensor_free(b);
    ts_tensor_free(y);
    ts_free(ws);
    return 0;
}

int main(int argc, char **argv) {
    int batches[8] = {1, 8}, threads[8] = {1, 2};
    int nb = 2, nt = 2;
    const char *nets = "alexnet,vgg16,resnet18";
    double min_seconds = 0.4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_conv: option %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "-b"))
            nb = parse_list(v, batches, 8);
        else if (!strcmp(a, "-t"))
            nt = parse_list(v, threads, 8);
        else if (!strcmp(a, "-n"))
            nets = v;
        else if (!strcmp(a, "-s"))
            min_seconds = atof(v);
        else {
            fprintf(stderr, "usage: bench_conv [-b 1,8] [-t 1,2] [-n alexnet,vgg16,resnet18] "
                            "[-s seconds]\n");
            return 2;
        }
        if (nb < 1 || nt < 1) {
            fprintf(stderr, "bench_conv: bad list '%s' (comma-separated integers 1..1024)\n", v);
            return 2;
        }
    }
    printf("net,layer,batch,threads,gflop,median_ms,p95_ms,gflops\n");
    for (int ti = 0; ti < nt; ti++)
        for (int bi = 0; bi < nb; bi++)
            for (size_t li = 0; li < sizeof k_layers / sizeof k_layers[0]; li++) {
                if (!strstr(nets, k_layers[li].net)) continue;
                if (bench_layer(&k_layers[li], batches[bi], threads[ti], min_seconds)) return 1;
            }
    return 0;
}
