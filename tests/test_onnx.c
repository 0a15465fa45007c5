/* test_onnx.c: ONNX load and save.
 *
 * - round trips (hand-built graph and the fashion-cnn zoo model): save ->
 *   load -> bit-identical forward outputs, names and trainable flags kept;
 * - onnx.checker (full_check) on the saved files via python3, when the
 *   Debian python3-onnx module is importable;
 * - hostile files: truncation at many offsets and random byte corruption
 *   never crash; each either loads (and then plans and runs) or fails
 *   with a message; deeply nested messages are refused before protobuf-c
 *   would recurse off the stack;
 * - refusals with messages that name the culprit: unsupported op (op and
 *   node name), bad dtype (tensor and dtype), dynamic non-batch dimension
 *   (input), foreign domain, opset out of range, lengths that disagree
 *   with dims, a run-time Reshape shape, training-mode BatchNormalization;
 * - loader semantics not covered by the conformance data: opset < 13
 *   Softmax coercion, Constant nodes (float and int64), auto_pad on a
 *   symbolic batch.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "tessera/graph.h"
#include "tessera/zoo.h"
#include "ts_test.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static ts_tensor *random_tensor(ts_shape s, ts_rng *r, float sd) {
    ts_tensor *t = ts_tensor_new(&s, NULL);
    ts_rng_fill_normal(r, t->data, t->size, sd);
    return t;
}

static ts_shape shape1(int64_t n) {
    return ts_shape_make(1, &n);
}

/* Every op Tessera writes, with non-default attributes where they exist. */
static ts_graph *every_op_net(void) {
    ts_rng r;
    ts_rng_seed(&r, 7);
    ts_graph *g = ts_graph_new();
    ts_err e = {0};
    ts_shape in = ts_shape4(-1, 3, 9, 8);
    int x = ts_graph_add_input(g, "image", &in, &e);
    int w1 = ts_graph_add_init(g, "conv1.w", random_tensor(ts_shape4(6, 1, 3, 3), &r, 0.4f), 1, &e);
    int b1 = ts_graph_add_init(g, "conv1.b", random_tensor(shape1(6), &r, 0.1f), 1, &e);
    ts_node_attrs cv = ts_node_attrs_default(TS_OP_CONV);
    cv.conv.groups = 3;
    cv.conv.stride_h = 2;
    cv.conv.pad_t = 1, cv.conv.pad_l = 2, cv.conv.pad_b = 0, cv.conv.pad_r = 1;
    cv.conv.dil_w = 2;
    int c1 = ts_graph_add_node(g, TS_OP_CONV, "conv1", (int[]){x, w1, b1}, 3, "c1", &cv, &e);
    int ids[4];
    const char *bn_names[4] = {"bn.scale", "bn.bias", "bn.mean", "bn.var"};
    for (int i = 0; i < 4; i++) {
        ts_tensor *t = random_tensor(shape1(6), &r, 0.3f);
        if (i == 3)
            for (int k = 0; k < 6; k++)
                t->data[k] = 1.0f + t->data[k] * t->data[k];
        ids[i] = ts_graph_add_init(g, bn_names[i], t, i < 2, &e);
    }
    ts_node_attrs bn = ts_node_attrs_default(TS_OP_BATCHNORM);
    bn.epsilon = 1e-3f;
    bn.momentum = 0.8f;
    int h = ts_graph_add_node(g, TS_OP_BATCHNORM, "bn", (int[]){c1, ids[0], ids[1], ids[2], ids[3]},
                              5, "h", &bn, &e);
    ts_node_attrs lr = ts_node_attrs_default(TS_OP_LEAKYRELU);
    lr.alpha = 0.2f;
    int h2 = ts_graph_add_node(g, TS_OP_LEAKYRELU, "lrelu", (int[]){h}, 1, "h2", &lr, &e);
    ts_node_attrs mp = ts_node_attrs_default(TS_OP_MAXPOOL);
    mp.pool.kh = mp.pool.kw = 2;
    mp.pool.stride_h = mp.pool.stride_w = 2;
    mp.pool.ceil_mode = 1;
    int p1 = ts_graph_add_node(g, TS_OP_MAXPOOL, "mp", (int[]){h2}, 1, "p1", &mp, &e);
    ts_node_attrs ap = mp;
    ap.pool.pad_t = ap.pool.pad_l = ap.pool.pad_b = ap.pool.pad_r = 1;
    ap.pool.kh = ap.pool.kw = 3;
    ap.pool.ceil_mode = 0;
    ap.pool.count_include_pad = 1;
    int p2 = ts_graph_add_node(g, TS_OP_AVGPOOL, "ap", (int[]){h2}, 1, "p2", &ap, &e);
    int rl = ts_graph_add_node(g, TS_OP_RELU, "relu", (int[]){p2}, 1, "rl", NULL, &e);
    int sum = ts_graph_add_node(g, TS_OP_ADD, "add", (int[]){p1, rl}, 2, "sum", NULL, &e);
    ts_node_attrs cc = ts_node_attrs_default(TS_OP_CONCAT);
    cc.axis = 1;
    int cat = ts_graph_add_node(g, TS_OP_CONCAT, "cat", (int[]){sum, p1}, 2, "cat", &cc, &e);
    int gp = ts_graph_add_node(g, TS_OP_GLOBALAVGPOOL, "gap", (int[]){cat}, 1, "gp", NULL, &e);
    ts_node_attrs rs = ts_node_attrs_default(TS_OP_RESHAPE);
    rs.shape_ndim = 2;
    rs.shape[0] = 0;
    rs.shape[1] = -1;
    int flat = ts_graph_add_node(g, TS_OP_RESHAPE, "reshape", (int[]){gp}, 1, "flat", &rs, &e);
    ts_node_attrs dr = ts_node_attrs_default(TS_OP_DROPOUT);
    dr.ratio = 0.3f;
    int d = ts_graph_add_node(g, TS_OP_DROPOUT, "drop", (int[]){flat}, 1, "d", &dr, &e);
    int wg = ts_graph_add_init(g, "fc.w", random_tensor(ts_shape2(5, 12), &r, 0.3f), 1, &e);
    int bg = ts_graph_add_init(g, "fc.b", random_tensor(shape1(5), &r, 0.1f), 1, &e);
    ts_node_attrs gm = ts_node_attrs_default(TS_OP_GEMM);
    gm.trans_b = 1;
    gm.alpha = 0.5f;
    gm.beta = 2.0f;
    int fc = ts_graph_add_node(g, TS_OP_GEMM, "fc", (int[]){d, wg, bg}, 3, "fc", &gm, &e);
    int wm = ts_graph_add_init(g, "mm.w", random_tensor(ts_shape2(5, 4), &r, 0.3f), 1, &e);
    int mm = ts_graph_add_node(g, TS_OP_MATMUL, "mm", (int[]){fc, wm}, 2, "mm", NULL, &e);
    ts_node_attrs fl = ts_node_attrs_default(TS_OP_FLATTEN);
    int f = ts_graph_add_node(g, TS_OP_FLATTEN, "flatten", (int[]){mm}, 1, "f", &fl, &e);
    ts_node_attrs sm = ts_node_attrs_default(TS_OP_SOFTMAX);
    sm.axis = 1;
    int s = ts_graph_add_node(g, TS_OP_SOFTMAX, "softmax", (int[]){f}, 1, "probs", &sm, &e);
    int id = ts_graph_add_node(g, TS_OP_IDENTITY, "out", (int[]){s}, 1, "output", NULL, &e);
    TS_CHECK_MSG(id >= 0 && e.status == TS_OK, "building the test graph: %s", e.msg);
    ts_graph_set_output(g, id, &e);
    return g;
}

