/* coder.c: one coded conv or dense layer: cut, encode, decode, reassemble
 * (see coded.h). Buffers are sized once per coder and reused, so a coded
 * inference allocates nothing in the steady state. */
#include <stdlib.h>
#include <string.h>

#include "tessera/code.h"
#include "coded_internal.h"
#include "tessera/coded.h"

struct ts_layer_coder {
    ts_share_kind kind;
    ts_scheme scheme;
    ts_code *code;
    int n, na, nb, qa, qb, threshold;
    /* conv */
    ts_conv_geometry geom;
    float *ws; /* im2col workspace of ts_coder_compute */
    /* gemm */
    int64_t rows, k, m, b_a, m_b;
    /* shapes of one input share, filter share and product */
    ts_shape in_shape, filter_shape, prod_shape;
    size_t in_len, filter_len, prod_len;
    float *a_blocks;         /* na * in_len */
    ts_tensor **inputs;      /* n * qa */
    ts_tensor **products;    /* n * qa * qb */
    float *targets;          /* na * nb * prod_len */
    const float **prod_ptrs; /* scratch for decode: n * qa * qb */
    /* filter groups cut from the last weights encoded (deploy encodes every
     * worker's shares from the same cut): nb * filter_len */
    float *b_blocks;
    const float *b_src;
    int b_trans;
    float **target_ptrs; /* na * nb */
};

static ts_status code_params_for(ts_scheme scheme, int n, int s, int kA, int kB, ts_code_params *cp,
                                 ts_err *err) {
    memset(cp, 0, sizeof *cp);
    cp->n = n;
    if (n < 1) return ts_errorf(err, TS_ERR_INVALID, "a coded layer needs at least one worker");
    if (s < 0 || s >= n)
        return ts_errorf(err, TS_ERR_INVALID,
                         "%d stragglers cannot be tolerated with %d workers (use at most %d)", s, n,
                         n - 1);
    switch (scheme) {
    case TS_SCHEME_UNCODED:
        cp->kind = TS_CODE_UNCODED;
        cp->kA = 1, cp->kB = n;
        break;
    case TS_SCHEME_REPLICATION:
        cp->kind = TS_CODE_REPLICATION;
        cp->replicas = s + 1;
        cp->kA = 1, cp->kB = n / (s + 1);
        if (cp->kB < 1)
            return ts_errorf(err, TS_ERR_INVALID,
                             "replication with %d stragglers needs at least %d workers", s, s + 1);
        break;
    case TS_SCHEME_MDS:
        cp->kind = TS_CODE_VANDERMONDE;
        cp->kA = 1, cp->kB = n - s;
        break;
    case TS_SCHEME_POLYNOMIAL:
        cp->kind = TS_CODE_POLYNOMIAL;
        cp->kA = kA, cp->kB = kB;
        break;
    case TS_SCHEME_CRME:
        cp->kind = TS_CODE_CRME;
        cp->kA = kA, cp->kB = kB;
        /* kA = 1: the matrix-vector form sends the input whole (2 products
         * per worker instead of 4 on half-inputs): no halo, and no zero
         * rows for a dense layer at batch 1. */
        cp->matvec = kA == 1;
        break;
    default: return ts_errorf(err, TS_ERR_INVALID, "unknown scheme %d", (int)scheme);
    }
    if ((scheme == TS_SCHEME_POLYNOMIAL || scheme == TS_SCHEME_CRME) &&
        (kA < 1 || kB < 1 || kA * kB > n - s))
        return ts_errorf(err, TS_ERR_INVALID,
                         "kA=%d x kB=%d = %d workers needed, but %d workers with %d stragglers "
                         "leave %d: choose kA*kB <= %d",
                         kA, kB, kA * kB, n, s, n - s, n - s);
    return TS_OK;
}

static ts_layer_coder *coder_alloc(ts_scheme scheme, int n, int s, int kA, int kB, ts_err *err) {
    ts_code_params cp;
    if (code_params_for(scheme, n, s, kA, kB, &cp, err) != TS_OK) return NULL;
    ts_layer_coder *c = calloc(1, sizeof *c);
    if (!c) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for a coded layer");
        return NULL;
    }
    c->scheme = scheme;
    c->code = ts_code_new(&cp, err);
    if (!c->code) {
        free(c);
        return NULL;
    }
    c->n = ts_code_n(c->code);
    c->na = ts_code_a_blocks(c->code);
    c->nb = ts_code_b_blocks(c->code);
    c->qa = ts_code_a_shares(c->code);
    c->qb = ts_code_b_shares(c->code);
    c->threshold = ts_code_threshold(c->code);
    return c;
}

