/* bench_conv.c: per-layer conv forward throughput, Tessera against PyTorch
 * in the same run.
 *
 * The layers are the distinct conv layers of the zoo's AlexNet, VGG-16 and
 * ResNet-18 at 3x224x224 (src/graph/zoo.c builds the graphs; the planner's
 * shapes give each layer's input), deduplicated per network (a count says
 * how often a layer occurs). For every (threads, batch, layer) point the
 * Tessera kernel is timed, then PyTorch's F.conv2d on the same shapes via
 * bench/torch_conv.py running as a co-process, so both engines see the same
 * machine load. Each engine: one warm-up run, then at least 3 and at most 30
 * timed runs until `-s` seconds are filled; the table gives p10/p50/p90 of
 * those runs and GFLOP/s at the median. ratio = PyTorch median time /
 * Tessera median time (> 1: Tessera is faster); "r p10" compares the 10th
 * percentiles, which move less when the shared machine is loaded. Per (threads, batch): the
 * geometric mean of the ratios and the slowest layer. The load average
 * (/proc/loadavg) is printed at the start and end of each block: the
 * machine is shared, so numbers are only comparable within one run.
 *
 * usage: bench_conv [-b 1,8] [-t 1,2] [-n alexnet,vgg16,resnet18] [-s 0.3]
 *                   [--path auto|im2col|packed|winograd|taps] [--csv FILE] [--md FILE]
 *                   [--torch SCRIPT | --no-torch] [--python PYTHON]
 */
#include "ops/conv_internal.h"
#include "tessera/graph.h"
#include "tessera/zoo.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_LAYERS = 64, MIN_REPS = 3, MAX_REPS = 30, MAX_LIST = 8, PAUSE_US = 50000 };

typedef struct {
    char net[16], name[32];
    ts_shape x1, w; /* x at batch 1 */
    ts_conv2d_params p;
    int bias, count;
} layer;

typedef struct {
    FILE *to, *from;
    pid_t pid;
    char version[64];
} torch_proc;

typedef struct {
    double p10, p50, p90;
} stats;

/* ---- layers from the zoo ------------------------------------------------ */

static int same_layer(const layer *a, const ts_shape *x, const ts_shape *w,
                      const ts_conv2d_params *p, int bias) {
    return ts_shape_eq(&a->x1, x) && ts_shape_eq(&a->w, w) && !memcmp(&a->p, p, sizeof *p) &&
           a->bias == bias;
}

/* The memory bound at batch 1: weights + the two largest
 * activations + the largest im2col buffer, next to the largest conv
 * workspace the planner reserves (the Winograd path's can be larger than
 * the im2col band). `tessera bench --model zoo:NET` measures peak RSS. */
static void print_memory_bound(const char *net, const ts_graph *g) {
    double weights = 0, a1 = 0, a2 = 0, band = 0, ws = 0;
    for (int i = 0; i < ts_graph_num_values(g); i++) {
        ts_value_view v = ts_graph_value(g, i);
        double b = 4.0 * (double)ts_shape_numel(&v.shape);
        if (v.kind == TS_VALUE_INIT)
            weights += b;
        else if (b > a1)
            a2 = a1, a1 = b;
        else if (b > a2)
            a2 = b;
    }
    for (int i = 0; i < ts_graph_num_nodes(g); i++) {
        ts_node_view nv = ts_graph_node(g, i);
        if (nv.op != TS_OP_CONV) continue;
        ts_shape x = ts_graph_value(g, nv.inputs[0]).shape;
        ts_shape w = ts_graph_value(g, nv.inputs[1]).shape;
        double b = 4.0 * (double)ts_conv_path_workspace_floats(TS_CONV_PATH_IM2COL, &nv.attrs->conv,
                                                               &x, &w);
        double f = 4.0 * (double)ts_conv2d_workspace_floats(&nv.attrs->conv, &x, &w);
        band = b > band ? b : band;
        ws = f > ws ? f : ws;
    }
    const double mib = 1024.0 * 1024.0;
    printf("# %s batch 1: weights %.1f MiB + two largest activations %.1f MiB + largest im2col "
           "band %.1f MiB = bound %.1f MiB (largest conv workspace incl. other paths %.1f MiB)\n",
           net, weights / mib, (a1 + a2) / mib, band / mib, (weights + a1 + a2 + band) / mib,
           ws / mib);
}