/* Runs forward at this batch on a seeded input; returns a copy of the output. */
static ts_tensor *run(ts_graph *g, int batch, uint64_t seed) {
    ts_err e = {0};
    if (ts_graph_plan(g, batch, 0, &e) != TS_OK) {
        fprintf(stderr, "plan: %s\n", e.msg);
        return NULL;
    }
    ts_value_view in = ts_graph_value(g, ts_graph_input(g));
    ts_rng r;
    ts_rng_seed(&r, seed);
    ts_tensor *x = random_tensor(in.shape, &r, 1.0f);
    ts_status st = ts_graph_forward(g, x, &e);
    ts_tensor_free(x);
    if (st != TS_OK) {
        fprintf(stderr, "forward: %s\n", e.msg);
        return NULL;
    }
    return ts_tensor_clone(ts_graph_result(g), &e);
}

static int bit_identical(const ts_tensor *a, const ts_tensor *b) {
    return a && b && ts_shape_eq(&a->s, &b->s) &&
           !memcmp(a->data, b->data, (size_t)a->size * sizeof(float));
}

/* The python3 that can import onnx (pyenv shims may hide Debian's), or NULL. */
static const char *python_with_onnx(void) {
    static const char *const candidates[] = {"/usr/bin/python3", "python3"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "%s -c 'import onnx' >/dev/null 2>&1", candidates[i]);
        if (system(cmd) == 0) return candidates[i];
    }
    return NULL;
}

