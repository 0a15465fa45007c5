/* fcdcc.c: a whole model run coded. Every conv layer (FCDCC: APCP slabs x
 * KCCP filter groups, product-coded) and every dense layer (coded GEMM) is
 * planned, its filter shares are encoded and deployed once, and the graph's
 * layer executor sends only input shares per inference, decodes from the
 * first `threshold` workers and reassembles. When the backend's worker set
 * changes (a worker died or joined: its epoch moves) the model re-plans
 * every layer for the workers it has and re-deploys before going on; a
 * layer that lost too many workers mid-flight is re-run after that. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coded_internal.h"

typedef struct {
    ts_coded_layer_shape ls;
    ts_layer_plan plan;
    ts_layer_coder *coder;
    const ts_tensor *w; /* the graph's weights (borrowed) */
    int trans_b;
    int *responded, *responders; /* n each */
    int *group_of;               /* replication: [n] replica group of each worker */
    int n_groups;
} coded_layer;

struct ts_coded_model {
    ts_graph *g;
    ts_coded_opts o;
    ts_coded_backend be;
    coded_layer *layers;
    int n_layers;
    int *layer_of_node; /* node index -> layer index or -1 */
    int n_nodes;
    uint64_t epoch;
    int n_workers; /* workers the current plan and deployment are for */
    double max_cond;
    uint64_t replans;
    ts_layer_executor ex;
};

/* ---- collecting the layers ------------------------------------------- */

static ts_status conv_shape(const ts_graph *g, int i, ts_coded_layer_shape *ls, ts_err *err) {
    ts_node_view nv = ts_graph_node(g, i);
    ls->conv = nv.attrs->conv;
    ls->x = ts_graph_value(g, nv.inputs[0]).shape;
    ts_value_view w = ts_graph_value(g, nv.inputs[1]);
    if (!w.init)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "conv '%s': its filters are a graph input, not weights; a coded model "
                         "needs the filters stored in the model",
                         nv.name);
    ls->w = w.shape;
    if (ls->x.ndim != 4 || ls->x.shape[0] < 1)
        return ts_errorf(err, TS_ERR_INVALID, "conv '%s': plan the graph before coding it",
                         nv.name);
    return TS_OK;
}

static ts_status gemm_shape(const ts_graph *g, int i, ts_coded_layer_shape *ls, int *trans_b,
                            ts_err *err) {
    ts_node_view nv = ts_graph_node(g, i);
    ts_shape x = ts_graph_value(g, nv.inputs[0]).shape;
    ts_value_view w = ts_graph_value(g, nv.inputs[1]);
    if (!w.init)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "Gemm '%s': its weights are a graph input; a coded model needs them "
                         "stored in the model",
                         nv.name);
    if (nv.attrs->trans_a)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "Gemm '%s' has transA=1, which coded execution does not support", nv.name);
    if (x.ndim != 2 || w.shape.ndim != 2 || x.shape[0] < 1)
        return ts_errorf(err, TS_ERR_INVALID, "Gemm '%s': plan the graph before coding it",
                         nv.name);
    *trans_b = nv.attrs->trans_b;
    ls->rows = x.shape[0];
    ls->k = x.shape[1];
    ls->m = *trans_b ? w.shape.shape[0] : w.shape.shape[1];
    return TS_OK;
}

/* Conv and Gemm nodes, in graph order. MatMul nodes are refused: their
 * second operand is usually an activation, not stored weights. */
static ts_status collect_layers(const ts_graph *g, ts_coded_layer_shape **out, int **trans_b,
                                int *n_out, ts_err *err) {
    int nn = ts_graph_num_nodes(g), n = 0;
    ts_coded_layer_shape *ls = calloc((size_t)nn + 1, sizeof *ls);
    int *tb = calloc((size_t)nn + 1, sizeof *tb);
    if (!ls || !tb) {
        free(ls), free(tb);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory planning the coded model");
    }
    for (int i = 0; i < nn; i++) {
        ts_node_view nv = ts_graph_node(g, i);
        ts_status st = TS_OK;
        if (nv.op == TS_OP_CONV)
            st = conv_shape(g, i, &ls[n], err);
        else if (nv.op == TS_OP_GEMM)
            st = gemm_shape(g, i, &ls[n], &tb[n], err);
        else if (nv.op == TS_OP_MATMUL)
            st = ts_errorf(err, TS_ERR_UNSUPPORTED,
                           "MatMul '%s': coded execution runs dense layers given as Gemm with "
                           "stored weights",
                           nv.name);
        else
            continue;
        if (st != TS_OK) {
            free(ls), free(tb);
            return st;
        }
        ls[n].node = i;
        ls[n].op = nv.op;
        n++;
    }
    *out = ls;
    *trans_b = tb;
    *n_out = n;
    return TS_OK;
}