static int collect_layers(const char *net, layer *out, int n, ts_err *err) {
    ts_graph *g = ts_zoo_build(net, 1, err);
    if (!g) return -1;
    if (ts_graph_plan(g, 1, 0, err) != TS_OK) {
        ts_graph_free(g);
        return -1;
    }
    print_memory_bound(net, g);
    for (int i = 0; i < ts_graph_num_nodes(g); i++) {
        ts_node_view nv = ts_graph_node(g, i);
        if (nv.op != TS_OP_CONV) continue;
        ts_shape x = ts_graph_value(g, nv.inputs[0]).shape;
        ts_shape w = ts_graph_value(g, nv.inputs[1]).shape;
        int bias = nv.n_in >= 3, j;
        for (j = 0; j < n; j++)
            if (!strcmp(out[j].net, net) && same_layer(&out[j], &x, &w, &nv.attrs->conv, bias))
                break;
        if (j < n) {
            out[j].count++;
            continue;
        }
        if (n == MAX_LAYERS) break;
        layer *l = &out[n++];
        memset(l, 0, sizeof *l);
        snprintf(l->net, sizeof l->net, "%s", net);
        snprintf(l->name, sizeof l->name, "%s", nv.name);
        l->x1 = x, l->w = w, l->p = nv.attrs->conv, l->bias = bias, l->count = 1;
    }
    ts_graph_free(g);
    return n;
}

/* ---- the PyTorch co-process --------------------------------------------- */

static int torch_start(torch_proc *tp, const char *python, const char *script) {
    int in[2], out[2];
    if (pipe(in) || pipe(out)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl(python, python, script, "--serve", (char *)NULL);
        printf("unavailable cannot run %s %s\n", python, script);
        fflush(stdout);
        _exit(127);
    }
    close(in[0]), close(out[1]);
    tp->pid = pid;
    tp->to = fdopen(in[1], "w");
    tp->from = fdopen(out[0], "r");
    char line[256];
    if (!tp->to || !tp->from || !fgets(line, sizeof line, tp->from)) return -1;
    line[strcspn(line, "\n")] = 0;
    if (strncmp(line, "ready ", 6)) {
        fprintf(stderr, "bench_conv: PyTorch not measured: %s\n", line);
        return -1;
    }
    snprintf(tp->version, sizeof tp->version, "%.60s", line + 6);
    return 0;
}

static void torch_stop(torch_proc *tp) {
    if (tp->to) fclose(tp->to);
    if (tp->from) fclose(tp->from);
    if (tp->pid > 0) waitpid(tp->pid, NULL, 0);
    memset(tp, 0, sizeof *tp);
}

/* Times one point in PyTorch; returns the number of runs (0 on error). */
static int torch_time(torch_proc *tp, const layer *l, int batch, int threads, double min_s,
                      double *t) {
    const ts_conv2d_params *p = &l->p;
    fprintf(tp->to, "%lld %lld %lld %lld %lld %lld %d %d %d %d %d %d %d %d %d %d %g\n",
            (long long)l->x1.shape[1], (long long)l->x1.shape[2], (long long)l->x1.shape[3],
            (long long)l->w.shape[0], (long long)l->w.shape[2], (long long)l->w.shape[3],
            p->stride_h, p->stride_w, p->pad_t, p->pad_l, p->pad_b, p->pad_r, p->groups, l->bias,
            batch, threads, min_s);
    if (fflush(tp->to)) return 0;
    static char line[8192];
    if (!fgets(line, sizeof line, tp->from)) return 0;
    if (strncmp(line, "ok ", 3)) {
        fprintf(stderr, "bench_conv: PyTorch failed on %s/%s: %s", l->net, l->name, line);
        return 0;
    }
    int n = 0;
    for (char *s = line + 3, *end; n < MAX_REPS; s = end) {
        double v = strtod(s, &end);
        if (end == s) break;
        t[n++] = v;
    }
    return n;
}

