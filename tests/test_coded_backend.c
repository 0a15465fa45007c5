/* test_coded_backend.c: coded.h's backend interface over the runtime master,
 * driven with hand-built layer jobs on a local cluster (worker threads over
 * inproc://): conv and gemm products equal the local kernels, need < n
 * finishes without a silenced worker, too many dead workers is reported as
 * unavailable, a mute worker runs into the deadline, and a worker that
 * re-joins is mapped to a slot and used again.
 *
 * No timing thresholds: deadlines only turn a bug into a failed check. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tessera/ops.h"
#include "tessera/zoo.h"
#include "tessera/runtime.h"
#include "ts_test.h"

#define N_IN 2
#define N_SHARES 2
#define MAX_W 8
#define TOL 1e-5

/* One layer's worth of worker data: inputs, deployed shares, outputs. */
typedef struct {
    ts_share_kind kind;
    int n;
    ts_conv2d_params conv;
    ts_tensor *in[MAX_W * N_IN];
    ts_tensor *share[MAX_W * N_SHARES];
    ts_tensor *out[MAX_W * N_IN * N_SHARES];
    int responded[MAX_W];
} layer_data;

static ts_tensor *random_tensor(ts_shape s, ts_rng *rng) {
    ts_tensor *t = ts_tensor_new(&s, NULL);
    TS_ASSERT(t);
    ts_rng_fill_uniform(rng, t->data, t->size, -1.0f, 1.0f);
    return t;
}

/* conv: input slabs [1, 3, 7, 6], filter shares [4, 3, 3, 3], stride 1 and
 * dilation 2 in W (so the worker really gets the job's parameters);
 * gemm: shares [5, 12], inputs [3, 12] -> outputs [5, 3]. */
static void layer_make(layer_data *L, ts_share_kind kind, int n, uint64_t seed) {
    memset(L, 0, sizeof *L);
    L->kind = kind;
    L->n = n;
    L->conv = ts_conv2d_params_default();
    L->conv.dil_w = 2;
    ts_rng rng;
    ts_rng_seed(&rng, seed);
    ts_shape xs = kind == TS_SHARE_CONV ? ts_shape4(1, 3, 7, 6) : ts_shape2(3, 12);
    ts_shape ws = kind == TS_SHARE_CONV ? ts_shape4(4, 3, 3, 3) : ts_shape2(5, 12);
    ts_shape ys = kind == TS_SHARE_CONV ? ts_shape4(1, 4, 5, 2) : ts_shape2(5, 3);
    for (int i = 0; i < n * N_IN; i++)
        L->in[i] = random_tensor(xs, &rng);
    for (int i = 0; i < n * N_SHARES; i++)
        L->share[i] = random_tensor(ws, &rng);
    for (int i = 0; i < n * N_IN * N_SHARES; i++)
        L->out[i] = ts_tensor_new(&ys, NULL);
}

static void layer_free(layer_data *L) {
    for (int i = 0; i < MAX_W * N_IN; i++)
        ts_tensor_free(L->in[i]);
    for (int i = 0; i < MAX_W * N_SHARES; i++)
        ts_tensor_free(L->share[i]);
    for (int i = 0; i < MAX_W * N_IN * N_SHARES; i++)
        ts_tensor_free(L->out[i]);
}

static ts_status deploy_all(ts_coded_backend *be, layer_data *L, int layer, ts_err *err) {
    for (int j = 0; j < L->n; j++)
        for (int d = 0; d < N_SHARES; d++)
            TS_TRY(be->deploy(be->ctx, j, layer, d, L->share[j * N_SHARES + d], err));
    return be->deploy_wait(be->ctx, err);
}

