/* test_conformance.c: ONNX's own backend test data as Tessera's conformance
 * suite (Debian libonnx-testdata).
 *
 * For every selected case directory: load model.onnx, read each
 * test_data_set_N/input_K.pb and output_0.pb (TensorProto), plan with the
 * first input's batch, run forward and compare with the tolerances ONNX's
 * backend tests use (|got - want| <= atol + rtol * |want|, rtol 1e-3,
 * atol 1e-7). A case the loader or planner refuses as unsupported
 * (TS_ERR_UNSUPPORTED: an op, dtype, rank, ...) is SKIPPED with the
 * refusal printed; any other outcome that is not a match is a FAILURE.
 *
 * Graph inputs that are not initializers are fed at run time
 * (ts_graph_forward_multi), with one exception: an INT64 graph input (a
 * Reshape target in test_reshape_*, Unsqueeze/Squeeze axes) is folded into
 * an initializer from the data set before loading, because Tessera fixes
 * shapes when it plans and takes those from constants. Cases where that
 * happened are counted and marked.
 *
 * Set TS_ONNX_TESTDATA to use another copy of the data. */
#include <dirent.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx.pb-c.h"
#include "tessera/graph.h"

#define RTOL 1e-3
#define ATOL 1e-7
#define MAX_INPUTS 8
#define MAX_CASES 512

typedef struct {
    const char *dir;             /* under the data root */
    const char *const *patterns; /* fnmatch patterns */
} suite;

static const char *const NODE_PATTERNS[] = {"test_conv_*",
                                            "test_basic_conv_*",
                                            "test_maxpool_*",
                                            "test_averagepool_*",
                                            "test_globalaveragepool*",
                                            "test_gemm_*",
                                            "test_matmul_2d",
                                            "test_relu",
                                            "test_leakyrelu*",
                                            "test_batchnorm_*",
                                            "test_softmax_*",
                                            "test_add*",
                                            "test_concat_*",
                                            "test_flatten_*",
                                            "test_reshape_*",
                                            "test_unsqueeze*",
                                            "test_squeeze*",
                                            NULL};
/* PyTorch's converted modules: conv, pool and linear, plus the other ops
 * Tessera supports. */
static const char *const PT_CONVERTED_PATTERNS[] = {
    "test_Conv*", "test_AvgPool*",   "test_MaxPool*", "test_Linear*",   "test_BatchNorm*",
    "test_ReLU",  "test_LeakyReLU*", "test_Softmax",  "test_softmax_*", NULL};
static const char *const PT_OPERATOR_PATTERNS[] = {
    "test_operator_conv",    "test_operator_maxpool",
    "test_operator_addmm",   "test_operator_mm",
    "test_operator_add_*",   "test_operator_addconstant",
    "test_operator_concat2", "test_operator_flatten",
    "test_operator_view",    NULL};

static const suite SUITES[] = {
    {"node", NODE_PATTERNS},
    {"pytorch-converted", PT_CONVERTED_PATTERNS},
    {"pytorch-operator", PT_OPERATOR_PATTERNS},
};

typedef enum { CASE_PASS, CASE_FAIL, CASE_SKIP } case_result;

typedef struct {
    char name[256];
    char reason[600];
    case_result result;
    int folded; /* an INT64 input was folded into an initializer */
} case_report;

/* ---- files ------------------------------------------------------------------ */

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return NULL;
    }
    uint8_t *b = malloc((size_t)st.st_size + 1);
    *len = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (b && *len != (size_t)st.st_size) {
        free(b);
        return NULL;
    }
    return b;
}

static Onnx__TensorProto *read_tensor_pb(const char *path) {
    size_t len;
    uint8_t *b = read_file(path, &len);
    if (!b) return NULL;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, b);
    free(b);
    return t;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The test's own reader of FLOAT TensorProtos, independent of the loader's. */