/* ---- Tessera ------------------------------------------------------------ */

static int tessera_time(const layer *l, int batch, int threads, double min_s, int path, double *t,
                        ts_err *err) {
    ts_shape xs = l->x1, ys;
    xs.shape[0] = batch;
    ts_tensor *x = ts_tensor_new(&xs, err), *w = ts_tensor_new(&l->w, err), *b = NULL, *y = NULL;
    float *ws = NULL;
    int n = 0;
    if (!x || !w || ts_conv2d_out_shape(&l->p, &xs, &l->w, &ys, err) != TS_OK) goto done;
    int64_t bd[1] = {l->w.shape[0]};
    ts_shape bs = ts_shape_make(1, bd);
    if (!(y = ts_tensor_new(&ys, err)) || !(b = ts_tensor_new(&bs, err))) goto done;
    size_t wsn = path < 0 ? ts_conv2d_workspace_floats(&l->p, &xs, &l->w)
                          : ts_conv_path_workspace_floats((ts_conv_path)path, &l->p, &xs, &l->w);
    if (wsn && !(ws = ts_alloc(wsn * sizeof(float)))) {
        ts_errorf(err, TS_ERR_NOMEM, "workspace of %zu floats", wsn);
        goto done;
    }
    ts_rng rng;
    ts_rng_seed(&rng, 1);
    ts_rng_fill_uniform(&rng, x->data, x->size, -1, 1);
    ts_rng_fill_uniform(&rng, w->data, w->size, -0.1f, 0.1f);
    ts_rng_fill_uniform(&rng, b->data, b->size, -0.1f, 0.1f);
    ts_threads_set(threads);
    const ts_tensor *bias = l->bias ? b : NULL;
    double total = 0;
    for (int rep = -1; rep < MAX_REPS && (n < MIN_REPS || total < min_s); rep++) {
        double t0 = ts_now();
        ts_status s = path < 0
                          ? ts_conv2d_forward(&l->p, x, w, bias, y, ws, err)
                          : ts_conv_forward_path((ts_conv_path)path, &l->p, x, w, bias, y, ws, err);
        double dt = ts_now() - t0;
        if (s != TS_OK) {
            n = 0;
            break;
        }
        if (rep >= 0) t[n++] = dt, total += dt; /* rep -1 is the warm-up */
    }
done:
    ts_tensor_free(x), ts_tensor_free(w), ts_tensor_free(b), ts_tensor_free(y);
    ts_free(ws);
    return n;
}

/* ---- statistics and output ---------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(const double *s, int n, double q) { /* s sorted, linear */
    double pos = q * (n - 1);
    int i = (int)pos;
    return i + 1 < n ? s[i] + (pos - i) * (s[i + 1] - s[i]) : s[n - 1];
}

static stats stats_of(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return (stats){quantile(t, n, 0.1), quantile(t, n, 0.5), quantile(t, n, 0.9)};
}

/* "a b c" of /proc/loadavg into buf (or "?"). */
static const char *load_avg(char *buf, size_t len) {
    double a, b, c;
    FILE *f = fopen("/proc/loadavg", "r");
    int ok = f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3;
    if (f) fclose(f);
    if (ok)
        snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
    else
        snprintf(buf, len, "?");
    return buf;
}

/* "64x56x56>128 3x3/2" */
static const char *layer_shape(const layer *l, char *buf, size_t len) {
    snprintf(buf, len, "%lldx%lldx%lld>%lld %lldx%lld/%d", (long long)l->x1.shape[1],
             (long long)l->x1.shape[2], (long long)l->x1.shape[3], (long long)l->w.shape[0],
             (long long)l->w.shape[2], (long long)l->w.shape[3], l->p.stride_h);
    return buf;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024 || n == max || (*end && *end != ',')) return -1;
        out[n++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return n;
}

