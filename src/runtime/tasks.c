/* tasks.c: the worker's blob store and the compute behind each task kind. */
#include "runtime/tasks.h"

#include <stdlib.h>
#include <string.h>

/* ---- blob store ----------------------------------------------------------- */

void ts_store_init(ts_blob_store *s, size_t max_bytes) {
    memset(s, 0, sizeof *s);
    s->max_bytes = max_bytes;
}

static void blob_free(ts_blob *b) {
    if (!b) return;
    for (int i = 0; i < b->n; i++)
        zmq_msg_close(&b->frames[i]);
    free(b);
}

/* Drops one key's hold on b; the blob goes with its last key. */
static void blob_release(ts_blob_store *s, ts_blob *b) {
    if (--b->refs > 0) return;
    s->bytes -= b->bytes;
    blob_free(b);
}

void ts_store_clear(ts_blob_store *s) {
    for (int i = 0; i < s->n; i++)
        blob_release(s, s->ent[i].blob);
    free(s->ent);
    ts_free(s->ws);
    size_t max = s->max_bytes;
    ts_store_init(s, max);
}

static int key_eq(ts_blob_key a, ts_blob_key b) {
    return a.model == b.model && a.layer == b.layer && a.index == b.index;
}

static int find_entry(const ts_blob_store *s, ts_blob_key k) {
    for (int i = 0; i < s->n; i++)
        if (key_eq(s->ent[i].key, k)) return i;
    return -1;
}

/* Binds key k to blob b (b->refs already counts this key): replaces the
 * entry of k, or adds one. Fails only when the entry table cannot grow. */
static ts_status bind_key(ts_blob_store *s, ts_blob_key k, ts_blob *b, ts_err *err) {
    int i = find_entry(s, k);
    if (i >= 0) {
        ts_blob *old = s->ent[i].blob;
        s->ent[i].blob = b;
        blob_release(s, old);
        return TS_OK;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        ts_blob_entry *ne = realloc(s->ent, sizeof *ne * (size_t)cap);
        if (!ne) return ts_errorf(err, TS_ERR_NOMEM, "out of memory growing the blob store");
        s->ent = ne;
        s->cap = cap;
    }
    s->ent[s->n++] = (ts_blob_entry){k, b};
    return TS_OK;
}

ts_status ts_store_put(ts_blob_store *s, ts_proto_in *in, int first, const ts_proto_msg *msg,
                       ts_err *err) {
    ts_blob_key k = msg->u.key;
    if (msg->n_tensors < 1)
        return ts_errorf(err, TS_ERR_INVALID, "blob (%u,%u,%u) has no tensors", k.model, k.layer,
                         k.index);
    size_t bytes = 0;
    for (int i = 0; i < msg->n_tensors; i++)
        bytes += ts_proto_tensor_bytes(&msg->tensors[i]);
    /* The blob this key replaces is freed only if no other key holds it. */
    int old = find_entry(s, k);
    size_t freed = old >= 0 && s->ent[old].blob->refs == 1 ? s->ent[old].blob->bytes : 0;
    size_t kept = s->bytes - freed;
    if (bytes > s->max_bytes - kept)
        return ts_errorf(err, TS_ERR_NOMEM,
                         "blob (%u,%u,%u) of %zu bytes would exceed the worker's %zu-byte cap",
                         k.model, k.layer, k.index, bytes, s->max_bytes);
    ts_blob *b = calloc(1, sizeof *b);
    if (!b) return ts_errorf(err, TS_ERR_NOMEM, "out of memory storing a blob");
    b->refs = 1;
    b->n = msg->n_tensors;
    b->bytes = bytes;
    for (int i = 0; i < b->n; i++) {
        /* The frame moves into the blob, so the tensor view stays valid. */
        zmq_msg_init(&b->frames[i]);
        zmq_msg_move(&b->frames[i], &in->part[first + 1 + i]);
        b->t[i] = msg->tensors[i];
        b->t[i].data = zmq_msg_data(&b->frames[i]);
    }
    s->bytes += bytes;
    ts_status st = bind_key(s, k, b, err);
    if (st != TS_OK) blob_release(s, b);
    return st;
}

