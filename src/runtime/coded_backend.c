/* coded_backend.c: coded.h's backend interface over a ts_master, and a whole
 * cluster (master + worker threads on inproc://) in one process.
 *
 * The coded model thinks in worker slots 0..n-1; the runtime in worker ids
 * that are never reused. The slot map is taken when the model asks how many
 * workers there are (it does so when it re-plans after the epoch moved) and
 * then held still: a worker that dies mid-layer loses its slot's shard, and
 * the next epoch check re-plans for whoever is left.
 *
 * Several backends (one per pipeline lane, each its own model id) may share
 * one master from different threads: every entry point holds the master's
 * use lock, and a run waits for its results in short slices, releasing the
 * lock in between, so that the other lanes can send their tasks meanwhile.
 * Whoever holds the lock runs the poll loop for everybody: results of other
 * lanes' jobs are queued by the master and replayed to their owners. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/runtime.h"

#define MAX_SLOTS 256 /* the coded model plans for at most 256 workers */
#define DEFAULT_DEADLINE_S 60.0
/* How long one lane runs the poll loop before letting another lane in. */
#define COLLECT_SLICE_S 0.002

struct ts_master_backend {
    ts_master *m;
    uint32_t model;
    uint32_t slots[MAX_SLOTS];
    int n_slots;
    uint64_t map_epoch; /* master epoch when the slot map was taken */
    double deploy_timeout_s;
    ts_master_backend_stats st;
};

ts_master_backend *ts_master_backend_new(ts_master *m, uint32_t model_id, ts_err *err) {
    if (!m) {
        ts_errorf(err, TS_ERR_INVALID, "a coded backend needs a master");
        return NULL;
    }
    ts_master_backend *b = calloc(1, sizeof *b);
    if (!b) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for the coded backend");
        return NULL;
    }
    b->m = m;
    b->model = model_id;
    b->deploy_timeout_s = DEFAULT_DEADLINE_S;
    ts_master_lock(m);
    b->n_slots = ts_master_workers(m, b->slots, MAX_SLOTS);
    if (b->n_slots > MAX_SLOTS) b->n_slots = MAX_SLOTS;
    b->map_epoch = ts_master_epoch(m);
    ts_master_unlock(m);
    return b;
}

void ts_master_backend_free(ts_master_backend *b) {
    free(b);
}

void ts_master_backend_set_deploy_timeout(ts_master_backend *b, double seconds) {
    if (seconds > 0) b->deploy_timeout_s = seconds;
}

uint32_t ts_master_backend_slot_worker(const ts_master_backend *b, int slot) {
    return slot >= 0 && slot < b->n_slots ? b->slots[slot] : 0;
}

void ts_master_backend_get_stats(const ts_master_backend *b, ts_master_backend_stats *st) {
    *st = b->st;
}

/* ---- the interface ------------------------------------------------------- */

static int be_num_workers(void *ctx) {
    ts_master_backend *b = ctx;
    ts_master_lock(b->m);
    /* Take in whatever joined or left while the caller was away. */
    ts_err e;
    ts_master_poll(b->m, 0, &e);
    int n = ts_master_workers(b->m, b->slots, MAX_SLOTS);
    b->n_slots = n > MAX_SLOTS ? MAX_SLOTS : n;
    b->map_epoch = ts_master_epoch(b->m);
    ts_master_unlock(b->m);
    return b->n_slots;
}

/* A deploy that failed because its worker died is not an error of the
 * deployment: the epoch has moved, so the coded model re-plans for the
 * workers left before it runs the layer. Anything else (a worker refusing a
 * blob, say for its storage cap) is. */
static ts_status forgive_lost_worker(ts_master_backend *b, ts_status s, const ts_err *e,
                                     ts_err *err) {
    if (s == TS_OK) return TS_OK;
    if (s == TS_ERR_UNAVAILABLE && ts_master_epoch(b->m) != b->map_epoch &&
        !strstr(e->msg, "refused")) {
        ts_log(TS_LOG_WARN, "%s; the worker set changed, the model will re-plan", e->msg);
        return TS_OK;
    }
    if (err) *err = *e;
    return s;
}

static uint64_t be_epoch(void *ctx) {
    ts_master_backend *b = ctx;
    ts_master_lock(b->m);
    uint64_t e = ts_master_epoch(b->m);
    ts_master_unlock(b->m);
    return e;
}

