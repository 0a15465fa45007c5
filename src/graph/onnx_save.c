/* onnx_save.c: writes a ts_graph as an ONNX model (opset 13, IR version 7)
 * that onnx.checker accepts with full_check.
 *
 * Weights become raw_data initializers (little-endian float32). Every graph
 * input gets the symbolic batch "N" when the graph is batch-generic (shape
 * inference succeeds for two different batch sizes); the output's shape is
 * declared with "N" where it follows the batch. Attributes Tessera keeps
 * only in ts_node_attrs become what opset 13 expects: Reshape's target and
 * Dropout's ratio are INT64/FLOAT initializers fed as inputs.
 *
 * All protobuf-c structures live in one arena freed after packing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "onnx_internal.h"

typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block;

typedef struct {
    arena_block *head;
    int failed;
} arena;

static void *arena_alloc(arena *A, size_t n) {
    arena_block *b = calloc(1, sizeof *b + (n ? n : 1));
    if (!b) {
        A->failed = 1;
        return NULL;
    }
    b->next = A->head;
    A->head = b;
    return b->data;
}

static void arena_free(arena *A) {
    while (A->head) {
        arena_block *n = A->head->next;
        free(A->head);
        A->head = n;
    }
}

static char *arena_str(arena *A, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(A, n);
    if (p) memcpy(p, s, n);
    return p;
}

/* ---- writer state -------------------------------------------------------- */

typedef struct {
    const ts_graph *g;
    arena A;
    ts_shape *shape_a, *shape_b; /* every value's shape at batch 2 and batch 3 */
    int first_follows;           /* the first input's fixed batch is written as "N" */
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    int gen;
    ts_err *err;
} writer;

