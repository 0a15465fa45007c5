/*
 * graph.c: building, planning and executing a model graph.
 *
 * Planning decides every buffer once. In an inference plan, activations
 * live in a small pool of "slots": a node's output takes a free slot (best
 * fit, grown if none is big enough) and a value's slot returns to the pool
 * after its last consumer runs; element-wise ops whose input dies at that
 * node run in place. A chain network therefore needs two slots the size of
 * its largest activations. A training plan keeps every activation (backward
 * needs them) and adds a gradient buffer per value.
 */
#include "tessera/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TS_MAX_NODE_INPUTS 64

typedef struct {
    char *name;
    ts_value_kind kind;
    ts_shape decl;   /* declared shape (inputs, inits) */
    ts_shape shape;  /* planned shape */
    ts_tensor *init; /* owned initializer data */
    int trainable;
    int producer;    /* node index, or -1 */
    int last_use;    /* node index of the last consumer, planned */
    int slot;        /* activation slot, or -1 */
    ts_tensor act;   /* planned activation header (data in a slot) */
    ts_tensor *grad; /* training plans */
    int is_output;
} value;

typedef struct {
    ts_op op;
    char *name;
    int n_in;
    int *inputs;
    int output;
    ts_node_attrs a;
    int in_place; /* output shares the input's slot */
    /* training state */
    int32_t *argmax;
    uint8_t *mask;
    float *save_mean, *save_invstd;
} node;

typedef struct {
    float *data;
    size_t floats;
    int busy;
} slot;

struct ts_graph {
    value *values;
    int n_values, cap_values;
    node *nodes;
    int n_nodes, cap_nodes;
    int *inputs;
    int n_inputs;
    int output;
    /* plan */
    int planned, training, batch;
    slot *slots;
    int n_slots;
    float *ws;
    size_t ws_floats;
    int *params; /* value ids of trainable inits */
    int n_params;
    const ts_layer_executor *ex;
    ts_rng rng;
};

/* ---- names and defaults ----------------------------------------------- */

static const char *OP_NAMES[TS_OP_COUNT] = {
    [TS_OP_CONV] = "Conv",
    [TS_OP_MAXPOOL] = "MaxPool",
    [TS_OP_AVGPOOL] = "AveragePool",
    [TS_OP_GLOBALAVGPOOL] = "GlobalAveragePool",
    [TS_OP_RELU] = "Relu",
    [TS_OP_LEAKYRELU] = "LeakyRelu",
    [TS_OP_BATCHNORM] = "BatchNormalization",
    [TS_OP_GEMM] = "Gemm",
    [TS_OP_MATMUL] = "MatMul",
    [TS_OP_FLATTEN] = "Flatten",
    [TS_OP_RESHAPE] = "Reshape",
    [TS_OP_ADD] = "Add",
    [TS_OP_CONCAT] = "Concat",
    [TS_OP_SOFTMAX] = "Softmax",
    [TS_OP_DROPOUT] = "Dropout",
    [TS_OP_IDENTITY] = "Identity",
};

const char *ts_op_name(ts_op op) {
    return (op >= 0 && op < TS_OP_COUNT) ? OP_NAMES[op] : "?";
}

ts_node_attrs ts_node_attrs_default(ts_op op) {
    ts_node_attrs a;
    memset(&a, 0, sizeof a);
    a.conv = ts_conv2d_params_default();
    a.pool.stride_h = a.pool.stride_w = 1;
    a.pool.dil_h = a.pool.dil_w = 1;
    a.alpha = op == TS_OP_LEAKYRELU ? 0.01f : 1.0f;
    a.beta = 1.0f;
    a.axis = op == TS_OP_SOFTMAX ? -1 : 1;
    a.epsilon = 1e-5f;
    a.momentum = 0.9f;
    a.ratio = 0.5f;
    return a;
}

/* ---- building --------------------------------------------------------- */

ts_graph *ts_graph_new(void) {
    ts_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->output = -1;
    ts_rng_seed(&g->rng, 1);
    return g;
}

static void free_plan(ts_graph *g) {
    for (int i = 0; i < g->n_slots; i++)
        ts_free(g->slots[i].data);
    free(g->slots);
    g->slots = NULL;
    g->n_slots = 0;
    ts_free(g->ws);
    g->ws = NULL;
    g->ws_floats = 0;
    for (int i = 0; i < g->n_values; i++) {
        ts_tensor_free(g->values[i].grad);
        g->values[i].grad = NULL;
        g->values[i].slot = -1;
        memset(&g->values[i].act, 0, sizeof g->values[i].act);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        free(n->argmax);
        free(n->mask);
        free(n->save_mean);
        free(n->save_invstd);
        n->argmax = NULL;
        n->mask = NULL;
        n->save_mean = n->save_invstd = NULL;
        n->in_place = 0;
    }
    free(g->params);
    g->params = NULL;
    g->n_params = 0;
    g->planned = 0;
}

void ts_graph_free(ts_graph *g) {
    if (!g) return;
    free_plan(g);
    for (int i = 0; i < g->n_values; i++) {
        free(g->values[i].name);
        ts_tensor_free(g->values[i].init);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].inputs);
    }
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g);
}