static ts_status deploy_locked(ts_master_backend *b, int worker, int layer, int share,
                               const ts_tensor *w, ts_err *err) {
    if (worker < 0 || worker >= b->n_slots || layer < 0 || share < 0 || !w)
        return ts_errorf(err, TS_ERR_INVALID,
                         "deploy to slot %d layer %d share %d: out of range (%d slots)", worker,
                         layer, share, b->n_slots);
    ts_blob_key key = {b->model, (uint32_t)layer, (uint32_t)share};
    /* A slot whose worker is already known dead is skipped: the epoch moved
     * and the model re-plans before running the layer. */
    if (!ts_master_worker_alive(b->m, b->slots[worker])) return TS_OK;
    ts_err e = {0};
    ts_status s = ts_master_deploy(b->m, b->slots[worker], key, &w, 1, &e);
    /* Deploying a big model takes seconds of encoding and sending: run the
     * poll loop after every share so heartbeats keep flowing both ways and
     * no worker takes the master for dead mid-deploy. */
    ts_err pe = {0};
    if (s == TS_OK && ts_master_poll(b->m, 0, &pe) != TS_OK)
        ts_log(TS_LOG_WARN, "deploy: %s", pe.msg);
    return forgive_lost_worker(b, s, &e, err);
}

static ts_status be_deploy(void *ctx, int worker, int layer, int share, const ts_tensor *w,
                           ts_err *err) {
    ts_master_backend *b = ctx;
    ts_master_lock(b->m);
    ts_status s = deploy_locked(b, worker, layer, share, w, err);
    ts_master_unlock(b->m);
    return s;
}

static ts_status be_deploy_wait(void *ctx, ts_err *err) {
    ts_master_backend *b = ctx;
    ts_err e = {0};
    ts_master_lock(b->m);
    ts_status s = ts_master_deploy_wait(b->m, b->deploy_timeout_s, &e);
    s = forgive_lost_worker(b, s, &e, err);
    ts_master_unlock(b->m);
    return s;
}

typedef struct {
    ts_master_backend *b;
    ts_layer_job *job;
    int n_out; /* outputs per slot: n_in * n_shares */
} run_ctx;

/* Copies one worker's products into the job, after checking that they are
 * what was asked for: a worker of another build or a corrupt frame must not
 * write past the caller's tensors. */
/* With replica groups, 1 when another worker of slot's group has answered
 * already: this answer is redundant (not an error, not counted). */
static int group_covered(const ts_layer_job *job, int n_slots, int slot) {
    if (!job->group_of) return 0;
    for (int j = 0; j < n_slots; j++)
        if (job->responded[j] && job->group_of[j] == job->group_of[slot]) return 1;
    return 0;
}

static int accept_result(void *user, const ts_result *r) {
    run_ctx *rc = user;
    ts_layer_job *job = rc->job;
    int slot = (int)r->shard;
    const char *why = NULL;
    if (slot >= 0 && slot < rc->b->n_slots && !job->responded[slot] &&
        group_covered(job, rc->b->n_slots, slot))
        return 0;
    if (slot < 0 || slot >= rc->b->n_slots || job->responded[slot])
        why = "a slot that is unknown or already answered";
    else if (r->n_outputs != rc->n_out)
        why = "the wrong number of outputs";
    for (int q = 0; !why && q < rc->n_out; q++)
        if (!ts_shape_eq(&r->outputs[q].s, &job->outputs[slot * rc->n_out + q]->s))
            why = "an output of the wrong shape";
    if (why) {
        ts_log(TS_LOG_WARN, "layer %d: rejected worker %u's result for slot %d: %s", job->layer,
               r->worker, slot, why);
        rc->b->st.results_rejected++;
        return 0;
    }
    for (int q = 0; q < rc->n_out; q++) {
        ts_tensor *dst = job->outputs[slot * rc->n_out + q];
        memcpy(dst->data, r->outputs[q].data, (size_t)dst->size * sizeof(float));
    }
    job->responded[slot] = 1;
    job->n_responded++;
    rc->b->st.results_accepted++;
    if (r->emulated_s > rc->b->st.last_max_emulated_s)
        rc->b->st.last_max_emulated_s = r->emulated_s;
    return 1;
}

