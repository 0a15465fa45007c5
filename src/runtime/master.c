/* master.c: the master's ROUTER socket, worker table, jobs and poll loop.
 *
 * One socket, one loop (zguide Paranoid Pirate / Majordomo): every frame from
 * a worker refreshes its expiry; a worker past its expiry is removed and the
 * shards it held are marked lost; a peer that breaks the protocol is logged,
 * told DISCONNECT and forgotten, and the loop goes on serving the others. */
#include "runtime/curve.h"
#include "runtime/proto.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define IDENT_MAX 255 /* ZeroMQ routing ids are at most 255 bytes */

/* A blob a worker acknowledged, by content: XXH3-128 of its shapes and
 * data. A later deploy of the same content to that worker is sent as an
 * ALIAS of this key (pipeline lanes deploy identical shares). */
typedef struct {
    ts_blob_key key;
    XXH128_hash_t digest;
    uint64_t bytes;
} held_blob;

typedef struct {
    int live;
    uint32_t id;
    uint8_t ident[IDENT_MAX];
    size_t ident_len;
    double expiry; /* dead once now passes it */
    double hb_at;  /* next heartbeat we owe it */
    ts_worker_info info;
    held_blob *held; /* what it holds, if it takes ALIAS (emptied when it re-registers) */
    int n_held, cap_held;
} worker_slot;

typedef enum { SHARD_SENT, SHARD_DONE, SHARD_LOST } shard_state;

typedef struct {
    uint32_t shard, seq, worker;
    int n_outputs; /* a RESULT with another count is a protocol violation */
    shard_state state;
} shard_rec;

/* A RESULT of another job that arrived while this caller collected a
 * different one (several jobs in flight): kept whole until its job is
 * collected. */
typedef struct pending_result {
    struct pending_result *next;
    uint32_t worker;
    int n;
    zmq_msg_t parts[];
} pending_result;

struct ts_job {
    ts_job *next;
    uint32_t id, layer;
    int accepted;
    shard_rec *shards;
    int n_shards, cap_shards;
    pending_result *pending, *pending_tail;
};

typedef struct {
    uint32_t seq, worker;
    ts_blob_key key;
    XXH128_hash_t digest;
    uint64_t bytes;
} deploy_rec;

struct ts_master {
    void *ctx;
    int owns_ctx;
    void *sock;
    char endpoint[256];
    ts_master_opts opts;
    worker_slot *slots;
    uint32_t next_worker_id, next_job_id, next_seq;
    uint64_t epoch;
    ts_job *jobs;
    deploy_rec *deploys;
    int n_deploys, cap_deploys;
    ts_err deploy_err; /* first deploy failure since the last deploy_wait */
    ts_master_stats st;
    ts_curve_server curve; /* zap == NULL: no CURVE */
    /* Held by every caller while it uses the master when several threads
     * share it (pipelined inference: one coded model per lane). */
    pthread_mutex_t use_mu;
};

ts_master_opts ts_master_opts_default(void) {
    ts_master_opts o;
    memset(&o, 0, sizeof o);
    o.heartbeat_ms = 1000;
    o.liveness = 3;
    o.max_frame_bytes = (size_t)1 << 30;
    o.max_workers = 256;
    return o;
}

static double expiry_span(const ts_master *m) {
    return m->opts.heartbeat_ms * 1e-3 * m->opts.liveness;
}

/* ---- sending ------------------------------------------------------------ */

static ts_status send_to(ts_master *m, const worker_slot *w, const ts_proto_frame0 *f,
                         const ts_proto_data *data, int n, ts_err *err) {
    ts_status s = ts_proto_send(m->sock, w->ident, w->ident_len, f, data, n, err);
    if (s == TS_OK) m->st.frames_out++;
    return s;
}

static void send_simple(ts_master *m, const void *ident, size_t ident_len, uint32_t type,
                        uint32_t disc_reason) {
    ts_msg_hdr h = {.type = type};
    ts_proto_frame0 f;
    ts_proto_begin(&f, &h);
    if (type == TS_MSG_DISCONNECT) ts_proto_put_u32(&f, disc_reason);
    TS_ASSERT(ts_proto_end(&f, 0));
    ts_err e;
    if (ts_proto_send(m->sock, ident, ident_len, &f, NULL, 0, &e) == TS_OK) m->st.frames_out++;
}

/* ---- worker table ------------------------------------------------------- */

static worker_slot *find_by_ident(ts_master *m, const void *ident, size_t len) {
    for (int i = 0; i < m->opts.max_workers; i++) {
        worker_slot *w = &m->slots[i];
        if (w->live && w->ident_len == len && !memcmp(w->ident, ident, len)) return w;
    }
    return NULL;
}

static worker_slot *find_by_id(const ts_master *m, uint32_t id) {
    for (int i = 0; i < m->opts.max_workers; i++)
        if (m->slots[i].live && m->slots[i].id == id) return &m->slots[i];
    return NULL;
}

static void fail_deploys_of(ts_master *m, uint32_t worker, const char *why) {
    for (int i = 0; i < m->n_deploys;) {
        if (m->deploys[i].worker != worker) {
            i++;
            continue;
        }
        if (m->deploy_err.status == TS_OK)
            ts_errorf(&m->deploy_err, TS_ERR_UNAVAILABLE,
                      "worker %u did not store blob (%u,%u,%u): %s", worker,
                      m->deploys[i].key.model, m->deploys[i].key.layer, m->deploys[i].key.index,
                      why);
        m->deploys[i] = m->deploys[--m->n_deploys];
    }
}