static int add_value(ts_graph *g, const char *name, ts_value_kind kind, ts_err *err) {
    if (!name || !name[0]) {
        ts_errorf(err, TS_ERR_INVALID, "a graph value needs a non-empty name");
        return -1;
    }
    if (ts_graph_find(g, name) >= 0) {
        ts_errorf(err, TS_ERR_FORMAT, "value '%s' is defined twice", name);
        return -1;
    }
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? 2 * g->cap_values : 32;
        value *v = realloc(g->values, (size_t)cap * sizeof *v);
        if (!v) {
            ts_errorf(err, TS_ERR_NOMEM, "out of memory growing the graph");
            return -1;
        }
        g->values = v;
        g->cap_values = cap;
    }
    value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory growing the graph");
        return -1;
    }
    v->kind = kind;
    v->producer = -1;
    v->slot = -1;
    g->planned = 0;
    return g->n_values++;
}

int ts_graph_find(const ts_graph *g, const char *name) {
    for (int i = 0; i < g->n_values; i++)
        if (!strcmp(g->values[i].name, name)) return i;
    return -1;
}

int ts_graph_add_input(ts_graph *g, const char *name, const ts_shape *shape, ts_err *err) {
    for (int i = 0; i < shape->ndim; i++) {
        if (shape->shape[i] == 0 || shape->shape[i] < -1 || (shape->shape[i] == -1 && i > 0)) {
            char b[128];
            ts_errorf(err, TS_ERR_UNSUPPORTED,
                      "input '%s' has shape %s: only the leading (batch) dimension may be "
                      "dynamic and every dimension must be positive",
                      name, ts_shape_str(shape, b, sizeof b));
            return -1;
        }
    }
    int *in = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *in);
    if (!in) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory growing the graph");
        return -1;
    }
    g->inputs = in;
    int id = add_value(g, name, TS_VALUE_INPUT, err);
    if (id < 0) return -1;
    g->values[id].decl = *shape;
    g->inputs[g->n_inputs++] = id;
    return id;
}

int ts_graph_add_init(ts_graph *g, const char *name, ts_tensor *t, int trainable, ts_err *err) {
    if (!t) {
        ts_errorf(err, TS_ERR_INVALID, "initializer '%s' has no tensor", name ? name : "?");
        return -1;
    }
    int id = add_value(g, name, TS_VALUE_INIT, err);
    if (id < 0) {
        ts_tensor_free(t);
        return -1;
    }
    g->values[id].init = t;
    g->values[id].decl = t->s;
    g->values[id].shape = t->s;
    g->values[id].trainable = trainable;
    return id;
}

/* Which inputs an op takes: minimum and maximum counts. */
static void op_arity(ts_op op, int *lo, int *hi) {
    switch (op) {
    case TS_OP_CONV: *lo = 2, *hi = 3; break;
    case TS_OP_GEMM: *lo = 2, *hi = 3; break;
    case TS_OP_MATMUL: *lo = 2, *hi = 2; break;
    case TS_OP_BATCHNORM: *lo = 5, *hi = 5; break;
    case TS_OP_ADD: *lo = 2, *hi = 2; break;
    case TS_OP_CONCAT: *lo = 1, *hi = TS_MAX_NODE_INPUTS; break;
    default: *lo = 1, *hi = 1; break;
    }
}

int ts_graph_add_node(ts_graph *g, ts_op op, const char *name, const int *inputs, int n_in,
                      const char *out_name, const ts_node_attrs *attrs, ts_err *err) {
    if (op < 0 || op >= TS_OP_COUNT) {
        ts_errorf(err, TS_ERR_INVALID, "node '%s': unknown op %d", name ? name : "?", (int)op);
        return -1;
    }
    const char *nname = name && name[0] ? name : out_name;
    int lo, hi;
    op_arity(op, &lo, &hi);
    if (n_in < lo || n_in > hi) {
        ts_errorf(err, TS_ERR_FORMAT, "node '%s' (%s) has %d inputs; it takes %d to %d", nname,
                  ts_op_name(op), n_in, lo, hi);
        return -1;
    }
    for (int i = 0; i < n_in; i++) {
        int optional = (op == TS_OP_CONV || op == TS_OP_GEMM) && i == 2;
        if (inputs[i] == -1 && optional) continue;
        if (inputs[i] < 0 || inputs[i] >= g->n_values) {
            ts_errorf(err, TS_ERR_FORMAT, "node '%s' (%s): input %d is not a defined value", nname,
                      ts_op_name(op), i);
            return -1;
        }
    }
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 32;
        node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) {
            ts_errorf(err, TS_ERR_NOMEM, "out of memory growing the graph");
            return -1;
        }
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    int out = add_value(g, out_name, TS_VALUE_NODE, err);
    if (out < 0) return -1;
    node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = strdup(nname);
    n->inputs = malloc((size_t)n_in * sizeof *n->inputs);
    if (!n->name || !n->inputs) {
        free(n->name);
        free(n->inputs);
        ts_errorf(err, TS_ERR_NOMEM, "out of memory growing the graph");
        return -1;
    }
    memcpy(n->inputs, inputs, (size_t)n_in * sizeof *inputs);
    n->n_in = n_in;
    n->output = out;
    n->a = attrs ? *attrs : ts_node_attrs_default(op);
    g->values[out].producer = g->n_nodes;
    g->n_nodes++;
    g->output = out; /* the last node is the output unless set otherwise */
    return out;
}

ts_status ts_graph_set_output(ts_graph *g, int id, ts_err *err) {
    if (id < 0 || id >= g->n_values)
        return ts_errorf(err, TS_ERR_INVALID, "graph output %d is not a value", id);
    g->output = id;
    g->planned = 0;
    return TS_OK;
}