static ts_status check_job(const ts_master_backend *b, const ts_layer_job *job, ts_err *err) {
    if (!job->inputs || !job->outputs || !job->responded)
        return ts_errorf(err, TS_ERR_INVALID, "layer job without inputs, outputs or responded");
    if (job->kind != TS_SHARE_CONV && job->kind != TS_SHARE_GEMM)
        return ts_errorf(err, TS_ERR_INVALID, "layer %d: unknown share kind %d", job->layer,
                         (int)job->kind);
    if (job->layer < 0 || job->n_in < 1 || job->n_shares < 1 || job->n_in > TS_RT_MAX_TENSORS ||
        job->n_in * job->n_shares > TS_RT_MAX_PAIRS)
        return ts_errorf(err, TS_ERR_INVALID,
                         "layer %d: %d inputs x %d shares per worker (at most %d inputs and %d "
                         "pairs)",
                         job->layer, job->n_in, job->n_shares, TS_RT_MAX_TENSORS, TS_RT_MAX_PAIRS);
    if (job->need < 1 || job->need > b->n_slots)
        return ts_errorf(err, TS_ERR_UNAVAILABLE,
                         "layer %d needs %d workers but the backend has %d", job->layer, job->need,
                         b->n_slots);
    return TS_OK;
}

/* Builds slot j's task; returns 0 when the slot is unused (NULL inputs). */
static int make_task(const ts_master_backend *b, const ts_layer_job *job, int j,
                     ts_task_pair *pairs, ts_task *t) {
    const ts_tensor *const *in = job->inputs + (size_t)j * job->n_in;
    if (!in[0]) return 0;
    for (int c = 0; c < job->n_in; c++)
        for (int d = 0; d < job->n_shares; d++)
            pairs[c * job->n_shares + d] =
                (ts_task_pair){(uint32_t)c, {b->model, (uint32_t)job->layer, (uint32_t)d}};
    memset(t, 0, sizeof *t);
    t->kind = job->kind == TS_SHARE_CONV ? TS_TASK_CONV2D : TS_TASK_GEMM;
    t->worker = b->slots[j];
    t->shard = (uint32_t)j;
    t->inputs = in;
    t->n_inputs = job->n_in;
    t->pairs = pairs;
    t->n_pairs = job->n_in * job->n_shares;
    t->conv = job->conv;
    t->trans_a = 0;
    t->trans_b = 1; /* share [m_b, K] x input^T, input [B, K] */
    return 1;
}

/* Collects job rj until job->need results are in, in slices: the master's
 * lock is released between slices so that other lanes can send and
 * collect. Called and returns with the lock held. */
static ts_status collect_sliced(ts_master_backend *b, ts_job *rj, ts_layer_job *job, run_ctx *rc,
                                ts_err *err) {
    double deadline_s = job->deadline_s > 0 ? job->deadline_s : DEFAULT_DEADLINE_S;
    double end = ts_now() + deadline_s;
    for (;;) {
        ts_status s =
            ts_master_collect(b->m, rj, job->need, COLLECT_SLICE_S, accept_result, rc, err);
        if (s != TS_ERR_TIMEOUT) return s;
        if (ts_now() >= end)
            return ts_errorf(err, TS_ERR_TIMEOUT,
                             "layer %d: %d of %d results after the %.3g s deadline, %d still in "
                             "flight",
                             job->layer, ts_job_accepted(rj), job->need, deadline_s,
                             ts_job_in_flight(rj));
        ts_master_unlock(b->m);
        sched_yield();
        ts_master_lock(b->m);
    }
}

static ts_status run_locked(ts_master_backend *b, ts_layer_job *job, ts_err *err);

static ts_status be_run(void *ctx, ts_layer_job *job, ts_err *err) {
    ts_master_backend *b = ctx;
    ts_master_lock(b->m);
    ts_status s = run_locked(b, job, err);
    ts_master_unlock(b->m);
    return s;
}