static ts_layer_job layer_job(layer_data *L, int layer, int need, double deadline) {
    memset(L->responded, 0, sizeof L->responded);
    for (int i = 0; i < L->n * N_IN * N_SHARES; i++)
        ts_tensor_fill(L->out[i], -999.0f);
    ts_layer_job job = {.layer = layer,
                        .kind = L->kind,
                        .conv = L->conv,
                        .n_in = N_IN,
                        .n_shares = N_SHARES,
                        .inputs = (const ts_tensor *const *)L->in,
                        .outputs = L->out,
                        .need = need,
                        .deadline_s = deadline,
                        .responded = L->responded};
    return job;
}

/* What worker slot j should have computed, by the local kernels. */
static double slot_error(const layer_data *L, int j) {
    double worst = 0;
    for (int c = 0; c < N_IN; c++)
        for (int d = 0; d < N_SHARES; d++) {
            const ts_tensor *got = L->out[(j * N_IN + c) * N_SHARES + d];
            ts_tensor *want = ts_tensor_new(&got->s, NULL);
            const ts_tensor *x = L->in[j * N_IN + c], *w = L->share[j * N_SHARES + d];
            ts_err err = {0};
            ts_status s;
            if (L->kind == TS_SHARE_CONV) {
                size_t ws = ts_conv2d_workspace_floats(&L->conv, &x->s, &w->s);
                float *buf = ws ? ts_alloc(ws * sizeof(float)) : NULL;
                s = ts_conv2d_forward(&L->conv, x, w, NULL, want, buf, &err);
                ts_free(buf);
            } else {
                s = ts_gemm_forward(0, 1, 1.0f, 0.0f, w, x, NULL, want, &err);
            }
            TS_CHECK_OK(s, &err);
            double e = ts_tensor_rel_err(got, want);
            if (!(e <= worst)) worst = e; /* NaN counts as worst */
            ts_tensor_free(want);
        }
    return worst;
}

static int count_responded(const layer_data *L) {
    int n = 0;
    for (int j = 0; j < L->n; j++)
        n += L->responded[j];
    return n;
}

static ts_local_cluster *cluster(int n, int liveness) {
    ts_local_cluster_opts o = {.n_workers = n, .heartbeat_ms = 100, .liveness = liveness};
    ts_err err = {0};
    ts_local_cluster *c = ts_local_cluster_new_opts(&o, &err);
    TS_CHECK_MSG(c != NULL, "%s", err.msg);
    return c;
}

/* All n answer: every product equals the local kernel's. */
static void check_all_answer(ts_share_kind kind) {
    ts_local_cluster *c = cluster(4, 20);
    if (!c) return;
    ts_coded_backend be = ts_local_cluster_backend(c);
    TS_CHECK(be.num_workers(be.ctx) == 4);
    layer_data L;
    layer_make(&L, kind, 4, kind);
    ts_err err = {0};
    TS_CHECK_OK(deploy_all(&be, &L, 3, &err), &err);
    ts_layer_job job = layer_job(&L, 3, 4, 30);
    TS_CHECK_OK(be.run(be.ctx, &job, &err), &err);
    TS_CHECK(job.n_responded == 4 && count_responded(&L) == 4);
    for (int j = 0; j < 4; j++)
        TS_CHECK_MSG(slot_error(&L, j) < TOL, "slot %d", j);

    /* the same layer again (shares stay deployed), then an unused slot */
    job = layer_job(&L, 3, 3, 30);
    ts_tensor *saved = L.in[1 * N_IN];
    L.in[1 * N_IN] = NULL;
    TS_CHECK_OK(be.run(be.ctx, &job, &err), &err);
    L.in[1 * N_IN] = saved;
    TS_CHECK(job.n_responded == 3 && !L.responded[1]);
    for (int j = 0; j < 4; j++)
        if (L.responded[j]) TS_CHECK_MSG(slot_error(&L, j) < TOL, "slot %d", j);
    layer_free(&L);
    ts_local_cluster_free(c);
}

static void test_conv_all(void) {
    check_all_answer(TS_SHARE_CONV);
}

static void test_gemm_all(void) {
    check_all_answer(TS_SHARE_GEMM);
}