static const char *const k_paths[] = {"im2col", "direct", "packed", "winograd", "taps"};

static int parse_path(const char *s) {
    if (!strcmp(s, "auto")) return -1;
    for (int i = 0; i < TS_CONV_PATH_COUNT; i++)
        if (!strcmp(s, k_paths[i])) return i;
    return -2;
}

static const char *path_name(const layer *l, int batch, int path) {
    ts_shape xs = l->x1;
    xs.shape[0] = batch;
    return k_paths[path >= 0 ? path : (int)ts_conv_default_path(&l->p, &xs, &l->w)];
}

static void usage(void) {
    fprintf(stderr, "usage: bench_conv [-b 1,8] [-t 1,2] [-n alexnet,vgg16,resnet18] [-s 0.3]\n"
                    "                  [--path auto|im2col|packed|winograd|taps] [--csv FILE]\n"
                    "                  [--md FILE]\n"
                    "                  [--torch SCRIPT | --no-torch] [--python PYTHON]\n");
}

/* The script sits next to this source file unless --torch says otherwise. */
static void default_script(char *buf, size_t len) {
    const char *src = __FILE__, *slash = strrchr(src, '/');
    if (slash)
        snprintf(buf, len, "%.*s/torch_conv.py", (int)(slash - src), src);
    else
        snprintf(buf, len, "bench/torch_conv.py");
}