static ts_status run_locked(ts_master_backend *b, ts_layer_job *job, ts_err *err) {
    double t0 = ts_now();
    b->st.runs++;
    b->st.last_max_emulated_s = 0;
    job->n_responded = 0;
    ts_status s = check_job(b, job, err);
    if (s != TS_OK) {
        b->st.runs_failed++;
        return s;
    }
    memset(job->responded, 0, sizeof(int) * (size_t)b->n_slots);
    ts_task *tasks = calloc((size_t)b->n_slots, sizeof *tasks);
    ts_task_pair *pairs = calloc((size_t)b->n_slots * TS_RT_MAX_PAIRS, sizeof *pairs);
    if (!tasks || !pairs) {
        free(tasks);
        free(pairs);
        b->st.runs_failed++;
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for layer %d's tasks", job->layer);
    }
    int n = 0, reachable = 0;
    for (int j = 0; j < b->n_slots; j++) {
        if (!make_task(b, job, j, pairs + (size_t)j * TS_RT_MAX_PAIRS, &tasks[n])) continue;
        reachable += ts_master_worker_alive(b->m, b->slots[j]);
        n++;
    }
    ts_job *rj = NULL;
    if (reachable < job->need) {
        s = ts_errorf(err, TS_ERR_UNAVAILABLE,
                      "layer %d needs %d workers but only %d of the %d it was planned for are "
                      "live",
                      job->layer, job->need, reachable, b->n_slots);
    } else if (!(rj = ts_master_submit(b->m, (uint32_t)job->layer, tasks, n, err))) {
        s = err ? err->status : TS_ERR_INVALID;
    } else {
        b->st.tasks_sent += (uint64_t)n;
        run_ctx rc = {b, job, job->n_in * job->n_shares};
        s = collect_sliced(b, rj, job, &rc, err);
        if (s != TS_OK && err) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            ts_errorf(err, s, "%s (%d of %d needed answered)", why, job->n_responded, job->need);
        }
    }
    ts_master_job_free(b->m, rj); /* later answers are dropped by id */
    free(tasks);
    free(pairs);
    if (s != TS_OK) b->st.runs_failed++;
    b->st.last_run_s = ts_now() - t0;
    return s;
}

ts_coded_backend ts_master_coded_backend(ts_master_backend *b) {
    ts_coded_backend be = {.num_workers = be_num_workers,
                           .epoch = be_epoch,
                           .deploy = be_deploy,
                           .deploy_wait = be_deploy_wait,
                           .run = be_run,
                           .ctx = b};
    return be;
}

/* ---- local cluster --------------------------------------------------------- */

typedef struct {
    ts_worker_thread *th;
    ts_worker_opts opts; /* the per-worker emulation, with the cluster's url */
    char name[64];
    int generation;
} local_worker;

struct ts_local_cluster {
    ts_master *m;
    ts_master_backend *b;
    local_worker *w;
    int n;
    char url[96];
    char (*names)[64]; /* the callers' names, copied */
};

static void set_name(ts_local_cluster *c, int i) {
    local_worker *lw = &c->w[i];
    lw->generation++;
    /* A new name per start, so that worker_id finds this start's id. */
    snprintf(lw->name, sizeof lw->name, "%.40s#%d", c->names[i], lw->generation);
    lw->opts.name = lw->name;
}

ts_status ts_local_cluster_restart(ts_local_cluster *c, int i, ts_err *err) {
    if (!c || i < 0 || i >= c->n) return ts_errorf(err, TS_ERR_INVALID, "no local worker %d", i);
    if (c->w[i].th) ts_worker_stop(c->w[i].th, 1);
    c->w[i].th = NULL;
    set_name(c, i);
    c->w[i].th = ts_worker_spawn(&c->w[i].opts, err);
    return c->w[i].th ? TS_OK : (err ? err->status : TS_ERR_IO);
}

ts_status ts_local_cluster_fail(ts_local_cluster *c, int i, ts_worker_fault how, ts_err *err) {
    if (!c || i < 0 || i >= c->n) return ts_errorf(err, TS_ERR_INVALID, "no local worker %d", i);
    if (!c->w[i].th) return ts_errorf(err, TS_ERR_INVALID, "local worker %d is not running", i);
    switch (how) {
    case TS_FAULT_LEAVE:
    case TS_FAULT_VANISH:
        ts_worker_stop(c->w[i].th, how == TS_FAULT_LEAVE);
        c->w[i].th = NULL;
        return TS_OK;
    case TS_FAULT_SILENCE: ts_worker_silence(c->w[i].th); return TS_OK;
    }
    return ts_errorf(err, TS_ERR_INVALID, "unknown fault %d", (int)how);
}

uint32_t ts_local_cluster_worker_id(ts_local_cluster *c, int i) {
    if (!c || i < 0 || i >= c->n || !c->w[i].th) return 0;
    uint32_t ids[MAX_SLOTS];
    int n = ts_master_workers(c->m, ids, MAX_SLOTS);
    for (int k = 0; k < n && k < MAX_SLOTS; k++) {
        ts_worker_info info;
        ts_err e;
        if (ts_master_worker_info(c->m, ids[k], &info, &e) == TS_OK &&
            !strcmp(info.name, c->w[i].name))
            return ids[k];
    }
    return 0;
}