/* A silenced (alive but mute) worker: need < n still finishes, without it. */
static void test_silenced_worker(void) {
    ts_local_cluster *c = cluster(5, 20);
    if (!c) return;
    ts_coded_backend be = ts_local_cluster_backend(c);
    TS_CHECK(be.num_workers(be.ctx) == 5);
    layer_data L;
    layer_make(&L, TS_SHARE_CONV, 5, 11);
    ts_err err = {0};
    TS_CHECK_OK(deploy_all(&be, &L, 0, &err), &err);
    /* silence the worker behind slot 2 */
    ts_master_backend *mb = ts_local_cluster_master_backend(c);
    int victim = -1;
    for (int i = 0; i < 5; i++)
        if (ts_local_cluster_worker_id(c, i) == ts_master_backend_slot_worker(mb, 2)) victim = i;
    TS_CHECK(victim >= 0);
    TS_CHECK_OK(ts_local_cluster_fail(c, victim, TS_FAULT_SILENCE, &err), &err);
    for (int round = 0; round < 3; round++) {
        ts_layer_job job = layer_job(&L, 0, 4, 30);
        TS_CHECK_OK(be.run(be.ctx, &job, &err), &err);
        TS_CHECK(job.n_responded == 4 && !L.responded[2]);
        for (int j = 0; j < 5; j++)
            if (L.responded[j]) TS_CHECK_MSG(slot_error(&L, j) < TOL, "slot %d", j);
    }
    layer_free(&L);
    ts_local_cluster_free(c);
}

/* A mute worker that is needed runs the layer into its deadline. */
static void test_deadline(void) {
    ts_local_cluster *c = cluster(3, 1000); /* liveness far beyond the deadline */
    if (!c) return;
    ts_coded_backend be = ts_local_cluster_backend(c);
    TS_CHECK(be.num_workers(be.ctx) == 3);
    layer_data L;
    layer_make(&L, TS_SHARE_GEMM, 3, 5);
    ts_err err = {0};
    TS_CHECK_OK(deploy_all(&be, &L, 1, &err), &err);
    TS_CHECK_OK(ts_local_cluster_fail(c, 0, TS_FAULT_SILENCE, &err), &err);
    ts_layer_job job = layer_job(&L, 1, 3, 0.3);
    ts_status s = be.run(be.ctx, &job, &err);
    TS_CHECK_MSG(s == TS_ERR_TIMEOUT, "%s: %s", ts_status_name(s), err.msg);
    TS_CHECK(job.n_responded <= 2);
    TS_CHECK(strstr(err.msg, "of 3 needed answered") != NULL);
    layer_free(&L);
    ts_local_cluster_free(c);
}

/* Too many dead: unavailable, at once when they left, at detection when
 * they vanished; the epoch moves, and a re-map shrinks the slots. */
static void test_too_many_dead(void) {
    /* liveness 20 x 100 ms, not 5: a healthy worker thread starved for half
     * a second on a loaded machine must not be declared dead as well */
    ts_local_cluster *c = cluster(4, 20);
    if (!c) return;
    ts_coded_backend be = ts_local_cluster_backend(c);
    TS_CHECK(be.num_workers(be.ctx) == 4);
    layer_data L;
    layer_make(&L, TS_SHARE_CONV, 4, 7);
    ts_err err = {0};
    TS_CHECK_OK(deploy_all(&be, &L, 2, &err), &err);
    uint64_t epoch = be.epoch(be.ctx);
    TS_CHECK_OK(ts_local_cluster_fail(c, 0, TS_FAULT_LEAVE, &err), &err);
    TS_CHECK_OK(ts_local_cluster_fail(c, 1, TS_FAULT_VANISH, &err), &err);
    ts_layer_job job = layer_job(&L, 2, 3, 30);
    ts_status s = be.run(be.ctx, &job, &err);
    TS_CHECK_MSG(s == TS_ERR_UNAVAILABLE, "%s: %s", ts_status_name(s), err.msg);
    TS_CHECK(job.n_responded <= 2);
    TS_CHECK(be.epoch(be.ctx) != epoch);
    /* deploying to the old map is not an error: the dead workers' slots are
     * skipped, and the moved epoch tells the model to re-plan */
    TS_CHECK_OK(deploy_all(&be, &L, 2, &err), &err);
    /* need 2 of the survivors still works on the old map */
    job = layer_job(&L, 2, 2, 30);
    TS_CHECK_OK(be.run(be.ctx, &job, &err), &err);
    for (int j = 0; j < 4; j++)
        if (L.responded[j]) TS_CHECK_MSG(slot_error(&L, j) < TOL, "slot %d", j);
    TS_CHECK(be.num_workers(be.ctx) == 2);
    /* asking for more workers than the map has is refused up front */
    job = layer_job(&L, 2, 3, 30);
    s = be.run(be.ctx, &job, &err);
    TS_CHECK(s == TS_ERR_UNAVAILABLE);
    layer_free(&L);
    ts_local_cluster_free(c);
}