ts_status ts_coded_plan_graph(ts_graph *g, const ts_coded_opts *o, ts_layer_plan **plans,
                              int *n_plans, ts_err *err) {
    ts_coded_layer_shape *ls;
    int *tb, n;
    TS_TRY(collect_layers(g, &ls, &tb, &n, err));
    ts_layer_plan *p = calloc((size_t)n + 1, sizeof *p);
    ts_status st = p ? TS_OK : ts_errorf(err, TS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && st == TS_OK; i++) {
        st = ts_coded_plan_layer(&ls[i], o, &p[i], err);
        /* The conditioning depends on the code (scheme, n, s, kA, kB) only,
         * not on the layer: search once per distinct split. */
        int same = -1;
        for (int j = 0; j < i && same < 0; j++)
            if (p[j].kA == p[i].kA && p[j].kB == p[i].kB) same = j;
        if (st == TS_OK && same >= 0) {
            p[i].worst_cond = p[same].worst_cond;
            p[i].cond_exhaustive = p[same].cond_exhaustive;
        } else if (st == TS_OK) {
            st = ts_coded_worst_cond(&ls[i], o, &p[i], 2000, &p[i].worst_cond,
                                     &p[i].cond_exhaustive, err);
        }
    }
    free(ls);
    free(tb);
    if (st != TS_OK) {
        free(p);
        return st;
    }
    *plans = p;
    *n_plans = n;
    return TS_OK;
}

/* ---- planning and deploying for the current workers -------------------- */

static void drop_coders(ts_coded_model *m) {
    for (int i = 0; i < m->n_layers; i++) {
        ts_coder_free(m->layers[i].coder);
        m->layers[i].coder = NULL;
    }
}

static ts_status deploy_layer(ts_coded_model *m, int li, ts_err *err) {
    coded_layer *L = &m->layers[li];
    int qb = ts_coder_filter_shares(L->coder);
    ts_tensor *shares[8] = {0};
    TS_ASSERT(qb <= 8);
    ts_status st = TS_OK;
    for (int d = 0; d < qb && st == TS_OK; d++)
        if (!(shares[d] = ts_coder_new_filter_share(L->coder, err))) st = TS_ERR_NOMEM;
    for (int j = 0; j < m->n_workers && st == TS_OK; j++) {
        st = ts_coder_encode_filters(L->coder, L->w, L->trans_b, j, shares, err);
        for (int d = 0; d < qb && st == TS_OK; d++)
            st = m->be.deploy(m->be.ctx, j, li, d, shares[d], err);
    }
    for (int d = 0; d < qb; d++)
        ts_tensor_free(shares[d]);
    ts_coder_forget_filters(L->coder);
    return st;
}

/* Who answered, and for replication which workers hold the same task: the
 * n/(s+1) filter groups go round-robin, worker j holding group j mod T (as
 * the replication code builds them). A replicated layer is done once each
 * group has answered, not after a fixed count. */
static ts_status alloc_layer_state(coded_layer *L, ts_scheme scheme, int n, int s, ts_err *err) {
    free(L->responded);
    free(L->responders);
    free(L->group_of);
    L->responded = calloc((size_t)n, sizeof(int));
    L->responders = calloc((size_t)n, sizeof(int));
    L->group_of = NULL;
    L->n_groups = 0;
    if (scheme == TS_SCHEME_REPLICATION) {
        L->n_groups = n / (s + 1);
        L->group_of = calloc((size_t)n, sizeof(int));
        for (int j = 0; L->group_of && j < n; j++)
            L->group_of[j] = j % L->n_groups;
    }
    if (!L->responded || !L->responders || (L->n_groups && !L->group_of))
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a coded layer");
    return TS_OK;
}