/* Removes a worker: its in-flight shards are lost, the epoch moves. */
static void remove_worker(ts_master *m, worker_slot *w, const char *why) {
    ts_log(TS_LOG_WARN, "worker %u (%s) removed: %s", w->id, w->info.name, why);
    for (ts_job *j = m->jobs; j; j = j->next)
        for (int i = 0; i < j->n_shards; i++)
            if (j->shards[i].worker == w->id && j->shards[i].state == SHARD_SENT)
                j->shards[i].state = SHARD_LOST;
    fail_deploys_of(m, w->id, why);
    free(w->held);
    w->held = NULL;
    w->n_held = w->cap_held = 0;
    w->live = 0;
    m->epoch++;
    m->st.workers_lost++;
}

static void register_worker(ts_master *m, const void *ident, size_t ident_len,
                            const ts_proto_hello *hello, double now) {
    worker_slot *w = NULL;
    for (int i = 0; i < m->opts.max_workers && !w; i++)
        if (!m->slots[i].live) w = &m->slots[i];
    if (!w) {
        ts_log(TS_LOG_WARN, "worker '%s' refused: all %d worker slots are taken", hello->name,
               m->opts.max_workers);
        send_simple(m, ident, ident_len, TS_MSG_DISCONNECT, TS_DISC_SHUTDOWN);
        return;
    }
    memset(w, 0, sizeof *w);
    w->live = 1;
    w->id = m->next_worker_id++;
    memcpy(w->ident, ident, ident_len);
    w->ident_len = ident_len;
    w->expiry = now + expiry_span(m);
    w->hb_at = now + m->opts.heartbeat_ms * 1e-3;
    w->info.id = w->id;
    w->info.caps = hello->caps;
    w->info.gflops = hello->gflops;
    w->info.mbps = hello->mbps;
    w->info.latency_ms = hello->latency_ms;
    snprintf(w->info.straggler, sizeof w->info.straggler, "%s", hello->straggler);
    snprintf(w->info.name, sizeof w->info.name, "%s", hello->name);

    ts_msg_hdr h = {.type = TS_MSG_READY};
    ts_proto_ready r = {.worker_id = w->id,
                        .heartbeat_ms = (uint32_t)m->opts.heartbeat_ms,
                        .liveness = (uint32_t)m->opts.liveness,
                        .max_frame_bytes = m->opts.max_frame_bytes};
    ts_proto_frame0 f;
    ts_proto_begin(&f, &h);
    ts_proto_put_ready(&f, &r);
    TS_ASSERT(ts_proto_end(&f, 0));
    ts_err e;
    if (send_to(m, w, &f, NULL, 0, &e) != TS_OK) {
        w->live = 0;
        ts_log(TS_LOG_WARN, "worker '%s' vanished during registration: %s", hello->name, e.msg);
        return;
    }
    m->epoch++;
    m->st.workers_joined++;
    ts_log(TS_LOG_INFO, "worker %u '%s' joined", w->id, w->info.name);
}

static void heartbeat_and_purge(ts_master *m, double now) {
    for (int i = 0; i < m->opts.max_workers; i++) {
        worker_slot *w = &m->slots[i];
        if (!w->live) continue;
        if (now > w->expiry) {
            remove_worker(m, w, "missed its heartbeats");
            continue;
        }
        if (now >= w->hb_at) {
            w->hb_at = now + m->opts.heartbeat_ms * 1e-3;
            ts_msg_hdr h = {.type = TS_MSG_HEARTBEAT};
            ts_proto_frame0 f;
            ts_proto_begin(&f, &h);
            TS_ASSERT(ts_proto_end(&f, 0));
            ts_err e;
            if (send_to(m, w, &f, NULL, 0, &e) != TS_OK)
                remove_worker(m, w, "its connection is gone");
        }
    }
}

static double next_timer(const ts_master *m, double deadline) {
    double t = deadline;
    for (int i = 0; i < m->opts.max_workers; i++) {
        const worker_slot *w = &m->slots[i];
        if (!w->live) continue;
        if (w->hb_at < t) t = w->hb_at;
        if (w->expiry < t) t = w->expiry;
    }
    return t;
}

/* ---- jobs --------------------------------------------------------------- */

static ts_job *find_job(ts_master *m, uint32_t id) {
    for (ts_job *j = m->jobs; j; j = j->next)
        if (j->id == id) return j;
    return NULL;
}

static shard_rec *find_shard(ts_job *j, uint32_t shard, uint32_t seq, uint32_t worker) {
    for (int i = 0; i < j->n_shards; i++) {
        shard_rec *r = &j->shards[i];
        if (r->shard == shard && r->seq == seq && r->worker == worker) return r;
    }
    return NULL;
}

static void free_pending(pending_result *p) {
    while (p) {
        pending_result *next = p->next;
        for (int i = 0; i < p->n; i++)
            zmq_msg_close(&p->parts[i]);
        free(p);
        p = next;
    }
}

/* ---- receiving ---------------------------------------------------------- */

/* A peer broke the protocol: log it, tell it, and drop it from the table. */
static void reject_peer(ts_master *m, worker_slot *w, const void *ident, size_t ident_len,
                        const char *what) {
    m->st.dropped_invalid++;
    ts_log(TS_LOG_WARN, "dropped a frame from %s: %s", w ? w->info.name : "an unregistered peer",
           what);
    send_simple(m, ident, ident_len, TS_MSG_DISCONNECT, TS_DISC_PROTOCOL);
    if (w) remove_worker(m, w, "protocol violation");
}

/* Checks a RESULT against the shard it answers. Returns the job and shard it
 * belongs to, or NULL when it is stale (late, duplicate, unknown ids). */
