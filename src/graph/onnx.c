/* onnx.c: loads ONNX models (protobuf-c over Debian's onnx.proto) into a
 * ts_graph.
 *
 * A model file is untrusted input: protobuf-c rejects malformed wire data,
 * and everything it lets through (dims, data lengths, attribute values,
 * names) is checked here before any allocation. What Tessera cannot run is
 * refused with TS_ERR_UNSUPPORTED and a message naming the op, node, dtype,
 * opset or input; broken files get TS_ERR_FORMAT.
 *
 * Shapes are tracked while the graph is built because some attributes only
 * make sense against them: auto_pad becomes explicit pads from the input's
 * spatial size, 1-D Conv/MaxPool/AveragePool are lifted to 2-D (a Reshape
 * inserting a unit height on each side), and opset < 13 Softmax (which
 * coerces its input to 2-D at axis) becomes Flatten -> Softmax -> Reshape
 * when the axis is not the last one. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx.pb-c.h"
#include "onnx_internal.h"

/* ---- symbol table: ONNX value names -> what they are ------------------ */

typedef enum {
    SYM_VALUE,   /* a graph value (input, added initializer, node output) */
    SYM_PENDING, /* an initializer or Constant tensor not yet added to the graph */
    SYM_TENSOR,  /* a Constant's float tensor built from value_float(s), owned */
    SYM_INTS,    /* a Constant's value_int(s), owned */
    SYM_REFUSED, /* an output Tessera does not produce (e.g. Dropout's mask) */
} sym_kind;

typedef struct {
    char *name; /* owned copy */
    sym_kind kind;
    int id;                      /* SYM_VALUE */
    const Onnx__TensorProto *tp; /* SYM_PENDING: borrowed from the model */
    int from_constant;           /* SYM_PENDING: a Constant node (never trainable) */
    ts_tensor *t;                /* SYM_TENSOR */
    int64_t ints[TS_MAX_DIMS];   /* SYM_INTS */
    int n_ints;
    const char *why; /* SYM_REFUSED */
} sym;

typedef struct {
    sym *slots; /* open addressing; name == NULL marks an empty slot */
    size_t cap, n;
} symtab;

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static sym *symtab_find(const symtab *t, const char *name) {
    if (!t->cap) return NULL;
    for (size_t i = name_hash(name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->slots[i].name) return NULL;
        if (!strcmp(t->slots[i].name, name)) return &t->slots[i];
    }
}

static void symtab_place(symtab *t, sym s) {
    size_t i = name_hash(s.name) & (t->cap - 1);
    while (t->slots[i].name)
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = s;
    t->n++;
}

/* Inserts a new name (the caller checked it is absent); NULL when out of
 * memory. The returned pointer is valid until the next insert. */
static sym *symtab_add(symtab *t, const char *name) {
    if ((t->n + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        sym *slots = calloc(cap, sizeof *slots);
        if (!slots) return NULL;
        symtab old = *t;
        t->slots = slots;
        t->cap = cap;
        t->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.slots[i].name) symtab_place(t, old.slots[i]);
        free(old.slots);
    }
    sym s;
    memset(&s, 0, sizeof s);
    s.name = strdup(name);
    if (!s.name) return NULL;
    symtab_place(t, s);
    return symtab_find(t, name);
}

static void symtab_free(symtab *t) {
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slots[i].name);
        ts_tensor_free(t->slots[i].t);
    }
    free(t->slots);
}

/* ---- loader state ------------------------------------------------------ */

typedef struct {
    ts_graph *g;
    int64_t opset;
    symtab syms;
    ts_shape *shapes; /* by value id: shape known at load time (-1 = batch) */
    int n_shapes;
    int gen;                     /* counter for names of inserted nodes */
    const Onnx__NodeProto *node; /* the node being loaded (for messages) */
    int node_index;
    ts_err *err;
} loader;

static const char *str_or_empty(const char *s) {
    return s ? s : "";
}

/* Fails with a message that names the current node and its op. */
__attribute__((format(printf, 3, 4))) static ts_status node_fail(loader *L, ts_status st,
                                                                 const char *fmt, ...) {
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = L->node;
    if (!str_or_empty(n->name)[0]) /* unnamed nodes are common: give the position */
        return ts_errorf(L->err, st, "node #%d (%.60s, unnamed): %s", L->node_index,
                         str_or_empty(n->op_type), what);
    return ts_errorf(L->err, st, "node '%.100s' (%.60s): %s", n->name, str_or_empty(n->op_type),
                     what);
}

/* Prefixes an error filled by a callee with the current node. */
static ts_status node_wrap(loader *L, ts_status st) {
    if (st == TS_OK || !L->node) return st;
    char msg[sizeof L->err->msg];
    snprintf(msg, sizeof msg, "%s", L->err->msg);
    return node_fail(L, st, "%s", msg);
}

static ts_status remember_shape(loader *L, int id, const ts_shape *s) {
    if (id < 0) return ts_errorf(L->err, TS_ERR_INVALID, "negative value id %d", id);
    if (id >= L->n_shapes) {
        int n = L->n_shapes ? L->n_shapes : 64;
        while (n <= id)
            n *= 2;
        ts_shape *p = realloc(L->shapes, (size_t)n * sizeof *p);
        if (!p) return ts_errorf(L->err, TS_ERR_NOMEM, "out of memory tracking shapes");
        memset(p + L->n_shapes, 0, (size_t)(n - L->n_shapes) * sizeof *p);
        L->shapes = p;
        L->n_shapes = n;
    }
    L->shapes[id] = *s;
    return TS_OK;
}

static const ts_shape *shape_of(const loader *L, int id) {
    TS_ASSERT(id >= 0 && id < L->n_shapes);
    return &L->shapes[id];
}

static ts_status define_value(loader *L, const char *name, int id, const ts_shape *s) {
    if (symtab_find(&L->syms, name))
        return ts_errorf(L->err, TS_ERR_FORMAT, "value '%.200s' is defined twice", name);
    sym *y = symtab_add(&L->syms, name);
    if (!y) return ts_errorf(L->err, TS_ERR_NOMEM, "out of memory in the name table");
    y->kind = SYM_VALUE;
    y->id = id;
    return remember_shape(L, id, s);
}

/* ---- tensors from TensorProto ------------------------------------------ */

/* Checks dims (rank, signs, overflow, cap) and returns the element count. */
static ts_status proto_numel(const Onnx__TensorProto *tp, const char *name, int max_ndim,
                             int64_t *numel, ts_err *err) {
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "tensor '%.200s' keeps its data in an external file (unsupported)", name);
    if (tp->segment)
        return ts_errorf(err, TS_ERR_UNSUPPORTED, "tensor '%.200s' is segmented (unsupported)",
                         name);
    if (tp->n_dims > (size_t)max_ndim)
        return ts_errorf(err, TS_ERR_UNSUPPORTED, "tensor '%.200s' has rank %zu (at most %d)", name,
                         tp->n_dims, max_ndim);
    int64_t n = 1;
    for (size_t i = 0; i < tp->n_dims; i++) {
        int64_t d = tp->dims[i];
        if (d < 0 || (d > 0 && n > TS_ONNX_MAX_TENSOR_ELEMS / d)) {
            ts_shape s = {.ndim = (int)tp->n_dims};
            memcpy(s.shape, tp->dims, tp->n_dims * sizeof(int64_t));
            char buf[160];
            return ts_errorf(err, TS_ERR_FORMAT,
                             "tensor '%.200s' has dims %s: negative or above the cap of %lld "
                             "elements",
                             name, ts_shape_str(&s, buf, sizeof buf),
                             (long long)TS_ONNX_MAX_TENSOR_ELEMS);
        }
        n *= d;
    }
    *numel = n;
    return TS_OK;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* A FLOAT tensor; with unit_axis2 a unit dimension is inserted at axis 2
 * (1-D conv weights [M, C, K] become [M, C, 1, K]). */