static void check_with_onnx_checker(const char *path) {
    const char *py = python_with_onnx();
    if (!py) {
        printf("  skipped onnx.checker for %s: python3 cannot import onnx "
               "(install python3-onnx)\n",
               path);
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s -c \"import onnx, sys; m = onnx.load(sys.argv[1]); "
             "onnx.checker.check_model(m, full_check=True); "
             "assert m.opset_import[0].version == 13 and m.ir_version == 7; "
             "assert m.producer_name == 'tessera'; "
             "assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == 'N'\" '%s'",
             py, path);
    int rc = system(cmd);
    TS_CHECK_MSG(rc == 0, "onnx.checker rejected %s", path);
}

static void round_trip(ts_graph *g, const char *file) {
    ts_err e = {0};
    const char *path = tmp_path(file);
    TS_CHECK_OK(ts_onnx_save(g, path, &e), &e);
    ts_graph *back = ts_onnx_load(path, &e);
    TS_CHECK_MSG(back != NULL, "loading back %s: %s", path, e.msg);
    if (!back) return;
    TS_CHECK(ts_graph_num_nodes(back) == ts_graph_num_nodes(g));
    for (int batch = 1; batch <= 3; batch += 2) {
        ts_tensor *a = run(g, batch, 11 + batch), *b = run(back, batch, 11 + batch);
        TS_CHECK_MSG(bit_identical(a, b), "%s: outputs differ after the round trip (batch %d)",
                     file, batch);
        ts_tensor_free(a);
        ts_tensor_free(b);
    }
    /* Initializers keep their names, data and trainable flags. */
    for (int i = 0; i < ts_graph_num_values(g); i++) {
        ts_value_view v = ts_graph_value(g, i);
        if (v.kind != TS_VALUE_INIT) continue;
        int j = ts_graph_find(back, v.name);
        TS_CHECK_MSG(j >= 0, "initializer %s lost", v.name);
        if (j < 0) continue;
        ts_value_view w = ts_graph_value(back, j);
        TS_CHECK(w.kind == TS_VALUE_INIT && bit_identical(v.init, w.init));
        TS_CHECK_MSG(w.trainable == v.trainable, "%s: trainable %d became %d", v.name, v.trainable,
                     w.trainable);
    }
    ts_graph_free(back);
    check_with_onnx_checker(path);
}

static void test_round_trip_every_op(void) {
    ts_graph *g = every_op_net();
    round_trip(g, "every_op.onnx");
    ts_graph_free(g);
}

static void test_round_trip_zoo(void) {
    ts_err e = {0};
    ts_graph *g = ts_zoo_build("fashion-cnn", 3, &e);
    TS_CHECK_MSG(g != NULL, "%s", e.msg);
    if (!g) return;
    round_trip(g, "fashion_cnn.onnx");
    ts_graph_free(g);
}

/* ---- hand-built models ------------------------------------------------------ */

/* A tiny arena so hand-built protobuf structures are freed under ASan. */
typedef struct mem_node {
    struct mem_node *next;
    max_align_t data[];
} mem_node;
static mem_node *mem_head;

static void *mem(size_t n) {
    mem_node *m = calloc(1, sizeof *m + n);
    m->next = mem_head;
    mem_head = m;
    return m->data;
}

static void mem_free_all(void) {
    while (mem_head) {
        mem_node *n = mem_head->next;
        free(mem_head);
        mem_head = n;
    }
}

static char *str(const char *s) {
    return strcpy(mem(strlen(s) + 1), s);
}

typedef struct {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
    Onnx__NodeProto *nodes[16];
    Onnx__TensorProto *inits[16];
    Onnx__ValueInfoProto *inputs[4], *outputs[2];
} model;

static void model_init(model *md, int64_t opset) {
    memset(md, 0, sizeof *md);
    onnx__model_proto__init(&md->m);
    onnx__graph_proto__init(&md->g);
    onnx__operator_set_id_proto__init(&md->opset);
    md->opset.domain = "";
    md->opset.has_version = 1;
    md->opset.version = opset;
    md->opsets[0] = &md->opset;
    md->m.has_ir_version = 1;
    md->m.ir_version = 7;
    md->m.n_opset_import = 1;
    md->m.opset_import = md->opsets;
    md->m.graph = &md->g;
    md->g.node = md->nodes;
    md->g.initializer = md->inits;
    md->g.input = md->inputs;
    md->g.output = md->outputs;
}

/* dims[i] < 0 writes dim_param params[i] (or leaves the dim unknown when NULL). */
static Onnx__ValueInfoProto *value_info(const char *name, int32_t dtype, int nd,
                                        const int64_t *dims, const char *const *params) {
    Onnx__ValueInfoProto *vi = mem(sizeof *vi);
    Onnx__TypeProto *tp = mem(sizeof *tp);
    Onnx__TypeProto__Tensor *tt = mem(sizeof *tt);
    Onnx__TensorShapeProto *sp = mem(sizeof *sp);
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    sp->n_dim = (size_t)nd;
    sp->dim = mem(sizeof *sp->dim * (size_t)(nd + 1));
    for (int i = 0; i < nd; i++) {
        Onnx__TensorShapeProto__Dimension *d = mem(sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        } else if (params && params[i]) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = str(params[i]);
        }
        sp->dim[i] = d;
    }
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = str(name);
    vi->type = tp;
    return vi;
}