/* ---- reading ---------------------------------------------------------- */

int ts_graph_num_nodes(const ts_graph *g) {
    return g->n_nodes;
}

ts_node_view ts_graph_node(const ts_graph *g, int i) {
    TS_ASSERT(i >= 0 && i < g->n_nodes);
    const node *n = &g->nodes[i];
    ts_node_view v = {n->op, n->name, n->n_in, n->inputs, n->output, &n->a};
    return v;
}

int ts_graph_num_values(const ts_graph *g) {
    return g->n_values;
}

ts_value_view ts_graph_value(const ts_graph *g, int id) {
    TS_ASSERT(id >= 0 && id < g->n_values);
    const value *v = &g->values[id];
    ts_value_view vv = {v->name, v->kind,
                        g->planned || v->kind == TS_VALUE_INIT ? v->shape : v->decl, v->init,
                        v->trainable};
    return vv;
}

int ts_graph_input(const ts_graph *g) {
    return g->n_inputs ? g->inputs[0] : -1;
}
int ts_graph_num_inputs(const ts_graph *g) {
    return g->n_inputs;
}
int ts_graph_input_at(const ts_graph *g, int i) {
    return (i >= 0 && i < g->n_inputs) ? g->inputs[i] : -1;
}
int ts_graph_output(const ts_graph *g) {
    return g->output;
}

ts_tensor *ts_graph_init_tensor(ts_graph *g, int id) {
    if (id < 0 || id >= g->n_values) return NULL;
    return g->values[id].init;
}

void ts_graph_set_executor(ts_graph *g, const ts_layer_executor *ex) {
    g->ex = ex;
}
void ts_graph_set_seed(ts_graph *g, uint64_t seed) {
    ts_rng_seed(&g->rng, seed);
}

/* ---- shape inference -------------------------------------------------- */

static const ts_shape *in_shape(const ts_graph *g, const node *n, int i) {
    return &g->values[n->inputs[i]].shape;
}

static ts_status reshape_target(const ts_graph *g, const node *n, ts_shape *out, ts_err *err) {
    const ts_shape *x = in_shape(g, n, 0);
    int64_t total = ts_shape_numel(x), known = 1;
    int infer = -1;
    ts_shape s;
    memset(&s, 0, sizeof s);
    s.ndim = n->a.shape_ndim;
    for (int i = 0; i < s.ndim; i++) {
        int64_t d = n->a.shape[i];
        if (d == 0 && !n->a.allowzero) {
            if (i >= x->ndim)
                return ts_errorf(err, TS_ERR_SHAPE,
                                 "Reshape '%s': 0 at axis %d copies a missing "
                                 "input dimension",
                                 n->name, i);
            d = x->shape[i];
        }
        if (d == -1) {
            if (infer >= 0)
                return ts_errorf(err, TS_ERR_SHAPE, "Reshape '%s': more than one -1", n->name);
            infer = i;
            continue;
        }
        if (d < 0) return ts_errorf(err, TS_ERR_SHAPE, "Reshape '%s': negative size", n->name);
        s.shape[i] = d;
        known *= d;
    }
    if (infer >= 0) {
        if (known == 0 || total % known)
            return ts_errorf(err, TS_ERR_SHAPE, "Reshape '%s': cannot infer -1", n->name);
        s.shape[infer] = total / known;
    }
    if (ts_shape_numel(&s) != total) {
        char a[128], b[128];
        return ts_errorf(err, TS_ERR_SHAPE, "Reshape '%s': %s cannot become %s", n->name,
                         ts_shape_str(x, a, sizeof a), ts_shape_str(&s, b, sizeof b));
    }
    *out = s;
    return TS_OK;
}

static ts_status gemm_shape(const ts_graph *g, const node *n, ts_shape *y, ts_err *err) {
    const ts_shape *a = in_shape(g, n, 0), *b = in_shape(g, n, 1);
    if (a->ndim != 2 || b->ndim != 2)
        return ts_errorf(err, TS_ERR_SHAPE, "%s '%s': inputs must be 2-D (got %d-D and %d-D)",
                         ts_op_name(n->op), n->name, a->ndim, b->ndim);
    int ta = n->op == TS_OP_GEMM && n->a.trans_a, tb = n->op == TS_OP_GEMM && n->a.trans_b;
    int64_t m = ta ? a->shape[1] : a->shape[0], k = ta ? a->shape[0] : a->shape[1];
    int64_t k2 = tb ? b->shape[1] : b->shape[0], nn = tb ? b->shape[0] : b->shape[1];
    if (k != k2)
        return ts_errorf(err, TS_ERR_SHAPE, "%s '%s': inner dimensions %lld and %lld differ",
                         ts_op_name(n->op), n->name, (long long)k, (long long)k2);
    *y = ts_shape2(m, nn);
    return TS_OK;
}

