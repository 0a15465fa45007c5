/* planner.c: chooses (kA, kB) per layer (see docs/fcdcc.md for the
 * formulas). For n workers and s stragglers the 2-D codes (polynomial,
 * CRME) need kA * kB <= n - s responders. Every divisor pair of k = n - s
 * that the layer can be cut into is costed per worker as
 *     w_comm * (bytes in + bytes out) + w_storage * bytes stored
 *       + w_compute * FLOPs
 * and the cheapest wins. When no pair of k fits the layer (too few rows or
 * filters), k - 1, k - 2, ... are tried: a smaller k only adds redundancy,
 * and the plan table shows the threshold actually used. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coded_internal.h"
#include "tessera/code.h"

ts_coded_opts ts_coded_opts_default(void) {
    ts_coded_opts o;
    memset(&o, 0, sizeof o);
    o.n_workers = 4;
    o.stragglers = 1;
    o.scheme = TS_SCHEME_CRME;
    o.w_comm = 1.0;
    o.w_storage = 1.0;
    o.w_compute = 0.0;
    o.deadline_s = 60.0;
    o.max_cond = TS_CODED_MAX_COND;
    return o;
}

static int two_d(ts_scheme s) {
    return s == TS_SCHEME_POLYNOMIAL || s == TS_SCHEME_CRME;
}

ts_layer_coder *ts_coded_make_coder(const ts_coded_layer_shape *ls, ts_scheme scheme, int n, int s,
                                    int kA, int kB, ts_err *err) {
    if (ls->op == TS_OP_CONV)
        return ts_coder_new_conv(&ls->conv, &ls->x, &ls->w, scheme, n, s, kA, kB, err);
    return ts_coder_new_gemm(ls->rows, ls->k, ls->m, scheme, n, s, kA, kB, err);
}

static double weighted_cost(const ts_coded_opts *o, const ts_layer_plan *p) {
    return o->w_comm * (double)(p->bytes_in + p->bytes_out) +
           o->w_storage * (double)p->bytes_stored + o->w_compute * p->flops_worker;
}

/* Tries one (kA, kB); keeps it in best if cheaper. */
static void try_split(const ts_coded_layer_shape *ls, const ts_coded_opts *o, int kA, int kB,
                      ts_layer_plan *best, double *best_cost, ts_err *why) {
    ts_err e = {0};
    ts_layer_coder *c = ts_coded_make_coder(ls, o->scheme, o->n_workers, o->stragglers, kA, kB, &e);
    if (!c) {
        *why = e;
        return;
    }
    ts_layer_plan p = *best;
    p.kA = kA, p.kB = kB;
    /* the 1-D schemes fix their blocks from n and s: show those */
    if (!two_d(o->scheme)) p.kB = ts_code_b_blocks(ts_coder_code(c));
    p.threshold = ts_coder_threshold(c);
    ts_coder_costs(c, &p);
    double cost = weighted_cost(o, &p);
    if (cost < *best_cost) *best = p, *best_cost = cost;
    ts_coder_free(c);
}

ts_status ts_coded_plan_layer(const ts_coded_layer_shape *ls, const ts_coded_opts *o,
                              ts_layer_plan *plan, ts_err *err) {
    memset(plan, 0, sizeof *plan);
    plan->node = ls->node;
    plan->op = ls->op;
    plan->worst_cond = NAN;
    int n = o->n_workers, s = o->stragglers;
    if (n < 1) return ts_errorf(err, TS_ERR_INVALID, "a coded plan needs at least one worker");
    if (s < 0 || s >= n)
        return ts_errorf(err, TS_ERR_INVALID,
                         "%d stragglers cannot be tolerated by %d workers: use at most %d "
                         "stragglers or more workers",
                         s, n, n - 1);
    double best_cost = INFINITY;
    ts_err why = {0};
    if (!two_d(o->scheme)) {
        try_split(ls, o, 1, 1, plan, &best_cost, &why);
    } else {
        for (int k = n - s; k >= 1 && !isfinite(best_cost); k--)
            for (int kA = 1; kA <= k; kA++)
                if (k % kA == 0) try_split(ls, o, kA, k / kA, plan, &best_cost, &why);
    }
    if (!isfinite(best_cost))
        return ts_errorf(err, TS_ERR_INVALID, "layer %d (%s) cannot be coded with %d workers: %s",
                         ls->node, ts_op_name(ls->op), n, why.msg);
    return TS_OK;
}

ts_status ts_coded_worst_cond(const ts_coded_layer_shape *ls, const ts_coded_opts *o,
                              const ts_layer_plan *plan, int max_sets, double *worst,
                              int *exhaustive, ts_err *err) {
    /* A tiny stand-in layer with the plan's code: the condition number
     * depends on the code and the responder set only, not on the block
     * length, so the products are 1-float blocks. */
    ts_layer_coder *c =
        ts_coded_make_coder(ls, o->scheme, o->n_workers, o->stragglers, plan->kA, plan->kB, err);
    if (!c) return TS_ERR_INVALID;
    ts_status st = ts_coder_worst_cond(c, max_sets, worst, exhaustive, err);
    ts_coder_free(c);
    return st;
}

ts_status ts_coder_worst_cond(ts_layer_coder *c, int max_sets, double *worst, int *exhaustive,
                              ts_err *err) {
    /* The code's own search: all sets up to max_sets of them, else
     * max_sets sampled (seeded, so plans print the same figure each run). */
    ts_code_search opt = {.max_exhaustive = max_sets, .samples = max_sets, .seed = 12345};
    ts_code_cond_report rep;
    TS_TRY(ts_code_worst_cond(ts_coder_code(c), &opt, &rep, NULL, err));
    *worst = rep.worst;
    *exhaustive = rep.exhaustive;
    return TS_OK;
}