static ts_status float_tensor_from_proto(const Onnx__TensorProto *tp, const char *name,
                                         int unit_axis2, ts_tensor **out, ts_err *err) {
    *out = NULL;
    int32_t dt = tp->has_data_type ? tp->data_type : 0;
    if (dt != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "tensor '%.200s' has dtype %s; only FLOAT tensors are supported here",
                         name, ts_onnx_dtype_name(dt));
    int64_t numel;
    TS_TRY(proto_numel(tp, name, TS_MAX_DIMS - (unit_axis2 ? 1 : 0), &numel, err));
    if (numel == 0)
        return ts_errorf(err, TS_ERR_UNSUPPORTED, "tensor '%.200s' is empty (unsupported)", name);
    if (tp->has_raw_data ? tp->raw_data.len != (size_t)numel * 4
                         : tp->n_float_data != (size_t)numel)
        return ts_errorf(err, TS_ERR_FORMAT,
                         "tensor '%.200s' holds %zu %s but its dims need %lld floats", name,
                         tp->has_raw_data ? tp->raw_data.len : tp->n_float_data,
                         tp->has_raw_data ? "bytes of raw data" : "floats", (long long)numel);
    ts_shape s = {0};
    for (size_t i = 0; i < tp->n_dims; i++)
        s.shape[s.ndim++] = tp->dims[i];
    if (unit_axis2) {
        if (s.ndim != 3)
            return ts_errorf(err, TS_ERR_SHAPE, "1-D conv weight '%.200s' must have rank 3", name);
        s.shape[3] = s.shape[2];
        s.shape[2] = 1;
        s.ndim = 4;
    }
    ts_tensor *t = ts_tensor_new(&s, err);
    if (!t) return err ? err->status : TS_ERR_NOMEM;
    if (tp->has_raw_data) {
        for (int64_t i = 0; i < numel; i++) {
            uint32_t u = le32(tp->raw_data.data + 4 * i);
            memcpy(&t->data[i], &u, 4);
        }
    } else {
        memcpy(t->data, tp->float_data, (size_t)numel * sizeof(float));
    }
    *out = t;
    return TS_OK;
}

/* A small INT64 vector (Reshape's target shape). */
static ts_status ints_from_proto(const Onnx__TensorProto *tp, const char *name, int64_t *out,
                                 int *n_out, ts_err *err) {
    int32_t dt = tp->has_data_type ? tp->data_type : 0;
    if (dt != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        return ts_errorf(err, TS_ERR_UNSUPPORTED, "tensor '%.200s' has dtype %s; expected INT64",
                         name, ts_onnx_dtype_name(dt));
    int64_t numel;
    TS_TRY(proto_numel(tp, name, 1, &numel, err));
    if (numel > TS_MAX_DIMS)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "shape tensor '%.200s' has %lld entries (at most %d dimensions)", name,
                         (long long)numel, TS_MAX_DIMS);
    if (tp->has_raw_data ? tp->raw_data.len != (size_t)numel * 8
                         : tp->n_int64_data != (size_t)numel)
        return ts_errorf(err, TS_ERR_FORMAT, "tensor '%.200s' holds the wrong amount of data",
                         name);
    for (int64_t i = 0; i < numel; i++)
        out[i] = tp->has_raw_data ? (int64_t)le64(tp->raw_data.data + 8 * i) : tp->int64_data[i];
    *n_out = (int)numel;
    return TS_OK;
}

/* ---- looking up node inputs --------------------------------------------- */

static ts_status lookup(loader *L, const char *name, sym **out) {
    sym *y = symtab_find(&L->syms, name);
    if (!y)
        return node_fail(L, TS_ERR_FORMAT,
                         "input '%.200s' is not an initializer, a graph input or the output of "
                         "an earlier node",
                         name);
    if (y->kind == SYM_REFUSED)
        return node_fail(L, TS_ERR_UNSUPPORTED, "input '%.200s' is %s", name, y->why);
    *out = y;
    return TS_OK;
}

/* Value id of a float input, adding a pending initializer to the graph on
 * first use. unit_axis2 lifts a pending 1-D conv weight to 2-D. */
static ts_status float_input_ex(loader *L, const char *name, int trainable, int unit_axis2,
                                int *id) {
    sym *y = NULL;
    TS_TRY(lookup(L, name, &y));
    if (y->kind == SYM_VALUE) {
        *id = y->id;
        return TS_OK;
    }
    ts_tensor *t = NULL;
    if (y->kind == SYM_PENDING) {
        TS_TRY(node_wrap(L, float_tensor_from_proto(y->tp, name, unit_axis2, &t, L->err)));
        if (y->from_constant) trainable = 0;
    } else if (y->kind == SYM_TENSOR) {
        t = y->t;
        y->t = NULL;
        trainable = 0;
    } else {
        return node_fail(L, TS_ERR_UNSUPPORTED,
                         "input '%.200s' is an INT64 constant; a FLOAT tensor is needed", name);
    }
    ts_shape s = t->s;
    int vid = ts_graph_add_init(L->g, name, t, trainable, L->err);
    if (vid < 0) return node_wrap(L, L->err->status);
    y = symtab_find(&L->syms, name); /* stable: nothing was inserted */
    y->kind = SYM_VALUE;
    y->id = vid;
    *id = vid;
    return remember_shape(L, vid, &s);
}

static ts_status float_input(loader *L, const char *name, int trainable, int *id) {
    return float_input_ex(L, name, trainable, 0, id);
}

static int present(const Onnx__NodeProto *n, size_t i) {
    return i < n->n_input && n->input[i][0] != '\0';
}

static ts_status need_inputs(loader *L, size_t lo, size_t hi) {
    const Onnx__NodeProto *n = L->node;
    if (n->n_input < lo || n->n_input > hi)
        return node_fail(L, TS_ERR_FORMAT, "has %zu inputs, expected %zu to %zu", n->n_input, lo,
                         hi);
    for (size_t i = 0; i < lo; i++)
        if (!present(n, i)) return node_fail(L, TS_ERR_FORMAT, "required input %zu is empty", i);
    return TS_OK;
}

/* Only the first output is produced; extra outputs are refused by name
 * (kept in the table so a consumer gets a clear message). */
static ts_status refuse_extra_outputs(loader *L, const char *why) {
    const Onnx__NodeProto *n = L->node;
    if (n->n_output < 1 || !n->output[0][0]) return node_fail(L, TS_ERR_FORMAT, "has no output");
    for (size_t i = 1; i < n->n_output; i++) {
        if (!n->output[i][0]) continue;
        if (!why)
            return node_fail(L, TS_ERR_UNSUPPORTED, "output %zu ('%.100s') is unsupported", i,
                             n->output[i]);
        if (symtab_find(&L->syms, n->output[i]))
            return node_fail(L, TS_ERR_FORMAT, "output '%.200s' is defined twice", n->output[i]);
        sym *y = symtab_add(&L->syms, n->output[i]);
        if (!y) return ts_errorf(L->err, TS_ERR_NOMEM, "out of memory in the name table");
        y->kind = SYM_REFUSED;
        y->why = why;
    }
    return TS_OK;
}

/* ---- attributes ---------------------------------------------------------- */

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name)) return n->attribute[i];
    return NULL;
}

static int attr_is(const Onnx__AttributeProto *a, Onnx__AttributeProto__AttributeType t,
                   int legacy_has) {
    /* Very old exporters leave `type` unset; then the populated field decides. */
    return a->has_type ? a->type == t : legacy_has;
}

static ts_status attr_int(loader *L, const char *name, int64_t def, int64_t *out) {
    const Onnx__AttributeProto *a = find_attr(L->node, name);
    *out = def;
    if (!a) return TS_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i))
        return node_fail(L, TS_ERR_FORMAT, "attribute '%s' must be an INT", name);
    *out = a->i;
    return TS_OK;
}

static ts_status attr_flag(loader *L, const char *name, int def, int *out) {
    int64_t v;
    TS_TRY(attr_int(L, name, def, &v));
    if (v != 0 && v != 1) return node_fail(L, TS_ERR_FORMAT, "attribute '%s' must be 0 or 1", name);
    *out = (int)v;
    return TS_OK;
}

static ts_status attr_float(loader *L, const char *name, float def, float *out) {
    const Onnx__AttributeProto *a = find_attr(L->node, name);
    *out = def;
    if (!a) return TS_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f))
        return node_fail(L, TS_ERR_FORMAT, "attribute '%s' must be a FLOAT", name);
    *out = a->f;
    return TS_OK;
}

/* *count = -1 when absent; otherwise exactly `want` entries are required. */
static ts_status attr_ints(loader *L, const char *name, int want, int64_t *out, int *count) {
    const Onnx__AttributeProto *a = find_attr(L->node, name);
    *count = -1;
    if (!a) return TS_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, a->n_ints > 0))
        return node_fail(L, TS_ERR_FORMAT, "attribute '%s' must be INTS", name);
    if (a->n_ints != (size_t)want)
        return node_fail(L, TS_ERR_FORMAT, "attribute '%s' has %zu values, expected %d", name,
                         a->n_ints, want);
    for (int i = 0; i < want; i++)
        out[i] = a->ints[i];
    *count = want;
    return TS_OK;
}