static ts_job *match_result(ts_master *m, const worker_slot *w, const ts_msg_hdr *h,
                            shard_rec **out) {
    ts_job *j = find_job(m, h->job);
    if (!j || j->layer != h->layer) return NULL;
    shard_rec *r = find_shard(j, h->shard, h->seq, w->id);
    if (!r || r->state != SHARD_SENT) return NULL;
    *out = r;
    return j;
}

static void queue_result(ts_job *j, ts_proto_in *in, uint32_t worker) {
    pending_result *p = malloc(sizeof *p + sizeof(zmq_msg_t) * (size_t)in->n);
    if (!p) {
        ts_log(TS_LOG_ERROR, "out of memory queueing a result of job %u", j->id);
        return;
    }
    p->next = NULL;
    p->worker = worker;
    p->n = in->n;
    for (int i = 0; i < in->n; i++) {
        zmq_msg_init(&p->parts[i]);
        zmq_msg_move(&p->parts[i], &in->part[i]);
    }
    if (j->pending_tail)
        j->pending_tail->next = p;
    else
        j->pending = p;
    j->pending_tail = p;
}

typedef struct {
    ts_job *job; /* the job being collected, or NULL */
    ts_result_fn fn;
    void *user;
} collector;

static void deliver(ts_master *m, ts_job *j, shard_rec *r, const ts_proto_msg *msg,
                    const collector *c) {
    (void)m;
    ts_result res = {.job = j->id,
                     .layer = j->layer,
                     .shard = r->shard,
                     .worker = r->worker,
                     .n_outputs = msg->n_tensors,
                     .outputs = msg->tensors,
                     .compute_s = msg->u.result.compute_s,
                     .emulated_s = msg->u.result.emulated_s};
    r->state = SHARD_DONE;
    if (c->fn(c->user, &res)) j->accepted++;
}

static void handle_result(ts_master *m, worker_slot *w, ts_proto_in *in, ts_proto_msg *msg,
                          const collector *c) {
    shard_rec *r;
    ts_job *j = match_result(m, w, &msg->h, &r);
    if (!j) {
        m->st.dropped_stale++;
        ts_log(TS_LOG_DEBUG, "dropped stale result job %u shard %u seq %u from worker %u",
               msg->h.job, msg->h.shard, msg->h.seq, w->id);
        return;
    }
    if (msg->n_tensors != r->n_outputs) {
        char what[128];
        snprintf(what, sizeof what, "result of job %u shard %u has %d outputs, expected %d", j->id,
                 r->shard, msg->n_tensors, r->n_outputs);
        r->state = SHARD_LOST;
        reject_peer(m, w, w->ident, w->ident_len, what);
        return;
    }
    if (c && c->job == j) {
        deliver(m, j, r, msg, c);
        return;
    }
    queue_result(j, in, w->id);
}

static void handle_error(ts_master *m, worker_slot *w, const ts_proto_msg *msg) {
    m->st.task_errors++;
    if (msg->h.job == 0) {
        for (int i = 0; i < m->n_deploys; i++) {
            if (m->deploys[i].seq != msg->h.seq || m->deploys[i].worker != w->id) continue;
            if (m->deploy_err.status == TS_OK)
                ts_errorf(&m->deploy_err, TS_ERR_UNAVAILABLE, "worker %u refused a blob: %s", w->id,
                          msg->u.error.msg);
            m->deploys[i] = m->deploys[--m->n_deploys];
            return;
        }
        return;
    }
    shard_rec *r;
    ts_job *j = match_result(m, w, &msg->h, &r);
    ts_log(TS_LOG_WARN, "worker %u failed job %u shard %u: %s", w->id, msg->h.job, msg->h.shard,
           msg->u.error.msg);
    if (j) r->state = SHARD_LOST;
}

/* Records that w now holds rec's content under rec's key (replacing what
 * that key held). Without memory for the record, the blob is simply never
 * aliased. */
static void note_held(worker_slot *w, const deploy_rec *rec) {
    for (int i = 0; i < w->n_held; i++)
        if (!memcmp(&w->held[i].key, &rec->key, sizeof rec->key)) {
            w->held[i] = w->held[--w->n_held];
            break;
        }
    if (w->n_held == w->cap_held) {
        int cap = w->cap_held ? 2 * w->cap_held : 16;
        held_blob *h = realloc(w->held, sizeof *h * (size_t)cap);
        if (!h) return;
        w->held = h;
        w->cap_held = cap;
    }
    w->held[w->n_held++] = (held_blob){rec->key, rec->digest, rec->bytes};
}

static void handle_deployed(ts_master *m, worker_slot *w, const ts_proto_msg *msg) {
    for (int i = 0; i < m->n_deploys; i++) {
        if (m->deploys[i].seq == msg->h.seq && m->deploys[i].worker == w->id) {
            if (w->info.caps & TS_WORKER_CAP_ALIAS) note_held(w, &m->deploys[i]);
            m->deploys[i] = m->deploys[--m->n_deploys];
            return;
        }
    }
    m->st.dropped_stale++;
}