static Onnx__AttributeProto *attr_new(writer *W, const char *name,
                                      Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = arena_alloc(&W->A, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = arena_str(&W->A, name);
    a->has_type = 1;
    a->type = type;
    return a;
}

static Onnx__AttributeProto *attr_int(writer *W, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr_new(W, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_float(writer *W, const char *name, float v) {
    Onnx__AttributeProto *a = attr_new(W, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
    return a;
}

static Onnx__AttributeProto *attr_ints(writer *W, const char *name, const int64_t *v, int n) {
    Onnx__AttributeProto *a = attr_new(W, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a) return NULL;
    a->ints = arena_alloc(&W->A, sizeof(int64_t) * (size_t)n);
    if (a->ints) memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
    a->n_ints = (size_t)n;
    return a;
}

static ts_status add_init_proto(writer *W, Onnx__TensorProto *t) {
    if (W->n_inits == W->cap_inits) {
        size_t cap = W->cap_inits ? 2 * W->cap_inits : 64;
        Onnx__TensorProto **p = arena_alloc(&W->A, cap * sizeof *p);
        if (!p) return ts_errorf(W->err, TS_ERR_NOMEM, "out of memory writing ONNX");
        if (W->n_inits) memcpy(p, W->inits, W->n_inits * sizeof *p);
        W->inits = p;
        W->cap_inits = cap;
    }
    W->inits[W->n_inits++] = t;
    return TS_OK;
}

static Onnx__TensorProto *tensor_proto(writer *W, const char *name, int32_t dtype,
                                       const ts_shape *s) {
    Onnx__TensorProto *t = arena_alloc(&W->A, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    t->name = arena_str(&W->A, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)s->ndim;
    t->dims = arena_alloc(&W->A, sizeof(int64_t) * (size_t)(s->ndim ? s->ndim : 1));
    if (t->dims) memcpy(t->dims, s->shape, sizeof(int64_t) * (size_t)s->ndim);
    return t;
}

/* float32 as raw little-endian bytes, whatever the host order. */
static ts_status add_float_init(writer *W, const char *name, const ts_tensor *x) {
    Onnx__TensorProto *t = tensor_proto(W, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &x->s);
    uint8_t *raw = t ? arena_alloc(&W->A, (size_t)x->size * 4) : NULL;
    if (!raw)
        return ts_errorf(W->err, TS_ERR_NOMEM, "out of memory writing initializer '%s'", name);
    for (int64_t i = 0; i < x->size; i++) {
        uint32_t u;
        memcpy(&u, &x->data[i], 4);
        for (int k = 0; k < 4; k++)
            raw[4 * i + k] = (uint8_t)(u >> (8 * k));
    }
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = (size_t)x->size * 4;
    return add_init_proto(W, t);
}

static ts_status add_int64_init(writer *W, const char *name, const int64_t *v, int n) {
    ts_shape s = {.ndim = 1, .shape = {n}};
    Onnx__TensorProto *t = tensor_proto(W, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, &s);
    uint8_t *raw = t ? arena_alloc(&W->A, (size_t)n * 8) : NULL;
    if (!raw) return ts_errorf(W->err, TS_ERR_NOMEM, "out of memory writing '%s'", name);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 8; k++)
            raw[8 * i + k] = (uint8_t)((uint64_t)v[i] >> (8 * k));
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = (size_t)n * 8;
    return add_init_proto(W, t);
}

/* A name for an initializer Tessera adds (Reshape targets, Dropout ratios). */
static ts_status fresh_name(writer *W, const char *base, const char *tag, char *out, size_t cap) {
    for (int tries = 0; tries < 1000; tries++) {
        snprintf(out, cap, "%.200s/%s%d", base, tag, W->gen++);
        if (ts_graph_find(W->g, out) < 0) return TS_OK;
    }
    return ts_errorf(W->err, TS_ERR_INVALID, "cannot find a free initializer name");
}

/* ---- shapes -------------------------------------------------------------- */

/* Shapes of all values with the leading dimension of the batch-following
 * inputs set to batch; other inputs keep their declared shapes. */
static ts_status infer_all(writer *W, int64_t batch, ts_shape *shapes) {
    const ts_graph *g = W->g;
    int nv = ts_graph_num_values(g);
    for (int i = 0; i < nv; i++) {
        ts_value_view v = ts_graph_value(g, i);
        shapes[i] = v.init ? v.init->s : v.shape;
    }
    for (int i = 0; i < ts_graph_num_inputs(g); i++) {
        int id = ts_graph_input_at(g, i);
        ts_shape *s = &shapes[id];
        if (s->ndim > 0 && (s->shape[0] < 0 || (i == 0 && W->first_follows))) s->shape[0] = batch;
    }
    for (int i = 0; i < ts_graph_num_nodes(g); i++) {
        ts_node_view n = ts_graph_node(g, i);
        const ts_shape *in[32];
        if (n.n_in > (int)(sizeof in / sizeof in[0]))
            return ts_errorf(W->err, TS_ERR_UNSUPPORTED, "node '%s' has too many inputs", n.name);
        for (int k = 0; k < n.n_in; k++)
            in[k] = n.inputs[k] >= 0 ? &shapes[n.inputs[k]] : NULL;
        ts_status st = ts_onnx_infer_shape(n.op, n.attrs, in, n.n_in, &shapes[n.output], W->err);
        if (st != TS_OK) {
            char msg[sizeof W->err->msg];
            snprintf(msg, sizeof msg, "%s", W->err->msg);
            return ts_errorf(W->err, st, "node '%s' (%s): %s", n.name, ts_op_name(n.op), msg);
        }
    }
    return TS_OK;
}

/* Inputs declared with a dynamic batch get "N". A graph whose inputs are all
 * fixed still gets "N" on its first (data) input when it is batch-generic:
 * shape inference succeeds for two batch sizes, which also tells the
 * batch-following output dimensions from fixed ones. */
static ts_status plan_shapes(writer *W) {
    int nv = ts_graph_num_values(W->g);
    W->shape_a = arena_alloc(&W->A, sizeof(ts_shape) * (size_t)(nv ? nv : 1));
    W->shape_b = arena_alloc(&W->A, sizeof(ts_shape) * (size_t)(nv ? nv : 1));
    if (!W->shape_a || !W->shape_b) return ts_errorf(W->err, TS_ERR_NOMEM, "out of memory");
    int any_dynamic = 0;
    for (int i = 0; i < ts_graph_num_inputs(W->g); i++) {
        ts_value_view v = ts_graph_value(W->g, ts_graph_input_at(W->g, i));
        any_dynamic |= v.shape.ndim > 0 && v.shape.shape[0] < 0;
    }
    W->first_follows = !any_dynamic;
    if (infer_all(W, 2, W->shape_a) == TS_OK && infer_all(W, 3, W->shape_b) == TS_OK) return TS_OK;
    if (any_dynamic) return W->err ? W->err->status : TS_ERR_SHAPE;
    W->first_follows = 0; /* not batch-generic: keep the declared shapes */
    TS_TRY(infer_all(W, 2, W->shape_a));
    memcpy(W->shape_b, W->shape_a, sizeof(ts_shape) * (size_t)nv);
    return TS_OK;
}

static Onnx__ValueInfoProto *value_info(writer *W, int id) {
    ts_value_view v = ts_graph_value(W->g, id);
    const ts_shape *a = &W->shape_a[id], *b = &W->shape_b[id];
    Onnx__ValueInfoProto *vi = arena_alloc(&W->A, sizeof *vi);
    Onnx__TypeProto *tp = arena_alloc(&W->A, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = arena_alloc(&W->A, sizeof *tt);
    Onnx__TensorShapeProto *sp = arena_alloc(&W->A, sizeof *sp);
    Onnx__TensorShapeProto__Dimension **dims =
        arena_alloc(&W->A, sizeof *dims * (size_t)(a->ndim ? a->ndim : 1));
    if (!vi || !tp || !tt || !sp || !dims) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    for (int i = 0; i < a->ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = arena_alloc(&W->A, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (a->shape[i] == b->shape[i]) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = a->shape[i];
        } else if (a->shape[i] == 2 && b->shape[i] == 3) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = arena_str(&W->A, "N");
        } /* else: depends on the batch some other way; left unknown */
        dims[i] = d;
    }
    sp->n_dim = (size_t)a->ndim;
    sp->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = arena_str(&W->A, v.name);
    vi->type = tp;
    return vi;
}

/* ---- nodes ------------------------------------------------------------------ */

typedef struct {
    Onnx__AttributeProto *a[8];
    int n;
    const char *extra_inputs[2]; /* appended after the node's own inputs */
    int n_extra;
} node_extras;

static void push(node_extras *x, Onnx__AttributeProto *a) {
    x->a[x->n++] = a;
}

static void window_attrs(writer *W, node_extras *x, int64_t kh, int64_t kw, int sh, int sw, int pt,
                         int pl, int pb, int pr) {
    int64_t k[2] = {kh, kw}, s[2] = {sh, sw}, p[4] = {pt, pl, pb, pr};
    push(x, attr_ints(W, "kernel_shape", k, 2));
    push(x, attr_ints(W, "strides", s, 2));
    push(x, attr_ints(W, "pads", p, 4));
}

static ts_status node_attrs(writer *W, const ts_node_view *n, node_extras *x, char names[2][256]) {
    const ts_node_attrs *a = n->attrs;
    switch (n->op) {
    case TS_OP_CONV: {
        const ts_shape *ws = &W->shape_a[n->inputs[1]];
        if (ws->ndim != 4)
            return ts_errorf(W->err, TS_ERR_SHAPE, "Conv '%s': weight is not 4-D", n->name);
        const ts_conv2d_params *c = &a->conv;
        window_attrs(W, x, ws->shape[2], ws->shape[3], c->stride_h, c->stride_w, c->pad_t, c->pad_l,
                     c->pad_b, c->pad_r);
        int64_t d[2] = {c->dil_h, c->dil_w};
        push(x, attr_ints(W, "dilations", d, 2));
        push(x, attr_int(W, "group", c->groups));
        return TS_OK;
    }
    case TS_OP_MAXPOOL:
    case TS_OP_AVGPOOL: {
        const ts_pool2d_params *p = &a->pool;
        window_attrs(W, x, p->kh, p->kw, p->stride_h, p->stride_w, p->pad_t, p->pad_l, p->pad_b,
                     p->pad_r);
        int dilated = p->dil_h != 1 || p->dil_w != 1;
        if (n->op == TS_OP_AVGPOOL && dilated)
            return ts_errorf(W->err, TS_ERR_UNSUPPORTED,
                             "AveragePool '%s': dilations need opset 19; Tessera writes opset 13",
                             n->name);
        if (dilated) {
            int64_t d[2] = {p->dil_h, p->dil_w};
            push(x, attr_ints(W, "dilations", d, 2));
        }
        push(x, attr_int(W, "ceil_mode", p->ceil_mode));
        if (n->op == TS_OP_AVGPOOL) push(x, attr_int(W, "count_include_pad", p->count_include_pad));
        return TS_OK;
    }
    case TS_OP_LEAKYRELU: push(x, attr_float(W, "alpha", a->alpha)); return TS_OK;
    case TS_OP_BATCHNORM:
        push(x, attr_float(W, "epsilon", a->epsilon));
        push(x, attr_float(W, "momentum", a->momentum));
        return TS_OK;
    case TS_OP_GEMM:
        push(x, attr_float(W, "alpha", a->alpha));
        push(x, attr_float(W, "beta", a->beta));
        push(x, attr_int(W, "transA", a->trans_a));
        push(x, attr_int(W, "transB", a->trans_b));
        return TS_OK;
    case TS_OP_FLATTEN:
    case TS_OP_CONCAT:
    case TS_OP_SOFTMAX: push(x, attr_int(W, "axis", a->axis)); return TS_OK;
    case TS_OP_RESHAPE: {
        if (a->shape_ndim < 0 || a->shape_ndim > TS_MAX_DIMS)
            return ts_errorf(W->err, TS_ERR_INVALID, "Reshape '%s': bad target", n->name);
        for (int i = 0; i < a->shape_ndim && a->allowzero; i++)
            if (a->shape[i] == 0)
                return ts_errorf(W->err, TS_ERR_UNSUPPORTED,
                                 "Reshape '%s': allowzero needs opset 14; Tessera writes opset 13",
                                 n->name);
        TS_TRY(fresh_name(W, n->name, "shape", names[0], 256));
        TS_TRY(add_int64_init(W, names[0], a->shape, a->shape_ndim));
        x->extra_inputs[x->n_extra++] = names[0];
        return TS_OK;
    }
    case TS_OP_DROPOUT: {
        if (a->ratio == 0.5f) return TS_OK; /* the ONNX default */
        TS_TRY(fresh_name(W, n->name, "ratio", names[0], 256));
        float r = a->ratio;
        ts_tensor t = ts_tensor_view(&r, &(ts_shape){0});
        TS_TRY(add_float_init(W, names[0], &t));
        x->extra_inputs[x->n_extra++] = names[0];
        return TS_OK;
    }
    default: return TS_OK;
    }
}

static ts_status write_node(writer *W, int idx, Onnx__NodeProto **out) {
    ts_node_view n = ts_graph_node(W->g, idx);
    node_extras x;
    memset(&x, 0, sizeof x);
    char names[2][256];
    TS_TRY(node_attrs(W, &n, &x, names));
    Onnx__NodeProto *np = arena_alloc(&W->A, sizeof *np);
    int n_in = n.n_in;
    while (n_in > 0 && n.inputs[n_in - 1] < 0)
        n_in--; /* absent trailing optionals */
    char **ins = arena_alloc(&W->A, sizeof(char *) * (size_t)(n_in + x.n_extra + 1));
    char **outs = arena_alloc(&W->A, sizeof(char *));
    Onnx__AttributeProto **attrs = arena_alloc(&W->A, sizeof *attrs * (size_t)(x.n + 1));
    if (!np || !ins || !outs || !attrs || W->A.failed)
        return ts_errorf(W->err, TS_ERR_NOMEM, "out of memory writing ONNX");
    onnx__node_proto__init(np);
    for (int i = 0; i < n_in; i++)
        ins[i] = arena_str(&W->A, n.inputs[i] >= 0 ? ts_graph_value(W->g, n.inputs[i]).name : "");
    for (int i = 0; i < x.n_extra; i++)
        ins[n_in + i] = arena_str(&W->A, x.extra_inputs[i]);
    outs[0] = arena_str(&W->A, ts_graph_value(W->g, n.output).name);
    for (int i = 0; i < x.n; i++)
        attrs[i] = x.a[i];
    np->n_input = (size_t)(n_in + x.n_extra);
    np->input = ins;
    np->n_output = 1;
    np->output = outs;
    np->name = arena_str(&W->A, n.name ? n.name : "");
    np->op_type = arena_str(&W->A, ts_op_name(n.op));
    np->domain = arena_str(&W->A, "");
    np->n_attribute = (size_t)x.n;
    np->attribute = attrs;
    *out = np;
    return W->A.failed ? ts_errorf(W->err, TS_ERR_NOMEM, "out of memory writing ONNX") : TS_OK;
}

/* ---- the model ---------------------------------------------------------------- */

static ts_status build_graph(writer *W, Onnx__GraphProto *gp) {
    const ts_graph *g = W->g;
    int nv = ts_graph_num_values(g), nn = ts_graph_num_nodes(g), ni = ts_graph_num_inputs(g);
    int out = ts_graph_output(g);
    if (ni < 1 || out < 0)
        return ts_errorf(W->err, TS_ERR_INVALID, "the graph has no input or no output");
    TS_TRY(plan_shapes(W));
    for (int i = 0; i < nv; i++) {
        ts_value_view v = ts_graph_value(g, i);
        if (v.kind == TS_VALUE_INIT) TS_TRY(add_float_init(W, v.name, v.init));
    }
    Onnx__NodeProto **nodes = arena_alloc(&W->A, sizeof *nodes * (size_t)(nn ? nn : 1));
    Onnx__ValueInfoProto **inputs = arena_alloc(&W->A, sizeof *inputs * (size_t)ni);
    Onnx__ValueInfoProto **outputs = arena_alloc(&W->A, sizeof *outputs);
    if (!nodes || !inputs || !outputs) return ts_errorf(W->err, TS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nn; i++)
        TS_TRY(write_node(W, i, &nodes[i]));
    for (int i = 0; i < ni; i++)
        if (!(inputs[i] = value_info(W, ts_graph_input_at(g, i))))
            return ts_errorf(W->err, TS_ERR_NOMEM, "out of memory");
    if (!(outputs[0] = value_info(W, out))) return ts_errorf(W->err, TS_ERR_NOMEM, "out of memory");
    gp->name = arena_str(&W->A, "tessera");
    gp->n_node = (size_t)nn;
    gp->node = nodes;
    gp->n_initializer = W->n_inits;
    gp->initializer = W->inits;
    gp->n_input = (size_t)ni;
    gp->input = inputs;
    gp->n_output = 1;
    gp->output = outputs;
    return W->A.failed ? ts_errorf(W->err, TS_ERR_NOMEM, "out of memory writing ONNX") : TS_OK;
}

static ts_status write_file(const char *path, const uint8_t *buf, size_t len, ts_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return ts_errorf(err, TS_ERR_IO, "cannot create '%s': %s", path, strerror(errno));
    size_t put = fwrite(buf, 1, len, f);
    int bad = put != len || fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad) return ts_errorf(err, TS_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    return TS_OK;
}

ts_status ts_onnx_save(const ts_graph *g, const char *path, ts_err *err) {
    ts_err local;
    if (!err) err = &local;
    if (!g || !path) return ts_errorf(err, TS_ERR_INVALID, "ts_onnx_save needs a graph and a path");
    writer W;
    memset(&W, 0, sizeof W);
    W.g = g;
    W.err = err;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    ts_status st = build_graph(&W, &gp);
    if (st == TS_OK) {
        opset.domain = "";
        opset.has_version = 1;
        opset.version = 13;
        m.has_ir_version = 1;
        m.ir_version = 7;
        m.producer_name = "tessera";
        m.producer_version = "0.1";
        m.n_opset_import = 1;
        m.opset_import = opsets;
        m.graph = &gp;
        size_t len = onnx__model_proto__get_packed_size(&m);
        if (len > TS_ONNX_MAX_FILE_BYTES) {
            st = ts_errorf(err, TS_ERR_UNSUPPORTED, "the model needs %zu bytes; ONNX caps at 2 GiB",
                           len);
        } else {
            uint8_t *buf = malloc(len ? len : 1);
            if (!buf) {
                st = ts_errorf(err, TS_ERR_NOMEM, "out of memory packing the model");
            } else {
                onnx__model_proto__pack(&m, buf);
                st = write_file(path, buf, len, err);
                free(buf);
            }
        }
    }
    arena_free(&W.A);
    return st;
}
