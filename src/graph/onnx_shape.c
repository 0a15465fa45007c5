/* onnx_shape.c: shape inference for the ONNX loader and writer.
 *
 * The loader needs shapes while it builds the graph (auto_pad turns into
 * explicit pads from the input's spatial size; 1-D convolutions are lifted
 * to 2-D), and the writer declares the output's shape. Only the batch may be
 * unknown here (-1): it propagates as -1 and the planner fixes it later.
 * Conv and pool shapes come from the kernels' own out_shape functions so the
 * loader and the planner can never disagree. */
#include <string.h>

#include "onnx_internal.h"

static ts_status require_known(const ts_shape *s, int from, const char *what, ts_err *err) {
    for (int i = from; i < s->ndim; i++)
        if (s->shape[i] < 0)
            return ts_errorf(err, TS_ERR_UNSUPPORTED,
                             "%s dimension %d is not known before planning", what, i);
    return TS_OK;
}

static ts_status require_rank(const ts_shape *s, int ndim, const char *what, ts_err *err) {
    if (s->ndim != ndim)
        return ts_errorf(err, TS_ERR_SHAPE, "%s must have rank %d, has rank %d", what, ndim,
                         s->ndim);
    return TS_OK;
}

/* Runs a 4-D out_shape function with an unknown batch replaced by 1. */
static ts_shape batch_known(const ts_shape *x, int *unknown) {
    ts_shape s = *x;
    *unknown = s.ndim > 0 && s.shape[0] < 0;
    if (*unknown) s.shape[0] = 1;
    return s;
}

static ts_status infer_conv(const ts_node_attrs *a, const ts_shape *x, const ts_shape *w,
                            ts_shape *out, ts_err *err) {
    TS_TRY(require_rank(x, 4, "Conv input", err));
    TS_TRY(require_rank(w, 4, "Conv weight", err));
    TS_TRY(require_known(x, 1, "Conv input", err));
    TS_TRY(require_known(w, 0, "Conv weight", err));
    int unknown;
    ts_shape xs = batch_known(x, &unknown);
    TS_TRY(ts_conv2d_out_shape(&a->conv, &xs, w, out, err));
    if (unknown) out->shape[0] = -1;
    return TS_OK;
}

static ts_status infer_pool(const ts_node_attrs *a, const ts_shape *x, ts_shape *out, ts_err *err) {
    TS_TRY(require_rank(x, 4, "pool input", err));
    TS_TRY(require_known(x, 1, "pool input", err));
    int unknown;
    ts_shape xs = batch_known(x, &unknown);
    TS_TRY(ts_pool2d_out_shape(&a->pool, &xs, out, err));
    if (unknown) out->shape[0] = -1;
    return TS_OK;
}

static ts_status infer_gemm(const ts_node_attrs *a, const ts_shape *sa, const ts_shape *sb,
                            ts_shape *out, ts_err *err) {
    TS_TRY(require_rank(sa, 2, "Gemm input A", err));
    TS_TRY(require_rank(sb, 2, "Gemm input B", err));
    int64_t m = a->trans_a ? sa->shape[1] : sa->shape[0];
    int64_t ka = a->trans_a ? sa->shape[0] : sa->shape[1];
    int64_t kb = a->trans_b ? sb->shape[1] : sb->shape[0];
    int64_t n = a->trans_b ? sb->shape[0] : sb->shape[1];
    if (ka >= 0 && kb >= 0 && ka != kb)
        return ts_errorf(err, TS_ERR_SHAPE, "Gemm inner dimensions differ (%lld vs %lld)",
                         (long long)ka, (long long)kb);
    *out = ts_shape2(m, n);
    return TS_OK;
}

/* Product of dims [from, to); -1 when any of them is unknown. */
static int64_t dims_product(const ts_shape *s, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++) {
        if (s->shape[i] < 0) return -1;
        p *= s->shape[i];
    }
    return p;
}