static void add_input(model *md, const char *name, int32_t dtype, int nd, const int64_t *dims,
                      const char *const *params) {
    md->inputs[md->g.n_input++] = value_info(name, dtype, nd, dims, params);
}

static void add_output(model *md, const char *name) {
    md->outputs[md->g.n_output++] =
        value_info(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL, NULL);
}

static Onnx__NodeProto *add_node(model *md, const char *op, const char *name,
                                 const char *const *ins, int n_in, const char *out) {
    Onnx__NodeProto *n = mem(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = str(op);
    n->name = str(name);
    n->input = mem(sizeof(char *) * (size_t)(n_in + 1));
    for (int i = 0; i < n_in; i++)
        n->input[i] = str(ins[i]);
    n->n_input = (size_t)n_in;
    n->output = mem(sizeof(char *));
    n->output[0] = str(out);
    n->n_output = 1;
    n->attribute = mem(sizeof(Onnx__AttributeProto *) * 8);
    md->nodes[md->g.n_node++] = n;
    return n;
}

static Onnx__AttributeProto *add_attr(Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = mem(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = str(name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_i(Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = add_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static void attr_ints(Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v) {
    Onnx__AttributeProto *a = add_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->ints = mem(sizeof(int64_t) * (size_t)cnt);
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)cnt);
    a->n_ints = (size_t)cnt;
}

static void attr_s(Onnx__NodeProto *n, const char *name, const char *v) {
    Onnx__AttributeProto *a = add_attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)str(v);
    a->s.len = strlen(v);
}

static Onnx__TensorProto *tensor(const char *name, int32_t dtype, int nd, const int64_t *dims) {
    Onnx__TensorProto *t = mem(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = str(name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->dims = mem(sizeof(int64_t) * (size_t)(nd + 1));
    memcpy(t->dims, dims, sizeof(int64_t) * (size_t)nd);
    t->n_dims = (size_t)nd;
    return t;
}

/* A FLOAT initializer with values 0.1 * (i % 7) - 0.3 as float_data. */
static Onnx__TensorProto *add_float_init(model *md, const char *name, int nd, const int64_t *dims) {
    Onnx__TensorProto *t = tensor(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, nd, dims);
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= dims[i];
    t->float_data = mem(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        t->float_data[i] = 0.1f * (float)(i % 7) - 0.3f;
    t->n_float_data = (size_t)n;
    md->inits[md->g.n_initializer++] = t;
    return t;
}

static ts_graph *load_model(model *md, ts_err *e) {
    size_t len = onnx__model_proto__get_packed_size(&md->m);
    uint8_t *buf = malloc(len ? len : 1);
    onnx__model_proto__pack(&md->m, buf);
    memset(e, 0, sizeof *e);
    ts_graph *g = ts_onnx_load_buffer(buf, len, e);
    free(buf);
    return g;
}

static const int64_t IMG[4] = {-1, 2, 5, 5};
static const char *const BATCH_N[4] = {"N", NULL, NULL, NULL};
static const int64_t W_DIMS[4] = {3, 2, 3, 3};

/* Input x [N,2,5,5] -> Conv(W) -> op under test. */
static void conv_model(model *md, int64_t opset) {
    model_init(md, opset);
    add_input(md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, IMG, BATCH_N);
    add_float_init(md, "W", 4, W_DIMS);
    add_node(md, "Conv", "conv0", (const char *[]){"x", "W"}, 2, "c");
}

static void expect_refusal(model *md, ts_status want, const char *s1, const char *s2) {
    ts_err e;
    ts_graph *g = load_model(md, &e);
    TS_CHECK_MSG(g == NULL, "a model that should be refused loaded (want '%s')", s1);
    ts_graph_free(g);
    TS_CHECK_MSG(e.status == want, "status %s, want %s: %s", ts_status_name(e.status),
                 ts_status_name(want), e.msg);
    TS_CHECK_MSG(strstr(e.msg, s1) != NULL, "message lacks '%s': %s", s1, e.msg);
    if (s2) TS_CHECK_MSG(strstr(e.msg, s2) != NULL, "message lacks '%s': %s", s2, e.msg);
    printf("  refused as expected: %s\n", e.msg);
}

static void test_unsupported_op(void) {
    model md;
    conv_model(&md, 13);
    add_node(&md, "Tanh", "squash_7", (const char *[]){"c"}, 1, "y");
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_UNSUPPORTED, "Tanh", "squash_7");
    mem_free_all();
}

static void test_bad_dtype(void) {
    model md;
    model_init(&md, 13);
    add_input(&md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, IMG, BATCH_N);
    Onnx__TensorProto *w = tensor("weights_f64", ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, 4, W_DIMS);
    w->n_double_data = 54;
    w->double_data = mem(sizeof(double) * 54);
    md.inits[md.g.n_initializer++] = w;
    add_node(&md, "Conv", "conv0", (const char *[]){"x", "weights_f64"}, 2, "y");
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_UNSUPPORTED, "weights_f64", "DOUBLE");
    mem_free_all();

    model_init(&md, 13);
    add_input(&md, "pixels", ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 4, IMG, BATCH_N);
    add_node(&md, "Relu", "r", (const char *[]){"pixels"}, 1, "y");
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_UNSUPPORTED, "pixels", "UINT8");
    mem_free_all();
}

static void test_dynamic_dim_refused(void) {
    model md;
    model_init(&md, 13);
    static const int64_t dims[4] = {-1, -1, 5, 5};
    static const char *const params[4] = {"batch", "channels", NULL, NULL};
    add_input(&md, "frames", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, dims, params);
    add_node(&md, "Relu", "r", (const char *[]){"frames"}, 1, "y");
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_UNSUPPORTED, "frames", "channels");
    mem_free_all();
}

static void test_opset_and_domain(void) {
    model md;
    conv_model(&md, 22);
    add_output(&md, "c");
    expect_refusal(&md, TS_ERR_UNSUPPORTED, "opset 22", NULL);
    mem_free_all();

    conv_model(&md, 13);
    Onnx__NodeProto *n = add_node(&md, "Gelu", "msft_gelu", (const char *[]){"c"}, 1, "y");
    n->domain = str("com.microsoft");
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_UNSUPPORTED, "com.microsoft", "msft_gelu");
    mem_free_all();
}