ts_local_cluster *ts_local_cluster_new(int n_workers, const ts_worker_opts *per_worker,
                                       ts_err *err) {
    ts_local_cluster_opts o = {.n_workers = n_workers, .per_worker = per_worker};
    return ts_local_cluster_new_opts(&o, err);
}

static ts_status start_master(ts_local_cluster *c, const ts_local_cluster_opts *o, ts_err *err) {
    /* The master owns a fresh ZeroMQ context, and inproc names live inside
     * one context, so this name cannot collide with another cluster's. */
    snprintf(c->url, sizeof c->url, "inproc://tessera-local-%p", (void *)c);
    ts_master_opts mo = ts_master_opts_default();
    mo.url = c->url;
    if (o->heartbeat_ms > 0) mo.heartbeat_ms = o->heartbeat_ms;
    if (o->liveness > 0) mo.liveness = o->liveness;
    c->m = ts_master_new(&mo, err);
    return c->m ? TS_OK : (err ? err->status : TS_ERR_IO);
}

static void init_worker(ts_local_cluster *c, const ts_local_cluster_opts *o, int i) {
    local_worker *lw = &c->w[i];
    ts_worker_opts wo = ts_worker_opts_default();
    if (o->per_worker) {
        const ts_worker_opts *p = &o->per_worker[i];
        wo.gflops = p->gflops;
        wo.mbps = p->mbps;
        wo.latency_ms = p->latency_ms;
        wo.straggler = p->straggler;
        wo.seed = p->seed;
        if (p->max_blob_bytes) wo.max_blob_bytes = p->max_blob_bytes;
    } else {
        wo.seed = (uint64_t)i + 1;
    }
    const char *name = o->per_worker && o->per_worker[i].name ? o->per_worker[i].name : NULL;
    if (name)
        snprintf(c->names[i], sizeof c->names[i], "%s", name);
    else
        snprintf(c->names[i], sizeof c->names[i], "local-%d", i);
    wo.url = ts_master_endpoint(c->m);
    wo.zmq_ctx = ts_master_zmq_ctx(c->m);
    if (o->heartbeat_ms > 0) wo.heartbeat_ms = o->heartbeat_ms;
    if (o->liveness > 0) wo.liveness = o->liveness;
    lw->opts = wo;
}

ts_local_cluster *ts_local_cluster_new_opts(const ts_local_cluster_opts *o, ts_err *err) {
    if (!o || o->n_workers < 1 || o->n_workers > MAX_SLOTS) {
        ts_errorf(err, TS_ERR_INVALID, "a local cluster needs 1..%d workers, not %d", MAX_SLOTS,
                  o ? o->n_workers : 0);
        return NULL;
    }
    ts_local_cluster *c = calloc(1, sizeof *c);
    if (c) {
        c->w = calloc((size_t)o->n_workers, sizeof *c->w);
        c->names = calloc((size_t)o->n_workers, sizeof *c->names);
    }
    if (!c || !c->w || !c->names) {
        if (c) free(c->w);
        free(c);
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for a local cluster");
        return NULL;
    }
    c->n = o->n_workers;
    if (start_master(c, o, err) != TS_OK) goto fail;
    for (int i = 0; i < c->n; i++) {
        init_worker(c, o, i);
        if (ts_local_cluster_restart(c, i, err) != TS_OK) goto fail;
    }
    if (ts_master_wait_workers(c->m, c->n, DEFAULT_DEADLINE_S, err) != TS_OK) goto fail;
    c->b = ts_master_backend_new(c->m, o->model_id ? o->model_id : 1, err);
    if (!c->b) goto fail;
    return c;
fail:
    ts_local_cluster_free(c);
    return NULL;
}

void ts_local_cluster_free(ts_local_cluster *c) {
    if (!c) return;
    /* Workers first: they share the master's context, which cannot be
     * terminated while their sockets are open. */
    for (int i = 0; i < c->n; i++)
        ts_worker_stop(c->w[i].th, 1);
    ts_master_backend_free(c->b);
    ts_master_free(c->m);
    free(c->w);
    free(c->names);
    free(c);
}

ts_master *ts_local_cluster_master(ts_local_cluster *c) {
    return c->m;
}

ts_master_backend *ts_local_cluster_master_backend(ts_local_cluster *c) {
    return c->b;
}

ts_coded_backend ts_local_cluster_backend(ts_local_cluster *c) {
    return ts_master_coded_backend(c->b);
}

int ts_local_cluster_size(const ts_local_cluster *c) {
    return c->n;
}