static ts_status infer_flatten(const ts_node_attrs *a, const ts_shape *x, ts_shape *out,
                               ts_err *err) {
    int axis = a->axis < 0 ? a->axis + x->ndim : a->axis;
    if (axis < 0 || axis > x->ndim)
        return ts_errorf(err, TS_ERR_SHAPE, "Flatten axis %d out of range for rank %d", a->axis,
                         x->ndim);
    *out = ts_shape2(dims_product(x, 0, axis), dims_product(x, axis, x->ndim));
    return TS_OK;
}

static ts_status infer_reshape(const ts_node_attrs *a, const ts_shape *x, ts_shape *out,
                               ts_err *err) {
    if (a->shape_ndim < 0 || a->shape_ndim > TS_MAX_DIMS)
        return ts_errorf(err, TS_ERR_UNSUPPORTED, "Reshape target rank %d unsupported",
                         a->shape_ndim);
    out->ndim = a->shape_ndim;
    int infer_at = -1;
    int64_t known = 1;
    for (int i = 0; i < a->shape_ndim; i++) {
        int64_t d = a->shape[i];
        if (d == 0 && !a->allowzero) {
            if (i >= x->ndim)
                return ts_errorf(err, TS_ERR_SHAPE,
                                 "Reshape copies dimension %d of a rank-%d input", i, x->ndim);
            d = x->shape[i];
        } else if (d == -1) {
            if (infer_at >= 0)
                return ts_errorf(err, TS_ERR_SHAPE, "Reshape target has more than one -1");
            infer_at = i;
        } else if (d < -1) {
            return ts_errorf(err, TS_ERR_SHAPE, "Reshape target dimension %lld is negative",
                             (long long)d);
        }
        out->shape[i] = d;
        if (i != infer_at) known = (known < 0 || d < 0) ? -1 : known * d;
    }
    int64_t total = dims_product(x, 0, x->ndim);
    if (infer_at >= 0) {
        if (total < 0 || known < 0) {
            out->shape[infer_at] = -1;
        } else if (known == 0 || total % known != 0) {
            return ts_errorf(err, TS_ERR_SHAPE, "Reshape cannot infer -1: %lld elements",
                             (long long)total);
        } else {
            out->shape[infer_at] = total / known;
        }
    } else if (total >= 0 && known >= 0 && total != known) {
        return ts_errorf(err, TS_ERR_SHAPE, "Reshape changes the element count (%lld to %lld)",
                         (long long)total, (long long)known);
    }
    return TS_OK;
}

static ts_status infer_add(const ts_shape *sa, const ts_shape *sb, ts_shape *out, ts_err *err) {
    int nd = sa->ndim > sb->ndim ? sa->ndim : sb->ndim;
    out->ndim = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - sa->ndim), ib = i - (nd - sb->ndim);
        int64_t da = ia >= 0 ? sa->shape[ia] : 1, db = ib >= 0 ? sb->shape[ib] : 1;
        int64_t d;
        if (da == db || db == 1)
            d = da;
        else if (da == 1)
            d = db;
        else if (da < 0 || db < 0)
            d = da < 0 ? db : da; /* the known side wins */
        else
            return ts_errorf(err, TS_ERR_SHAPE,
                             "Add inputs do not broadcast (%lld vs %lld at dimension %d)",
                             (long long)da, (long long)db, i);
        out->shape[i] = d;
    }
    return TS_OK;
}