int main(int argc, char **argv) {
    int batches[MAX_LIST] = {1, 8}, threads[MAX_LIST] = {1, 2}, nb = 2, nt = 2, path = -1;
    int use_torch = 1;
    const char *nets = "alexnet,vgg16,resnet18", *csv_path = NULL, *md_path = NULL;
    const char *python = "/usr/bin/python3";
    char script[1024];
    default_script(script, sizeof script);
    double min_s = 0.3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-torch")) {
            use_torch = 0;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v) {
            fprintf(stderr, "bench_conv: option %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-b") && (nb = parse_list(v, batches, MAX_LIST)) > 0) continue;
        if (!strcmp(a, "-t") && (nt = parse_list(v, threads, MAX_LIST)) > 0) continue;
        if (!strcmp(a, "-n")) {
            nets = v;
            continue;
        }
        if (!strcmp(a, "-s") && (min_s = atof(v)) >= 0 && min_s <= 60) continue;
        if (!strcmp(a, "--path") && (path = parse_path(v)) >= -1) continue;
        if (!strcmp(a, "--csv")) {
            csv_path = v;
            continue;
        }
        if (!strcmp(a, "--md")) {
            md_path = v;
            continue;
        }
        if (!strcmp(a, "--torch")) {
            snprintf(script, sizeof script, "%s", v);
            continue;
        }
        if (!strcmp(a, "--python")) {
            python = v;
            continue;
        }
        fprintf(stderr, "bench_conv: bad option or value: %s %s\n", a, v);
        usage();
        return 2;
    }

    static layer layers[MAX_LAYERS];
    int nl = 0;
    ts_err err;
    char list[256];
    snprintf(list, sizeof list, "%s", nets);
    for (char *save = NULL, *net = strtok_r(list, ",", &save); net;
         net = strtok_r(NULL, ",", &save)) {
        int n = collect_layers(net, layers, nl, &err);
        if (n < 0) {
            fprintf(stderr, "bench_conv: network %s: %s\n", net, err.msg);
            return 2;
        }
        nl = n;
    }

    signal(SIGPIPE, SIG_IGN); /* a dead co-process shows up as a failed write */
    torch_proc tp = {0};
    if (use_torch && torch_start(&tp, python, script) != 0) {
        fprintf(stderr, "bench_conv: measuring Tessera alone (PyTorch co-process %s %s failed)\n",
                python, script);
        torch_stop(&tp);
        use_torch = 0;
    }
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL, *md = md_path ? fopen(md_path, "w") : NULL;
    if ((csv_path && !csv) || (md_path && !md)) {
        fprintf(stderr, "bench_conv: cannot write %s\n", csv_path && !csv ? csv_path : md_path);
        return 2;
    }
    if (csv)
        fprintf(csv, "threads,batch,net,layer,shape,count,path,gflop,ts_p10_ms,ts_p50_ms,ts_p90_ms,"
                     "ts_gflops,pt_p10_ms,pt_p50_ms,pt_p90_ms,pt_gflops,ratio,ratio_p10\n");
    printf("# bench_conv: %d distinct conv layers; PyTorch: %s; min %.2f s per point\n", nl,
           use_torch ? tp.version : "not measured", min_s);
    if (md)
        fprintf(md,
                "PyTorch %s; at least %.2f s (3..30 runs) per point and engine; ratio = "
                "PyTorch p50 / Tessera p50 (> 1: Tessera faster).\n",
                use_torch ? tp.version : "not measured", min_s);
    char summary[MAX_LIST * MAX_LIST][320];
    int ns = 0;
    double all_log = 0;
    int all_n = 0, rc = 0;
    for (int ti = 0; ti < nt; ti++) {
        for (int bi = 0; bi < nb; bi++) {
            const int T = threads[ti], B = batches[bi];
            char load0[64], load1[64], shape[64];
            printf("\n## threads %d, batch %d\n# load average at start: %s\n", T, B,
                   load_avg(load0, sizeof load0));
            printf("%-9s %-14s %-20s %3s %-8s %7s | %8s %8s %8s %8s | %8s %8s %8s %8s | %6s "
                   "%6s\n",
                   "net", "layer", "shape", "x", "path", "GFLOP", "ts p10", "p50 ms", "p90",
                   "GFLOP/s", "pt p10", "p50 ms", "p90", "GFLOP/s", "ratio", "r p10");
            if (md)
                fprintf(md,
                        "\n### threads %d, batch %d\n\n| net | layer | shape | x | path | "
                        "GFLOP | Tessera p10 / p50 / p90 ms | GFLOP/s | PyTorch p10 / p50 / "
                        "p90 ms | GFLOP/s | ratio | ratio of p10 "
                        "|\n|---|---|---|---|---|---|---|---|---|---|---|---|"
                        "\n",
                        T, B);
            double sum_log = 0, sum_log10 = 0, worst = 1e30;
            int n = 0, below = 0;
            const char *worst_name = "";
            for (int li = 0; li < nl; li++) {
                const layer *l = &layers[li];
                ts_shape xs = l->x1, ys;
                xs.shape[0] = B;
                if (ts_conv2d_out_shape(&l->p, &xs, &l->w, &ys, &err) != TS_OK) return 1;
                double gflop = 2.0 * (double)ts_shape_numel(&ys) * (double)l->w.shape[1] *
                               (double)l->w.shape[2] * (double)l->w.shape[3] / 1e9;
                double tt[MAX_REPS], pt[MAX_REPS];
                /* Idle OpenMP threads of the PyTorch process spin for a few
                 * ms after each call (libgomp's default wait policy) and
                 * would share the cores with the next engine: let them
                 * settle before each engine's turn. */
                usleep(PAUSE_US);
                int nt_ = tessera_time(l, B, T, min_s, path, tt, &err);
                if (nt_ == 0) {
                    fprintf(stderr, "bench_conv: %s/%s: %s\n", l->net, l->name, err.msg);
                    rc = 1;
                    continue;
                }
                stats ts = stats_of(tt, nt_);
                if (use_torch) usleep(PAUSE_US);
                int np = use_torch ? torch_time(&tp, l, B, T, min_s, pt) : 0;
                const char *pn = path_name(l, B, path);
                layer_shape(l, shape, sizeof shape);
                printf("%-9s %-14s %-20s %3d %-8s %7.3f | %8.3f %8.3f %8.3f %8.1f |", l->net,
                       l->name, shape, l->count, pn, gflop, ts.p10 * 1e3, ts.p50 * 1e3,
                       ts.p90 * 1e3, gflop / ts.p50);
                stats ps = {0, 0, 0};
                double ratio = 0, ratio10 = 0;
                if (np > 0) {
                    ps = stats_of(pt, np);
                    ratio = ps.p50 / ts.p50, ratio10 = ps.p10 / ts.p10;
                    sum_log += log(ratio), sum_log10 += log(ratio10), n++;
                    below += ratio < 0.7;
                    if (ratio < worst) worst = ratio, worst_name = l->name;
                    printf(" %8.3f %8.3f %8.3f %8.1f | %6.2f %6.2f\n", ps.p10 * 1e3, ps.p50 * 1e3,
                           ps.p90 * 1e3, gflop / ps.p50, ratio, ratio10);
                } else {
                    printf(" %8s %8s %8s %8s | %6s %6s\n", "-", "-", "-", "-", "-", "-");
                }
                if (csv)
                    fprintf(csv,
                            "%d,%d,%s,%s,%s,%d,%s,%.4f,%.4f,%.4f,%.4f,%.2f,%.4f,%.4f,%.4f,%.2f,"
                            "%.3f,%.3f\n",
                            T, B, l->net, l->name, shape, l->count, pn, gflop, ts.p10 * 1e3,
                            ts.p50 * 1e3, ts.p90 * 1e3, gflop / ts.p50, ps.p10 * 1e3, ps.p50 * 1e3,
                            ps.p90 * 1e3, np > 0 ? gflop / ps.p50 : 0.0, ratio, ratio10);
                if (md)
                    fprintf(md,
                            "| %s | %s | %s | %d | %s | %.3f | %.2f / %.2f / %.2f | %.1f | "
                            "%.2f / %.2f / %.2f | %.1f | %.2f | %.2f |\n",
                            l->net, l->name, shape, l->count, pn, gflop, ts.p10 * 1e3, ts.p50 * 1e3,
                            ts.p90 * 1e3, gflop / ts.p50, ps.p10 * 1e3, ps.p50 * 1e3, ps.p90 * 1e3,
                            np > 0 ? gflop / ps.p50 : 0.0, ratio, ratio10);
                fflush(stdout);
            }
            printf("# load average at end: %s\n", load_avg(load1, sizeof load1));
            if (n > 0) {
                printf("geomean ratio (threads %d, batch %d): %.3f over %d layers (of p10: %.3f); "
                       "lowest %.3f (%s); %d below 0.7\n",
                       T, B, exp(sum_log / n), n, exp(sum_log10 / n), worst, worst_name, below);
                all_log += sum_log, all_n += n;
                snprintf(summary[ns++], sizeof summary[0],
                         "| %d | %d | %.3f | %.3f | %.2f (%s) | %d | %s -> %s |", T, B,
                         exp(sum_log / n), exp(sum_log10 / n), worst, worst_name, below, load0,
                         load1);
            }
            if (md)
                fprintf(md, "\nLoad average (1/5/15 min) %s at start, %s at end.\n", load0, load1);
        }
    }
    if (all_n > 0)
        printf("\ngeomean ratio over all points: %.3f (%d layer points)\n", exp(all_log / all_n),
               all_n);
    if (md && ns > 0) {
        fprintf(md, "\n### Summary\n\n| threads | batch | geomean ratio | geomean ratio of p10 | "
                    "lowest ratio (layer) | layers < 0.7 | load average start -> end "
                    "|\n|---|---|---|---|---|---|---|\n");
        for (int i = 0; i < ns; i++)
            fprintf(md, "%s\n", summary[i]);
        fprintf(md, "\nGeomean over all %d layer points: %.3f\n", all_n, exp(all_log / all_n));
    }
    if (md) fclose(md);
    if (csv) fclose(csv);
    if (use_torch) torch_stop(&tp);
    return rc;
}