static ts_status attr_string(loader *L, const char *name, const char *def, char *out, size_t cap) {
    const Onnx__AttributeProto *a = find_attr(L->node, name);
    snprintf(out, cap, "%s", def);
    if (!a) return TS_OK;
    if (!attr_is(a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, a->has_s))
        return node_fail(L, TS_ERR_FORMAT, "attribute '%s' must be a STRING", name);
    /* protobuf-c leaves data NULL for an empty string: no memchr/memcpy on it */
    if (a->s.len >= cap || (a->s.len && memchr(a->s.data, 0, a->s.len)))
        return node_fail(L, TS_ERR_FORMAT, "attribute '%s' is not a short string", name);
    if (a->s.len) memcpy(out, a->s.data, a->s.len);
    out[a->s.len] = '\0';
    return TS_OK;
}

/* Refuses attributes the op does not know: silently ignoring one could
 * change what the model computes. `allowed` is " name name ... ". */
static ts_status check_attr_names(loader *L, const char *allowed) {
    const Onnx__NodeProto *n = L->node;
    for (size_t i = 0; i < n->n_attribute; i++) {
        const char *an = str_or_empty(n->attribute[i]->name);
        char key[72];
        snprintf(key, sizeof key, " %.64s ", an);
        if (!an[0] || strlen(an) > 64 || !strstr(allowed, key))
            return node_fail(L, TS_ERR_UNSUPPORTED, "attribute '%.64s' is unsupported", an);
    }
    return TS_OK;
}

/* ---- emitting graph nodes ------------------------------------------------ */

/* Adds one graph node, inferring and remembering its output shape.
 * ins[] may contain -1 for an absent optional input. */
static ts_status emit(loader *L, ts_op op, const int *ins, int n_in, const ts_node_attrs *a,
                      const char *out_name, int define, int *out_id) {
    const ts_shape *shp[16];
    *out_id = -1;
    TS_ASSERT(n_in <= 16);
    while (n_in > 0 && ins[n_in - 1] < 0)
        n_in--;
    for (int i = 0; i < n_in; i++)
        shp[i] = ins[i] >= 0 ? shape_of(L, ins[i]) : NULL;
    ts_shape out;
    TS_TRY(node_wrap(L, ts_onnx_infer_shape(op, a, shp, n_in, &out, L->err)));
    const char *nm = str_or_empty(L->node->name);
    int id = ts_graph_add_node(L->g, op, nm[0] ? nm : out_name, ins, n_in, out_name, a, L->err);
    if (id < 0) return node_wrap(L, L->err->status);
    if (define)
        TS_TRY(node_wrap(L, define_value(L, out_name, id, &out)));
    else
        TS_TRY(remember_shape(L, id, &out));
    *out_id = id;
    return TS_OK;
}

/* A fresh value name derived from base for a node Tessera inserts. */
static ts_status fresh_name(loader *L, const char *base, const char *tag, char *out, size_t cap) {
    for (int tries = 0; tries < 1000; tries++) {
        snprintf(out, cap, "%.200s/%s%d", base, tag, L->gen++);
        if (!symtab_find(&L->syms, out) && ts_graph_find(L->g, out) < 0) return TS_OK;
    }
    return node_fail(L, TS_ERR_INVALID, "cannot find a free name for an inserted node");
}

/* Inserts Reshape(value) -> target; the result is named after base. */
static ts_status emit_reshape(loader *L, int in_id, int ndim, const int64_t *target,
                              const char *base, int *out_id) {
    char name[256];
    TS_TRY(fresh_name(L, base, "ts_reshape", name, sizeof name));
    ts_node_attrs a = ts_node_attrs_default(TS_OP_RESHAPE);
    a.shape_ndim = ndim;
    for (int i = 0; i < ndim; i++)
        a.shape[i] = target[i];
    a.allowzero = 0;
    return emit(L, TS_OP_RESHAPE, &in_id, 1, &a, name, 1, out_id);
}

/* [N, C, L] -> [N, C, 1, L] (0 copies the input's dimension). */
static ts_status lift_to_2d(loader *L, int in_id, const char *base, int *out_id) {
    const ts_shape *s = shape_of(L, in_id);
    int64_t target[4] = {0, 0, 1, s->shape[2]};
    return emit_reshape(L, in_id, 4, target, base, out_id);
}

/* The final node of a lifted op: its 4-D result reshaped back to 3-D under
 * the ONNX output name. */
static ts_status emit_lowered_output(loader *L, int id4, const char *out_name) {
    const ts_shape *s = shape_of(L, id4);
    ts_node_attrs a = ts_node_attrs_default(TS_OP_RESHAPE);
    a.shape_ndim = 3;
    a.shape[0] = 0;
    a.shape[1] = 0;
    a.shape[2] = s->shape[3];
    int id;
    return emit(L, TS_OP_RESHAPE, &id4, 1, &a, out_name, 1, &id);
}

static const char *out0(const loader *L) {
    return L->node->output[0];
}

/* ---- Conv and pools: windows and auto_pad --------------------------------- */

typedef struct {
    int spatial; /* 1 or 2 */
    int64_t k[2], stride[2], dil[2], pad_begin[2], pad_end[2];
} window;

static int bad_window_param(int64_t v, int64_t lo) {
    return v < lo || v > TS_ONNX_MAX_WINDOW_PARAM;
}

/* Reads strides, dilations, pads and auto_pad for a window whose kernel is
 * already in w->k; x is the (2+spatial)-D input shape. */
static ts_status read_window(loader *L, const ts_shape *x, window *w) {
    int sp = w->spatial, cnt;
    int64_t v[4];
    for (int i = 0; i < sp; i++) {
        w->stride[i] = w->dil[i] = 1;
        w->pad_begin[i] = w->pad_end[i] = 0;
        if (bad_window_param(w->k[i], 1))
            return node_fail(L, TS_ERR_FORMAT, "kernel size %lld is out of range",
                             (long long)w->k[i]);
    }
    TS_TRY(attr_ints(L, "strides", sp, v, &cnt));
    for (int i = 0; i < cnt; i++)
        w->stride[i] = v[i];
    TS_TRY(attr_ints(L, "dilations", sp, v, &cnt));
    for (int i = 0; i < cnt; i++)
        w->dil[i] = v[i];
    TS_TRY(attr_ints(L, "pads", 2 * sp, v, &cnt));
    for (int i = 0; i < cnt / 2; i++) {
        w->pad_begin[i] = v[i];
        w->pad_end[i] = v[i + sp];
    }
    for (int i = 0; i < sp; i++)
        if (bad_window_param(w->stride[i], 1) || bad_window_param(w->dil[i], 1) ||
            bad_window_param(w->pad_begin[i], 0) || bad_window_param(w->pad_end[i], 0))
            return node_fail(L, TS_ERR_FORMAT, "a stride, dilation or pad is out of range");
    char mode[32];
    TS_TRY(attr_string(L, "auto_pad", "NOTSET", mode, sizeof mode));
    if (!strcmp(mode, "NOTSET")) return TS_OK;
    int upper = !strcmp(mode, "SAME_UPPER"), lower = !strcmp(mode, "SAME_LOWER");
    if (!upper && !lower && strcmp(mode, "VALID"))
        return node_fail(L, TS_ERR_UNSUPPORTED, "auto_pad '%s' is unknown", mode);
    for (int i = 0; i < sp; i++) {
        w->pad_begin[i] = w->pad_end[i] = 0;
        if (!upper && !lower) continue;
        int64_t in = x->shape[2 + i];
        if (in < 0)
            return node_fail(L, TS_ERR_UNSUPPORTED,
                             "auto_pad %s needs spatial dimension %d, which is not known", mode,
                             2 + i);
        /* SAME: out = ceil(in / stride); the total padding makes the last
         * window end at the padded edge; the odd pixel goes to the end
         * (SAME_UPPER) or the beginning (SAME_LOWER). */
        int64_t out = (in + w->stride[i] - 1) / w->stride[i];
        int64_t span = (w->k[i] - 1) * w->dil[i] + 1;
        int64_t total = (out - 1) * w->stride[i] + span - in;
        if (total < 0) total = 0;
        w->pad_begin[i] = upper ? total / 2 : total - total / 2;
        w->pad_end[i] = total - w->pad_begin[i];
    }
    return TS_OK;
}