static void test_lengths_checked_before_allocating(void) {
    model md;
    model_init(&md, 13);
    add_input(&md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, IMG, BATCH_N);
    /* Dims asking for 10^12 floats backed by 54 values: refused, no allocation. */
    static const int64_t huge[4] = {1000000, 1000, 1000, 1};
    Onnx__TensorProto *w = add_float_init(&md, "W", 4, W_DIMS);
    memcpy(w->dims, huge, sizeof huge);
    add_node(&md, "Conv", "conv0", (const char *[]){"x", "W"}, 2, "y");
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_FORMAT, "'W'", NULL);
    mem_free_all();

    /* raw_data one byte short of the dims. */
    model_init(&md, 13);
    add_input(&md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, IMG, BATCH_N);
    w = tensor("W", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, W_DIMS);
    w->has_raw_data = 1;
    w->raw_data.len = 54 * 4 - 1;
    w->raw_data.data = mem(54 * 4);
    md.inits[md.g.n_initializer++] = w;
    add_node(&md, "Conv", "conv0", (const char *[]){"x", "W"}, 2, "y");
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_FORMAT, "'W'", "need 54");
    mem_free_all();
}

static void test_runtime_reshape_shape_refused(void) {
    model md;
    model_init(&md, 13);
    add_input(&md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, IMG, BATCH_N);
    static const int64_t two = 2;
    add_input(&md, "target", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &two, NULL);
    add_node(&md, "Reshape", "reshape_dyn", (const char *[]){"x", "target"}, 2, "y");
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_UNSUPPORTED, "reshape_dyn", "target");
    mem_free_all();
}

static void test_training_batchnorm_refused(void) {
    model md;
    conv_model(&md, 15);
    static const int64_t three = 3;
    const char *names[4] = {"s", "b", "m", "v"};
    for (int i = 0; i < 4; i++)
        add_float_init(&md, names[i], 1, &three);
    Onnx__NodeProto *n = add_node(&md, "BatchNormalization", "bn_train",
                                  (const char *[]){"c", "s", "b", "m", "v"}, 5, "y");
    attr_i(n, "training_mode", 1);
    add_output(&md, "y");
    expect_refusal(&md, TS_ERR_UNSUPPORTED, "bn_train", "training");
    mem_free_all();
}

static void test_missing_file_and_garbage(void) {
    ts_err e = {0};
    TS_CHECK(ts_onnx_load(tmp_path("does-not-exist.onnx"), &e) == NULL);
    TS_CHECK(e.status == TS_ERR_IO && strstr(e.msg, "does-not-exist"));
    const char junk[] = "this is not a protobuf \xff\xff\xff\xff";
    TS_CHECK(ts_onnx_load_buffer(junk, sizeof junk, &e) == NULL);
    TS_CHECK(e.status == TS_ERR_FORMAT && e.msg[0]);
    TS_CHECK(ts_onnx_load_buffer(junk, 0, &e) == NULL && e.status == TS_ERR_FORMAT);
    TS_CHECK(ts_onnx_load_buffer(junk, 5, NULL) == NULL); /* a NULL err is allowed */
}