ts_status ts_store_alias(ts_blob_store *s, ts_blob_key src, ts_blob_key dst, ts_err *err) {
    int i = find_entry(s, src);
    if (i < 0)
        return ts_errorf(err, TS_ERR_INVALID,
                         "cannot alias blob (%u,%u,%u) to (%u,%u,%u): the source is not deployed "
                         "on this worker",
                         dst.model, dst.layer, dst.index, src.model, src.layer, src.index);
    ts_blob *b = s->ent[i].blob;
    b->refs++;
    ts_status st = bind_key(s, dst, b, err);
    if (st != TS_OK) blob_release(s, b);
    return st;
}

static const ts_blob *get_blob(const ts_blob_store *s, ts_blob_key k, ts_err *err) {
    int i = find_entry(s, k);
    if (i < 0) {
        ts_errorf(err, TS_ERR_INVALID, "no blob (%u,%u,%u) is deployed on this worker", k.model,
                  k.layer, k.index);
        return NULL;
    }
    return s->ent[i].blob;
}

/* ---- outputs -------------------------------------------------------------- */

static ts_status new_output(const ts_shape *s, size_t max_bytes, ts_tensor *out, ts_err *err) {
    int64_t n = ts_shape_numel(s);
    if (n < 1 || (uint64_t)n > max_bytes / sizeof(float))
        return ts_errorf(err, TS_ERR_NOMEM, "task output of %lld floats exceeds the %zu-byte cap",
                         (long long)n, max_bytes);
    out->s = *s;
    out->size = n;
    out->owns_data = 0; /* the caller hands data to ZeroMQ or frees it */
    out->data = ts_alloc((size_t)n * sizeof(float));
    if (!out->data) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a task output");
    return TS_OK;
}

static void free_outputs(ts_tensor *outs, int n) {
    for (int i = 0; i < n; i++)
        ts_free(outs[i].data);
}

/* ---- kernels ------------------------------------------------------------- */

static ts_status run_echo(const ts_tensor *inputs, int n, size_t max_out, ts_tensor *outs,
                          int *n_outs, ts_err *err) {
    for (int i = 0; i < n; i++) {
        ts_status s = new_output(&inputs[i].s, max_out, &outs[i], err);
        if (s != TS_OK) {
            free_outputs(outs, i);
            return s;
        }
        memcpy(outs[i].data, inputs[i].data, ts_proto_tensor_bytes(&inputs[i]));
    }
    *n_outs = n;
    return TS_OK;
}

/* The kernels check their parameters; this bound only keeps hostile values
 * far from integer overflow in the shape arithmetic. */
static ts_status check_conv_params(const ts_conv2d_params *p, ts_err *err) {
    const int lim = 1 << 16;
    int v[] = {p->stride_h, p->stride_w, p->pad_t, p->pad_l, p->pad_b,
               p->pad_r,    p->dil_h,    p->dil_w, p->groups};
    for (int i = 0; i < 9; i++)
        if (v[i] < 0 || v[i] > lim)
            return ts_errorf(err, TS_ERR_INVALID, "conv task parameter %d = %d out of range", i,
                             v[i]);
    return TS_OK;
}

static ts_status conv_pair(ts_blob_store *s, const ts_proto_task *t, const ts_tensor *x,
                           ts_blob_key key, size_t max_out, ts_tensor *y, double *flops,
                           ts_err *err) {
    const ts_blob *b = get_blob(s, key, err);
    if (!b) return err ? err->status : TS_ERR_INVALID;
    const ts_tensor *w = &b->t[0];
    const ts_tensor *bias = b->n > 1 ? &b->t[1] : NULL;
    ts_shape ys;
    TS_TRY(ts_conv2d_out_shape(&t->conv, &x->s, &w->s, &ys, err));
    size_t need = ts_conv2d_workspace_floats(&t->conv, &x->s, &w->s);
    if (need > s->ws_floats) {
        ts_free(s->ws);
        s->ws_floats = 0;
        s->ws = need ? ts_alloc(need * sizeof(float)) : NULL;
        if (need && !s->ws) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for conv scratch");
        s->ws_floats = need;
    }
    TS_TRY(new_output(&ys, max_out, y, err));
    ts_status st = ts_conv2d_forward(&t->conv, x, w, bias, y, s->ws, err);
    if (st != TS_OK) {
        ts_free(y->data);
        y->data = NULL;
        return st;
    }
    /* Per output element: C/groups * KH * KW multiply-adds. */
    *flops += 2.0 * (double)y->size * (double)(w->s.shape[1] * w->s.shape[2] * w->s.shape[3]);
    return TS_OK;
}