/* Index into the 2-D params: a 1-D window is the width, with a unit height. */
static void window_to_conv(const window *w, ts_conv2d_params *p) {
    int h = w->spatial == 2 ? 0 : -1, x = w->spatial == 2 ? 1 : 0;
    p->stride_h = h < 0 ? 1 : (int)w->stride[h];
    p->stride_w = (int)w->stride[x];
    p->dil_h = h < 0 ? 1 : (int)w->dil[h];
    p->dil_w = (int)w->dil[x];
    p->pad_t = h < 0 ? 0 : (int)w->pad_begin[h];
    p->pad_b = h < 0 ? 0 : (int)w->pad_end[h];
    p->pad_l = (int)w->pad_begin[x];
    p->pad_r = (int)w->pad_end[x];
}

static void window_to_pool(const window *w, ts_pool2d_params *p) {
    ts_conv2d_params c = ts_conv2d_params_default();
    window_to_conv(w, &c);
    p->kh = w->spatial == 2 ? (int)w->k[0] : 1;
    p->kw = (int)w->k[w->spatial - 1];
    p->stride_h = c.stride_h;
    p->stride_w = c.stride_w;
    p->dil_h = c.dil_h;
    p->dil_w = c.dil_w;
    p->pad_t = c.pad_t;
    p->pad_b = c.pad_b;
    p->pad_l = c.pad_l;
    p->pad_r = c.pad_r;
}

/* The spatial rank of a Conv/pool input: 1 or 2, else refused. */
static ts_status spatial_rank(loader *L, int x, int *sp) {
    int nd = shape_of(L, x)->ndim;
    if (nd != 3 && nd != 4)
        return node_fail(L, TS_ERR_UNSUPPORTED,
                         "a rank-%d input is unsupported (only 1-D and 2-D spatial data)", nd);
    *sp = nd - 2;
    return TS_OK;
}

static ts_status load_conv(loader *L) {
    TS_TRY(check_attr_names(L, " auto_pad kernel_shape strides pads dilations group "));
    TS_TRY(need_inputs(L, 2, 3));
    TS_TRY(refuse_extra_outputs(L, NULL));
    const Onnx__NodeProto *n = L->node;
    int x, w, b = -1, sp = 0;
    TS_TRY(float_input(L, n->input[0], 1, &x));
    TS_TRY(spatial_rank(L, x, &sp));
    TS_TRY(float_input_ex(L, n->input[1], 1, sp == 1, &w));
    if (present(n, 2)) TS_TRY(float_input(L, n->input[2], 1, &b));
    const ts_shape *ws = shape_of(L, w);
    if (sp == 1 && ws->ndim == 3) TS_TRY(lift_to_2d(L, w, n->input[1], &w)); /* W was a value */
    ws = shape_of(L, w);
    if (ws->ndim != 4)
        return node_fail(L, TS_ERR_SHAPE, "weight '%.200s' has rank %d, expected %d", n->input[1],
                         ws->ndim - (sp == 1), sp + 2);
    window win = {.spatial = sp};
    for (int i = 0; i < sp; i++)
        win.k[i] = ws->shape[4 - sp + i];
    int64_t ks[2];
    int cnt;
    TS_TRY(attr_ints(L, "kernel_shape", sp, ks, &cnt));
    for (int i = 0; i < cnt; i++)
        if (ks[i] != win.k[i])
            return node_fail(L, TS_ERR_SHAPE, "kernel_shape disagrees with the weight's shape");
    TS_TRY(read_window(L, shape_of(L, x), &win));
    ts_node_attrs a = ts_node_attrs_default(TS_OP_CONV);
    window_to_conv(&win, &a.conv);
    int64_t group;
    TS_TRY(attr_int(L, "group", 1, &group));
    if (group < 1 || group > TS_ONNX_MAX_WINDOW_PARAM)
        return node_fail(L, TS_ERR_FORMAT, "group %lld is out of range", (long long)group);
    a.conv.groups = (int)group;
    int ins[3] = {x, w, b}, y = -1;
    if (sp == 2) return emit(L, TS_OP_CONV, ins, 3, &a, out0(L), 1, &y);
    TS_TRY(lift_to_2d(L, x, n->input[0], &ins[0]));
    char tmp[256];
    TS_TRY(fresh_name(L, out0(L), "ts_conv2d", tmp, sizeof tmp));
    TS_TRY(emit(L, TS_OP_CONV, ins, 3, &a, tmp, 1, &y));
    return emit_lowered_output(L, y, out0(L));
}

static ts_status load_pool(loader *L, ts_op op) {
    int is_max = op == TS_OP_MAXPOOL;
    TS_TRY(check_attr_names(L, is_max ? " auto_pad kernel_shape strides pads dilations "
                                        "ceil_mode storage_order "
                                      : " auto_pad kernel_shape strides pads dilations "
                                        "ceil_mode count_include_pad "));
    TS_TRY(need_inputs(L, 1, 1));
    const Onnx__NodeProto *n = L->node;
    if (n->n_output > 1 && n->output[1][0])
        return node_fail(L, TS_ERR_UNSUPPORTED, "the Indices output of MaxPool is unsupported");
    TS_TRY(refuse_extra_outputs(L, NULL));
    int x, sp = 0, cnt;
    TS_TRY(float_input(L, n->input[0], 1, &x));
    TS_TRY(spatial_rank(L, x, &sp));
    window win = {.spatial = sp};
    TS_TRY(attr_ints(L, "kernel_shape", sp, win.k, &cnt));
    if (cnt < 0) return node_fail(L, TS_ERR_FORMAT, "attribute 'kernel_shape' is required");
    TS_TRY(read_window(L, shape_of(L, x), &win));
    ts_node_attrs a = ts_node_attrs_default(op);
    window_to_pool(&win, &a.pool);
    TS_TRY(attr_flag(L, "ceil_mode", 0, &a.pool.ceil_mode));
    if (is_max) {
        int order = 0; /* attr_flag sets it on success; gcc -O2 cannot see that */
        TS_TRY(attr_flag(L, "storage_order", 0, &order));
        if (order)
            return node_fail(L, TS_ERR_UNSUPPORTED,
                             "storage_order 1 (column-major) is unsupported");
    } else {
        TS_TRY(attr_flag(L, "count_include_pad", 0, &a.pool.count_include_pad));
    }
    int y = -1;
    if (sp == 2) return emit(L, op, &x, 1, &a, out0(L), 1, &y);
    int x4;
    TS_TRY(lift_to_2d(L, x, n->input[0], &x4));
    char tmp[256];
    TS_TRY(fresh_name(L, out0(L), "ts_pool2d", tmp, sizeof tmp));
    TS_TRY(emit(L, op, &x4, 1, &a, tmp, 1, &y));
    return emit_lowered_output(L, y, out0(L));
}

static ts_status load_maxpool(loader *L) {
    return load_pool(L, TS_OP_MAXPOOL);
}
static ts_status load_avgpool(loader *L) {
    return load_pool(L, TS_OP_AVGPOOL);
}

/* ---- the other ops ---------------------------------------------------------- */

/* Ops with one input, one output and no attributes that matter. */
static ts_status load_unary(loader *L, ts_op op, const char *attrs) {
    TS_TRY(check_attr_names(L, attrs));
    TS_TRY(need_inputs(L, 1, 1));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int x, y;
    TS_TRY(float_input(L, L->node->input[0], 1, &x));
    ts_node_attrs a = ts_node_attrs_default(op);
    return emit(L, op, &x, 1, &a, out0(L), 1, &y);
}

static ts_status load_globalavgpool(loader *L) {
    TS_TRY(check_attr_names(L, " "));
    TS_TRY(need_inputs(L, 1, 1));
    int x;
    TS_TRY(float_input(L, L->node->input[0], 1, &x));
    if (shape_of(L, x)->ndim != 4)
        return node_fail(L, TS_ERR_UNSUPPORTED, "a rank-%d input is unsupported (only 2-D spatial)",
                         shape_of(L, x)->ndim);
    return load_unary(L, TS_OP_GLOBALAVGPOOL, " ");
}

static ts_status load_relu(loader *L) {
    return load_unary(L, TS_OP_RELU, " consumed_inputs ");
}
static ts_status load_identity(loader *L) {
    return load_unary(L, TS_OP_IDENTITY, " ");
}