/* Softmax before opset 13 normalizes over all dims from axis on. */
static void test_legacy_softmax_coercion(void) {
    model md;
    model_init(&md, 11);
    static const int64_t dims[3] = {-1, 3, 4};
    add_input(&md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 3, dims, BATCH_N);
    Onnx__NodeProto *n = add_node(&md, "Softmax", "sm", (const char *[]){"x"}, 1, "y");
    attr_i(n, "axis", 1);
    add_output(&md, "y");
    ts_err e;
    ts_graph *g = load_model(&md, &e);
    TS_CHECK_MSG(g != NULL, "%s", e.msg);
    if (g) {
        TS_CHECK_OK(ts_graph_plan(g, 2, 0, &e), &e);
        ts_tensor *x = ts_tensor_new(&(ts_shape){3, {2, 3, 4}}, &e);
        for (int i = 0; i < 24; i++)
            x->data[i] = 0.25f * (float)((i * 5) % 11) - 1.0f;
        TS_CHECK_OK(ts_graph_forward(g, x, &e), &e);
        const ts_tensor *y = ts_graph_result(g);
        TS_CHECK(y && y->s.ndim == 3 && y->s.shape[2] == 4);
        for (int b = 0; b < 2 && y; b++) {
            double sum = 0, max = -1e30;
            for (int i = 0; i < 12; i++)
                if (x->data[b * 12 + i] > max) max = x->data[b * 12 + i];
            for (int i = 0; i < 12; i++)
                sum += exp(x->data[b * 12 + i] - max);
            for (int i = 0; i < 12; i++)
                TS_CHECK_NEAR(y->data[b * 12 + i], exp(x->data[b * 12 + i] - max) / sum, 1e-6);
        }
        ts_tensor_free(x);
        ts_graph_free(g);
    }
    mem_free_all();
}

/* Constant nodes feed a Reshape target (value_ints) and an Add (float
 * tensor); auto_pad SAME_UPPER works with a symbolic batch. */