static void handle_known(ts_master *m, worker_slot *w, ts_proto_in *in, ts_proto_msg *msg,
                         const collector *c, double now) {
    w->expiry = now + expiry_span(m); /* any frame is a heartbeat */
    switch ((ts_msg_type)msg->h.type) {
    case TS_MSG_HEARTBEAT: break;
    case TS_MSG_HELLO: {
        /* The same socket says HELLO again: it lost its state, so whatever it
         * held is gone; it gets a fresh id. */
        uint8_t ident[IDENT_MAX];
        size_t len = w->ident_len;
        memcpy(ident, w->ident, len);
        remove_worker(m, w, "re-registered");
        register_worker(m, ident, len, &msg->u.hello, now);
        break;
    }
    case TS_MSG_RESULT: handle_result(m, w, in, msg, c); break;
    case TS_MSG_ERROR: handle_error(m, w, msg); break;
    case TS_MSG_DEPLOYED: handle_deployed(m, w, msg); break;
    case TS_MSG_DISCONNECT: remove_worker(m, w, "it disconnected"); break;
    case TS_MSG_READY:
    case TS_MSG_DEPLOY:
    case TS_MSG_ALIAS:
    case TS_MSG_CANCEL:
    case TS_MSG_TASK: {
        char what[64];
        snprintf(what, sizeof what, "a worker may not send %s", ts_msg_type_name(msg->h.type));
        reject_peer(m, w, w->ident, w->ident_len, what);
        break;
    }
    }
}

/* Handles one received message whose parts start at index first (after the
 * identity frame). */
static void handle_message(ts_master *m, ts_proto_in *in, const collector *c, double now) {
    m->st.frames_in++;
    if (in->n < 1) return;
    const void *ident = zmq_msg_data(&in->part[0]);
    size_t ident_len = zmq_msg_size(&in->part[0]);
    if (ident_len == 0 || ident_len > IDENT_MAX) return;
    worker_slot *w = find_by_ident(m, ident, ident_len);
    ts_proto_msg msg;
    ts_err err = {0};
    if (ts_proto_decode(in, 1, m->opts.max_frame_bytes, &msg, &err) != TS_OK) {
        reject_peer(m, w, ident, ident_len, err.msg);
        return;
    }
    if (w) {
        handle_known(m, w, in, &msg, c, now);
        return;
    }
    if (msg.h.type == TS_MSG_HELLO) {
        register_worker(m, ident, ident_len, &msg.u.hello, now);
        return;
    }
    /* Majordomo discipline: anything but HELLO from a stranger (say, a worker
     * of a master that restarted) is answered with DISCONNECT so it
     * re-registers. */
    m->st.dropped_unknown++;
    if (msg.h.type != TS_MSG_DISCONNECT)
        send_simple(m, ident, ident_len, TS_MSG_DISCONNECT, TS_DISC_PROTOCOL);
}

static void drain(ts_master *m, const collector *c) {
    ts_proto_in in;
    while (ts_proto_recv(m->sock, &in, ZMQ_DONTWAIT) == 0) {
        handle_message(m, &in, c, ts_now());
        ts_proto_in_close(&in);
    }
}

/* What a pump loop waits for; returns 1 when done (status in *s). */
typedef int (*pump_cond)(ts_master *m, void *arg, ts_status *s, ts_err *err);

/* The single poll loop: drain what is pending before judging liveness (a
 * caller that was away must not condemn workers whose heartbeats sit in the
 * queue), then wait for frames or the next timer. */
static ts_status pump(ts_master *m, double timeout_s, const collector *c, pump_cond cond, void *arg,
                      ts_err *err) {
    double deadline = ts_now() + (timeout_s > 0 ? timeout_s : 0);
    for (;;) {
        drain(m, c);
        double now = ts_now();
        heartbeat_and_purge(m, now);
        ts_status s = TS_OK;
        if (cond && cond(m, arg, &s, err)) return s;
        if (now >= deadline) {
            if (!cond) return TS_OK;
            return ts_errorf(err, TS_ERR_TIMEOUT, "timed out after %.3g s", timeout_s);
        }
        double wait = next_timer(m, deadline) - now;
        long ms = wait <= 0 ? 0 : (long)(wait * 1e3) + 1;
        /* The CURVE handshake of a connecting worker waits for our answer
         * on the ZAP socket, so it is served by this same loop. */
        zmq_pollitem_t items[2] = {{.socket = m->sock, .events = ZMQ_POLLIN},
                                   {.socket = m->curve.zap, .events = ZMQ_POLLIN}};
        if (zmq_poll(items, m->curve.zap ? 2 : 1, ms) < 0 && errno != EINTR)
            return ts_errorf(err, TS_ERR_IO, "master poll failed: %s", zmq_strerror(errno));
        if (m->curve.zap)
            while (ts_curve_server_handle(&m->curve) > 0)
                m->st.auth_refused = m->curve.refused;
    }
}

/* ---- public: lifetime ---------------------------------------------------- */

static ts_status setsockopt_int(void *sock, int opt, int v, ts_err *err) {
    if (zmq_setsockopt(sock, opt, &v, sizeof v) != 0)
        return ts_errorf(err, TS_ERR_IO, "zmq_setsockopt(%d): %s", opt, zmq_strerror(errno));
    return TS_OK;
}