/* A worker that comes back gets a new id and a slot, and is used again
 * once its shares are deployed. */
static void test_rejoin(void) {
    ts_local_cluster *c = cluster(3, 20);
    if (!c) return;
    ts_coded_backend be = ts_local_cluster_backend(c);
    TS_CHECK(be.num_workers(be.ctx) == 3);
    ts_err err = {0};
    uint32_t old_id = ts_local_cluster_worker_id(c, 1);
    TS_CHECK(old_id != 0);
    TS_CHECK_OK(ts_local_cluster_fail(c, 1, TS_FAULT_LEAVE, &err), &err);
    ts_master *m = ts_local_cluster_master(c);
    uint64_t epoch = be.epoch(be.ctx);
    TS_CHECK_OK(ts_local_cluster_restart(c, 1, &err), &err);
    /* settled: the old id gone and the new start joined */
    double end = ts_now() + 30;
    while ((ts_master_worker_alive(m, old_id) || !ts_local_cluster_worker_id(c, 1)) &&
           ts_now() < end)
        ts_master_poll(m, 0.05, &err);
    TS_CHECK(!ts_master_worker_alive(m, old_id));
    TS_CHECK(be.epoch(be.ctx) != epoch);
    TS_CHECK(be.num_workers(be.ctx) == 3);
    uint32_t new_id = ts_local_cluster_worker_id(c, 1);
    TS_CHECK(new_id != 0 && new_id != old_id);
    int slot = -1;
    for (int j = 0; j < 3; j++)
        if (ts_master_backend_slot_worker(ts_local_cluster_master_backend(c), j) == new_id)
            slot = j;
    TS_CHECK(slot >= 0);
    layer_data L;
    layer_make(&L, TS_SHARE_GEMM, 3, 9);
    TS_CHECK_OK(deploy_all(&be, &L, 4, &err), &err);
    ts_layer_job job = layer_job(&L, 4, 3, 30);
    TS_CHECK_OK(be.run(be.ctx, &job, &err), &err);
    TS_CHECK(slot >= 0 && L.responded[slot]);
    for (int j = 0; j < 3; j++)
        TS_CHECK_MSG(slot_error(&L, j) < TOL, "slot %d", j);
    layer_free(&L);
    ts_local_cluster_free(c);
}