static void test_constants_and_auto_pad(void) {
    model md;
    model_init(&md, 13);
    add_input(&md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, IMG, BATCH_N);
    add_float_init(&md, "W", 4, W_DIMS);
    Onnx__NodeProto *c = add_node(&md, "Conv", "conv0", (const char *[]){"x", "W"}, 2, "c");
    attr_s(c, "auto_pad", "SAME_UPPER");
    attr_ints(c, "strides", 2, (const int64_t[]){2, 2});
    Onnx__NodeProto *k = add_node(&md, "Constant", "shape_const", NULL, 0, "target");
    attr_ints(k, "value_ints", 2, (const int64_t[]){0, -1});
    add_node(&md, "Reshape", "flat", (const char *[]){"c", "target"}, 2, "f");
    Onnx__NodeProto *b = add_node(&md, "Constant", "bias_const", NULL, 0, "bias");
    Onnx__AttributeProto *a = add_attr(b, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = tensor("", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, (const int64_t[]){27});
    a->t->float_data = mem(sizeof(float) * 27);
    for (int i = 0; i < 27; i++)
        a->t->float_data[i] = (float)i;
    a->t->n_float_data = 27;
    add_node(&md, "Add", "add_bias", (const char *[]){"f", "bias"}, 2, "y");
    add_output(&md, "y");
    ts_err e;
    ts_graph *g = load_model(&md, &e);
    TS_CHECK_MSG(g != NULL, "%s", e.msg);
    if (g) {
        /* SAME_UPPER, 5 -> ceil(5/2) = 3 per side: 3 channels x 3 x 3 = 27. */
        TS_CHECK_OK(ts_graph_plan(g, 2, 0, &e), &e);
        ts_tensor *x = ts_tensor_new(&(ts_shape){4, {2, 2, 5, 5}}, &e);
        ts_tensor_fill(x, 1.0f);
        TS_CHECK_OK(ts_graph_forward(g, x, &e), &e);
        const ts_tensor *y = ts_graph_result(g);
        TS_CHECK(y && y->s.ndim == 2 && y->s.shape[0] == 2 && y->s.shape[1] == 27);
        /* Output (0,0,0,0): SAME_UPPER pads total 2 on each axis, 1 before,
         * so the window covers rows/cols -1..1 of the all-ones input. */
        double want = 0;
        for (int ci = 0; ci < 2; ci++)
            for (int r = 1; r < 3; r++)
                for (int q = 1; q < 3; q++)
                    want += 0.1f * (float)((ci * 9 + r * 3 + q) % 7) - 0.3f;
        if (y) TS_CHECK_NEAR(y->data[0], want + 0.0, 1e-5);
        ts_tensor_free(x);
        ts_graph_free(g);
    }
    mem_free_all();
}

/* Unsqueeze/Squeeze (opset 11 attributes) around a symbolic batch become
 * Reshapes with -1 for the batch. */
static void test_unsqueeze_squeeze_symbolic_batch(void) {
    model md;
    model_init(&md, 11);
    static const int64_t dims[2] = {-1, 3};
    add_input(&md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dims, BATCH_N);
    Onnx__NodeProto *u = add_node(&md, "Unsqueeze", "u", (const char *[]){"x"}, 1, "u4");
    attr_ints(u, "axes", 2, (const int64_t[]){1, -1});
    Onnx__NodeProto *q = add_node(&md, "Squeeze", "q", (const char *[]){"u4"}, 1, "y");
    attr_ints(q, "axes", 1, (const int64_t[]){3});
    add_output(&md, "y");
    ts_err e;
    ts_graph *g = load_model(&md, &e);
    TS_CHECK_MSG(g != NULL, "%s", e.msg);
    if (g) {
        TS_CHECK_OK(ts_graph_plan(g, 4, 0, &e), &e);
        ts_tensor *x = ts_tensor_new(&(ts_shape){2, {4, 3}}, &e);
        for (int i = 0; i < 12; i++)
            x->data[i] = (float)i;
        TS_CHECK_OK(ts_graph_forward(g, x, &e), &e);
        const ts_tensor *y = ts_graph_result(g);
        ts_shape want = {3, {4, 1, 3}};
        TS_CHECK(y && ts_shape_eq(&y->s, &want) && !memcmp(y->data, x->data, 12 * sizeof(float)));
        ts_tensor_free(x);
        ts_graph_free(g);
    }
    mem_free_all();
}

/* A 1-D Conv whose weight is a run-time input (lifted by a Reshape node,
 * not by rewriting an initializer), checked against a direct loop. */
static void test_conv1d_runtime_weight(void) {
    model md;
    model_init(&md, 13);
    static const int64_t xd[3] = {-1, 2, 7}, wd[3] = {3, 2, 3};
    add_input(&md, "x", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 3, xd, BATCH_N);
    add_input(&md, "w", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 3, wd, NULL);
    Onnx__NodeProto *c = add_node(&md, "Conv", "conv1d", (const char *[]){"x", "w"}, 2, "y");
    attr_ints(c, "pads", 2, (const int64_t[]){1, 2});
    attr_ints(c, "strides", 1, (const int64_t[]){2});
    add_output(&md, "y");
    ts_err e;
    ts_graph *g = load_model(&md, &e);
    TS_CHECK_MSG(g != NULL, "%s", e.msg);
    if (!g) {
        mem_free_all();
        return;
    }
    ts_rng r;
    ts_rng_seed(&r, 5);
    ts_tensor *x = random_tensor((ts_shape){3, {2, 2, 7}}, &r, 1.0f);
    ts_tensor *w = random_tensor((ts_shape){3, {3, 2, 3}}, &r, 1.0f);
    TS_CHECK_OK(ts_graph_plan(g, 2, 0, &e), &e);
    TS_CHECK_OK(ts_graph_forward_multi(g, (const ts_tensor *[]){x, w}, 2, &e), &e);
    const ts_tensor *y = ts_graph_result(g);
    int ol = (7 + 1 + 2 - 3) / 2 + 1; /* 4 */
    ts_shape want = {3, {2, 3, ol}};
    TS_CHECK(y && ts_shape_eq(&y->s, &want));
    for (int n = 0; n < 2 && y; n++)
        for (int m = 0; m < 3; m++)
            for (int o = 0; o < ol; o++) {
                double acc = 0;
                for (int ci = 0; ci < 2; ci++)
                    for (int k = 0; k < 3; k++) {
                        int pos = o * 2 - 1 + k;
                        if (pos >= 0 && pos < 7)
                            acc += x->data[(n * 2 + ci) * 7 + pos] * w->data[(m * 2 + ci) * 3 + k];
                    }
                TS_CHECK_NEAR(y->data[(n * 3 + m) * ol + o], acc, 1e-5);
            }
    ts_tensor_free(x);
    ts_tensor_free(w);
    ts_graph_free(g);
    mem_free_all();
}

/* ---- hostile files ----------------------------------------------------------- */

static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* Loads a damaged buffer; if it loads, plans and runs it. Returns 1 when it
 * loaded. Any crash or hang fails the test by itself. */
static int try_damaged(const uint8_t *buf, size_t len) {
    ts_err e = {0};
    ts_graph *g = ts_onnx_load_buffer(buf, len, &e);
    if (!g) {
        TS_CHECK_MSG(e.status != TS_OK && e.msg[0], "refused without a message");
        return 0;
    }
    if (ts_graph_plan(g, 2, 0, &e) == TS_OK) {
        ts_value_view in = ts_graph_value(g, ts_graph_input(g));
        if (ts_graph_num_inputs(g) == 1 && ts_shape_numel(&in.shape) < (1 << 22)) {
            ts_tensor *x = ts_tensor_new(&in.shape, &e);
            if (x) {
                ts_tensor_fill(x, 0.5f);
                ts_graph_forward(g, x, &e);
                ts_tensor_free(x);
            }
        }
    }
    ts_graph_free(g);
    return 1;
}

static void test_truncation_and_corruption(void) {
    ts_err e = {0};
    ts_graph *g = every_op_net();
    const char *path = tmp_path("hostile.onnx");
    TS_CHECK_OK(ts_onnx_save(g, path, &e), &e);
    ts_graph_free(g);
    size_t len = 0;
    uint8_t *good = read_all(path, &len);
    TS_CHECK(good && len > 100);
    if (!good) return;
    int sanitized = getenv("TS_SANITIZED") != NULL;
    size_t step = len / (sanitized ? 150 : 600) + 1;
    int loaded = 0, tried = 0;
    for (size_t cut = 0; cut < len; cut += step, tried++)
        loaded += try_damaged(good, cut);
    TS_CHECK(try_damaged(good, len) == 1);
    printf("  truncation: %d cuts of %zu bytes, %d still loaded\n", tried, len, loaded);
    uint8_t *bad = malloc(len);
    ts_rng r;
    ts_rng_seed(&r, 2024);
    int trials = sanitized ? 150 : 600;
    loaded = 0;
    for (int t = 0; t < trials; t++) {
        memcpy(bad, good, len);
        int flips = 1 + (int)ts_rng_below(&r, 4);
        for (int k = 0; k < flips; k++)
            bad[ts_rng_below(&r, len)] = (uint8_t)ts_rng_u64(&r);
        loaded += try_damaged(bad, len);
    }
    printf("  corruption: %d random 1-4 byte corruptions, %d still loaded\n", trials, loaded);
    free(bad);
    free(good);
}

/* Prepends a length-delimited field header for the `len` bytes at *pos. */
static void prepend_header(uint8_t *buf, size_t *pos, int field, size_t len) {
    uint8_t tmp[12];
    size_t n = 0;
    tmp[n++] = (uint8_t)(field << 3 | 2);
    for (uint64_t v = len;; v >>= 7) {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f) break;
    }
    *pos -= n;
    memcpy(buf + *pos, tmp, n);
}

