/* tensor_ops.c: Add with ONNX multidirectional broadcasting, and Concat
 * along any axis. Broadcasting is done by strides (0 for a broadcast
 * dimension) over the output index, so no operand is ever expanded. */
#include "tessera/ops.h"

#include "ops_util.h"

#include <string.h>

/* ---- add --------------------------------------------------------------- */

ts_status ts_add_out_shape(const ts_shape *a, const ts_shape *b, ts_shape *y, ts_err *err) {
    if (!a || !b || !y) return ts_errorf(err, TS_ERR_INVALID, "add: a shape is NULL");
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    ts_shape out;
    out.ndim = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da == db || db == 1)
            out.shape[i] = da;
        else if (da == 1)
            out.shape[i] = db;
        else
            return ts_errorf(err, TS_ERR_SHAPE, "add: shapes %s and %s are not broadcastable",
                             SHP(a), SHP(b));
    }
    *y = out;
    return TS_OK;
}

/* Strides of `in` over the dims of `out` (right-aligned; 0 where broadcast). */
static void bcast_strides(const ts_shape *in, const ts_shape *out, int64_t *st) {
    int off = out->ndim - in->ndim;
    int64_t s = 1;
    for (int i = out->ndim - 1; i >= 0; i--) {
        int j = i - off;
        if (j < 0 || in->shape[j] == 1) {
            st[i] = 0;
        } else {
            st[i] = s;
        }
        if (j >= 0) s *= in->shape[j];
    }
}

/* Calls fn(i, ia, ib) for every output element i with operand offsets. The
 * last dimension is walked in a tight loop; the others by an odometer. */
typedef struct {
    const ts_shape *out;
    int64_t sa[TS_MAX_DIMS], sb[TS_MAX_DIMS];
} bcast_iter;