static void set_lengths(ts_layer_coder *c) {
    c->in_len = (size_t)ts_shape_numel(&c->in_shape);
    c->filter_len = (size_t)ts_shape_numel(&c->filter_shape);
    c->prod_len = (size_t)ts_shape_numel(&c->prod_shape);
}

/* The per-worker shares and products are allocated at the first encoded
 * input, not at construction: the planner builds a coder for every
 * candidate split only to read its costs. */
static ts_status ensure_buffers(ts_layer_coder *c, ts_err *err) {
    if (c->inputs) return TS_OK;
    if (c->kind == TS_SHARE_CONV) {
        ts_conv2d_params wp = ts_geom_worker_params(&c->geom);
        size_t ws = ts_conv2d_workspace_floats(&wp, &c->in_shape, &c->filter_shape);
        if (ws && !(c->ws = ts_alloc(ws * sizeof(float))))
            return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a conv workspace");
    }
    int n_in = c->n * c->qa, n_prod = n_in * c->qb, n_tg = c->na * c->nb;
    c->a_blocks = ts_alloc((size_t)c->na * c->in_len * sizeof(float));
    c->targets = ts_alloc((size_t)n_tg * c->prod_len * sizeof(float));
    c->inputs = calloc((size_t)n_in, sizeof *c->inputs);
    c->products = calloc((size_t)n_prod, sizeof *c->products);
    c->prod_ptrs = calloc((size_t)n_prod, sizeof *c->prod_ptrs);
    c->target_ptrs = calloc((size_t)n_tg, sizeof *c->target_ptrs);
    if (!c->a_blocks || !c->targets || !c->inputs || !c->products || !c->prod_ptrs ||
        !c->target_ptrs)
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for the coded layer's buffers");
    for (int i = 0; i < n_in; i++)
        if (!(c->inputs[i] = ts_tensor_new(&c->in_shape, err))) return TS_ERR_NOMEM;
    for (int i = 0; i < n_prod; i++)
        if (!(c->products[i] = ts_tensor_new(&c->prod_shape, err))) return TS_ERR_NOMEM;
    for (int t = 0; t < n_tg; t++)
        c->target_ptrs[t] = c->targets + (size_t)t * c->prod_len;
    return TS_OK;
}

/* Schemes whose number of output blocks is fixed by the worker count: a
 * layer with fewer outputs than blocks gets all-zero blocks instead of no
 * plan. The 2-D schemes choose kB, and the planner keeps it small enough. */
static int one_d(ts_scheme s) {
    return s == TS_SCHEME_UNCODED || s == TS_SCHEME_REPLICATION || s == TS_SCHEME_MDS;
}

ts_layer_coder *ts_coder_new_conv(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                                  ts_scheme scheme, int n, int stragglers, int kA, int kB,
                                  ts_err *err) {
    ts_layer_coder *c = coder_alloc(scheme, n, stragglers, kA, kB, err);
    if (!c) return NULL;
    c->kind = TS_SHARE_CONV;
    ts_status st = one_d(scheme)
                       ? ts_conv_geometry_make_padded(p, x, w, c->na, c->nb, &c->geom, err)
                       : ts_conv_geometry_make(p, x, w, c->na, c->nb, &c->geom, err);
    if (st != TS_OK) goto fail;
    c->in_shape = ts_geom_slab_shape(&c->geom);
    c->filter_shape = ts_geom_filter_shape(&c->geom);
    c->prod_shape = ts_geom_block_shape(&c->geom);
    set_lengths(c);
    return c;
fail:
    ts_coder_free(c);
    return NULL;
}

ts_layer_coder *ts_coder_new_gemm(int64_t rows, int64_t k, int64_t m, ts_scheme scheme, int n,
                                  int stragglers, int kA, int kB, ts_err *err) {
    ts_layer_coder *c = coder_alloc(scheme, n, stragglers, kA, kB, err);
    if (!c) return NULL;
    c->kind = TS_SHARE_GEMM;
    c->rows = rows, c->k = k, c->m = m;
    if (rows < 1 || k < 1 || m < 1) {
        ts_errorf(err, TS_ERR_SHAPE,
                  "a dense layer needs positive sizes (rows %lld, K %lld, M %lld)", (long long)rows,
                  (long long)k, (long long)m);
        goto fail;
    }
    if (m < c->nb && !one_d(scheme)) {
        ts_errorf(err, TS_ERR_INVALID,
                  "the dense layer has %lld outputs, too few for %d row blocks; use a smaller kB "
                  "(at most %lld blocks)",
                  (long long)m, c->nb, (long long)m);
        goto fail;
    }
    c->b_a = (rows + c->na - 1) / c->na;
    c->m_b = (m + c->nb - 1) / c->nb;
    c->in_shape = ts_shape2(c->b_a, k);
    c->filter_shape = ts_shape2(c->m_b, k);
    c->prod_shape = ts_shape2(c->m_b, c->b_a);
    set_lengths(c);
    return c;
fail:
    ts_coder_free(c);
    return NULL;
}