/* Subgraphs nested 60000 deep (Graph.node -> Node.attribute -> Attribute.g)
 * in about 0.7 MB: protobuf-c alone would recurse until the stack overflows. */
static void test_deep_nesting_refused(void) {
    const int depth = 60000;
    size_t cap = (size_t)depth * 3 * 6 + 16, pos = cap;
    uint8_t *buf = malloc(cap);
    for (int i = 0; i < depth; i++) {
        prepend_header(buf, &pos, 6, cap - pos); /* AttributeProto.g */
        prepend_header(buf, &pos, 5, cap - pos); /* NodeProto.attribute */
        prepend_header(buf, &pos, 1, cap - pos); /* GraphProto.node */
    }
    prepend_header(buf, &pos, 7, cap - pos); /* ModelProto.graph */
    ts_err e = {0};
    ts_graph *g = ts_onnx_load_buffer(buf + pos, cap - pos, &e);
    TS_CHECK(g == NULL);
    TS_CHECK_MSG(e.status == TS_ERR_FORMAT && strstr(e.msg, "deep"), "%s", e.msg);
    printf("  refused as expected: %s\n", e.msg);
    ts_graph_free(g);
    free(buf);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ts_test_onnx_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    TS_RUN(test_round_trip_every_op);
    TS_RUN(test_round_trip_zoo);
    TS_RUN(test_unsupported_op);
    TS_RUN(test_bad_dtype);
    TS_RUN(test_dynamic_dim_refused);
    TS_RUN(test_opset_and_domain);
    TS_RUN(test_lengths_checked_before_allocating);
    TS_RUN(test_runtime_reshape_shape_refused);
    TS_RUN(test_training_batchnorm_refused);
    TS_RUN(test_missing_file_and_garbage);
    TS_RUN(test_legacy_softmax_coercion);
    TS_RUN(test_constants_and_auto_pad);
    TS_RUN(test_unsqueeze_squeeze_symbolic_batch);
    TS_RUN(test_conv1d_runtime_weight);
    TS_RUN(test_truncation_and_corruption);
    TS_RUN(test_deep_nesting_refused);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return ts_test_summary();
}