static ts_status infer_shape(const ts_graph *g, const node *n, ts_shape *y, ts_err *err) {
    const ts_shape *x = in_shape(g, n, 0);
    switch (n->op) {
    case TS_OP_CONV: return ts_conv2d_out_shape(&n->a.conv, x, in_shape(g, n, 1), y, err);
    case TS_OP_MAXPOOL:
    case TS_OP_AVGPOOL: return ts_pool2d_out_shape(&n->a.pool, x, y, err);
    case TS_OP_GLOBALAVGPOOL:
        if (x->ndim != 4)
            return ts_errorf(err, TS_ERR_SHAPE, "GlobalAveragePool '%s' needs a 4-D input",
                             n->name);
        *y = ts_shape4(x->shape[0], x->shape[1], 1, 1);
        return TS_OK;
    case TS_OP_GEMM:
    case TS_OP_MATMUL: return gemm_shape(g, n, y, err);
    case TS_OP_FLATTEN: {
        int axis = n->a.axis < 0 ? n->a.axis + x->ndim : n->a.axis;
        if (axis < 0 || axis > x->ndim)
            return ts_errorf(err, TS_ERR_SHAPE, "Flatten '%s': axis %d out of range", n->name,
                             n->a.axis);
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < x->ndim; i++) {
            if (i < axis)
                outer *= x->shape[i];
            else
                inner *= x->shape[i];
        }
        *y = ts_shape2(outer, inner);
        return TS_OK;
    }
    case TS_OP_RESHAPE: return reshape_target(g, n, y, err);
    case TS_OP_ADD: return ts_add_out_shape(x, in_shape(g, n, 1), y, err);
    case TS_OP_CONCAT: {
        const ts_shape *xs[TS_MAX_NODE_INPUTS];
        for (int i = 0; i < n->n_in; i++)
            xs[i] = in_shape(g, n, i);
        return ts_concat_out_shape(xs, n->n_in, n->a.axis, y, err);
    }
    case TS_OP_BATCHNORM:
        if (x->ndim < 2)
            return ts_errorf(err, TS_ERR_SHAPE, "BatchNormalization '%s' needs [N,C,...]", n->name);
        for (int i = 1; i < 5; i++)
            if (ts_shape_numel(in_shape(g, n, i)) != x->shape[1])
                return ts_errorf(err, TS_ERR_SHAPE,
                                 "BatchNormalization '%s': parameter %d has %lld elements for "
                                 "%lld channels",
                                 n->name, i, (long long)ts_shape_numel(in_shape(g, n, i)),
                                 (long long)x->shape[1]);
        *y = *x;
        return TS_OK;
    default: *y = *x; return TS_OK;
    }
}

/* ---- planning --------------------------------------------------------- */

static int elementwise_op(ts_op op) {
    return op == TS_OP_RELU || op == TS_OP_LEAKYRELU || op == TS_OP_IDENTITY ||
           op == TS_OP_DROPOUT || op == TS_OP_FLATTEN || op == TS_OP_RESHAPE ||
           op == TS_OP_BATCHNORM;
}

/* Takes the best-fitting free slot (or grows one, or adds one). */
static int take_slot(ts_graph *g, size_t floats, ts_err *err) {
    int best = -1, largest = -1;
    for (int i = 0; i < g->n_slots; i++) {
        if (g->slots[i].busy) continue;
        if (g->slots[i].floats >= floats &&
            (best < 0 || g->slots[i].floats < g->slots[best].floats))
            best = i;
        if (largest < 0 || g->slots[i].floats > g->slots[largest].floats) largest = i;
    }
    if (best < 0 && largest >= 0) {
        best = largest;
        g->slots[best].floats = floats; /* grown: sizes are final before allocation */
    }
    if (best < 0) {
        slot *s = realloc(g->slots, (size_t)(g->n_slots + 1) * sizeof *s);
        if (!s) {
            ts_errorf(err, TS_ERR_NOMEM, "out of memory planning activations");
            return -1;
        }
        g->slots = s;
        best = g->n_slots++;
        g->slots[best].floats = floats;
        g->slots[best].data = NULL;
    }
    g->slots[best].busy = 1;
    return best;
}

static int value_needs_slot(const value *v) {
    return v->kind != TS_VALUE_INIT;
}

/* Assigns slots to node outputs (inputs get a slot too: the caller's data
 * is copied in, so a caller's buffer is never aliased or written). */
static ts_status assign_slots(ts_graph *g, ts_err *err) {
    for (int i = 0; i < g->n_values; i++)
        g->values[i].last_use = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++)
            if (g->nodes[i].inputs[j] >= 0) g->values[g->nodes[i].inputs[j]].last_use = i;
    for (int i = 0; i < g->n_inputs; i++) {
        value *v = &g->values[g->inputs[i]];
        v->slot = take_slot(g, (size_t)ts_shape_numel(&v->shape), err);
        if (v->slot < 0) return TS_ERR_NOMEM;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        value *out = &g->values[n->output];
        size_t need = (size_t)ts_shape_numel(&out->shape);
        value *in0 = &g->values[n->inputs[0]];
        if (g->training) {
            out->slot = take_slot(g, need, err);
        } else if (elementwise_op(n->op) && value_needs_slot(in0) && in0->last_use == i &&
                   !in0->is_output && in0->kind == TS_VALUE_NODE) {
            n->in_place = 1;
            out->slot = in0->slot;
            in0->slot = -1; /* ownership moves to the output */
        } else {
            out->slot = take_slot(g, need, err);
        }
        if (out->slot < 0) return TS_ERR_NOMEM;
        if (g->training) continue;
        /* Release inputs whose last use was this node. */
        for (int j = 0; j < n->n_in; j++) {
            int id = n->inputs[j];
            if (id < 0) continue;
            value *v = &g->values[id];
            if (v->last_use == i && v->slot >= 0 && !v->is_output && v->kind != TS_VALUE_INIT) {
                int still_used = 0; /* the same value twice in one node */
                for (int k = 0; k < j; k++)
                    still_used |= n->inputs[k] == id;
                if (!still_used) g->slots[v->slot].busy = 0;
            }
        }
    }
    return TS_OK;
}