static ts_tensor *float_tensor(const Onnx__TensorProto *tp, char *why, size_t why_len) {
    if (!tp->has_data_type || tp->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        snprintf(why, why_len, "data tensor has dtype %d, not FLOAT", (int)tp->data_type);
        return NULL;
    }
    if (tp->n_dims > TS_MAX_DIMS) {
        snprintf(why, why_len, "data tensor has rank %zu", tp->n_dims);
        return NULL;
    }
    ts_shape s = {0};
    for (size_t i = 0; i < tp->n_dims; i++)
        s.shape[s.ndim++] = tp->dims[i];
    int64_t n = ts_shape_numel(&s);
    size_t have = tp->has_raw_data ? tp->raw_data.len / 4 : tp->n_float_data;
    if (n < 1 || have != (size_t)n) {
        snprintf(why, why_len, "data tensor has %zu values for %lld elements", have, (long long)n);
        return NULL;
    }
    ts_err e = {0};
    ts_tensor *t = ts_tensor_new(&s, &e);
    if (!t) {
        snprintf(why, why_len, "%s", e.msg);
        return NULL;
    }
    if (tp->has_raw_data) {
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *p = tp->raw_data.data + 4 * i;
            uint32_t u =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&t->data[i], &u, 4);
        }
    } else {
        memcpy(t->data, tp->float_data, (size_t)n * sizeof(float));
    }
    return t;
}

/* ---- one data set ----------------------------------------------------------- */

typedef struct {
    const Onnx__ModelProto *m;
    const char *names[MAX_INPUTS]; /* run-time graph inputs, in order */
    int32_t dtypes[MAX_INPUTS];
    int n;
} model_inputs;

static int is_initializer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && !strcmp(g->initializer[i]->name, name)) return 1;
    return 0;
}

static int list_inputs(const Onnx__ModelProto *m, model_inputs *mi) {
    memset(mi, 0, sizeof *mi);
    mi->m = m;
    for (size_t i = 0; i < m->graph->n_input; i++) {
        const Onnx__ValueInfoProto *vi = m->graph->input[i];
        if (is_initializer(m->graph, vi->name)) continue;
        if (mi->n == MAX_INPUTS) return -1;
        mi->names[mi->n] = vi->name;
        mi->dtypes[mi->n] = vi->type && vi->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                                ? vi->type->tensor_type->elem_type
                                : 0;
        mi->n++;
    }
    return mi->n;
}

/* Packs the model with the INT64 inputs moved into the initializers (data
 * from this data set). The unpacked model is restored before returning. */
