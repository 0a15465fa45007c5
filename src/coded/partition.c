/* partition.c: APCP input slabs and KCCP filter groups (see coded.h). */
#include <string.h>

#include "tessera/coded.h"

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static ts_status geometry_split(ts_conv_geometry *g, int n_slabs, int n_groups, ts_err *err) {
    if (n_slabs < 1 || n_groups < 1)
        return ts_errorf(err, TS_ERR_INVALID, "a conv layer needs at least one slab and group");
    if (g->h_out < n_slabs)
        return ts_errorf(err, TS_ERR_INVALID,
                         "the layer has %lld output rows, too few for %d input slabs; use at most "
                         "%lld slabs (a smaller kA)",
                         (long long)g->h_out, n_slabs, (long long)g->h_out);
    int64_t eff_kh = (int64_t)(g->kh - 1) * g->p.dil_h + 1;
    g->n_slabs = n_slabs;
    g->h_o = ceil_div(g->h_out, n_slabs);
    g->h_in = (g->h_o - 1) * g->p.stride_h + eff_kh;
    g->n_groups = n_groups;
    if (g->grouped) {
        if (g->p.groups < n_groups)
            return ts_errorf(err, TS_ERR_INVALID,
                             "a grouped conv with %d groups cannot be split into %d filter groups",
                             g->p.groups, n_groups);
        g->groups_per_share = ceil_div(g->p.groups, n_groups);
        int64_t per_group_out = g->n_filters / g->p.groups;
        g->n_b = g->groups_per_share * per_group_out;
        g->c_per_share = g->groups_per_share * (g->c / g->p.groups);
    } else {
        if (g->n_filters < n_groups)
            return ts_errorf(err, TS_ERR_INVALID,
                             "the layer has %lld filters, too few for %d filter groups; use at "
                             "most %lld (a smaller kB)",
                             (long long)g->n_filters, n_groups, (long long)g->n_filters);
        g->groups_per_share = 1;
        g->n_b = ceil_div(g->n_filters, n_groups);
        g->c_per_share = g->c;
    }
    return TS_OK;
}

ts_status ts_conv_geometry_make(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                                int n_slabs, int n_groups, ts_conv_geometry *g, ts_err *err) {
    memset(g, 0, sizeof *g);
    ts_shape y;
    TS_TRY(ts_conv2d_out_shape(p, x, w, &y, err));
    g->batch = x->shape[0];
    g->c = x->shape[1];
    g->h = x->shape[2];
    g->w = x->shape[3];
    g->n_filters = w->shape[0];
    g->kh = w->shape[2];
    g->kw = w->shape[3];
    g->p = *p;
    g->h_out = y.shape[2];
    g->w_out = y.shape[3];
    g->w_pad = g->w + p->pad_l + p->pad_r;
    g->grouped = p->groups > 1;
    return geometry_split(g, n_slabs, n_groups, err);
}

ts_shape ts_geom_slab_shape(const ts_conv_geometry *g) {
    return ts_shape4(g->batch, g->grouped ? g->c_per_share * g->n_groups : g->c, g->h_in,
                     g->w_pad);
}

ts_shape ts_geom_filter_shape(const ts_conv_geometry *g) {
    return ts_shape4(g->n_b, g->c / g->p.groups, g->kh, g->kw);
}

ts_shape ts_geom_block_shape(const ts_conv_geometry *g) {
    return ts_shape4(g->batch, g->n_b, g->h_o, g->w_out);
}

ts_conv2d_params ts_geom_worker_params(const ts_conv_geometry *g) {
    ts_conv2d_params q = g->p;
    q.pad_t = q.pad_b = q.pad_l = q.pad_r = 0;
    q.groups = (int)g->groups_per_share;
    return q;
}

void ts_geom_extract_slab(const ts_conv_geometry *g, const ts_tensor *x, int i, float *out) {
    ts_shape s = ts_geom_slab_shape(g);
    int64_t cs = s.shape[1];
    int64_t row0 = (int64_t)i * g->h_o * g->p.stride_h - g->p.pad_t; /* in unpadded rows */
    size_t plane = (size_t)(g->h_in * g->w_pad);
    memset(out, 0, (size_t)(g->batch * cs) * plane * sizeof(float));
    for (int64_t b = 0; b < g->batch; b++)
        for (int64_t c = 0; c < g->c; c++) {
            const float *src = x->data + (b * g->c + c) * g->h * g->w;
            float *dst = out + (size_t)(b * cs + c) * plane;
            for (int64_t r = 0; r < g->h_in; r++) {
                int64_t sr = row0 + r;
                if (sr < 0 || sr >= g->h) continue;
                memcpy(dst + r * g->w_pad + g->p.pad_l, src + sr * g->w,
                       (size_t)g->w * sizeof(float));
            }
        }
}

void ts_geom_extract_filters(const ts_conv_geometry *g, const ts_tensor *w, int j, float *out) {
    int64_t per = (g->c / g->p.groups) * g->kh * g->kw;
    int64_t first = (int64_t)j * g->n_b;
    for (int64_t m = 0; m < g->n_b; m++) {
        int64_t src = first + m;
        float *dst = out + m * per;
        if (src < g->n_filters) memcpy(dst, w->data + src * per, (size_t)per * sizeof(float));
        else memset(dst, 0, (size_t)per * sizeof(float));
    }
}

void ts_geom_place_block(const ts_conv_geometry *g, const double *block, int i, int j,
                         const ts_tensor *bias, ts_tensor *y) {
    int64_t r0 = (int64_t)i * g->h_o, c0 = (int64_t)j * g->n_b;
    for (int64_t b = 0; b < g->batch; b++)
        for (int64_t m = 0; m < g->n_b; m++) {
            int64_t ch = c0 + m;
            if (ch >= g->n_filters) break;
            float bv = bias ? bias->data[ch] : 0.0f;
            for (int64_t r = 0; r < g->h_o; r++) {
                int64_t row = r0 + r;
                if (row >= g->h_out) break;
                const double *src = block + ((b * g->n_b + m) * g->h_o + r) * g->w_out;
                float *dst = y->data + ((b * g->n_filters + ch) * g->h_out + row) * g->w_out;
                for (int64_t c = 0; c < g->w_out; c++) dst[c] = (float)src[c] + bv;
            }
        }
}