static size_t node_workspace(const ts_graph *g, const node *n) {
    if (n->op != TS_OP_CONV) return 0;
    return ts_conv2d_workspace_floats(&n->a.conv, in_shape(g, n, 0), in_shape(g, n, 1));
}

static ts_status alloc_training_state(ts_graph *g, ts_err *err) {
    for (int i = 0; i < g->n_values; i++) {
        value *v = &g->values[i];
        if (v->kind == TS_VALUE_INIT && !v->trainable) continue;
        v->grad = ts_tensor_new(&v->shape, err);
        if (!v->grad) return TS_ERR_NOMEM;
    }
    g->params = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *g->params);
    if (!g->params) return ts_errorf(err, TS_ERR_NOMEM, "out of memory planning training");
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].kind == TS_VALUE_INIT && g->values[i].trainable)
            g->params[g->n_params++] = i;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        const ts_shape *ys = &g->values[n->output].shape;
        int64_t ny = ts_shape_numel(ys);
        if (n->op == TS_OP_MAXPOOL && !(n->argmax = malloc((size_t)ny * sizeof(int32_t))))
            return ts_errorf(err, TS_ERR_NOMEM, "out of memory planning training");
        if (n->op == TS_OP_DROPOUT && !(n->mask = malloc((size_t)ny)))
            return ts_errorf(err, TS_ERR_NOMEM, "out of memory planning training");
        if (n->op == TS_OP_BATCHNORM) {
            size_t c = (size_t)ys->shape[1];
            n->save_mean = malloc(c * sizeof(float));
            n->save_invstd = malloc(c * sizeof(float));
            if (!n->save_mean || !n->save_invstd)
                return ts_errorf(err, TS_ERR_NOMEM, "out of memory planning training");
        }
    }
    return TS_OK;
}

ts_status ts_graph_plan(ts_graph *g, int batch, int training, ts_err *err) {
    free_plan(g);
    if (batch < 1) return ts_errorf(err, TS_ERR_INVALID, "batch size must be at least 1");
    if (g->n_inputs == 0 || g->output < 0)
        return ts_errorf(err, TS_ERR_INVALID, "the graph has no input or no output");
    g->training = training;
    g->batch = batch;
    for (int i = 0; i < g->n_values; i++)
        g->values[i].is_output = i == g->output;
    for (int i = 0; i < g->n_inputs; i++) {
        value *v = &g->values[g->inputs[i]];
        v->shape = v->decl;
        if (v->shape.ndim > 0 && v->shape.shape[0] == -1) v->shape.shape[0] = batch;
    }
    size_t ws = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        node *n = &g->nodes[i];
        TS_TRY(infer_shape(g, n, &g->values[n->output].shape, err));
        size_t w = node_workspace(g, n);
        if (w > ws) ws = w;
    }
    ts_status st = assign_slots(g, err);
    if (st != TS_OK) return st;
    for (int i = 0; i < g->n_slots; i++) {
        size_t f = g->slots[i].floats ? g->slots[i].floats : 1;
        if (!(g->slots[i].data = ts_calloc(f * sizeof(float))))
            return ts_errorf(err, TS_ERR_NOMEM, "out of memory allocating activations");
    }
    for (int i = 0; i < g->n_values; i++) {
        value *v = &g->values[i];
        if (v->kind == TS_VALUE_INIT) {
            v->act = ts_tensor_view(v->init->data, &v->init->s);
            continue;
        }
        int s = v->slot;
        if (s < 0 && v->producer >= 0) {
            /* the slot moved on to an in-place successor: follow it */
            int id = i;
            while (s < 0) {
                int next = -1;
                for (int k = 0; k < g->n_nodes && next < 0; k++)
                    if (g->nodes[k].in_place && g->nodes[k].inputs[0] == id)
                        next = g->nodes[k].output;
                if (next < 0) break;
                id = next;
                s = g->values[id].slot;
            }
        }
        if (s >= 0) v->act = ts_tensor_view(g->slots[s].data, &v->shape);
    }
    ws = ws ? ws : 1;
    if (!(g->ws = ts_alloc(ws * sizeof(float))))
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory allocating the conv workspace");
    g->ws_floats = ws;
    if (training) TS_TRY(alloc_training_state(g, err));
    g->planned = 1;
    return TS_OK;
}

size_t ts_graph_planned_bytes(const ts_graph *g) {
    size_t b = g->ws_floats * sizeof(float);
    for (int i = 0; i < g->n_slots; i++)
        b += g->slots[i].floats * sizeof(float);
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].grad) b += (size_t)g->values[i].grad->size * sizeof(float);
    return b;
}

int64_t ts_graph_node_macs(const ts_graph *g, int i) {
    TS_ASSERT(i >= 0 && i < g->n_nodes);
    const node *n = &g->nodes[i];
    const ts_shape *y = &g->values[n->output].shape;
    if (n->op == TS_OP_CONV) {
        const ts_shape *w = in_shape(g, n, 1);
        return ts_shape_numel(y) * w->shape[1] * w->shape[2] * w->shape[3];
    }
    if (n->op == TS_OP_GEMM || n->op == TS_OP_MATMUL) {
        const ts_shape *a = in_shape(g, n, 0);
        int64_t k = (n->op == TS_OP_GEMM && n->a.trans_a) ? a->shape[0] : a->shape[1];
        return ts_shape_numel(y) * k;
    }
    return 0;
}