static ts_status load_leakyrelu(loader *L) {
    TS_TRY(check_attr_names(L, " alpha consumed_inputs "));
    TS_TRY(need_inputs(L, 1, 1));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int x, y;
    TS_TRY(float_input(L, L->node->input[0], 1, &x));
    ts_node_attrs a = ts_node_attrs_default(TS_OP_LEAKYRELU);
    TS_TRY(attr_float(L, "alpha", 0.01f, &a.alpha));
    return emit(L, TS_OP_LEAKYRELU, &x, 1, &a, out0(L), 1, &y);
}

static ts_status load_batchnorm(loader *L) {
    TS_TRY(check_attr_names(L, " epsilon momentum spatial is_test consumed_inputs training_mode "));
    TS_TRY(need_inputs(L, 5, 5));
    int64_t is_test, spatial, training;
    /* Before opset 7, is_test defaults to 0: training mode. */
    TS_TRY(attr_int(L, "is_test", L->opset < 7 ? 0 : 1, &is_test));
    TS_TRY(attr_int(L, "training_mode", 0, &training));
    TS_TRY(attr_int(L, "spatial", 1, &spatial));
    if (!is_test || training)
        return node_fail(L, TS_ERR_UNSUPPORTED,
                         "training-mode BatchNormalization is unsupported (inference form only)");
    if (spatial != 1)
        return node_fail(L, TS_ERR_UNSUPPORTED,
                         "spatial=0 (per-activation statistics) is unsupported");
    for (size_t i = 1; i < L->node->n_output; i++)
        if (L->node->output[i][0])
            return node_fail(L, TS_ERR_UNSUPPORTED,
                             "training-mode outputs (running/saved statistics) are unsupported");
    TS_TRY(refuse_extra_outputs(L, NULL));
    const Onnx__NodeProto *n = L->node;
    int ins[5];
    for (int i = 0; i < 5; i++)
        TS_TRY(float_input(L, n->input[i], i < 3, &ins[i])); /* running stats: not trained */
    ts_node_attrs a = ts_node_attrs_default(TS_OP_BATCHNORM);
    TS_TRY(attr_float(L, "epsilon", 1e-5f, &a.epsilon));
    TS_TRY(attr_float(L, "momentum", 0.9f, &a.momentum));
    int y;
    return emit(L, TS_OP_BATCHNORM, ins, 5, &a, out0(L), 1, &y);
}

static ts_status load_gemm(loader *L) {
    TS_TRY(check_attr_names(L, " alpha beta transA transB broadcast "));
    TS_TRY(need_inputs(L, 2, 3));
    TS_TRY(refuse_extra_outputs(L, NULL));
    const Onnx__NodeProto *n = L->node;
    int ins[3] = {-1, -1, -1}, y;
    for (int i = 0; i < 3; i++)
        if (present(n, i)) TS_TRY(float_input(L, n->input[i], 1, &ins[i]));
    ts_node_attrs a = ts_node_attrs_default(TS_OP_GEMM);
    TS_TRY(attr_float(L, "alpha", 1.0f, &a.alpha));
    TS_TRY(attr_float(L, "beta", 1.0f, &a.beta));
    TS_TRY(attr_flag(L, "transA", 0, &a.trans_a));
    TS_TRY(attr_flag(L, "transB", 0, &a.trans_b));
    return emit(L, TS_OP_GEMM, ins, 3, &a, out0(L), 1, &y);
}

static ts_status load_matmul(loader *L) {
    TS_TRY(check_attr_names(L, " "));
    TS_TRY(need_inputs(L, 2, 2));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int ins[2], y;
    for (int i = 0; i < 2; i++) {
        TS_TRY(float_input(L, L->node->input[i], 1, &ins[i]));
        if (shape_of(L, ins[i])->ndim != 2)
            return node_fail(L, TS_ERR_UNSUPPORTED,
                             "input %d has rank %d; only 2-D MatMul is supported", i,
                             shape_of(L, ins[i])->ndim);
    }
    ts_node_attrs a = ts_node_attrs_default(TS_OP_MATMUL);
    return emit(L, TS_OP_MATMUL, ins, 2, &a, out0(L), 1, &y);
}