void ts_coder_free(ts_layer_coder *c) {
    if (!c) return;
    if (c->inputs)
        for (int i = 0; i < c->n * c->qa; i++)
            ts_tensor_free(c->inputs[i]);
    if (c->products)
        for (int i = 0; i < c->n * c->qa * c->qb; i++)
            ts_tensor_free(c->products[i]);
    free(c->inputs);
    free(c->products);
    free(c->prod_ptrs);
    free(c->target_ptrs);
    ts_free(c->a_blocks);
    ts_free(c->targets);
    ts_free(c->b_blocks);
    ts_free(c->ws);
    ts_code_free(c->code);
    free(c);
}

int ts_coder_threshold(const ts_layer_coder *c) {
    return c->threshold;
}
int ts_coder_workers(const ts_layer_coder *c) {
    return c->n;
}
int ts_coder_in_shares(const ts_layer_coder *c) {
    return c->qa;
}
int ts_coder_filter_shares(const ts_layer_coder *c) {
    return c->qb;
}
ts_share_kind ts_coder_kind(const ts_layer_coder *c) {
    return c->kind;
}
ts_conv2d_params ts_coder_worker_conv(const ts_layer_coder *c) {
    return c->kind == TS_SHARE_CONV ? ts_geom_worker_params(&c->geom) : ts_conv2d_params_default();
}
const ts_conv_geometry *ts_coder_geometry(const ts_layer_coder *c) {
    return c->kind == TS_SHARE_CONV ? &c->geom : NULL;
}

ts_tensor *ts_coder_new_filter_share(const ts_layer_coder *c, ts_err *err) {
    return ts_tensor_new(&c->filter_shape, err);
}