/* ---- forward ---------------------------------------------------------- */

static const ts_tensor *in_act(const ts_graph *g, const node *n, int i) {
    int id = n->inputs[i];
    return id < 0 ? NULL : &g->values[id].act;
}

static void copy_act(const ts_tensor *x, ts_tensor *y) {
    if (x->data != y->data) memcpy(y->data, x->data, (size_t)x->size * sizeof(float));
}

static ts_status run_conv(ts_graph *g, int idx, ts_err *err) {
    node *n = &g->nodes[idx];
    ts_tensor *y = &g->values[n->output].act;
    const ts_tensor *b = n->n_in > 2 ? in_act(g, n, 2) : NULL;
    if (g->ex && g->ex->conv && !g->training)
        return g->ex->conv(g->ex->ctx, idx, &n->a.conv, in_act(g, n, 0), in_act(g, n, 1), b, y,
                           err);
    return ts_conv2d_forward(&n->a.conv, in_act(g, n, 0), in_act(g, n, 1), b, y, g->ws, err);
}

static ts_status run_gemm(ts_graph *g, int idx, ts_err *err) {
    node *n = &g->nodes[idx];
    ts_tensor *y = &g->values[n->output].act;
    const ts_tensor *c = n->n_in > 2 ? in_act(g, n, 2) : NULL;
    if (n->op == TS_OP_MATMUL)
        return ts_gemm_forward(0, 0, 1.0f, 0.0f, in_act(g, n, 0), in_act(g, n, 1), NULL, y, err);
    if (g->ex && g->ex->gemm && !g->training)
        return g->ex->gemm(g->ex->ctx, idx, &n->a, in_act(g, n, 0), in_act(g, n, 1), c, y, err);
    return ts_gemm_forward(n->a.trans_a, n->a.trans_b, n->a.alpha, n->a.beta, in_act(g, n, 0),
                           in_act(g, n, 1), c, y, err);
}

static ts_status run_batchnorm(ts_graph *g, node *n, ts_err *err) {
    ts_tensor *y = &g->values[n->output].act;
    const ts_tensor *x = in_act(g, n, 0);
    if (!g->training)
        return ts_batchnorm_forward_infer(x, in_act(g, n, 1), in_act(g, n, 2), in_act(g, n, 3),
                                          in_act(g, n, 4), n->a.epsilon, y, err);
    return ts_batchnorm_forward_train(x, in_act(g, n, 1), in_act(g, n, 2), n->a.epsilon,
                                      n->a.momentum, g->values[n->inputs[3]].init,
                                      g->values[n->inputs[4]].init, y, n->save_mean, n->save_invstd,
                                      err);
}

static ts_status run_node(ts_graph *g, int idx, ts_err *err) {
    node *n = &g->nodes[idx];
    ts_tensor *y = &g->values[n->output].act;
    const ts_tensor *x = in_act(g, n, 0);
    switch (n->op) {
    case TS_OP_CONV: return run_conv(g, idx, err);
    case TS_OP_GEMM:
    case TS_OP_MATMUL: return run_gemm(g, idx, err);
    case TS_OP_MAXPOOL: return ts_maxpool2d_forward(&n->a.pool, x, y, n->argmax, err);
    case TS_OP_AVGPOOL: return ts_avgpool2d_forward(&n->a.pool, x, y, err);
    case TS_OP_GLOBALAVGPOOL: return ts_global_avgpool_forward(x, y, err);
    case TS_OP_RELU: return ts_leaky_relu_forward(x, 0.0f, y, err);
    case TS_OP_LEAKYRELU: return ts_leaky_relu_forward(x, n->a.alpha, y, err);
    case TS_OP_BATCHNORM: return run_batchnorm(g, n, err);
    case TS_OP_ADD: return ts_add_forward(x, in_act(g, n, 1), y, err);
    case TS_OP_CONCAT: {
        const ts_tensor *xs[TS_MAX_NODE_INPUTS];
        for (int i = 0; i < n->n_in; i++)
            xs[i] = in_act(g, n, i);
        return ts_concat_forward(xs, n->n_in, n->a.axis, y, err);
    }
    case TS_OP_SOFTMAX: return ts_softmax_forward(x, n->a.axis, y, err);
    case TS_OP_DROPOUT:
        if (!g->training) {
            copy_act(x, y);
            return TS_OK;
        }
        return ts_dropout_forward(x, n->a.ratio, 1, &g->rng, n->mask, y, err);
    case TS_OP_FLATTEN:
    case TS_OP_RESHAPE:
    case TS_OP_IDENTITY: copy_act(x, y); return TS_OK;
    default: return ts_errorf(err, TS_ERR_UNSUPPORTED, "node '%s': op not executable", n->name);
    }
}

