/* partition.c: APCP input slabs and KCCP filter groups (see coded.h). */
#include <string.h>

#include "tessera/coded.h"

static int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

static ts_status geometry_split(ts_conv_geometry *g, int n_slabs, int n_groups, int padded,
                                ts_err *err) {
    if (n_slabs < 1 || n_groups < 1)
        return ts_errorf(err, TS_ERR_INVALID, "a conv layer needs at least one slab and group");
    if (g->h_out < n_slabs)
        return ts_errorf(err, TS_ERR_INVALID,
                         "the layer has %lld output rows, too few for %d input slabs; use at most "
                         "%lld slabs (a smaller kA)",
                         (long long)g->h_out, n_slabs, (long long)g->h_out);
    int64_t per_conv_group = g->n_filters / g->p.groups;
    /* Zero filters are fine for padding a split, but a split where whole
     * filter groups would be zero is a plan mistake. */
    if (!padded && per_conv_group > 1 && per_conv_group < n_groups)
        return ts_errorf(err, TS_ERR_INVALID,
                         "the layer has %lld filters per conv group, too few for %d filter "
                         "groups; use at most %lld (a smaller kB)",
                         (long long)per_conv_group, n_groups, (long long)per_conv_group);
    int64_t eff_kh = (int64_t)(g->kh - 1) * g->p.dil_h + 1;
    g->n_slabs = n_slabs;
    g->h_o = ceil_div(g->h_out, n_slabs);
    g->h_in = (g->h_o - 1) * g->p.stride_h + eff_kh;
    g->n_groups = n_groups;
    g->per_group = ceil_div(per_conv_group, n_groups);
    g->n_b = g->per_group * g->p.groups;
    return TS_OK;
}

static ts_status geometry_make(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                               int n_slabs, int n_groups, int padded, ts_conv_geometry *g,
                               ts_err *err) {
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
    return geometry_split(g, n_slabs, n_groups, padded, err);
}

ts_status ts_conv_geometry_make(const ts_conv2d_params *p, const ts_shape *x, const ts_shape *w,
                                int n_slabs, int n_groups, ts_conv_geometry *g, ts_err *err) {
    return geometry_make(p, x, w, n_slabs, n_groups, 0, g, err);
}

ts_status ts_conv_geometry_make_padded(const ts_conv2d_params *p, const ts_shape *x,
                                       const ts_shape *w, int n_slabs, int n_groups,
                                       ts_conv_geometry *g, ts_err *err) {
    return geometry_make(p, x, w, n_slabs, n_groups, 1, g, err);
}

ts_shape ts_geom_slab_shape(const ts_conv_geometry *g) {
    return ts_shape4(g->batch, g->c, g->h_in, g->w_pad);
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
    return q;
}

void ts_geom_extract_slab(const ts_conv_geometry *g, const ts_tensor *x, int i, float *out) {
    int64_t row0 = (int64_t)i * g->h_o * g->p.stride_h - g->p.pad_t; /* in unpadded rows */
    size_t plane = (size_t)(g->h_in * g->w_pad);
    memset(out, 0, (size_t)(g->batch * g->c) * plane * sizeof(float));
    for (int64_t b = 0; b < g->batch; b++)
        for (int64_t c = 0; c < g->c; c++) {
            const float *src = x->data + (b * g->c + c) * g->h * g->w;
            float *dst = out + (size_t)(b * g->c + c) * plane;
            for (int64_t r = 0; r < g->h_in; r++) {
                int64_t sr = row0 + r;
                if (sr < 0 || sr >= g->h) continue;
                memcpy(dst + r * g->w_pad + g->p.pad_l, src + sr * g->w,
                       (size_t)g->w * sizeof(float));
            }
        }
}

/* Original output channel of channel m of filter group j, or -1 (padding). */
static int64_t source_channel(const ts_conv_geometry *g, int j, int64_t m) {
    int64_t per_conv_group = g->n_filters / g->p.groups;
    int64_t conv_group = m / g->per_group, t = (int64_t)j * g->per_group + m % g->per_group;
    return t < per_conv_group ? conv_group * per_conv_group + t : -1;
}

void ts_geom_extract_filters(const ts_conv_geometry *g, const ts_tensor *w, int j, float *out) {
    int64_t per = (g->c / g->p.groups) * g->kh * g->kw;
    for (int64_t m = 0; m < g->n_b; m++) {
        int64_t src = source_channel(g, j, m);
        float *dst = out + m * per;
        if (src >= 0)
            memcpy(dst, w->data + src * per, (size_t)per * sizeof(float));
        else
            memset(dst, 0, (size_t)per * sizeof(float));
    }
}

void ts_geom_place_block(const ts_conv_geometry *g, const float *block, int i, int j,
                         const ts_tensor *bias, ts_tensor *y) {
    int64_t r0 = (int64_t)i * g->h_o;
    int64_t rows = g->h_out - r0 < g->h_o ? g->h_out - r0 : g->h_o;
    for (int64_t b = 0; b < g->batch; b++)
        for (int64_t m = 0; m < g->n_b; m++) {
            int64_t ch = source_channel(g, j, m);
            if (ch < 0) continue;
            float bv = bias ? bias->data[ch] : 0.0f;
            for (int64_t r = 0; r < rows; r++) {
                const float *src = block + ((b * g->n_b + m) * g->h_o + r) * g->w_out;
                float *dst = y->data + ((b * g->n_filters + ch) * g->h_out + r0 + r) * g->w_out;
                for (int64_t c = 0; c < g->w_out; c++)
                    dst[c] = src[c] + bv;
            }
        }
}