/* Row r of W as [M, K], whatever its stored orientation. */
static void weight_row(const ts_layer_coder *c, const ts_tensor *w, int trans_b, int64_t r,
                       float *out) {
    if (trans_b) {
        memcpy(out, w->data + r * c->k, (size_t)c->k * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < c->k; i++)
        out[i] = w->data[i * c->m + r];
}

static ts_status check_weights(const ts_layer_coder *c, const ts_tensor *w, int trans_b,
                               ts_err *err) {
    if (c->kind == TS_SHARE_CONV) {
        if (w->s.ndim != 4 || w->s.shape[0] != c->geom.n_filters ||
            w->s.shape[1] != c->geom.c / c->geom.p.groups || w->s.shape[2] != c->geom.kh ||
            w->s.shape[3] != c->geom.kw)
            return ts_errorf(err, TS_ERR_SHAPE, "coded conv: the filters do not match the plan");
        return TS_OK;
    }
    int64_t want0 = trans_b ? c->m : c->k, want1 = trans_b ? c->k : c->m;
    if (w->s.ndim != 2 || w->s.shape[0] != want0 || w->s.shape[1] != want1)
        return ts_errorf(err, TS_ERR_SHAPE, "coded dense layer: the weights do not match the plan");
    return TS_OK;
}

/* Cuts w into the nB filter groups, once per weights (cached). */
static ts_status cut_filters(ts_layer_coder *c, const ts_tensor *w, int trans_b, ts_err *err) {
    if (c->b_blocks && c->b_src == w->data && c->b_trans == trans_b) return TS_OK;
    if (!c->b_blocks && !(c->b_blocks = ts_alloc((size_t)c->nb * c->filter_len * sizeof(float))))
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory cutting filter groups");
    for (int l = 0; l < c->nb; l++) {
        float *dst = c->b_blocks + (size_t)l * c->filter_len;
        if (c->kind == TS_SHARE_CONV) {
            ts_geom_extract_filters(&c->geom, w, l, dst);
            continue;
        }
        for (int64_t r = 0; r < c->m_b; r++) {
            int64_t row = (int64_t)l * c->m_b + r;
            if (row < c->m)
                weight_row(c, w, trans_b, row, dst + r * c->k);
            else
                memset(dst + r * c->k, 0, (size_t)c->k * sizeof(float));
        }
    }
    c->b_src = w->data;
    c->b_trans = trans_b;
    return TS_OK;
}

void ts_coder_forget_filters(ts_layer_coder *c) {
    ts_free(c->b_blocks);
    c->b_blocks = NULL;
    c->b_src = NULL;
}

ts_status ts_coder_encode_filters(ts_layer_coder *c, const ts_tensor *w, int trans_b, int worker,
                                  ts_tensor *const *out, ts_err *err) {
    TS_TRY(check_weights(c, w, trans_b, err));
    if (worker < 0 || worker >= c->n)
        return ts_errorf(err, TS_ERR_INVALID, "worker %d is not one of the %d", worker, c->n);
    TS_TRY(cut_filters(c, w, trans_b, err));
    const float *bp[512];
    float *op[8];
    TS_ASSERT(c->nb <= 512 && c->qb <= 8);
    for (int l = 0; l < c->nb; l++)
        bp[l] = c->b_blocks + (size_t)l * c->filter_len;
    for (int d = 0; d < c->qb; d++)
        op[d] = out[d]->data;
    return ts_code_encode_b(c->code, worker, bp, c->filter_len, op, err);
}

static void cut_input(ts_layer_coder *c, const ts_tensor *x) {
    for (int i = 0; i < c->na; i++) {
        float *dst = c->a_blocks + (size_t)i * c->in_len;
        if (c->kind == TS_SHARE_CONV) {
            ts_geom_extract_slab(&c->geom, x, i, dst);
            continue;
        }
        int64_t r0 = (int64_t)i * c->b_a;
        int64_t rows = c->rows - r0 < c->b_a ? c->rows - r0 : c->b_a;
        if (rows < 0) rows = 0;
        memset(dst, 0, c->in_len * sizeof(float));
        if (rows > 0) memcpy(dst, x->data + r0 * c->k, (size_t)(rows * c->k) * sizeof(float));
    }
}

ts_status ts_coder_encode_input(ts_layer_coder *c, const ts_tensor *x, ts_err *err) {
    if (c->kind == TS_SHARE_CONV) {
        ts_shape want = ts_shape4(c->geom.batch, c->geom.c, c->geom.h, c->geom.w);
        if (!ts_shape_eq(&x->s, &want))
            return ts_errorf(err, TS_ERR_SHAPE, "coded conv: the input does not match the plan");
    } else if (x->size != c->rows * c->k) {
        return ts_errorf(err, TS_ERR_SHAPE, "coded dense layer: the input does not match the plan");
    }
    TS_TRY(ensure_buffers(c, err));
    cut_input(c, x);
    const float *blocks[64];
    float *outs[8];
    TS_ASSERT(c->na <= 64 && c->qa <= 8);
    for (int i = 0; i < c->na; i++)
        blocks[i] = c->a_blocks + (size_t)i * c->in_len;
    for (int j = 0; j < c->n; j++) {
        for (int q = 0; q < c->qa; q++)
            outs[q] = c->inputs[j * c->qa + q]->data;
        TS_TRY(ts_code_encode_a(c->code, j, blocks, c->in_len, outs, err));
    }
    return TS_OK;
}

const ts_tensor *ts_coder_input(const ts_layer_coder *c, int worker, int share) {
    TS_ASSERT(c->inputs); /* after ts_coder_encode_input */
    TS_ASSERT(worker >= 0 && worker < c->n && share >= 0 && share < c->qa);
    return c->inputs[worker * c->qa + share];
}

ts_tensor *ts_coder_product(ts_layer_coder *c, int worker, int index) {
    TS_ASSERT(c->products); /* after ts_coder_encode_input */
    TS_ASSERT(worker >= 0 && worker < c->n && index >= 0 && index < c->qa * c->qb);
    return c->products[(worker * c->qa) * c->qb + index];
}

ts_status ts_coder_compute(ts_layer_coder *c, int worker, const ts_tensor *const *filters,
                           ts_err *err) {
    ts_conv2d_params wp = ts_coder_worker_conv(c);
    for (int a = 0; a < c->qa; a++)
        for (int d = 0; d < c->qb; d++) {
            const ts_tensor *in = ts_coder_input(c, worker, a);
            ts_tensor *y = ts_coder_product(c, worker, a * c->qb + d);
            if (c->kind == TS_SHARE_CONV)
                TS_TRY(ts_conv2d_forward(&wp, in, filters[d], NULL, y, c->ws, err));
            else
                TS_TRY(ts_gemm_forward(0, 1, 1.0f, 0.0f, filters[d], in, NULL, y, err));
        }
    return TS_OK;
}

static void assemble_gemm(const ts_layer_coder *c, const ts_tensor *bias, float alpha, float beta,
                          ts_tensor *y) {
    int per_row_bias = bias && bias->size == c->rows * c->m;
    for (int i = 0; i < c->na; i++)
        for (int l = 0; l < c->nb; l++) {
            const float *t = c->targets + (size_t)(i * c->nb + l) * c->prod_len;
            for (int64_t r = 0; r < c->b_a; r++) {
                int64_t row = (int64_t)i * c->b_a + r;
                if (row >= c->rows) break;
                for (int64_t mm = 0; mm < c->m_b; mm++) {
                    int64_t col = (int64_t)l * c->m_b + mm;
                    if (col >= c->m) break;
                    float v = alpha * t[mm * c->b_a + r];
                    if (bias) v += beta * bias->data[per_row_bias ? row * c->m + col : col];
                    y->data[row * c->m + col] = v;
                }
            }
        }
}

ts_status ts_coder_decode(ts_layer_coder *c, const int *responders, int n_resp,
                          const ts_tensor *bias, float alpha, float beta, ts_tensor *y,
                          double *cond, ts_err *err) {
    if (!c->products) return ts_errorf(err, TS_ERR_INVALID, "decode before any input was encoded");
    /* replication needs one answer per replica group, not a count: the
     * code library checks the coverage */
    int replicated = ts_code_params_of(c->code)->kind == TS_CODE_REPLICATION;
    if (n_resp < c->threshold && !replicated)
        return ts_errorf(err, TS_ERR_UNAVAILABLE,
                         "%d workers answered, the code needs %d of the %d", n_resp, c->threshold,
                         c->n);
    int per = c->qa * c->qb;
    for (int r = 0; r < n_resp; r++) {
        if (responders[r] < 0 || responders[r] >= c->n)
            return ts_errorf(err, TS_ERR_INVALID, "responder %d is not a worker", responders[r]);
        for (int q = 0; q < per; q++)
            c->prod_ptrs[r * per + q] = c->products[responders[r] * per + q]->data;
    }
    TS_TRY(ts_code_decode(c->code, responders, n_resp, c->prod_ptrs, c->prod_len, c->target_ptrs,
                          cond, err));
    if (c->kind == TS_SHARE_CONV) {
        ts_shape want = ts_shape4(c->geom.batch, c->geom.n_filters, c->geom.h_out, c->geom.w_out);
        if (!ts_shape_eq(&y->s, &want))
            return ts_errorf(err, TS_ERR_SHAPE, "coded conv: the output does not match the plan");
        for (int i = 0; i < c->na; i++)
            for (int l = 0; l < c->nb; l++)
                ts_geom_place_block(&c->geom, c->target_ptrs[i * c->nb + l], i, l, bias, y);
        return TS_OK;
    }
    if (y->size != c->rows * c->m)
        return ts_errorf(err, TS_ERR_SHAPE,
                         "coded dense layer: the output does not match the plan");
    if (bias && bias->size != c->m && bias->size != c->rows * c->m)
        return ts_errorf(err, TS_ERR_SHAPE,
                         "coded dense layer: the bias has %lld elements, expected %lld or %lld",
                         (long long)bias->size, (long long)c->m, (long long)(c->rows * c->m));
    assemble_gemm(c, bias, alpha, beta, y);
    return TS_OK;
}

ts_code *ts_coder_code(ts_layer_coder *c) {
    return c->code;
}

void ts_coder_costs(const ts_layer_coder *c, ts_layer_plan *pl) {
    double fl = sizeof(float), qa = c->qa, qb = c->qb;
    double in = (double)c->in_len, out = (double)c->prod_len, filt = (double)c->filter_len;
    double macs_per_out, total_out;
    if (c->kind == TS_SHARE_CONV) {
        const ts_conv_geometry *g = &c->geom;
        macs_per_out = (double)((g->c / g->p.groups) * g->kh * g->kw);
        total_out = (double)(g->batch * g->n_filters * g->h_out * g->w_out);
    } else {
        macs_per_out = (double)c->k;
        total_out = (double)(c->rows * c->m);
    }
    pl->bytes_in = (int64_t)(qa * in * fl);
    pl->bytes_out = (int64_t)(qa * qb * out * fl);
    pl->bytes_stored = (int64_t)(qb * filt * fl);
    pl->flops_worker = 2.0 * qa * qb * out * macs_per_out;
    pl->flops_uncoded = 2.0 * total_out * macs_per_out;
}