static ts_status forward_impl(ts_graph *g, const ts_tensor *const *inputs, int n_inputs,
                              double *node_seconds, ts_err *err) {
    if (!g->planned) return ts_errorf(err, TS_ERR_INVALID, "the graph is not planned");
    if (n_inputs != g->n_inputs)
        return ts_errorf(err, TS_ERR_INVALID, "the graph takes %d inputs, %d given", g->n_inputs,
                         n_inputs);
    for (int i = 0; i < n_inputs; i++) {
        value *v = &g->values[g->inputs[i]];
        if (!ts_shape_eq(&inputs[i]->s, &v->shape)) {
            char a[128], b[128];
            return ts_errorf(err, TS_ERR_SHAPE, "input '%s' has shape %s; the plan expects %s",
                             v->name, ts_shape_str(&inputs[i]->s, a, sizeof a),
                             ts_shape_str(&v->shape, b, sizeof b));
        }
        copy_act(inputs[i], &v->act);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        double t0 = node_seconds ? ts_now() : 0;
        ts_status s = run_node(g, i, err);
        if (s != TS_OK) return s;
        if (node_seconds) node_seconds[i] += ts_now() - t0;
    }
    return TS_OK;
}

ts_status ts_graph_forward_multi(ts_graph *g, const ts_tensor *const *inputs, int n_inputs,
                                 ts_err *err) {
    return forward_impl(g, inputs, n_inputs, NULL, err);
}

ts_status ts_graph_forward(ts_graph *g, const ts_tensor *input, ts_err *err) {
    return forward_impl(g, &input, 1, NULL, err);
}

ts_status ts_graph_forward_profiled(ts_graph *g, const ts_tensor *input, double *node_seconds,
                                    ts_err *err) {
    return forward_impl(g, &input, 1, node_seconds, err);
}

const ts_tensor *ts_graph_result(const ts_graph *g) {
    if (!g->planned || g->output < 0) return NULL;
    return &g->values[g->output].act;
}

const ts_tensor *ts_graph_value_tensor(const ts_graph *g, int id) {
    if (!g->planned || id < 0 || id >= g->n_values || !g->values[id].act.data) return NULL;
    return &g->values[id].act;
}

/* ---- backward --------------------------------------------------------- */

static ts_tensor *in_grad(ts_graph *g, const node *n, int i) {
    int id = n->inputs[i];
    return id < 0 ? NULL : g->values[id].grad;
}

static void accumulate(ts_tensor *dx, const ts_tensor *dy) {
    if (!dx) return;
    for (int64_t i = 0; i < dy->size; i++)
        dx->data[i] += dy->data[i];
}

static ts_status back_node(ts_graph *g, int idx, ts_err *err) {
    node *n = &g->nodes[idx];
    const ts_tensor *dy = g->values[n->output].grad;
    const ts_tensor *x = in_act(g, n, 0);
    ts_tensor *dx = in_grad(g, n, 0);
    switch (n->op) {
    case TS_OP_CONV:
        return ts_conv2d_backward(&n->a.conv, x, in_act(g, n, 1), dy, dx, in_grad(g, n, 1),
                                  n->n_in > 2 ? in_grad(g, n, 2) : NULL, g->ws, err);
    case TS_OP_GEMM:
        return ts_gemm_backward(n->a.trans_a, n->a.trans_b, n->a.alpha, n->a.beta, x,
                                in_act(g, n, 1), n->n_in > 2 ? in_act(g, n, 2) : NULL, dy, dx,
                                in_grad(g, n, 1), n->n_in > 2 ? in_grad(g, n, 2) : NULL, err);
    case TS_OP_MATMUL:
        return ts_gemm_backward(0, 0, 1.0f, 0.0f, x, in_act(g, n, 1), NULL, dy, dx,
                                in_grad(g, n, 1), NULL, err);
    case TS_OP_MAXPOOL: return ts_maxpool2d_backward(&n->a.pool, dy, n->argmax, dx, err);
    case TS_OP_AVGPOOL: return ts_avgpool2d_backward(&n->a.pool, dy, dx, err);
    case TS_OP_GLOBALAVGPOOL: return ts_global_avgpool_backward(dy, dx, err);
    case TS_OP_RELU: return ts_leaky_relu_backward(x, 0.0f, dy, dx, err);
    case TS_OP_LEAKYRELU: return ts_leaky_relu_backward(x, n->a.alpha, dy, dx, err);
    case TS_OP_BATCHNORM:
        return ts_batchnorm_backward(x, in_act(g, n, 1), n->save_mean, n->save_invstd, dy, dx,
                                     in_grad(g, n, 1), in_grad(g, n, 2), err);
    case TS_OP_ADD: return ts_add_backward(dy, dx, in_grad(g, n, 1), err);
    case TS_OP_CONCAT: {
        ts_tensor *dxs[TS_MAX_NODE_INPUTS];
        for (int i = 0; i < n->n_in; i++)
            dxs[i] = in_grad(g, n, i);
        return ts_concat_backward(dy, n->a.axis, dxs, n->n_in, err);
    }
    case TS_OP_DROPOUT: return ts_dropout_backward(dy, n->a.ratio, n->mask, dx, err);
    case TS_OP_FLATTEN:
    case TS_OP_RESHAPE:
    case TS_OP_IDENTITY: accumulate(dx, dy); return TS_OK;
    default:
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "node '%s' (%s) has no backward; train on logits (no Softmax node)",
                         n->name, ts_op_name(n->op));
    }
}