static ts_status open_socket(ts_master *m, ts_err *err) {
    m->sock = zmq_socket(m->ctx, ZMQ_ROUTER);
    if (!m->sock) return ts_errorf(err, TS_ERR_IO, "zmq_socket: %s", zmq_strerror(errno));
    int64_t maxmsg = (int64_t)m->opts.max_frame_bytes;
    /* ZeroMQ enforces the frame cap while reading, so an oversized frame is
     * refused before it is allocated, and its sender is disconnected. */
    if (zmq_setsockopt(m->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0)
        return ts_errorf(err, TS_ERR_IO, "zmq_setsockopt(MAXMSGSIZE): %s", zmq_strerror(errno));
    TS_TRY(setsockopt_int(m->sock, ZMQ_ROUTER_MANDATORY, 1, err));
    TS_TRY(setsockopt_int(m->sock, ZMQ_LINGER, 200, err));
    TS_TRY(setsockopt_int(m->sock, ZMQ_SNDHWM, 100000, err));
    TS_TRY(setsockopt_int(m->sock, ZMQ_RCVHWM, 100000, err));
    if (m->opts.curve_dir) {
        if (!strncmp(m->opts.url, "inproc://", 9))
            return ts_errorf(err, TS_ERR_INVALID,
                             "CURVE needs ipc:// or tcp://; inproc:// has no security mechanism");
        TS_TRY(ts_curve_server_open(&m->curve, m->ctx, m->sock, m->opts.curve_dir, err));
    }
    if (zmq_bind(m->sock, m->opts.url) != 0)
        return ts_errorf(err, TS_ERR_IO, "cannot bind %s: %s", m->opts.url, zmq_strerror(errno));
    size_t len = sizeof m->endpoint;
    if (zmq_getsockopt(m->sock, ZMQ_LAST_ENDPOINT, m->endpoint, &len) != 0)
        snprintf(m->endpoint, sizeof m->endpoint, "%s", m->opts.url);
    return TS_OK;
}

ts_master *ts_master_new(const ts_master_opts *opts, ts_err *err) {
    if (!opts || !opts->url) {
        ts_errorf(err, TS_ERR_INVALID, "master needs a URL to bind");
        return NULL;
    }
    if (opts->heartbeat_ms < 1 || opts->liveness < 1 || opts->max_workers < 1 ||
        opts->max_frame_bytes < 1024) {
        ts_errorf(err, TS_ERR_INVALID,
                  "master options out of range (heartbeat %d ms, liveness %d, %d workers, "
                  "frame cap %zu bytes)",
                  opts->heartbeat_ms, opts->liveness, opts->max_workers, opts->max_frame_bytes);
        return NULL;
    }
    ts_master *m = calloc(1, sizeof *m);
    if (m) m->slots = calloc((size_t)opts->max_workers, sizeof *m->slots);
    if (!m || !m->slots) {
        free(m);
        ts_errorf(err, TS_ERR_NOMEM, "out of memory creating the master");
        return NULL;
    }
    m->opts = *opts;
    pthread_mutex_init(&m->use_mu, NULL);
    m->next_worker_id = m->next_job_id = m->next_seq = 1;
    m->ctx = opts->zmq_ctx;
    if (!m->ctx) {
        m->ctx = zmq_ctx_new();
        m->owns_ctx = 1;
    }
    if (!m->ctx || open_socket(m, err) != TS_OK) {
        if (!m->ctx) ts_errorf(err, TS_ERR_IO, "zmq_ctx_new: %s", zmq_strerror(errno));
        ts_master_free(m);
        return NULL;
    }
    m->opts.url = m->endpoint;
    return m;
}

static void job_release(ts_master *m, ts_job *job);

void ts_master_free(ts_master *m) {
    if (!m) return;
    if (m->sock) {
        for (int i = 0; i < m->opts.max_workers; i++)
            if (m->slots[i].live)
                send_simple(m, m->slots[i].ident, m->slots[i].ident_len, TS_MSG_DISCONNECT,
                            TS_DISC_SHUTDOWN);
        zmq_close(m->sock);
    }
    ts_curve_server_close(&m->curve);
    while (m->jobs) /* the socket is closed: no CANCELs */
        job_release(m, m->jobs);
    if (m->owns_ctx && m->ctx) zmq_ctx_term(m->ctx);
    free(m->deploys);
    for (int i = 0; m->slots && i < m->opts.max_workers; i++)
        free(m->slots[i].held);
    free(m->slots);
    pthread_mutex_destroy(&m->use_mu);
    free(m);
}

void ts_master_lock(ts_master *m) {
    pthread_mutex_lock(&m->use_mu);
}

void ts_master_unlock(ts_master *m) {
    pthread_mutex_unlock(&m->use_mu);
}

void *ts_master_zmq_ctx(ts_master *m) {
    return m->ctx;
}

const char *ts_master_endpoint(const ts_master *m) {
    return m->endpoint;
}

/* ---- public: workers ----------------------------------------------------- */

ts_status ts_master_poll(ts_master *m, double timeout_s, ts_err *err) {
    return pump(m, timeout_s, NULL, NULL, NULL, err);
}

static int live_count(const ts_master *m) {
    int n = 0;
    for (int i = 0; i < m->opts.max_workers; i++)
        n += m->slots[i].live;
    return n;
}

static int cond_workers(ts_master *m, void *arg, ts_status *s, ts_err *err) {
    (void)err;
    *s = TS_OK;
    return live_count(m) >= *(int *)arg;
}

ts_status ts_master_wait_workers(ts_master *m, int n, double timeout_s, ts_err *err) {
    ts_status s = pump(m, timeout_s, NULL, cond_workers, &n, err);
    if (s == TS_ERR_TIMEOUT)
        return ts_errorf(err, TS_ERR_TIMEOUT, "only %d of %d workers joined %s within %.3g s",
                         live_count(m), n, m->endpoint, timeout_s);
    return s;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int ts_master_workers(const ts_master *m, uint32_t *ids, int cap) {
    int n = 0;
    uint32_t *all = malloc(sizeof *all * (size_t)m->opts.max_workers);
    for (int i = 0; i < m->opts.max_workers; i++)
        if (m->slots[i].live) {
            if (all) all[n] = m->slots[i].id;
            n++;
        }
    if (all) {
        qsort(all, (size_t)n, sizeof *all, cmp_u32);
        for (int i = 0; i < n && i < cap; i++)
            ids[i] = all[i];
        free(all);
    }
    return n;
}

uint64_t ts_master_epoch(const ts_master *m) {
    return m->epoch;
}

int ts_master_worker_alive(const ts_master *m, uint32_t id) {
    return find_by_id(m, id) != NULL;
}

ts_status ts_master_worker_info(const ts_master *m, uint32_t id, ts_worker_info *info,
                                ts_err *err) {
    const worker_slot *w = find_by_id(m, id);
    if (!w) return ts_errorf(err, TS_ERR_UNAVAILABLE, "worker %u is not live", id);
    *info = w->info;
    return TS_OK;
}

void ts_master_get_stats(const ts_master *m, ts_master_stats *st) {
    *st = m->st;
}

/* ---- public: deploy ------------------------------------------------------ */

static ts_status check_tensors(const ts_tensor *const *ts, int n, const char *what, ts_err *err) {
    if (n < 0 || n > TS_RT_MAX_TENSORS || (n && !ts))
        return ts_errorf(err, TS_ERR_INVALID, "%s: %d tensors (0..%d allowed)", what, n,
                         TS_RT_MAX_TENSORS);
    for (int i = 0; i < n; i++)
        if (!ts[i] || !ts[i]->data || ts[i]->size < 1)
            return ts_errorf(err, TS_ERR_INVALID, "%s: tensor %d is missing or empty", what, i);
    return TS_OK;
}

static void tensor_frames(const ts_tensor *const *ts, int n, ts_proto_data *data) {
    for (int i = 0; i < n; i++)
        data[i] = (ts_proto_data){ts[i]->data, ts_proto_tensor_bytes(ts[i]), 0};
}

/* XXH3-128 of the tensors' shapes and data: the identity of a blob's
 * content. (A collision would need 2^64 distinct shares.) */
static ts_status content_digest(const ts_tensor *const *ts, int n, XXH128_hash_t *out,
                                ts_err *err) {
    XXH3_state_t *st = XXH3_createState();
    if (!st || XXH3_128bits_reset(st) != XXH_OK) {
        XXH3_freeState(st);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory hashing a blob");
    }
    for (int i = 0; i < n; i++) {
        int64_t dims[1 + TS_MAX_DIMS] = {ts[i]->s.ndim};
        for (int d = 0; d < ts[i]->s.ndim; d++)
            dims[1 + d] = ts[i]->s.shape[d];
        size_t len = ts_proto_tensor_bytes(ts[i]);
        XXH3_128bits_update(st, dims, sizeof dims);
        XXH3_128bits_update(st, ts[i]->data, len);
    }
    *out = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    return TS_OK;
}

static int deploy_pending(const ts_master *m, uint32_t worker, ts_blob_key key) {
    for (int i = 0; i < m->n_deploys; i++)
        if (m->deploys[i].worker == worker && !memcmp(&m->deploys[i].key, &key, sizeof key))
            return 1;
    return 0;
}

/* A key under which w already holds this content, not being redeployed
 * (whatever is in flight to that key would reach the worker first). */
static const held_blob *find_held(const ts_master *m, const worker_slot *w,
                                  const XXH128_hash_t *digest, uint64_t bytes) {
    for (int i = 0; i < w->n_held; i++)
        if (XXH128_isEqual(w->held[i].digest, *digest) && w->held[i].bytes == bytes &&
            !deploy_pending(m, w->id, w->held[i].key))
            return &w->held[i];
    return NULL;
}

ts_status ts_master_deploy(ts_master *m, uint32_t worker, ts_blob_key key,
                           const ts_tensor *const *tensors, int n, ts_err *err) {
    TS_TRY(check_tensors(tensors, n, "deploy", err));
    worker_slot *w = find_by_id(m, worker);
    if (!w)
        return ts_errorf(err, TS_ERR_UNAVAILABLE, "cannot deploy to worker %u: not live", worker);
    if (m->n_deploys == m->cap_deploys) {
        int cap = m->cap_deploys ? 2 * m->cap_deploys : 16;
        deploy_rec *d = realloc(m->deploys, sizeof *d * (size_t)cap);
        if (!d) return ts_errorf(err, TS_ERR_NOMEM, "out of memory recording a deploy");
        m->deploys = d;
        m->cap_deploys = cap;
    }
    deploy_rec rec = {.seq = m->next_seq++, .worker = worker, .key = key};
    for (int i = 0; i < n; i++)
        rec.bytes += ts_proto_tensor_bytes(tensors[i]);
    const held_blob *same = NULL;
    if (w->info.caps & TS_WORKER_CAP_ALIAS) { /* others never get an ALIAS */
        TS_TRY(content_digest(tensors, n, &rec.digest, err));
        same = find_held(m, w, &rec.digest, rec.bytes);
    }
    ts_msg_hdr h = {.type = same ? TS_MSG_ALIAS : TS_MSG_DEPLOY, .seq = rec.seq};
    ts_proto_frame0 f;
    ts_proto_begin(&f, &h);
    ts_proto_put_key(&f, key);
    if (same) ts_proto_put_key(&f, same->key);
    for (int i = 0; !same && i < n; i++)
        ts_proto_put_desc(&f, &tensors[i]->s);
    TS_ASSERT(ts_proto_end(&f, same ? 0 : (uint32_t)n));
    ts_proto_data data[TS_RT_MAX_TENSORS];
    tensor_frames(tensors, n, data);
    ts_err e = {0};
    if (send_to(m, w, &f, data, same ? 0 : n, &e) != TS_OK) {
        remove_worker(m, w, "its connection is gone");
        return ts_errorf(err, TS_ERR_UNAVAILABLE, "cannot deploy to worker %u: %s", worker, e.msg);
    }
    if (same) {
        m->st.deploys_aliased++;
        m->st.deploy_bytes_saved += rec.bytes;
    } else {
        m->st.deploy_bytes_sent += rec.bytes;
    }
    m->deploys[m->n_deploys++] = rec;
    return TS_OK;
}

static int cond_deploys(ts_master *m, void *arg, ts_status *s, ts_err *err) {
    (void)arg;
    if (m->n_deploys > 0) return 0;
    *s = m->deploy_err.status;
    if (*s != TS_OK) ts_errorf(err, *s, "%s", m->deploy_err.msg);
    m->deploy_err.status = TS_OK;
    return 1;
}

ts_status ts_master_deploy_wait(ts_master *m, double timeout_s, ts_err *err) {
    ts_status s = pump(m, timeout_s, NULL, cond_deploys, NULL, err);
    if (s == TS_ERR_TIMEOUT)
        return ts_errorf(err, TS_ERR_TIMEOUT, "%d deploys unacknowledged after %.3g s",
                         m->n_deploys, timeout_s);
    return s;
}

/* ---- public: jobs -------------------------------------------------------- */

static int expected_outputs(const ts_task *t) {
    return t->kind == TS_TASK_ECHO ? t->n_inputs : t->n_pairs;
}

static ts_status check_task(const ts_task *t, int i, ts_err *err) {
    if (t->kind != TS_TASK_ECHO && t->kind != TS_TASK_CONV2D && t->kind != TS_TASK_GEMM)
        return ts_errorf(err, TS_ERR_INVALID, "task %d: unknown kind %d", i, (int)t->kind);
    TS_TRY(check_tensors(t->inputs, t->n_inputs, "task inputs", err));
    if (t->kind == TS_TASK_ECHO) return TS_OK;
    if (t->n_pairs < 1 || t->n_pairs > TS_RT_MAX_PAIRS || !t->pairs)
        return ts_errorf(err, TS_ERR_INVALID, "task %d: %d pairs (1..%d allowed)", i, t->n_pairs,
                         TS_RT_MAX_PAIRS);
    for (int p = 0; p < t->n_pairs; p++)
        if (t->pairs[p].input >= (uint32_t)t->n_inputs)
            return ts_errorf(err, TS_ERR_INVALID, "task %d pair %d: input %u of %d", i, p,
                             t->pairs[p].input, t->n_inputs);
    return TS_OK;
}

static ts_status grow_shards(ts_job *j, int extra, ts_err *err) {
    if (j->n_shards + extra <= j->cap_shards) return TS_OK;
    int cap = j->cap_shards ? j->cap_shards : 8;
    while (cap < j->n_shards + extra)
        cap *= 2;
    shard_rec *s = realloc(j->shards, sizeof *s * (size_t)cap);
    if (!s) return ts_errorf(err, TS_ERR_NOMEM, "out of memory growing job %u", j->id);
    j->shards = s;
    j->cap_shards = cap;
    return TS_OK;
}

static int shard_taken(const ts_job *j, uint32_t shard) {
    for (int i = 0; i < j->n_shards; i++)
        if (j->shards[i].shard == shard && j->shards[i].state != SHARD_LOST) return 1;
    return 0;
}

/* Sends one task; a dead or unreachable worker leaves the shard lost (the
 * collect call then decides whether enough remain). */
static void send_task(ts_master *m, ts_job *j, const ts_task *t) {
    shard_rec *r = &j->shards[j->n_shards++];
    *r = (shard_rec){t->shard, m->next_seq++, t->worker, expected_outputs(t), SHARD_LOST};
    worker_slot *w = find_by_id(m, t->worker);
    if (!w) {
        ts_log(TS_LOG_WARN, "job %u shard %u: worker %u is not live", j->id, t->shard, t->worker);
        return;
    }
    if (!(w->info.caps & (1u << t->kind))) {
        ts_log(TS_LOG_WARN, "job %u shard %u: worker %u cannot run task kind %d", j->id, t->shard,
               t->worker, (int)t->kind);
        return;
    }
    ts_msg_hdr h = {
        .type = TS_MSG_TASK, .job = j->id, .layer = j->layer, .shard = t->shard, .seq = r->seq};
    ts_proto_frame0 f;
    ts_proto_begin(&f, &h);
    ts_proto_put_task(&f, t);
    for (int i = 0; i < t->n_inputs; i++)
        ts_proto_put_desc(&f, &t->inputs[i]->s);
    TS_ASSERT(ts_proto_end(&f, (uint32_t)t->n_inputs));
    ts_proto_data data[TS_RT_MAX_TENSORS];
    tensor_frames(t->inputs, t->n_inputs, data);
    ts_err e;
    if (send_to(m, w, &f, data, t->n_inputs, &e) != TS_OK) {
        remove_worker(m, w, e.msg);
        return;
    }
    r->state = SHARD_SENT;
}

ts_status ts_master_job_add(ts_master *m, ts_job *j, const ts_task *tasks, int n, ts_err *err) {
    if (n < 0 || (n && !tasks)) return ts_errorf(err, TS_ERR_INVALID, "no tasks given");
    for (int i = 0; i < n; i++) {
        TS_TRY(check_task(&tasks[i], i, err));
        if (shard_taken(j, tasks[i].shard))
            return ts_errorf(err, TS_ERR_INVALID, "job %u already has a live shard %u", j->id,
                             tasks[i].shard);
        for (int k = 0; k < i; k++)
            if (tasks[k].shard == tasks[i].shard)
                return ts_errorf(err, TS_ERR_INVALID, "shard %u given twice", tasks[i].shard);
    }
    TS_TRY(grow_shards(j, n, err));
    for (int i = 0; i < n; i++)
        send_task(m, j, &tasks[i]);
    return TS_OK;
}

ts_job *ts_master_submit(ts_master *m, uint32_t layer, const ts_task *tasks, int n, ts_err *err) {
    ts_job *j = calloc(1, sizeof *j);
    if (!j) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory creating a job");
        return NULL;
    }
    j->id = m->next_job_id++;
    if (m->next_job_id == 0) m->next_job_id = 1; /* 0 means "no job" on the wire */
    j->layer = layer;
    if (ts_master_job_add(m, j, tasks, n, err) != TS_OK) {
        free(j->shards);
        free(j);
        return NULL;
    }
    j->next = m->jobs;
    m->jobs = j;
    return j;
}

uint32_t ts_job_id(const ts_job *job) {
    return job->id;
}

int ts_job_accepted(const ts_job *job) {
    return job->accepted;
}

int ts_job_in_flight(const ts_job *job) {
    int n = 0;
    for (int i = 0; i < job->n_shards; i++)
        n += job->shards[i].state == SHARD_SENT;
    return n;
}

/* Replays results that arrived while another job was being collected. */
static void replay_pending(ts_master *m, ts_job *j, const collector *c) {
    while (j->pending) {
        pending_result *p = j->pending;
        j->pending = p->next;
        if (!j->pending) j->pending_tail = NULL;
        p->next = NULL;
        uint32_t worker = p->worker;
        ts_proto_in in = {.n = p->n};
        for (int i = 0; i < p->n; i++) {
            zmq_msg_init(&in.part[i]);
            zmq_msg_move(&in.part[i], &p->parts[i]);
        }
        free_pending(p);
        ts_proto_msg msg;
        ts_err e;
        /* Validated when it arrived; decoding again only rebuilds the views. A
         * shard lost since then still counts: the result came before the loss. */
        if (ts_proto_decode(&in, 1, m->opts.max_frame_bytes, &msg, &e) == TS_OK) {
            shard_rec *r = find_shard(j, msg.h.shard, msg.h.seq, worker);
            if (r && r->state != SHARD_DONE) deliver(m, j, r, &msg, c);
        }
        ts_proto_in_close(&in);
    }
}

typedef struct {
    ts_job *job;
    int k;
} collect_arg;

static int cond_collect(ts_master *m, void *arg, ts_status *s, ts_err *err) {
    collect_arg *a = arg;
    ts_job *j = a->job;
    (void)m;
    if (j->accepted >= a->k) {
        *s = TS_OK;
        return 1;
    }
    int in_flight = ts_job_in_flight(j);
    if (j->accepted + in_flight < a->k) {
        *s = ts_errorf(err, TS_ERR_UNAVAILABLE,
                       "job %u (layer %u) cannot reach %d results: %d accepted, %d still in "
                       "flight to live workers",
                       j->id, j->layer, a->k, j->accepted, in_flight);
        return 1;
    }
    return 0;
}

ts_status ts_master_collect(ts_master *m, ts_job *job, int k, double timeout_s, ts_result_fn fn,
                            void *user, ts_err *err) {
    if (!job || !fn || k < 1)
        return ts_errorf(err, TS_ERR_INVALID, "collect needs a job, k >= 1 and a callback");
    collector c = {job, fn, user};
    replay_pending(m, job, &c);
    collect_arg a = {job, k};
    ts_status s = pump(m, timeout_s, &c, cond_collect, &a, err);
    if (s == TS_ERR_TIMEOUT)
        return ts_errorf(err, TS_ERR_TIMEOUT,
                         "job %u (layer %u): %d of %d results after %.3g s, %d still in flight",
                         job->id, job->layer, job->accepted, k, timeout_s, ts_job_in_flight(job));
    return s;
}

/* Tells each worker still holding shards of a finished job (once, and only
 * workers that take CANCEL) to drop them: otherwise a straggler computes and
 * queues results nobody reads, holding its memory, and, emulated, its device
 * falls further behind with every job. A lost CANCEL only costs that. */
static void cancel_in_flight(ts_master *m, const ts_job *job) {
    for (int i = 0; i < job->n_shards; i++) {
        const shard_rec *r = &job->shards[i];
        if (r->state != SHARD_SENT) continue;
        int told = 0;
        for (int k = 0; k < i && !told; k++)
            told = job->shards[k].state == SHARD_SENT && job->shards[k].worker == r->worker;
        worker_slot *w = told ? NULL : find_by_id(m, r->worker);
        if (!w || !(w->info.caps & TS_WORKER_CAP_CANCEL)) continue;
        ts_msg_hdr h = {.type = TS_MSG_CANCEL, .job = job->id, .layer = job->layer};
        ts_proto_frame0 f;
        ts_proto_begin(&f, &h);
        TS_ASSERT(ts_proto_end(&f, 0));
        ts_err e;
        if (send_to(m, w, &f, NULL, 0, &e) == TS_OK)
            m->st.cancels_sent++;
        else
            ts_log(TS_LOG_DEBUG, "cancel of job %u to worker %u: %s", job->id, r->worker, e.msg);
    }
}

/* Unlinks and frees a job without a word to the workers. */
static void job_release(ts_master *m, ts_job *job) {
    for (ts_job **p = &m->jobs; *p; p = &(*p)->next)
        if (*p == job) {
            *p = job->next;
            break;
        }
    free_pending(job->pending);
    free(job->shards);
    free(job);
}

void ts_master_job_free(ts_master *m, ts_job *job) {
    if (!job) return;
    cancel_in_flight(m, job);
    job_release(m, job);
}