/* Bad jobs and bad arguments are refused with a message, not a crash. */
static void test_bad_jobs(void) {
    ts_err err = {0};
    TS_CHECK(ts_local_cluster_new(0, NULL, &err) == NULL && err.status == TS_ERR_INVALID);
    TS_CHECK(ts_master_backend_new(NULL, 1, &err) == NULL);
    ts_local_cluster *c = cluster(2, 20);
    if (!c) return;
    ts_coded_backend be = ts_local_cluster_backend(c);
    TS_CHECK(be.num_workers(be.ctx) == 2);
    layer_data L;
    layer_make(&L, TS_SHARE_CONV, 2, 3);
    TS_CHECK(be.deploy(be.ctx, 2, 0, 0, L.share[0], &err) == TS_ERR_INVALID);
    TS_CHECK(be.deploy(be.ctx, -1, 0, 0, L.share[0], &err) == TS_ERR_INVALID);
    TS_CHECK_OK(deploy_all(&be, &L, 0, &err), &err);
    ts_layer_job job = layer_job(&L, 0, 3, 30);
    TS_CHECK(be.run(be.ctx, &job, &err) == TS_ERR_UNAVAILABLE);
    job = layer_job(&L, 0, 2, 30);
    job.n_shares = 40; /* 80 pairs */
    TS_CHECK(be.run(be.ctx, &job, &err) == TS_ERR_INVALID);
    job = layer_job(&L, 0, 2, 30);
    job.kind = (ts_share_kind)9;
    TS_CHECK(be.run(be.ctx, &job, &err) == TS_ERR_INVALID);
    /* a share that was never deployed: the worker reports an error, the
     * shard is lost, and the run says it cannot finish */
    job = layer_job(&L, 7, 2, 30);
    ts_status s = be.run(be.ctx, &job, &err);
    TS_CHECK_MSG(s == TS_ERR_UNAVAILABLE, "%s: %s", ts_status_name(s), err.msg);
    /* outputs of the wrong shape are rejected, not written past */
    ts_tensor *keep = L.out[0];
    ts_shape small = ts_shape4(1, 1, 1, 1);
    L.out[0] = ts_tensor_new(&small, NULL);
    job = layer_job(&L, 0, 2, 30);
    s = be.run(be.ctx, &job, &err);
    TS_CHECK(s == TS_ERR_UNAVAILABLE && !L.responded[0]);
    ts_master_backend_stats st;
    ts_master_backend_get_stats(ts_local_cluster_master_backend(c), &st);
    TS_CHECK(st.results_rejected == 1);
    ts_tensor_free(L.out[0]);
    L.out[0] = keep;
    TS_CHECK(ts_local_cluster_fail(c, 5, TS_FAULT_LEAVE, &err) == TS_ERR_INVALID);
    TS_CHECK(ts_local_cluster_restart(c, -1, &err) == TS_ERR_INVALID);
    layer_free(&L);
    ts_local_cluster_free(c);
}

/* Per-worker emulation reaches the workers. */
static void test_emulated_cluster(void) {
    ts_worker_opts per[2] = {ts_worker_opts_default(), ts_worker_opts_default()};
    per[0].gflops = 5;
    per[0].name = "edge-a";
    per[1].mbps = 100;
    ts_err err = {0};
    /* "+link" travels in HELLO like the rest of the model */
    TS_CHECK_OK(ts_straggler_parse("fixed:2+link", &per[1].straggler, &err), &err);
    ts_local_cluster *c = ts_local_cluster_new(2, per, &err);
    TS_CHECK_MSG(c != NULL, "%s", err.msg);
    if (!c) return;
    ts_master *m = ts_local_cluster_master(c);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        ts_worker_info info;
        TS_CHECK_OK(ts_master_worker_info(m, ts_local_cluster_worker_id(c, i), &info, &err), &err);
        if (i == 0) seen += info.gflops == 5 && !strncmp(info.name, "edge-a", 6);
        if (i == 1) seen += info.mbps == 100 && !strcmp(info.straggler, "fixed:2+link");
    }
    TS_CHECK(seen == 2);
    ts_local_cluster_free(c);
}

/* The whole path: a coded model (coded/fcdcc.c) over the local cluster
 * gives the local forward's logits, also after a worker leaves and after
 * another one joins (each moves the epoch and makes the model re-plan). */
static double forward_err(ts_graph *g, const ts_tensor *x, const ts_tensor *want) {
    ts_err err = {0};
    ts_status s = ts_graph_forward(g, x, &err);
    TS_CHECK_OK(s, &err);
    return s == TS_OK ? ts_tensor_rel_err(ts_graph_result(g), want) : 1e9;
}