static ts_status infer_concat(const ts_node_attrs *a, const ts_shape *const *in, int n,
                              ts_shape *out, ts_err *err) {
    if (n < 1 || !in[0]) return ts_errorf(err, TS_ERR_SHAPE, "Concat needs inputs");
    int nd = in[0]->ndim;
    int axis = a->axis < 0 ? a->axis + nd : a->axis;
    if (axis < 0 || axis >= nd)
        return ts_errorf(err, TS_ERR_SHAPE, "Concat axis %d out of range for rank %d", a->axis, nd);
    *out = *in[0];
    for (int k = 1; k < n; k++) {
        if (!in[k] || in[k]->ndim != nd)
            return ts_errorf(err, TS_ERR_SHAPE, "Concat input %d has a different rank", k);
        for (int i = 0; i < nd; i++) {
            int64_t d = in[k]->shape[i];
            if (i == axis) {
                out->shape[i] = (out->shape[i] < 0 || d < 0) ? -1 : out->shape[i] + d;
            } else if (d >= 0 && out->shape[i] >= 0 && d != out->shape[i]) {
                return ts_errorf(err, TS_ERR_SHAPE,
                                 "Concat input %d differs at dimension %d (%lld vs %lld)", k, i,
                                 (long long)d, (long long)out->shape[i]);
            } else if (out->shape[i] < 0) {
                out->shape[i] = d;
            }
        }
    }
    return TS_OK;
}

static int arity_ok(ts_op op, int n_in, const ts_shape *const *in) {
    switch (op) {
    case TS_OP_CONV: return n_in >= 2 && in[0] && in[1];
    case TS_OP_GEMM:
    case TS_OP_MATMUL:
    case TS_OP_ADD: return n_in >= 2 && in[0] && in[1];
    case TS_OP_CONCAT: return n_in >= 1;
    default: return n_in >= 1 && in[0];
    }
}

ts_status ts_onnx_infer_shape(ts_op op, const ts_node_attrs *a, const ts_shape *const *in, int n_in,
                              ts_shape *out, ts_err *err) {
    memset(out, 0, sizeof *out);
    if (!arity_ok(op, n_in, in))
        return ts_errorf(err, TS_ERR_SHAPE, "%s is missing a required input", ts_op_name(op));
    switch (op) {
    case TS_OP_CONV: return infer_conv(a, in[0], in[1], out, err);
    case TS_OP_MAXPOOL:
    case TS_OP_AVGPOOL: return infer_pool(a, in[0], out, err);
    case TS_OP_GLOBALAVGPOOL:
        TS_TRY(require_rank(in[0], 4, "GlobalAveragePool input", err));
        *out = ts_shape4(in[0]->shape[0], in[0]->shape[1], 1, 1);
        return TS_OK;
    case TS_OP_GEMM: return infer_gemm(a, in[0], in[1], out, err);
    case TS_OP_MATMUL: {
        ts_node_attrs plain = *a;
        plain.trans_a = plain.trans_b = 0;
        return infer_gemm(&plain, in[0], in[1], out, err);
    }
    case TS_OP_FLATTEN: return infer_flatten(a, in[0], out, err);
    case TS_OP_RESHAPE: return infer_reshape(a, in[0], out, err);
    case TS_OP_ADD: return infer_add(in[0], in[1], out, err);
    case TS_OP_CONCAT: return infer_concat(a, in, n_in, out, err);
    case TS_OP_RELU:
    case TS_OP_LEAKYRELU:
    case TS_OP_BATCHNORM:
    case TS_OP_SOFTMAX:
    case TS_OP_DROPOUT:
    case TS_OP_IDENTITY: *out = *in[0]; return TS_OK;
    case TS_OP_COUNT: break;
    }
    return ts_errorf(err, TS_ERR_UNSUPPORTED, "no shape rule for op %d", (int)op);
}

const char *ts_onnx_dtype_name(int32_t dtype) {
    static const char *const names[] = {
        "UNDEFINED",      "FLOAT",      "UINT8",          "INT8",       "UINT16",   "INT16",
        "INT32",          "INT64",      "STRING",         "BOOL",       "FLOAT16",  "DOUBLE",
        "UINT32",         "UINT64",     "COMPLEX64",      "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4",      "INT4"};
    if (dtype >= 0 && dtype < (int32_t)(sizeof names / sizeof names[0])) return names[dtype];
    return "UNKNOWN";
}