/* Normalizes an axis in [-rank, rank + extra) to a non-negative one. */
static ts_status norm_axis(loader *L, int64_t axis, int rank, int extra, int *out) {
    if (axis < -rank || axis >= rank + extra)
        return node_fail(L, TS_ERR_FORMAT, "axis %lld is out of range for rank %d", (long long)axis,
                         rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return TS_OK;
}

static ts_status load_flatten(loader *L) {
    TS_TRY(check_attr_names(L, " axis "));
    TS_TRY(need_inputs(L, 1, 1));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int x, y;
    int64_t axis;
    TS_TRY(float_input(L, L->node->input[0], 1, &x));
    TS_TRY(attr_int(L, "axis", 1, &axis));
    ts_node_attrs a = ts_node_attrs_default(TS_OP_FLATTEN);
    TS_TRY(norm_axis(L, axis, shape_of(L, x)->ndim, 1, &a.axis));
    return emit(L, TS_OP_FLATTEN, &x, 1, &a, out0(L), 1, &y);
}

/* A constant INT64 vector input (initializer or Constant), at most
 * TS_MAX_DIMS long. */
static ts_status const_ints(loader *L, const char *name, int64_t *out, int *n) {
    sym *y = NULL;
    TS_TRY(lookup(L, name, &y));
    if (y->kind == SYM_INTS) {
        *n = y->n_ints;
        memcpy(out, y->ints, sizeof(int64_t) * (size_t)y->n_ints);
        return TS_OK;
    }
    if (y->kind != SYM_PENDING)
        return node_fail(L, TS_ERR_UNSUPPORTED,
                         "'%.200s' is computed at run time; it must be an INT64 initializer or "
                         "Constant",
                         name);
    return node_wrap(L, ints_from_proto(y->tp, name, out, n, L->err));
}

/* A Reshape to `out`, where at most one dimension (the batch) is unknown
 * and becomes -1. */
static ts_status emit_reshape_to(loader *L, int x, const ts_shape *out) {
    ts_node_attrs a = ts_node_attrs_default(TS_OP_RESHAPE);
    int unknown = 0;
    a.shape_ndim = out->ndim;
    for (int i = 0; i < out->ndim; i++) {
        a.shape[i] = out->shape[i];
        unknown += out->shape[i] < 0;
    }
    if (unknown > 1)
        return node_fail(L, TS_ERR_UNSUPPORTED, "more than one dimension is unknown at load time");
    int y;
    return emit(L, TS_OP_RESHAPE, &x, 1, &a, out0(L), 1, &y);
}

/* Unsqueeze/Squeeze axes: an attribute before opset 13, then an optional
 * constant input. *n = -1 when absent. */
static ts_status read_axes(loader *L, int64_t *axes, int *n) {
    const Onnx__NodeProto *nd = L->node;
    *n = -1;
    if (L->opset < 13) {
        const Onnx__AttributeProto *at = find_attr(nd, "axes");
        if (!at) return TS_OK;
        if (at->n_ints > TS_MAX_DIMS) return node_fail(L, TS_ERR_UNSUPPORTED, "too many axes");
        return attr_ints(L, "axes", (int)at->n_ints, axes, n);
    }
    if (find_attr(nd, "axes"))
        return node_fail(L, TS_ERR_FORMAT, "from opset 13 on, axes is an input");
    if (!present(nd, 1)) return TS_OK;
    return const_ints(L, nd->input[1], axes, n);
}

static ts_status load_unsqueeze(loader *L) {
    TS_TRY(check_attr_names(L, " axes "));
    TS_TRY(need_inputs(L, 1, L->opset < 13 ? 1 : 2));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int x, n;
    int64_t axes[TS_MAX_DIMS];
    TS_TRY(float_input(L, L->node->input[0], 1, &x));
    TS_TRY(read_axes(L, axes, &n));
    const ts_shape *xs = shape_of(L, x);
    if (n < 1) return node_fail(L, TS_ERR_FORMAT, "axes are required");
    int rank = xs->ndim + n;
    if (rank > TS_MAX_DIMS)
        return node_fail(L, TS_ERR_UNSUPPORTED, "the output rank %d exceeds %d", rank, TS_MAX_DIMS);
    int is_new[TS_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        int ax = 0;
        TS_TRY(norm_axis(L, axes[i], rank, 0, &ax));
        if (is_new[ax]) return node_fail(L, TS_ERR_FORMAT, "axis %d is repeated", ax);
        is_new[ax] = 1;
    }
    ts_shape out = {.ndim = rank};
    for (int i = 0, k = 0; i < rank; i++)
        out.shape[i] = is_new[i] ? 1 : xs->shape[k++];
    return emit_reshape_to(L, x, &out);
}

static ts_status load_squeeze(loader *L) {
    TS_TRY(check_attr_names(L, " axes "));
    TS_TRY(need_inputs(L, 1, L->opset < 13 ? 1 : 2));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int x, n;
    int64_t axes[TS_MAX_DIMS];
    TS_TRY(float_input(L, L->node->input[0], 1, &x));
    TS_TRY(read_axes(L, axes, &n));
    const ts_shape *xs = shape_of(L, x);
    int drop[TS_MAX_DIMS] = {0};
    for (int i = 0; i < xs->ndim && n < 0; i++) {
        if (xs->shape[i] < 0)
            return node_fail(L, TS_ERR_UNSUPPORTED,
                             "squeezing every unit dimension needs dimension %d, unknown at load "
                             "time",
                             i);
        drop[i] = xs->shape[i] == 1;
    }
    for (int i = 0; i < n; i++) {
        int ax = 0;
        TS_TRY(norm_axis(L, axes[i], xs->ndim, 0, &ax));
        if (xs->shape[ax] != 1)
            return node_fail(L, TS_ERR_SHAPE, "dimension %d has size %lld, not 1", ax,
                             (long long)xs->shape[ax]);
        drop[ax] = 1;
    }
    ts_shape out = {0};
    for (int i = 0; i < xs->ndim; i++)
        if (!drop[i]) out.shape[out.ndim++] = xs->shape[i];
    return emit_reshape_to(L, x, &out);
}

/* The target of a Reshape: an attribute before opset 5, then a constant
 * INT64 input (an initializer or a Constant node). */
static ts_status reshape_target(loader *L, ts_node_attrs *a) {
    const Onnx__NodeProto *n = L->node;
    if (L->opset < 5) {
        int64_t v[TS_MAX_DIMS];
        const Onnx__AttributeProto *at = find_attr(n, "shape");
        if (!at || at->n_ints > TS_MAX_DIMS)
            return node_fail(L, TS_ERR_FORMAT, "attribute 'shape' is missing or too long");
        int cnt;
        TS_TRY(attr_ints(L, "shape", (int)at->n_ints, v, &cnt));
        a->shape_ndim = cnt;
        memcpy(a->shape, v, sizeof(int64_t) * (size_t)cnt);
        return TS_OK;
    }
    if (!present(n, 1)) return node_fail(L, TS_ERR_FORMAT, "the shape input is missing");
    return const_ints(L, n->input[1], a->shape, &a->shape_ndim);
}

static ts_status load_reshape(loader *L) {
    TS_TRY(check_attr_names(L, " allowzero shape consumed_inputs "));
    TS_TRY(need_inputs(L, L->opset < 5 ? 1 : 2, L->opset < 5 ? 1 : 2));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int x, y;
    TS_TRY(float_input(L, L->node->input[0], 1, &x));
    ts_node_attrs a = ts_node_attrs_default(TS_OP_RESHAPE);
    TS_TRY(reshape_target(L, &a));
    TS_TRY(attr_flag(L, "allowzero", 0, &a.allowzero));
    return emit(L, TS_OP_RESHAPE, &x, 1, &a, out0(L), 1, &y);
}

static ts_status load_add(loader *L) {
    TS_TRY(check_attr_names(L, " broadcast axis consumed_inputs "));
    TS_TRY(need_inputs(L, 2, 2));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int ins[2], y;
    for (int i = 0; i < 2; i++)
        TS_TRY(float_input(L, L->node->input[i], 1, &ins[i]));
    const ts_shape *sa = shape_of(L, ins[0]), *sb = shape_of(L, ins[1]);
    if (L->opset < 7) {
        /* Legacy broadcasting: B is aligned to A at `axis` (default: the
         * trailing dimensions, which is numpy's rule). Other alignments are
         * not numpy broadcasts. */
        int64_t bc, axis;
        TS_TRY(attr_int(L, "broadcast", 0, &bc));
        TS_TRY(attr_int(L, "axis", sa->ndim - sb->ndim, &axis));
        if (!bc && !ts_shape_eq(sa, sb))
            return node_fail(L, TS_ERR_SHAPE, "input shapes differ and broadcast is 0");
        if (bc && axis != sa->ndim - sb->ndim)
            return node_fail(L, TS_ERR_UNSUPPORTED, "legacy broadcast at axis %lld is unsupported",
                             (long long)axis);
    } else if (find_attr(L->node, "broadcast") || find_attr(L->node, "axis")) {
        return node_fail(L, TS_ERR_FORMAT, "broadcast/axis attributes exist only before opset 7");
    }
    ts_node_attrs a = ts_node_attrs_default(TS_OP_ADD);
    return emit(L, TS_OP_ADD, ins, 2, &a, out0(L), 1, &y);
}

static ts_status load_concat(loader *L) {
    TS_TRY(check_attr_names(L, " axis "));
    const Onnx__NodeProto *n = L->node;
    if (n->n_input < 1 || n->n_input > 16)
        return node_fail(L, TS_ERR_UNSUPPORTED, "%zu inputs (1 to 16 supported)", n->n_input);
    TS_TRY(need_inputs(L, n->n_input, n->n_input));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int ins[16], y;
    for (size_t i = 0; i < n->n_input; i++)
        TS_TRY(float_input(L, n->input[i], 1, &ins[i]));
    int64_t axis;
    TS_TRY(attr_int(L, "axis", L->opset < 4 ? 1 : INT64_MIN, &axis));
    if (axis == INT64_MIN) return node_fail(L, TS_ERR_FORMAT, "attribute 'axis' is required");
    ts_node_attrs a = ts_node_attrs_default(TS_OP_CONCAT);
    TS_TRY(norm_axis(L, axis, shape_of(L, ins[0])->ndim, 0, &a.axis));
    return emit(L, TS_OP_CONCAT, ins, (int)n->n_input, &a, out0(L), 1, &y);
}

/* Before opset 13 Softmax coerces its input to 2-D at axis and normalizes
 * each row; from 13 on it normalizes along one axis. Both equal a softmax
 * along the last axis when axis is the last one; otherwise the old form is
 * Flatten(axis) -> Softmax(last) -> Reshape(original shape). */
static ts_status load_softmax(loader *L) {
    TS_TRY(check_attr_names(L, " axis "));
    TS_TRY(need_inputs(L, 1, 1));
    TS_TRY(refuse_extra_outputs(L, NULL));
    int x, y;
    TS_TRY(float_input(L, L->node->input[0], 1, &x));
    ts_shape xs = *shape_of(L, x);
    int64_t axis_attr;
    TS_TRY(attr_int(L, "axis", L->opset < 13 ? 1 : -1, &axis_attr));
    ts_node_attrs a = ts_node_attrs_default(TS_OP_SOFTMAX);
    TS_TRY(norm_axis(L, axis_attr, xs.ndim, 0, &a.axis));
    if (L->opset >= 13 || a.axis == xs.ndim - 1)
        return emit(L, TS_OP_SOFTMAX, &x, 1, &a, out0(L), 1, &y);
    int unknown = 0;
    for (int i = 0; i < xs.ndim; i++)
        unknown += xs.shape[i] < 0;
    if (unknown > 1)
        return node_fail(L, TS_ERR_UNSUPPORTED,
                         "coercing a softmax input with %d unknown dimensions", unknown);
    ts_node_attrs fa = ts_node_attrs_default(TS_OP_FLATTEN);
    fa.axis = a.axis;
    char flat[256], soft[256];
    TS_TRY(fresh_name(L, out0(L), "ts_flatten", flat, sizeof flat));
    TS_TRY(fresh_name(L, out0(L), "ts_softmax2d", soft, sizeof soft));
    int f, s;
    TS_TRY(emit(L, TS_OP_FLATTEN, &x, 1, &fa, flat, 1, &f));
    a.axis = 1;
    TS_TRY(emit(L, TS_OP_SOFTMAX, &f, 1, &a, soft, 1, &s));
    ts_node_attrs ra = ts_node_attrs_default(TS_OP_RESHAPE);
    ra.shape_ndim = xs.ndim;
    for (int i = 0; i < xs.ndim; i++)
        ra.shape[i] = xs.shape[i] < 0 ? -1 : xs.shape[i];
    ra.allowzero = 0;
    return emit(L, TS_OP_RESHAPE, &s, 1, &ra, out0(L), 1, &y);
}

/* A float scalar from a constant input (Dropout's ratio). */
static ts_status const_scalar(loader *L, const char *name, float *out) {
    sym *y = NULL;
    TS_TRY(lookup(L, name, &y));
    ts_tensor *t = NULL;
    if (y->kind == SYM_PENDING) {
        TS_TRY(node_wrap(L, float_tensor_from_proto(y->tp, name, 0, &t, L->err)));
    } else if (y->kind == SYM_TENSOR) {
        t = ts_tensor_clone(y->t, L->err);
        if (!t) return node_wrap(L, L->err->status);
    } else {
        return node_fail(L, TS_ERR_UNSUPPORTED,
                         "'%.200s' must be a constant FLOAT scalar (initializer or Constant)",
                         name);
    }
    ts_status st = TS_OK;
    if (t->size != 1)
        st = node_fail(L, TS_ERR_FORMAT, "'%.200s' is not a scalar", name);
    else
        *out = t->data[0];
    ts_tensor_free(t);
    return st;
}

static ts_status load_dropout(loader *L) {
    TS_TRY(check_attr_names(L, " ratio is_test seed consumed_inputs "));
    TS_TRY(need_inputs(L, 1, 3));
    TS_TRY(refuse_extra_outputs(L, "Dropout's mask output, which Tessera does not produce"));
    const Onnx__NodeProto *n = L->node;
    ts_node_attrs a = ts_node_attrs_default(TS_OP_DROPOUT);
    if (L->opset < 12) {
        TS_TRY(attr_float(L, "ratio", 0.5f, &a.ratio));
    } else {
        a.ratio = 0.5f;
        if (present(n, 1)) TS_TRY(const_scalar(L, n->input[1], &a.ratio));
        if (present(n, 2))
            return node_fail(L, TS_ERR_UNSUPPORTED, "the training_mode input is unsupported");
    }
    if (!(a.ratio >= 0.0f && a.ratio < 1.0f))
        return node_fail(L, TS_ERR_FORMAT, "ratio %g is outside [0, 1)", (double)a.ratio);
    int x, y;
    TS_TRY(float_input(L, n->input[0], 1, &x));
    return emit(L, TS_OP_DROPOUT, &x, 1, &a, out0(L), 1, &y);
}

/* Constant: its tensor becomes an initializer when a node uses it (FLOAT)
 * or a Reshape target (INT64). */
static ts_status load_constant(loader *L) {
    TS_TRY(check_attr_names(L, " value value_float value_floats value_int value_ints "));
    const Onnx__NodeProto *n = L->node;
    if (n->n_input != 0 || n->n_attribute != 1)
        return node_fail(L, TS_ERR_FORMAT, "needs no inputs and exactly one value attribute");
    TS_TRY(refuse_extra_outputs(L, NULL));
    const char *name = out0(L);
    if (symtab_find(&L->syms, name))
        return node_fail(L, TS_ERR_FORMAT, "value '%.200s' is defined twice", name);
    const Onnx__AttributeProto *at = n->attribute[0];
    const char *an = at->name;
    sym s;
    memset(&s, 0, sizeof s);
    if (!strcmp(an, "value")) {
        if (!at->t) return node_fail(L, TS_ERR_FORMAT, "attribute 'value' holds no tensor");
        s.kind = SYM_PENDING;
        s.tp = at->t;
        s.from_constant = 1;
    } else if (!strcmp(an, "value_int") || !strcmp(an, "value_ints")) {
        int scalar = !strcmp(an, "value_int");
        if (scalar ? !attr_is(at, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, at->has_i)
                   : (!attr_is(at, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, 1) ||
                      at->n_ints > TS_MAX_DIMS))
            return node_fail(L, TS_ERR_UNSUPPORTED, "attribute '%s' is malformed or too long", an);
        s.kind = SYM_INTS;
        s.n_ints = scalar ? 1 : (int)at->n_ints;
        for (int i = 0; i < s.n_ints; i++)
            s.ints[i] = scalar ? at->i : at->ints[i];
    } else {
        int scalar = !strcmp(an, "value_float");
        if (scalar ? !attr_is(at, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, at->has_f)
                   : (!attr_is(at, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS, 1) ||
                      at->n_floats == 0 || at->n_floats > (size_t)TS_ONNX_MAX_TENSOR_ELEMS))
            return node_fail(L, TS_ERR_FORMAT, "attribute '%s' is malformed", an);
        int64_t cnt = scalar ? 1 : (int64_t)at->n_floats;
        ts_shape sh = {.ndim = scalar ? 0 : 1, .shape = {cnt}};
        s.t = ts_tensor_new(&sh, L->err);
        if (!s.t) return node_wrap(L, L->err->status);
        for (int64_t i = 0; i < cnt; i++)
            s.t->data[i] = scalar ? at->f : at->floats[i];
        s.kind = SYM_TENSOR;
    }
    sym *y = symtab_add(&L->syms, name);
    if (!y) {
        ts_tensor_free(s.t);
        return ts_errorf(L->err, TS_ERR_NOMEM, "out of memory in the name table");
    }
    s.name = y->name;
    *y = s;
    return TS_OK;
}

typedef struct {
    const char *op_type;
    ts_status (*load)(loader *L);
} op_entry;

static const op_entry OPS[] = {
    {"Conv", load_conv},
    {"MaxPool", load_maxpool},
    {"AveragePool", load_avgpool},
    {"GlobalAveragePool", load_globalavgpool},
    {"Relu", load_relu},
    {"LeakyRelu", load_leakyrelu},
    {"BatchNormalization", load_batchnorm},
    {"Gemm", load_gemm},
    {"MatMul", load_matmul},
    {"Flatten", load_flatten},
    {"Reshape", load_reshape},
    {"Add", load_add},
    {"Concat", load_concat},
    {"Softmax", load_softmax},
    {"Dropout", load_dropout},
    {"Identity", load_identity},
    {"Unsqueeze", load_unsqueeze}, /* both become a Reshape */
    {"Squeeze", load_squeeze},
    {"Constant", load_constant},
};

static ts_status load_node(loader *L, const Onnx__NodeProto *n) {
    L->node = n;
    const char *op = str_or_empty(n->op_type), *dom = str_or_empty(n->domain);
    if (dom[0] && strcmp(dom, "ai.onnx"))
        return node_fail(L, TS_ERR_UNSUPPORTED, "op domain '%.100s' is unsupported", dom);
    if (n->n_output < 1 || !n->output[0][0]) return node_fail(L, TS_ERR_FORMAT, "has no output");
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (!strcmp(op, OPS[i].op_type)) return OPS[i].load(L);
    return node_fail(L, TS_ERR_UNSUPPORTED, "op '%.60s' is unsupported", op);
}

/* ---- model-level checks --------------------------------------------------- */

static ts_status read_opset(loader *L, const Onnx__ModelProto *m) {
    L->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        const char *dom = str_or_empty(o->domain);
        if (!dom[0] || !strcmp(dom, "ai.onnx")) L->opset = o->has_version ? o->version : 1;
    }
    if (L->opset < 0) {
        if (m->has_ir_version && m->ir_version < 3)
            L->opset = 1; /* pre-opset_import files */
        else
            return ts_errorf(L->err, TS_ERR_FORMAT, "the model imports no default-domain opset");
    }
    /* Opsets 1..21 are accepted: the loaders above handle every attribute
     * the supported ops had in any of them (legacy broadcast, is_test,
     * spatial, Reshape's shape attribute, Softmax's 2-D coercion). */
    if (L->opset < 1 || L->opset > 21)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED,
                         "default-domain opset %lld is unsupported (1 to 21 are)",
                         (long long)L->opset);
    return TS_OK;
}