static void test_coded_model_end_to_end(void) {
    ts_err err = {0};
    ts_graph *g = ts_zoo_build("lenet5", 3, &err);
    TS_CHECK_MSG(g != NULL, "%s", err.msg);
    if (!g) return;
    TS_CHECK_OK(ts_graph_plan(g, 2, 0, &err), &err);
    ts_rng rng;
    ts_rng_seed(&rng, 21);
    ts_tensor *x = random_tensor(ts_shape4(2, 1, 28, 28), &rng);
    TS_CHECK_OK(ts_graph_forward(g, x, &err), &err);
    ts_tensor *want = ts_tensor_clone(ts_graph_result(g), &err);
    ts_local_cluster *c = cluster(5, 20);
    if (!c || !want) {
        ts_graph_free(g);
        ts_tensor_free(x);
        ts_tensor_free(want);
        ts_local_cluster_free(c);
        return;
    }
    ts_coded_opts o = ts_coded_opts_default();
    o.n_workers = 5;
    o.stragglers = 1;
    o.scheme = TS_SCHEME_CRME;
    o.deadline_s = 30;
    ts_coded_model *cm = ts_coded_model_new(g, &o, ts_local_cluster_backend(c), &err);
    TS_CHECK_MSG(cm != NULL, "%s", err.msg);
    if (cm) {
        TS_CHECK(forward_err(g, x, want) < 1e-3);
        /* one silenced worker: the s = 1 plan does not need it */
        TS_CHECK_OK(ts_local_cluster_fail(c, 2, TS_FAULT_SILENCE, &err), &err);
        TS_CHECK(forward_err(g, x, want) < 1e-3);
        /* it leaves for good and another one leaves: re-planned for 3 */
        TS_CHECK_OK(ts_local_cluster_fail(c, 2, TS_FAULT_LEAVE, &err), &err);
        TS_CHECK_OK(ts_local_cluster_fail(c, 4, TS_FAULT_LEAVE, &err), &err);
        TS_CHECK(forward_err(g, x, want) < 1e-3);
        TS_CHECK(ts_coded_model_workers(cm) <= 4);
        /* both come back: re-planned for 5 again */
        TS_CHECK_OK(ts_local_cluster_restart(c, 2, &err), &err);
        TS_CHECK_OK(ts_local_cluster_restart(c, 4, &err), &err);
        double end = ts_now() + 30;
        while (ts_master_workers(ts_local_cluster_master(c), NULL, 0) < 5 && ts_now() < end)
            ts_master_poll(ts_local_cluster_master(c), 0.05, &err);
        TS_CHECK(forward_err(g, x, want) < 1e-3);
        TS_CHECK(ts_coded_model_workers(cm) == 5);
        TS_CHECK(ts_coded_model_replans(cm) >= 2);
    }
    ts_coded_model_free(cm);
    ts_local_cluster_free(c);
    ts_tensor_free(x);
    ts_tensor_free(want);
    ts_graph_free(g);
}

/* The local index of the worker with master id `id`, or -1. */
static int local_index_of(ts_local_cluster *c, int n, uint32_t id) {
    for (int i = 0; i < n; i++)
        if (ts_local_cluster_worker_id(c, i) == id) return i;
    return -1;
}

/* Replication waits for one answer per replica group, not for a count:
 * n = 6, s = 1 is 3 groups of 2 ({0,3}, {1,4}, {2,5}); with slots 0 and 1
 * mute (more than s, but one replica of every group is left) the layer
 * still finishes right, without waiting for the deadline. */