static uint8_t *pack_folded(Onnx__ModelProto *m, const model_inputs *mi,
                            Onnx__TensorProto *const *data, size_t *len, int *folded) {
    Onnx__GraphProto *g = m->graph;
    size_t n_in = g->n_input, n_init = g->n_initializer;
    Onnx__ValueInfoProto **in = g->input;
    Onnx__TensorProto **init = g->initializer;
    Onnx__ValueInfoProto **new_in = calloc(n_in + 1, sizeof *new_in);
    Onnx__TensorProto **new_init = calloc(n_init + MAX_INPUTS + 1, sizeof *new_init);
    char *saved_names[MAX_INPUTS] = {0};
    if (n_init) memcpy(new_init, init, n_init * sizeof *init);
    size_t k_in = 0, k_init = n_init;
    *folded = 0;
    for (size_t i = 0; i < n_in; i++) {
        int fold = -1;
        for (int k = 0; k < mi->n; k++)
            if (!strcmp(in[i]->name, mi->names[k]) &&
                mi->dtypes[k] == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
                fold = k;
        if (fold < 0) {
            new_in[k_in++] = in[i];
            continue;
        }
        saved_names[fold] = data[fold]->name;
        data[fold]->name = (char *)mi->names[fold];
        new_init[k_init++] = data[fold];
        *folded = 1;
    }
    g->input = new_in;
    g->n_input = k_in;
    g->initializer = new_init;
    g->n_initializer = k_init;
    *len = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = malloc(*len + 1);
    onnx__model_proto__pack(m, buf);
    g->input = in;
    g->n_input = n_in;
    g->initializer = init;
    g->n_initializer = n_init;
    for (int k = 0; k < mi->n; k++)
        if (data[k] && mi->dtypes[k] == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
            data[k]->name = saved_names[k];
    free(new_in);
    free(new_init);
    return buf;
}

static void compare(const ts_tensor *got, const ts_tensor *want, case_report *r) {
    if (!got || !ts_shape_eq(&got->s, &want->s)) {
        char a[128] = "none", b[128];
        if (got) ts_shape_str(&got->s, a, sizeof a);
        ts_shape_str(&want->s, b, sizeof b);
        r->result = CASE_FAIL;
        snprintf(r->reason, sizeof r->reason, "output shape %s, expected %s", a, b);
        return;
    }
    double worst = 0;
    int64_t bad = -1;
    for (int64_t i = 0; i < want->size; i++) {
        double g = got->data[i], w = want->data[i], d = fabs(g - w);
        if (!(d <= ATOL + RTOL * fabs(w)) && bad < 0) bad = i;
        if (d > worst || isnan(d)) worst = d;
    }
    if (bad >= 0) {
        r->result = CASE_FAIL;
        snprintf(r->reason, sizeof r->reason,
                 "element %lld is %.9g, expected %.9g (max abs error %.3g)", (long long)bad,
                 (double)got->data[bad], (double)want->data[bad], worst);
    }
}

/* Sets r to SKIP on an unsupported refusal, else to FAIL. */
static void refused(case_report *r, const char *stage, const ts_err *e) {
    r->result = e->status == TS_ERR_UNSUPPORTED ? CASE_SKIP : CASE_FAIL;
    snprintf(r->reason, sizeof r->reason, "%s%s%s", r->result == CASE_FAIL ? stage : "",
             r->result == CASE_FAIL ? ": " : "", e->msg);
}

static void run_data_set(Onnx__ModelProto *m, const model_inputs *mi, const char *set_dir,
                         case_report *r) {
    char path[4096];
    Onnx__TensorProto *data[MAX_INPUTS] = {0};
    Onnx__TensorProto *want_pb = NULL;
    ts_tensor *inputs[MAX_INPUTS] = {0};
    ts_tensor *want = NULL;
    ts_graph *g = NULL;
    for (int k = 0; k < mi->n; k++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", set_dir, k);
        if (!(data[k] = read_tensor_pb(path))) {
            r->result = CASE_FAIL;
            snprintf(r->reason, sizeof r->reason, "cannot read %.500s", path);
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/output_0.pb", set_dir);
    if (!(want_pb = read_tensor_pb(path))) {
        r->result = CASE_FAIL;
        snprintf(r->reason, sizeof r->reason, "cannot read %.500s", path);
        goto done;
    }
    size_t len;
    int folded;
    uint8_t *buf = pack_folded(m, mi, data, &len, &folded);
    r->folded |= folded;
    ts_err e = {0};
    g = ts_onnx_load_buffer(buf, len, &e);
    free(buf);
    if (!g) {
        refused(r, "load", &e);
        goto done;
    }
    /* Run-time inputs in the graph's order, matched by name. */
    int n_rt = ts_graph_num_inputs(g);
    const ts_tensor *feed[MAX_INPUTS];
    int batch = 1;
    for (int i = 0; i < n_rt; i++) {
        const char *name = ts_graph_value(g, ts_graph_input_at(g, i)).name;
        int k = 0;
        while (k < mi->n && strcmp(mi->names[k], name))
            k++;
        if (k == mi->n) {
            r->result = CASE_FAIL;
            snprintf(r->reason, sizeof r->reason, "graph input '%s' has no data", name);
            goto done;
        }
        if (!(inputs[k] = float_tensor(data[k], r->reason, sizeof r->reason))) {
            r->result = CASE_FAIL;
            goto done;
        }
        feed[i] = inputs[k];
        if (i == 0 && inputs[k]->s.ndim > 0) batch = (int)inputs[k]->s.shape[0];
    }
    if (!(want = float_tensor(want_pb, r->reason, sizeof r->reason))) {
        r->result = CASE_FAIL;
        goto done;
    }
    if (ts_graph_plan(g, batch, 0, &e) != TS_OK) {
        refused(r, "plan", &e);
        goto done;
    }
    if (ts_graph_forward_multi(g, feed, n_rt, &e) != TS_OK) {
        refused(r, "forward", &e);
        goto done;
    }
    compare(ts_graph_result(g), want, r);
done:
    ts_graph_free(g);
    ts_tensor_free(want);
    for (int k = 0; k < MAX_INPUTS; k++) {
        ts_tensor_free(inputs[k]);
        if (data[k]) onnx__tensor_proto__free_unpacked(data[k], NULL);
    }
    if (want_pb) onnx__tensor_proto__free_unpacked(want_pb, NULL);
}

static void run_case(const char *case_dir, case_report *r) {
    char path[2048];
    snprintf(path, sizeof path, "%s/model.onnx", case_dir);
    size_t len;
    uint8_t *buf = read_file(path, &len);
    Onnx__ModelProto *m = buf ? onnx__model_proto__unpack(NULL, len, buf) : NULL;
    free(buf);
    r->result = CASE_PASS;
    if (!m || !m->graph) {
        r->result = CASE_FAIL;
        snprintf(r->reason, sizeof r->reason, "cannot read %.500s", path);
        if (m) onnx__model_proto__free_unpacked(m, NULL);
        return;
    }
    model_inputs mi;
    if (list_inputs(m, &mi) < 1) {
        r->result = CASE_SKIP;
        snprintf(r->reason, sizeof r->reason, "model has no or too many run-time inputs");
        onnx__model_proto__free_unpacked(m, NULL);
        return;
    }
    int sets = 0;
    for (int s = 0; r->result == CASE_PASS; s++) {
        snprintf(path, sizeof path, "%s/test_data_set_%d", case_dir, s);
        if (!file_exists(path)) break;
        run_data_set(m, &mi, path, r);
        sets++;
    }
    if (sets == 0 && r->result == CASE_PASS) {
        r->result = CASE_FAIL;
        snprintf(r->reason, sizeof r->reason, "no test_data_set_* directories");
    }
    onnx__model_proto__free_unpacked(m, NULL);
}

static int matches(const char *name, const char *const *patterns) {
    for (int i = 0; patterns[i]; i++)
        if (fnmatch(patterns[i], name, 0) == 0) return 1;
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Case directory names of one suite that match, sorted; returns the count. */
static int list_cases(const char *dir, const char *const *patterns, char **out, int cap) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < cap)
        if (de->d_name[0] != '.' && matches(de->d_name, patterns)) out[n++] = strdup(de->d_name);
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, by_name);
    return n;
}

int main(void) {
    const char *root = getenv("TS_ONNX_TESTDATA");
    if (!root) root = "/usr/share/libonnx-testdata/data";
    static case_report reports[MAX_CASES];
    int n_reports = 0, pass = 0, fail = 0, skip = 0, folded = 0;
    for (size_t s = 0; s < sizeof SUITES / sizeof SUITES[0]; s++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", root, SUITES[s].dir);
        char *names[MAX_CASES];
        int n = list_cases(dir, SUITES[s].patterns, names, MAX_CASES - n_reports);
        if (n < 0) {
            fprintf(stderr, "cannot open %s: install libonnx-testdata or set TS_ONNX_TESTDATA\n",
                    dir);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            case_report *r = &reports[n_reports++];
            snprintf(r->name, sizeof r->name, "%s/%s", SUITES[s].dir, names[i]);
            char case_dir[1024];
            snprintf(case_dir, sizeof case_dir, "%s/%s", dir, names[i]);
            run_case(case_dir, r);
            const char *tag = r->result == CASE_PASS   ? "PASS"
                              : r->result == CASE_FAIL ? "FAIL"
                                                       : "SKIP";
            printf("%s %s%s%s%s\n", tag, r->name, r->result == CASE_PASS ? "" : ": ", r->reason,
                   r->folded && r->result == CASE_PASS ? " (INT64 shape/axes input folded)" : "");
            fflush(stdout);
            pass += r->result == CASE_PASS;
            fail += r->result == CASE_FAIL;
            skip += r->result == CASE_SKIP;
            folded += r->folded && r->result == CASE_PASS;
            free(names[i]);
        }
    }
    printf("\nconformance: %d passed, %d failed, %d skipped (of %d cases; %d passed with an "
           "INT64 shape/axes input folded into an initializer)\n",
           pass, fail, skip, n_reports, folded);
    printf("skipped:\n");
    for (int i = 0; i < n_reports; i++)
        if (reports[i].result == CASE_SKIP)
            printf("  %s: %s\n", reports[i].name, reports[i].reason);
    if (fail) {
        printf("failed:\n");
        for (int i = 0; i < n_reports; i++)
            if (reports[i].result == CASE_FAIL)
                printf("  %s: %s\n", reports[i].name, reports[i].reason);
    }
    return fail ? 1 : 0;
}