/* Plans every layer for the backend's current workers and deploys. */
static ts_status replan(ts_coded_model *m, ts_err *err) {
    drop_coders(m);
    m->epoch = m->be.epoch(m->be.ctx);
    m->n_workers = m->be.num_workers(m->be.ctx);
    ts_coded_opts o = m->o;
    o.n_workers = m->n_workers;
    if (o.stragglers >= o.n_workers)
        return ts_errorf(err, TS_ERR_UNAVAILABLE,
                         "%d workers are left, too few to tolerate %d stragglers: no plan is "
                         "possible (start more workers or lower --stragglers)",
                         m->n_workers, o.stragglers);
    for (int i = 0; i < m->n_layers; i++) {
        coded_layer *L = &m->layers[i];
        TS_TRY(ts_coded_plan_layer(&L->ls, &o, &L->plan, err));
        L->coder = ts_coded_make_coder(&L->ls, o.scheme, o.n_workers, o.stragglers, L->plan.kA,
                                       L->plan.kB, err);
        if (!L->coder) return TS_ERR_INVALID;
        TS_TRY(alloc_layer_state(L, o.scheme, m->n_workers, o.stragglers, err));
        TS_TRY(deploy_layer(m, i, err));
    }
    TS_TRY(m->be.deploy_wait(m->be.ctx, err));
    m->replans++;
    return TS_OK;
}

/* ---- running a layer ----------------------------------------------------- */

static ts_status run_once(ts_coded_model *m, int li, const ts_tensor *x, ts_err *err) {
    coded_layer *L = &m->layers[li];
    ts_layer_coder *c = L->coder;
    int n = m->n_workers, qa = ts_coder_in_shares(c), qb = ts_coder_filter_shares(c);
    TS_TRY(ts_coder_encode_input(c, x, err));
    const ts_tensor *ins[256 * 2];
    ts_tensor *outs[256 * 4];
    TS_ASSERT(n <= 256 && qa <= 2 && qb <= 2);
    for (int j = 0; j < n; j++) {
        for (int a = 0; a < qa; a++)
            ins[j * qa + a] = ts_coder_input(c, j, a);
        for (int q = 0; q < qa * qb; q++)
            outs[j * qa * qb + q] = ts_coder_product(c, j, q);
    }
    memset(L->responded, 0, (size_t)n * sizeof(int));
    ts_layer_job job = {
        .layer = li,
        .kind = ts_coder_kind(c),
        .conv = ts_coder_worker_conv(c),
        .n_in = qa,
        .n_shares = qb,
        .inputs = ins,
        .outputs = outs,
        .need = L->group_of ? L->n_groups : ts_coder_threshold(c),
        .group_of = L->group_of,
        .deadline_s = m->o.deadline_s,
        .responded = L->responded,
    };
    return m->be.run(m->be.ctx, &job, err);
}

/* Decoding multiplies the float32 round-off of the workers' products by
 * the condition number of the system solved: past the limit the answer may
 * be wrong in its leading digits, so it is refused, not returned. */
static ts_status check_conditioning(const ts_coded_model *m, int li, double cond, ts_err *err) {
    double limit = m->o.max_cond > 0 ? m->o.max_cond : TS_CODED_MAX_COND;
    if (cond <= limit) return TS_OK;
    return ts_errorf(err, TS_ERR_NUMERIC,
                     "layer %d (%s, %d workers): the decoding system has condition number %.3g, "
                     "over the limit %.3g; the result could be off by about %.1e relative. Use "
                     "--scheme crme, fewer workers, or raise --max-cond",
                     li, ts_scheme_name(m->o.scheme), m->n_workers, cond, limit, cond * 6e-8);
}