static ts_status add_initializers(loader *L, const Onnx__GraphProto *gp) {
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        const char *name = str_or_empty(tp->name);
        if (!name[0]) return ts_errorf(L->err, TS_ERR_FORMAT, "initializer %zu has no name", i);
        if (symtab_find(&L->syms, name))
            return ts_errorf(L->err, TS_ERR_FORMAT, "initializer '%.200s' is defined twice", name);
        sym *y = symtab_add(&L->syms, name);
        if (!y) return ts_errorf(L->err, TS_ERR_NOMEM, "out of memory in the name table");
        y->kind = SYM_PENDING;
        y->tp = tp;
    }
    return TS_OK;
}

static ts_status input_shape(loader *L, const Onnx__ValueInfoProto *vi, const char *name,
                             ts_shape *s) {
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED, "graph input '%.200s' is not a tensor", name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int32_t dt = tt->has_elem_type ? tt->elem_type : 0;
    if (dt != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED,
                         "graph input '%.200s' has dtype %s; only FLOAT is supported", name,
                         ts_onnx_dtype_name(dt));
    if (!tt->shape)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED, "graph input '%.200s' has no shape", name);
    if (tt->shape->n_dim > TS_MAX_DIMS)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED,
                         "graph input '%.200s' has rank %zu (at most %d)", name, tt->shape->n_dim,
                         TS_MAX_DIMS);
    s->ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < s->ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        int known = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (!known && i == 0) {
            s->shape[0] = -1; /* a symbolic batch: fixed by ts_graph_plan */
            continue;
        }
        if (!known)
            return ts_errorf(L->err, TS_ERR_UNSUPPORTED,
                             "graph input '%.200s' has a dynamic dimension %d ('%.60s'); only the "
                             "batch (dimension 0) may be symbolic",
                             name, i,
                             d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                                 ? str_or_empty(d->dim_param)
                                 : "?");
        if (d->dim_value < 1 || d->dim_value > TS_ONNX_MAX_TENSOR_ELEMS)
            return ts_errorf(L->err, TS_ERR_UNSUPPORTED,
                             "graph input '%.200s' has dimension %d of size %lld", name, i,
                             (long long)d->dim_value);
        s->shape[i] = d->dim_value;
    }
    return TS_OK;
}