static ts_status gemm_pair(ts_blob_store *s, const ts_proto_task *t, const ts_tensor *x,
                           ts_blob_key key, size_t max_out, ts_tensor *y, double *flops,
                           ts_err *err) {
    const ts_blob *b = get_blob(s, key, err);
    if (!b) return err ? err->status : TS_ERR_INVALID;
    const ts_tensor *a = &b->t[0];
    if (a->s.ndim != 2 || x->s.ndim != 2)
        return ts_errorf(err, TS_ERR_SHAPE, "gemm task needs 2-D blob and input, got %d-D and %d-D",
                         a->s.ndim, x->s.ndim);
    int64_t m = t->trans_a ? a->s.shape[1] : a->s.shape[0];
    int64_t k = t->trans_a ? a->s.shape[0] : a->s.shape[1];
    int64_t kx = t->trans_b ? x->s.shape[1] : x->s.shape[0];
    int64_t n = t->trans_b ? x->s.shape[0] : x->s.shape[1];
    if (k != kx)
        return ts_errorf(err, TS_ERR_SHAPE, "gemm task: inner dimensions %lld and %lld differ",
                         (long long)k, (long long)kx);
    ts_shape ys = ts_shape2(m, n);
    TS_TRY(new_output(&ys, max_out, y, err));
    ts_status st = ts_gemm_forward(t->trans_a, t->trans_b, 1.0f, 0.0f, a, x, NULL, y, err);
    if (st != TS_OK) {
        ts_free(y->data);
        y->data = NULL;
        return st;
    }
    *flops += 2.0 * (double)m * (double)n * (double)k;
    return TS_OK;
}

ts_status ts_task_run(ts_blob_store *s, const ts_proto_task *t, const ts_tensor *inputs,
                      int n_inputs, size_t max_out_bytes, ts_tensor *outs, int *n_outs,
                      double *flops, ts_err *err) {
    *n_outs = 0;
    *flops = 0;
    if (t->kind == TS_TASK_ECHO)
        return run_echo(inputs, n_inputs, max_out_bytes, outs, n_outs, err);
    if (t->kind != TS_TASK_CONV2D && t->kind != TS_TASK_GEMM)
        return ts_errorf(err, TS_ERR_UNSUPPORTED, "task kind %u is not supported", t->kind);
    if (t->kind == TS_TASK_CONV2D) TS_TRY(check_conv_params(&t->conv, err));
    if (t->kind == TS_TASK_GEMM && (t->trans_a > 1 || t->trans_b > 1))
        return ts_errorf(err, TS_ERR_INVALID, "gemm task: transpose flags must be 0 or 1");
    for (uint32_t i = 0; i < t->n_pairs; i++) {
        const ts_task_pair *p = &t->pairs[i];
        ts_status st;
        if (p->input >= (uint32_t)n_inputs)
            st = ts_errorf(err, TS_ERR_INVALID, "pair %u names input %u of %d", i, p->input,
                           n_inputs);
        else if (t->kind == TS_TASK_CONV2D)
            st = conv_pair(s, t, &inputs[p->input], p->key, max_out_bytes, &outs[i], flops, err);
        else
            st = gemm_pair(s, t, &inputs[p->input], p->key, max_out_bytes, &outs[i], flops, err);
        if (st != TS_OK) {
            free_outputs(outs, (int)i);
            return st;
        }
    }
    *n_outs = (int)t->n_pairs;
    return TS_OK;
}