static ts_status run_layer(ts_coded_model *m, int node, const ts_tensor *x, const ts_tensor *bias,
                           float alpha, float beta, ts_tensor *y, ts_err *err) {
    int li = node >= 0 && node < m->n_nodes ? m->layer_of_node[node] : -1;
    if (li < 0) return ts_errorf(err, TS_ERR_INVALID, "node %d is not a coded layer", node);
    ts_status st = TS_OK;
    /* Each retry follows a change of the worker set; a set that keeps
     * changing faster than a layer runs is reported, not chased forever. */
    for (int attempt = 0; attempt < 4; attempt++) {
        if (m->be.epoch(m->be.ctx) != m->epoch) TS_TRY(replan(m, err));
        st = run_once(m, li, x, err);
        if (st == TS_OK) break;
        if (st != TS_ERR_UNAVAILABLE || m->be.epoch(m->be.ctx) == m->epoch) return st;
        ts_log(TS_LOG_WARN, "layer %d: %s; re-planning for the workers left", li, err->msg);
    }
    if (st != TS_OK) return st;
    coded_layer *L = &m->layers[li];
    int nr = 0;
    for (int j = 0; j < m->n_workers; j++)
        if (L->responded[j]) L->responders[nr++] = j;
    double cond = 0;
    TS_TRY(ts_coder_decode(L->coder, L->responders, nr, bias, alpha, beta, y, &cond, err));
    if (cond > m->max_cond || !isfinite(cond)) m->max_cond = cond;
    return check_conditioning(m, li, cond, err);
}

static ts_status exec_conv(void *ctx, int node, const ts_conv2d_params *p, const ts_tensor *x,
                           const ts_tensor *w, const ts_tensor *b, ts_tensor *y, ts_err *err) {
    (void)p;
    (void)w;
    return run_layer(ctx, node, x, b, 1.0f, 1.0f, y, err);
}

static ts_status exec_gemm(void *ctx, int node, const ts_node_attrs *a, const ts_tensor *x,
                           const ts_tensor *w, const ts_tensor *c, ts_tensor *y, ts_err *err) {
    (void)w;
    return run_layer(ctx, node, x, c, a->alpha, a->beta, y, err);
}

/* ---- the model ----------------------------------------------------------- */

ts_coded_model *ts_coded_model_new(ts_graph *g, const ts_coded_opts *o, ts_coded_backend be,
                                   ts_err *err) {
    ts_coded_model *m = calloc(1, sizeof *m);
    if (!m) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for the coded model");
        return NULL;
    }
    m->g = g;
    m->o = *o;
    m->be = be;
    m->n_nodes = ts_graph_num_nodes(g);
    ts_coded_layer_shape *ls = NULL;
    int *tb = NULL, n = 0;
    if (collect_layers(g, &ls, &tb, &n, err) != TS_OK) goto fail;
    m->layers = calloc((size_t)n + 1, sizeof *m->layers);
    m->layer_of_node = malloc((size_t)m->n_nodes * sizeof(int) + 1);
    if (!m->layers || !m->layer_of_node) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for the coded model");
        goto fail;
    }
    for (int i = 0; i < m->n_nodes; i++)
        m->layer_of_node[i] = -1;
    m->n_layers = n;
    for (int i = 0; i < n; i++) {
        coded_layer *L = &m->layers[i];
        L->ls = ls[i];
        L->trans_b = tb[i];
        L->w = ts_graph_value(g, ts_graph_node(g, ls[i].node).inputs[1]).init;
        m->layer_of_node[ls[i].node] = i;
    }
    free(ls);
    free(tb);
    ls = NULL, tb = NULL;
    if (replan(m, err) != TS_OK) goto fail;
    m->ex.conv = exec_conv;
    m->ex.gemm = exec_gemm;
    m->ex.ctx = m;
    ts_graph_set_executor(g, &m->ex);
    return m;
fail:
    free(ls);
    free(tb);
    ts_coded_model_free(m);
    return NULL;
}

void ts_coded_model_free(ts_coded_model *m) {
    if (!m) return;
    if (m->ex.ctx) ts_graph_set_executor(m->g, NULL);
    drop_coders(m);
    for (int i = 0; i < m->n_layers; i++) {
        free(m->layers[i].responded);
        free(m->layers[i].responders);
        free(m->layers[i].group_of);
    }
    free(m->layers);
    free(m->layer_of_node);
    free(m);
}

int ts_coded_model_num_layers(const ts_coded_model *m) {
    return m->n_layers;
}

const ts_layer_plan *ts_coded_model_layer(const ts_coded_model *m, int i) {
    TS_ASSERT(i >= 0 && i < m->n_layers);
    return &m->layers[i].plan;
}

double ts_coded_model_max_cond(const ts_coded_model *m) {
    return m->max_cond;
}

int ts_coded_model_workers(const ts_coded_model *m) {
    return m->n_workers;
}

uint64_t ts_coded_model_replans(const ts_coded_model *m) {
    return m->replans;
}