static ts_status add_inputs(loader *L, const Onnx__GraphProto *gp) {
    int n_data = 0;
    for (size_t i = 0; i < gp->n_input; i++) {
        const char *name = str_or_empty(gp->input[i]->name);
        if (!name[0]) return ts_errorf(L->err, TS_ERR_FORMAT, "graph input %zu has no name", i);
        sym *y = symtab_find(&L->syms, name);
        if (y && y->kind == SYM_PENDING) continue; /* IR < 4 lists initializers as inputs */
        if (y)
            return ts_errorf(L->err, TS_ERR_FORMAT, "graph input '%.200s' is listed twice", name);
        ts_shape s;
        TS_TRY(input_shape(L, gp->input[i], name, &s));
        int id = ts_graph_add_input(L->g, name, &s, L->err);
        if (id < 0) return L->err->status;
        TS_TRY(define_value(L, name, id, &s));
        n_data++;
    }
    if (!n_data) return ts_errorf(L->err, TS_ERR_UNSUPPORTED, "the model has no data input");
    return TS_OK;
}

static ts_status set_output(loader *L, const Onnx__GraphProto *gp) {
    if (gp->n_output != 1)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED,
                         "the model has %zu outputs; exactly one is supported", gp->n_output);
    const char *name = str_or_empty(gp->output[0]->name);
    sym *y = symtab_find(&L->syms, name);
    if (!y)
        return ts_errorf(L->err, TS_ERR_FORMAT, "graph output '%.200s' is never computed", name);
    if (y->kind != SYM_VALUE)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED,
                         "graph output '%.200s' is a constant or an unsupported value", name);
    return ts_graph_set_output(L->g, y->id, L->err);
}

static ts_status build(loader *L, const Onnx__ModelProto *m) {
    if (!m->graph) return ts_errorf(L->err, TS_ERR_FORMAT, "the model has no graph");
    const Onnx__GraphProto *gp = m->graph;
    TS_TRY(read_opset(L, m));
    if (gp->n_node > TS_ONNX_MAX_NODES || gp->n_initializer > TS_ONNX_MAX_NODES ||
        gp->n_input > TS_ONNX_MAX_NODES)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED,
                         "the model has %zu nodes, %zu initializers and %zu inputs; at most %d "
                         "of each are supported",
                         gp->n_node, gp->n_initializer, gp->n_input, TS_ONNX_MAX_NODES);
    if (gp->n_sparse_initializer)
        return ts_errorf(L->err, TS_ERR_UNSUPPORTED, "sparse initializers are unsupported");
    TS_TRY(add_initializers(L, gp));
    TS_TRY(add_inputs(L, gp));
    for (size_t i = 0; i < gp->n_node; i++) {
        L->node_index = (int)i;
        TS_TRY(load_node(L, gp->node[i]));
    }
    L->node = NULL;
    return set_output(L, gp);
}

/* ---- nesting guard --------------------------------------------------------- */

/* protobuf-c unpacks nested messages recursively with no depth limit, so a
 * few kilobytes of nested subgraphs (Attribute.g -> Graph -> Node -> ...)
 * overflow the stack. This walk over the wire format, driven by the
 * generated descriptors, bounds the nesting first. It visits each byte once
 * and recurses at most TS_ONNX_MAX_NESTING levels. Legitimate models nest
 * about 10 deep (Model/Graph/Node/Attribute/Tensor/TypeProto). */
#define TS_ONNX_MAX_NESTING 64

typedef enum { WIRE_OK, WIRE_MALFORMED, WIRE_TOO_DEEP } wire_status;

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

static wire_status check_nesting(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                                 const uint8_t *end, int depth) {
    if (depth > TS_ONNX_MAX_NESTING) return WIRE_TOO_DEEP;
    while (p < end) {
        uint64_t key, v;
        if (!read_varint(&p, end, &key)) return WIRE_MALFORMED;
        switch (key & 7) {
        case 0:
            if (!read_varint(&p, end, &v)) return WIRE_MALFORMED;
            break;
        case 1:
            if (end - p < 8) return WIRE_MALFORMED;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return WIRE_MALFORMED;
            p += 4;
            break;
        case 2: {
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p)) return WIRE_MALFORMED;
            uint64_t tag = key >> 3;
            const ProtobufCFieldDescriptor *f =
                tag <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)tag)
                                  : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                wire_status st = check_nesting(f->descriptor, p, p + v, depth + 1);
                if (st != WIRE_OK) return st;
            }
            p += v;
            break;
        }
        default: return WIRE_MALFORMED; /* groups: not used by ONNX */
        }
    }
    return WIRE_OK;
}

ts_graph *ts_onnx_load_buffer(const void *buf, size_t len, ts_err *err) {
    ts_err local;
    memset(&local, 0, sizeof local);
    if (!err) err = &local;
    if (!buf || len == 0) {
        ts_errorf(err, TS_ERR_FORMAT, "empty ONNX model");
        return NULL;
    }
    if (len > TS_ONNX_MAX_FILE_BYTES) {
        ts_errorf(err, TS_ERR_FORMAT, "ONNX model of %zu bytes exceeds the 2 GiB cap", len);
        return NULL;
    }
    wire_status ws =
        check_nesting(&onnx__model_proto__descriptor, buf, (const uint8_t *)buf + len, 0);
    if (ws == WIRE_TOO_DEEP) {
        ts_errorf(err, TS_ERR_FORMAT, "ONNX model nests messages more than %d deep (hostile file?)",
                  TS_ONNX_MAX_NESTING);
        return NULL;
    }
    Onnx__ModelProto *m = ws == WIRE_OK ? onnx__model_proto__unpack(NULL, len, buf) : NULL;
    if (!m) {
        ts_errorf(err, TS_ERR_FORMAT,
                  "not a valid ONNX model (protobuf decoding failed: the file "
                  "is truncated or corrupt)");
        return NULL;
    }
    loader L;
    memset(&L, 0, sizeof L);
    L.err = err;
    L.g = ts_graph_new();
    ts_status st = L.g ? build(&L, m) : ts_errorf(err, TS_ERR_NOMEM, "out of memory");
    symtab_free(&L.syms);
    free(L.shapes);
    onnx__model_proto__free_unpacked(m, NULL);
    if (st != TS_OK) {
        ts_graph_free(L.g);
        return NULL;
    }
    return L.g;
}

ts_graph *ts_onnx_load(const char *path, ts_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ts_errorf(err, TS_ERR_IO, "cannot open ONNX model '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        ts_errorf(err, TS_ERR_IO, "'%s' is not a regular file", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > TS_ONNX_MAX_FILE_BYTES) {
        fclose(f);
        ts_errorf(err, TS_ERR_FORMAT, "ONNX model '%s' (%lld bytes) exceeds the 2 GiB cap", path,
                  (long long)st.st_size);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    void *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        ts_errorf(err, TS_ERR_NOMEM, "out of memory reading '%s'", path);
        return NULL;
    }
    size_t got = fread(buf, 1, len, f);
    int failed = ferror(f);
    fclose(f);
    if (failed || got != len) {
        free(buf);
        ts_errorf(err, TS_ERR_IO, "cannot read '%s'", path);
        return NULL;
    }
    ts_graph *g = ts_onnx_load_buffer(buf, len, err);
    free(buf);
    return g;
}