ts_status ts_graph_backward(ts_graph *g, const ts_tensor *dout, ts_err *err) {
    if (!g->planned || !g->training)
        return ts_errorf(err, TS_ERR_INVALID, "backward needs a graph planned for training");
    value *out = &g->values[g->output];
    if (!ts_shape_eq(&dout->s, &out->shape))
        return ts_errorf(err, TS_ERR_SHAPE, "the output gradient's shape differs from the output");
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].grad) ts_tensor_fill(g->values[i].grad, 0.0f);
    memcpy(out->grad->data, dout->data, (size_t)dout->size * sizeof(float));
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        ts_status s = back_node(g, i, err);
        if (s != TS_OK) return s;
    }
    return TS_OK;
}

int ts_graph_num_params(const ts_graph *g) {
    return g->n_params;
}

ts_tensor *ts_graph_param(ts_graph *g, int i) {
    TS_ASSERT(i >= 0 && i < g->n_params);
    return g->values[g->params[i]].init;
}

ts_tensor *ts_graph_param_grad(ts_graph *g, int i) {
    TS_ASSERT(i >= 0 && i < g->n_params);
    return g->values[g->params[i]].grad;
}

const char *ts_graph_param_name(const ts_graph *g, int i) {
    TS_ASSERT(i >= 0 && i < g->n_params);
    return g->values[g->params[i]].name;
}

/* ---- batch-norm folding ----------------------------------------------- */

static int count_consumers(const ts_graph *g, int id) {
    int c = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++)
            c += g->nodes[i].inputs[j] == id;
    return c + (g->output == id);
}

static ts_status fold_one(ts_graph *g, node *conv, node *bn, ts_err *err) {
    if (g->values[conv->inputs[1]].kind != TS_VALUE_INIT) return TS_OK; /* fed at run time */
    ts_tensor *w = g->values[conv->inputs[1]].init;
    for (int i = 1; i < 5; i++)
        if (g->values[bn->inputs[i]].kind != TS_VALUE_INIT) return TS_OK;
    int64_t m = w->s.shape[0];
    if (conv->n_in < 3 || conv->inputs[2] < 0) {
        char name[300];
        snprintf(name, sizeof name, "%s.folded_bias", conv->name);
        int64_t d[1] = {m};
        ts_shape s = ts_shape_make(1, d);
        ts_tensor *b = ts_tensor_new(&s, err);
        if (!b) return TS_ERR_NOMEM;
        int id = ts_graph_add_init(g, name, b, 1, err);
        if (id < 0) return TS_ERR_NOMEM;
        int *in = realloc(conv->inputs, 3 * sizeof *in);
        if (!in) return ts_errorf(err, TS_ERR_NOMEM, "out of memory folding batch norm");
        conv->inputs = in;
        conv->inputs[2] = id;
        conv->n_in = 3;
    }
    ts_tensor *b = g->values[conv->inputs[2]].init;
    TS_TRY(ts_batchnorm_fold(w, b, g->values[bn->inputs[1]].init, g->values[bn->inputs[2]].init,
                             g->values[bn->inputs[3]].init, g->values[bn->inputs[4]].init,
                             bn->a.epsilon, err));
    bn->op = TS_OP_IDENTITY;
    bn->n_in = 1;
    return TS_OK;
}

/* src's initializer that g's value v can share, or -1 with err filled. */
static int same_init(const value *v, const ts_graph *src, ts_err *err) {
    int j = ts_graph_find(src, v->name);
    const value *w = j >= 0 ? &src->values[j] : NULL;
    if (!w || w->kind != TS_VALUE_INIT || !w->init) {
        ts_errorf(err, TS_ERR_INVALID,
                  "cannot share weights: '%s' is not an initializer of the other graph", v->name);
        return -1;
    }
    if (!ts_shape_eq(&w->init->s, &v->init->s) ||
        memcmp(w->init->data, v->init->data, (size_t)v->init->size * sizeof(float))) {
        ts_errorf(err, TS_ERR_INVALID,
                  "cannot share weights: initializer '%s' differs between the graphs", v->name);
        return -1;
    }
    return j;
}

ts_status ts_graph_share_weights(ts_graph *g, const ts_graph *src, ts_err *err) {
    if (!g || !src || g == src)
        return ts_errorf(err, TS_ERR_INVALID, "share_weights needs two distinct graphs");
    for (int i = 0; i < g->n_values; i++) /* all or nothing: check first */
        if (g->values[i].kind == TS_VALUE_INIT && same_init(&g->values[i], src, err) < 0)
            return TS_ERR_INVALID;
    for (int i = 0; i < g->n_values; i++) {
        value *v = &g->values[i];
        if (v->kind != TS_VALUE_INIT || !v->init->owns_data) continue;
        const ts_tensor *w = src->values[ts_graph_find(src, v->name)].init; /* checked above */
        /* the header stays ours; only the data is borrowed */
        ts_free(v->init->data);
        v->init->data = w->data;
        v->init->owns_data = 0;
    }
    g->planned = 0;
    return TS_OK;
}

ts_status ts_graph_fold_batchnorm(ts_graph *g, ts_err *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        node *bn = &g->nodes[i];
        if (bn->op != TS_OP_BATCHNORM) continue;
        int x = bn->inputs[0];
        int p = g->values[x].producer;
        if (p < 0 || g->nodes[p].op != TS_OP_CONV || count_consumers(g, x) != 1) continue;
        /* fold_one adds values (a bias) but never nodes, so bn stays valid. */
        TS_TRY(fold_one(g, &g->nodes[p], bn, err));
    }
    g->planned = 0;
    return TS_OK;
}