#define BCAST_FOR_EACH(it, BODY)                                                                   \
    do {                                                                                           \
        const ts_shape *o_ = (it)->out;                                                            \
        int nd_ = o_->ndim;                                                                        \
        int64_t total_ = ts_shape_numel(o_);                                                       \
        if (total_ == 0) break;                                                                    \
        if (nd_ == 0) {                                                                            \
            int64_t i = 0, ia = 0, ib = 0;                                                         \
            BODY;                                                                                  \
            break;                                                                                 \
        }                                                                                          \
        int64_t idx_[TS_MAX_DIMS] = {0};                                                           \
        int64_t last_ = o_->shape[nd_ - 1], la_ = (it)->sa[nd_ - 1], lb_ = (it)->sb[nd_ - 1];      \
        int64_t base_a_ = 0, base_b_ = 0;                                                          \
        for (int64_t row_ = 0; row_ < total_ / last_; row_++) {                                    \
            for (int64_t k_ = 0; k_ < last_; k_++) {                                               \
                int64_t i = row_ * last_ + k_, ia = base_a_ + k_ * la_, ib = base_b_ + k_ * lb_;   \
                BODY;                                                                              \
            }                                                                                      \
            for (int d_ = nd_ - 2; d_ >= 0; d_--) {                                                \
                idx_[d_]++;                                                                        \
                base_a_ += (it)->sa[d_];                                                           \
                base_b_ += (it)->sb[d_];                                                           \
                if (idx_[d_] < o_->shape[d_]) break;                                               \
                base_a_ -= idx_[d_] * (it)->sa[d_];                                                \
                base_b_ -= idx_[d_] * (it)->sb[d_];                                                \
                idx_[d_] = 0;                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

ts_status ts_add_forward(const ts_tensor *a, const ts_tensor *b, ts_tensor *y, ts_err *err) {
    if (!ts_tensor_ok(a) || !ts_tensor_ok(b) || !ts_tensor_ok(y))
        return ts_errorf(err, TS_ERR_INVALID, "add: a, b or y is NULL or has no data");
    ts_shape want;
    TS_TRY(ts_add_out_shape(&a->s, &b->s, &want, err));
    if (!ts_shape_eq(&y->s, &want))
        return ts_errorf(err, TS_ERR_SHAPE, "add: y %s must be %s for a %s and b %s", SHP(&y->s),
                         SHP(&want), SHP(&a->s), SHP(&b->s));
    if (ts_shape_eq(&a->s, &b->s)) {
        for (int64_t i = 0; i < y->size; i++)
            y->data[i] = a->data[i] + b->data[i];
        return TS_OK;
    }
    bcast_iter it = {.out = &y->s};
    bcast_strides(&a->s, &y->s, it.sa);
    bcast_strides(&b->s, &y->s, it.sb);
    const float *ad = a->data, *bd = b->data;
    float *yd = y->data;
    BCAST_FOR_EACH(&it, yd[i] = ad[ia] + bd[ib]);
    return TS_OK;
}

static ts_status add_grad_check(const ts_tensor *dy, const ts_tensor *d, const char *name,
                                ts_err *err) {
    if (!d) return TS_OK;
    ts_shape out;
    if (!ts_tensor_ok(d) || d->s.ndim > dy->s.ndim ||
        ts_add_out_shape(&d->s, &dy->s, &out, NULL) != TS_OK || !ts_shape_eq(&out, &dy->s))
        return ts_errorf(err, TS_ERR_SHAPE, "add backward: %s %s does not broadcast to dy %s", name,
                         SHP(&d->s), SHP(&dy->s));
    return TS_OK;
}

ts_status ts_add_backward(const ts_tensor *dy, ts_tensor *da, ts_tensor *db, ts_err *err) {
    if (!ts_tensor_ok(dy)) return ts_errorf(err, TS_ERR_INVALID, "add backward: dy is NULL");
    TS_TRY(add_grad_check(dy, da, "da", err));
    TS_TRY(add_grad_check(dy, db, "db", err));
    const float *g = dy->data;
    ts_tensor *grads[2] = {da, db};
    for (int k = 0; k < 2; k++) {
        ts_tensor *d = grads[k];
        if (!d) continue;
        if (ts_shape_eq(&d->s, &dy->s)) {
            for (int64_t i = 0; i < dy->size; i++)
                d->data[i] += g[i];
            continue;
        }
        bcast_iter it = {.out = &dy->s};
        bcast_strides(&d->s, &dy->s, it.sa);
        memset(it.sb, 0, sizeof it.sb);
        float *dd = d->data;
        BCAST_FOR_EACH(&it, (void)ib; dd[ia] += g[i]);
    }
    return TS_OK;
}

/* ---- concat ------------------------------------------------------------ */

ts_status ts_concat_out_shape(const ts_shape *const *xs, int n, int axis, ts_shape *y,
                              ts_err *err) {
    if (!xs || n < 1 || !y)
        return ts_errorf(err, TS_ERR_INVALID, "concat: needs at least one input (got %d)", n);
    for (int i = 0; i < n; i++)
        if (!xs[i]) return ts_errorf(err, TS_ERR_INVALID, "concat: input %d is NULL", i);
    int nd = xs[0]->ndim;
    if (nd < 1 || axis < -nd || axis >= nd)
        return ts_errorf(err, TS_ERR_SHAPE, "concat: axis %d is out of range for input %s", axis,
                         SHP(xs[0]));
    if (axis < 0) axis += nd;
    ts_shape out = *xs[0];
    out.shape[axis] = 0;
    for (int i = 0; i < n; i++) {
        int ok = xs[i]->ndim == nd;
        for (int d = 0; ok && d < nd; d++)
            if (d != axis && xs[i]->shape[d] != xs[0]->shape[d]) ok = 0;
        if (!ok)
            return ts_errorf(err, TS_ERR_SHAPE,
                             "concat: input %d %s does not match input 0 %s outside axis %d", i,
                             SHP(xs[i]), SHP(xs[0]), axis);
        out.shape[axis] += xs[i]->shape[axis];
    }
    *y = out;
    return TS_OK;
}

/* Shared validation: xs (or dxs) against y (or dy); returns outer/inner. */
static ts_status concat_check(const char *op, const ts_tensor *const *xs, int n, int axis,
                              const ts_tensor *y, int *axis_out, int64_t *outer, int64_t *inner,
                              ts_err *err) {
    if (!xs || n < 1 || n > 4096)
        return ts_errorf(err, TS_ERR_INVALID, "%s: needs 1 to 4096 inputs (got %d)", op, n);
    const ts_shape *shapes[4096];
    for (int i = 0; i < n; i++) {
        if (!ts_tensor_ok(xs[i]))
            return ts_errorf(err, TS_ERR_INVALID, "%s: input %d is NULL or has no data", op, i);
        shapes[i] = &xs[i]->s;
    }
    if (!ts_tensor_ok(y))
        return ts_errorf(err, TS_ERR_INVALID, "%s: output is NULL or has no data", op);
    ts_shape want;
    TS_TRY(ts_concat_out_shape(shapes, n, axis, &want, err));
    if (!ts_shape_eq(&want, &y->s))
        return ts_errorf(err, TS_ERR_SHAPE, "%s: output %s must be %s", op, SHP(&y->s), SHP(&want));
    int nd = want.ndim;
    if (axis < 0) axis += nd;
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= want.shape[d];
    for (int d = axis + 1; d < nd; d++)
        *inner *= want.shape[d];
    *axis_out = axis;
    return TS_OK;
}

ts_status ts_concat_forward(const ts_tensor *const *xs, int n, int axis, ts_tensor *y,
                            ts_err *err) {
    int64_t outer = 1, inner = 1;
    TS_TRY(concat_check("concat", xs, n, axis, y, &axis, &outer, &inner, err));
    int64_t ystride = y->s.shape[axis] * inner, off = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = xs[i]->s.shape[axis] * inner;
        for (int64_t o = 0; o < outer && len > 0; o++)
            memcpy(y->data + o * ystride + off, xs[i]->data + o * len, (size_t)len * sizeof(float));
        off += len;
    }
    return TS_OK;
}

ts_status ts_concat_backward(const ts_tensor *dy, int axis, ts_tensor *const *dxs, int n,
                             ts_err *err) {
    int64_t outer = 1, inner = 1;
    TS_TRY(concat_check("concat backward", (const ts_tensor *const *)dxs, n, axis, dy, &axis,
                        &outer, &inner, err));
    int64_t ystride = dy->s.shape[axis] * inner, off = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = dxs[i]->s.shape[axis] * inner;
        for (int64_t o = 0; o < outer; o++) {
            const float *src = dy->data + o * ystride + off;
            float *dst = dxs[i]->data + o * len;
            for (int64_t k = 0; k < len; k++)
                dst[k] += src[k];
        }
        off += len;
    }
    return TS_OK;
}