static void test_replication_coverage(void) {
    ts_err err = {0};
    ts_graph *g = ts_zoo_build("lenet5", 3, &err);
    TS_CHECK_MSG(g != NULL, "%s", err.msg);
    if (!g) return;
    TS_CHECK_OK(ts_graph_plan(g, 2, 0, &err), &err);
    ts_rng rng;
    ts_rng_seed(&rng, 22);
    ts_tensor *x = random_tensor(ts_shape4(2, 1, 28, 28), &rng);
    TS_CHECK_OK(ts_graph_forward(g, x, &err), &err);
    ts_tensor *want = ts_tensor_clone(ts_graph_result(g), &err);
    ts_local_cluster *c = cluster(6, 1000);
    ts_coded_opts o = ts_coded_opts_default();
    o.n_workers = 6;
    o.stragglers = 1;
    o.scheme = TS_SCHEME_REPLICATION;
    o.deadline_s = 20;
    ts_coded_model *cm =
        c && want ? ts_coded_model_new(g, &o, ts_local_cluster_backend(c), &err) : NULL;
    TS_CHECK_MSG(cm != NULL, "%s", err.msg);
    if (cm) {
        /* Mute the workers of slots 0 and 1 (groups {0,3} and {1,4}). Slots
         * follow the order in which the threads registered, not their local
         * index: muting local workers 0 and 1 sometimes hit one whole group
         * (and the test waited out the deadline). */
        ts_master_backend *mb = ts_local_cluster_master_backend(c);
        for (int slot = 0; slot < 2; slot++) {
            int local = local_index_of(c, 6, ts_master_backend_slot_worker(mb, slot));
            TS_CHECK_MSG(local >= 0, "slot %d has no local worker", slot);
            if (local >= 0)
                TS_CHECK_OK(ts_local_cluster_fail(c, local, TS_FAULT_SILENCE, &err), &err);
        }
        TS_CHECK(forward_err(g, x, want) < 1e-5);
        TS_CHECK(ts_coded_model_replans(cm) == 1);
    }
    ts_coded_model_free(cm);
    ts_local_cluster_free(c);
    ts_tensor_free(x);
    ts_tensor_free(want);
    ts_graph_free(g);
}

/* ---- pipelined lanes ------------------------------------------------------
 * Three copies of a model, each with its own coded model and backend (model
 * ids 1..3) on one master, run forwards from three threads at once: every
 * output equals single-node. Half-way, with all lanes parked, a worker
 * leaves; every lane then re-plans on its own and still answers right. */

#define LANES 3
#define LANE_FORWARDS 12

typedef struct {
    ts_graph *g;
    ts_coded_model *cm;
    ts_tensor *x[LANE_FORWARDS], *want[LANE_FORWARDS];
    double worst;                    /* largest relative error seen */
    int failures;                    /* forwards that returned an error */
    char msg[sizeof(ts_err){0}.msg]; /* the first error */
    atomic_int *parked, *go;
} lane_data;

static void nap_ms(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void lane_forward(lane_data *l, int i) {
    ts_err err = {0};
    if (ts_graph_forward(l->g, l->x[i], &err) != TS_OK) {
        if (!l->failures++) snprintf(l->msg, sizeof l->msg, "%s", err.msg);
        return;
    }
    double e = ts_tensor_rel_err(ts_graph_result(l->g), l->want[i]);
    if (!(e <= l->worst)) l->worst = e;
}

static void *lane_main(void *arg) {
    lane_data *l = arg;
    for (int i = 0; i < LANE_FORWARDS; i++) {
        if (i == LANE_FORWARDS / 2) {
            atomic_fetch_add(l->parked, 1);
            while (!atomic_load(l->go))
                nap_ms(5);
        }
        lane_forward(l, i);
    }
    return NULL;
}

/* The lane's model and single-node answers: before any cluster exists, so
 * that no master goes unpolled for long (slow sanitizer builds). */
static int lane_prepare(lane_data *l, int lane, ts_err *err) {
    if (!(l->g = ts_zoo_build("lenet5", 3, err))) return 0;
    if (ts_graph_plan(l->g, 2, 0, err) != TS_OK) return 0;
    ts_rng rng;
    ts_rng_seed(&rng, 100 + (uint64_t)lane);
    for (int i = 0; i < LANE_FORWARDS; i++) {
        l->x[i] = random_tensor(ts_shape4(2, 1, 28, 28), &rng);
        if (ts_graph_forward(l->g, l->x[i], err) != TS_OK) return 0;
        if (!(l->want[i] = ts_tensor_clone(ts_graph_result(l->g), err))) return 0;
    }
    return 1;
}

static int lane_attach(lane_data *l, int lane, ts_local_cluster *c, ts_master_backend **own,
                       ts_err *err) {
    ts_coded_opts o = ts_coded_opts_default();
    o.n_workers = 5;
    o.stragglers = 1;
    o.scheme = TS_SCHEME_CRME;
    o.deadline_s = 30;
    ts_master_backend *b = ts_local_cluster_master_backend(c);
    if (lane > 0 &&
        !(b = *own = ts_master_backend_new(ts_local_cluster_master(c), (uint32_t)lane + 1, err)))
        return 0;
    l->cm = ts_coded_model_new(l->g, &o, ts_master_coded_backend(b), err);
    return l->cm != NULL;
}

static void test_pipelined_lanes(void) {
    lane_data lanes[LANES];
    ts_master_backend *own[LANES] = {0};
    atomic_int parked = 0, go = 0;
    memset(lanes, 0, sizeof lanes);
    ts_err err = {0};
    int ok = 1;
    for (int i = 0; i < LANES && ok; i++) {
        lanes[i].parked = &parked;
        lanes[i].go = &go;
        ok = lane_prepare(&lanes[i], i, &err);
        TS_CHECK_MSG(ok, "lane %d: %s", i, err.msg);
    }
    ts_local_cluster *c = ok ? cluster(5, 20) : NULL;
    ok = ok && c;
    for (int i = 0; i < LANES && ok; i++) {
        ok = lane_attach(&lanes[i], i, c, &own[i], &err);
        TS_CHECK_MSG(ok, "lane %d: %s", i, err.msg);
    }
    pthread_t tids[LANES];
    int started = 0;
    for (; ok && started < LANES; started++)
        if (pthread_create(&tids[started], NULL, lane_main, &lanes[started]) != 0) break;
    TS_CHECK(!ok || started == LANES);
    while (started == LANES && atomic_load(&parked) < LANES)
        nap_ms(5);
    if (started == LANES) TS_CHECK_OK(ts_local_cluster_fail(c, 1, TS_FAULT_LEAVE, &err), &err);
    atomic_store(&go, 1);
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    for (int i = 0; i < LANES && started == LANES; i++) {
        TS_CHECK_MSG(lanes[i].failures == 0, "lane %d: %d forwards failed: %s", i,
                     lanes[i].failures, lanes[i].msg);
        TS_CHECK_MSG(lanes[i].worst < 1e-3, "lane %d: relative error %g", i, lanes[i].worst);
        /* each lane noticed the departure and re-planned for the 4 left */
        TS_CHECK_MSG(ts_coded_model_replans(lanes[i].cm) >= 2, "lane %d: %llu plans", i,
                     (unsigned long long)ts_coded_model_replans(lanes[i].cm));
        TS_CHECK(ts_coded_model_workers(lanes[i].cm) == 4);
    }
    for (int i = 0; i < LANES; i++) {
        ts_coded_model_free(lanes[i].cm);
        ts_master_backend_free(own[i]);
        ts_graph_free(lanes[i].g);
        for (int k = 0; k < LANE_FORWARDS; k++) {
            ts_tensor_free(lanes[i].x[k]);
            ts_tensor_free(lanes[i].want[k]);
        }
    }
    ts_local_cluster_free(c);
}

int main(void) {
    TS_RUN(test_conv_all);
    TS_RUN(test_gemm_all);
    TS_RUN(test_silenced_worker);
    TS_RUN(test_deadline);
    TS_RUN(test_too_many_dead);
    TS_RUN(test_rejoin);
    TS_RUN(test_bad_jobs);
    TS_RUN(test_emulated_cluster);
    TS_RUN(test_coded_model_end_to_end);
    TS_RUN(test_replication_coverage);
    TS_RUN(test_pipelined_lanes);
    return ts_test_summary();
}
