/* worker.c: the worker loop (zguide Paranoid Pirate worker) with device and
 * link emulation.
 *
 * One thread, one DEALER socket. Frames from the master are handled as they
 * arrive; real kernels run at once, and the emulated timeline (link in,
 * device, link out; see emul.h) decides when the reply may leave: replies wait
 * in a queue ordered by release time while the loop keeps heartbeating, so an
 * emulated slow device still looks alive. A CANCEL from the master (the job
 * is done) drops that job's queued replies and gives back the device and
 * link time they had not used yet (cancel_job). A master silent for `liveness`
 * heartbeats is presumed gone: the worker reconnects with a fresh socket and
 * exponential back-off and says HELLO again. */
#include "runtime/curve.h"
#include "runtime/emul.h"
#include "runtime/tasks.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MAX_FACTOR 32 /* back-off doubles from one heartbeat up to 32 */
#define STOP_CHECK_S 0.02     /* how often a thread worker looks at its stop flag */

typedef struct outmsg {
    struct outmsg *next;
    double release;
    /* For a task's reply (task = 1): its job and emulated timeline (device
     * from start to done, then out_s on the outbound link before `release`
     * minus the latency), which cancel_job reschedules. */
    int task;
    uint32_t job;
    double have, start, done, dev_s, out_s;
    int n;
    ts_proto_data data[TS_RT_MAX_TENSORS];
    ts_proto_frame0 f;
} outmsg;

typedef struct {
    const ts_worker_opts *o;
    void *ctx;
    void *sock;
    int registered;
    uint32_t id;
    double hb_s;
    int liveness;
    double master_expiry, hb_at, backoff_s;
    double started, dev_free;
    ts_link link;
    ts_rng rng;
    ts_blob_store store;
    outmsg *q_head, *q_tail; /* release times are non-decreasing */
    ts_worker_stats st;
} worker;

ts_worker_opts ts_worker_opts_default(void) {
    ts_worker_opts o;
    memset(&o, 0, sizeof o);
    o.heartbeat_ms = 1000;
    o.liveness = 3;
    o.max_frame_bytes = (size_t)1 << 30;
    o.max_blob_bytes = (size_t)4 << 30;
    o.seed = 1;
    return o;
}

#define STOP_SILENCE 3 /* stop flag value of ts_worker_silence: mute, not gone */

static int stop_flag(const worker *w) {
    return w->o->stop ? __atomic_load_n(w->o->stop, __ATOMIC_ACQUIRE) : 0;
}

/* 1 or 2 (see ts_worker_opts.stop); a silenced worker is not stopping. */
static int stop_requested(const worker *w) {
    int s = stop_flag(w);
    return s == STOP_SILENCE ? 0 : s;
}

/* ---- output queue --------------------------------------------------------- */

static void outmsg_free(outmsg *m) {
    for (int i = 0; i < m->n; i++)
        if (m->data[i].give) ts_free((void *)m->data[i].ptr);
    free(m);
}

static void queue_clear(worker *w) {
    while (w->q_head) {
        outmsg *m = w->q_head;
        w->q_head = m->next;
        outmsg_free(m);
    }
    w->q_tail = NULL;
}

static void queue_push(worker *w, outmsg *m) {
    m->next = NULL;
    if (w->q_tail && m->release < w->q_tail->release) m->release = w->q_tail->release;
    if (w->q_tail)
        w->q_tail->next = m;
    else
        w->q_head = m;
    w->q_tail = m;
}

static void send_now(worker *w, const ts_proto_frame0 *f, const ts_proto_data *d, int n) {
    ts_err e;
    if (ts_proto_send(w->sock, NULL, 0, f, d, n, &e) != TS_OK)
        ts_log(TS_LOG_WARN, "worker %s: %s", w->o->name ? w->o->name : "", e.msg);
}

static void flush_due(worker *w, double now) {
    while (w->q_head && w->q_head->release <= now) {
        outmsg *m = w->q_head;
        w->q_head = m->next;
        if (!w->q_head) w->q_tail = NULL;
        send_now(w, &m->f, m->data, m->n); /* hands the given buffers to ZeroMQ */
        m->n = 0;
        outmsg_free(m);
    }
}

static outmsg *outmsg_new(const ts_msg_hdr *h) {
    outmsg *m = malloc(sizeof *m);
    if (!m) return NULL;
    m->n = 0;
    m->task = 0;
    m->job = h->job;
    ts_proto_begin(&m->f, h);
    return m;
}

/* ---- connection ----------------------------------------------------------- */

static void send_simple(worker *w, uint32_t type, uint32_t disc_reason) {
    ts_msg_hdr h = {.type = type};
    ts_proto_frame0 f;
    ts_proto_begin(&f, &h);
    if (type == TS_MSG_DISCONNECT) ts_proto_put_u32(&f, disc_reason);
    TS_ASSERT(ts_proto_end(&f, 0));
    send_now(w, &f, NULL, 0);
}

static ts_status open_socket(worker *w, ts_err *err) {
    w->sock = zmq_socket(w->ctx, ZMQ_DEALER);
    if (!w->sock) return ts_errorf(err, TS_ERR_IO, "zmq_socket: %s", zmq_strerror(errno));
    int64_t maxmsg = (int64_t)w->o->max_frame_bytes;
    int zero = 0, hwm = 100000;
    zmq_setsockopt(w->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(w->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (w->o->curve_dir && ts_curve_client_setup(w->sock, w->o->curve_dir, err) != TS_OK) {
        zmq_close(w->sock);
        w->sock = NULL;
        return err ? err->status : TS_ERR_IO;
    }
    if (zmq_connect(w->sock, w->o->url) != 0) {
        ts_status s =
            ts_errorf(err, TS_ERR_IO, "cannot connect to %s: %s", w->o->url, zmq_strerror(errno));
        zmq_close(w->sock);
        w->sock = NULL;
        return s;
    }
    ts_msg_hdr h = {.type = TS_MSG_HELLO};
    uint32_t caps = TS_TASK_CAPS_ALL | TS_WORKER_CAP_ALIAS;
    if (!w->o->no_cancel) caps |= TS_WORKER_CAP_CANCEL;
    ts_proto_hello hello = {.caps = caps,
                            .heartbeat_ms = (uint32_t)w->o->heartbeat_ms,
                            .liveness = (uint32_t)w->o->liveness,
                            .gflops = w->o->gflops,
                            .mbps = w->o->mbps,
                            .latency_ms = w->o->latency_ms};
    ts_straggler_str(&w->o->straggler, hello.straggler, sizeof hello.straggler);
    snprintf(hello.name, sizeof hello.name, "%s", w->o->name ? w->o->name : "");
    ts_proto_frame0 f;
    ts_proto_begin(&f, &h);
    ts_proto_put_hello(&f, &hello);
    TS_ASSERT(ts_proto_end(&f, 0));
    send_now(w, &f, NULL, 0);
    w->registered = 0;
    w->master_expiry = ts_now() + w->hb_s * w->liveness;
    return TS_OK;
}

static void close_socket(worker *w, int linger_ms) {
    if (!w->sock) return;
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(w->sock);
    w->sock = NULL;
    queue_clear(w);
}

/* Sleeps up to s seconds, waking early when asked to stop. */
static void nap(worker *w, double s) {
    double until = ts_now() + s;
    while (!stop_requested(w)) {
        double left = until - ts_now();
        if (left <= 0) break;
        zmq_poll(NULL, 0, (long)(fmin(left, STOP_CHECK_S) * 1e3) + 1);
    }
}

/* Paranoid Pirate reconnect: fresh socket (a new identity, so the master
 * sees a new worker), after an exponentially growing pause. The deployed
 * blobs go too: a new registration starts clean. */
static ts_status reconnect(worker *w, double pause_s, ts_err *err) {
    close_socket(w, 0);
    ts_store_clear(&w->store);
    if (pause_s > 0) nap(w, pause_s);
    w->backoff_s = fmin(w->backoff_s * 2, w->hb_s * BACKOFF_MAX_FACTOR);
    w->dev_free = w->link.in_free = w->link.out_free = 0;
    return open_socket(w, err);
}

/* ---- handling frames from the master ----------------------------------- */

/* Queues an ERROR answering `in`; returns it (still owned by the queue), or
 * NULL when out of memory. */
static outmsg *reply_error(worker *w, const ts_msg_hdr *in, double release, ts_status code,
                           const char *msg) {
    ts_msg_hdr h = *in;
    h.type = TS_MSG_ERROR;
    outmsg *m = outmsg_new(&h);
    if (!m) return NULL;
    ts_proto_put_error(&m->f, (uint32_t)code, msg);
    TS_ASSERT(ts_proto_end(&m->f, 0));
    m->release = release;
    queue_push(w, m);
    return m;
}

static void note_store_bytes(worker *w) {
    if (w->store.bytes > w->st.blob_bytes_peak) w->st.blob_bytes_peak = w->store.bytes;
}

/* Answers a DEPLOY or an ALIAS that arrived at `have`: DEPLOYED for key when
 * storing it went well (st), else ERROR with e's message. */
static void answer_deploy(worker *w, const ts_msg_hdr *in, ts_blob_key key, double have,
                          ts_status st, const ts_err *e) {
    if (st != TS_OK) {
        w->st.task_errors++;
        reply_error(w, in, ts_emul_outbound(&w->link, have, 64, 1.0), e->status, e->msg);
        return;
    }
    note_store_bytes(w);
    ts_msg_hdr h = *in;
    h.type = TS_MSG_DEPLOYED;
    outmsg *m = outmsg_new(&h);
    if (!m) return;
    ts_proto_put_key(&m->f, key);
    TS_ASSERT(ts_proto_end(&m->f, 0));
    m->release = ts_emul_outbound(&w->link, have, m->f.len, 1.0);
    queue_push(w, m);
}

static void handle_deploy(worker *w, ts_proto_in *in, ts_proto_msg *msg, double now) {
    double have = ts_emul_inbound(&w->link, now, in->total_bytes, 1.0);
    ts_err e = {0};
    ts_status st = ts_store_put(&w->store, in, 0, msg, &e);
    if (st == TS_OK) w->st.blobs++;
    answer_deploy(w, &msg->h, msg->u.key, have, st, &e);
}

/* ALIAS: the blob src names is stored under dst too (no data moves), and
 * acknowledged with DEPLOYED like the DEPLOY it stands for. */
static void handle_alias(worker *w, const ts_proto_msg *msg, size_t in_bytes, double now) {
    double have = ts_emul_inbound(&w->link, now, in_bytes, 1.0);
    ts_err e = {0};
    ts_status st = ts_store_alias(&w->store, msg->u.alias.src, msg->u.alias.dst, &e);
    if (st == TS_OK) w->st.aliases++;
    answer_deploy(w, &msg->h, msg->u.alias.dst, have, st, &e);
}

/* Device time the task takes on the emulated device, before stragglers. */
static double device_time(const worker *w, const ts_proto_task *t, double flops, double real_s) {
    double base = w->o->gflops > 0 ? flops / (w->o->gflops * 1e9) : real_s;
    if (t->kind == TS_TASK_ECHO) base += t->echo_sleep_ms * 1e-3;
    return base;
}

static void handle_task(worker *w, ts_proto_msg *msg, size_t in_bytes, double now) {
    /* One draw per task (the seeded sequence does not depend on +link). */
    double slow = ts_emul_slowdown(&w->o->straggler, &w->rng);
    double link_slow = w->o->straggler.link ? slow : 1.0;
    double have = ts_emul_inbound(&w->link, now, in_bytes, link_slow);
    ts_tensor outs[TS_RT_MAX_PAIRS > TS_RT_MAX_TENSORS ? TS_RT_MAX_PAIRS : TS_RT_MAX_TENSORS];
    int n_outs = 0;
    double flops = 0;
    ts_err e = {0};
    double t0 = ts_now();
    ts_status s = ts_task_run(&w->store, &msg->u.task, msg->tensors, msg->n_tensors,
                              w->o->max_frame_bytes, outs, &n_outs, &flops, &e);
    double real_s = ts_now() - t0;
    if (s != TS_OK) {
        w->st.task_errors++;
        outmsg *m =
            reply_error(w, &msg->h, ts_emul_outbound(&w->link, have, 64, link_slow), s, e.msg);
        if (m) { /* a task's reply, without device time: CANCEL drops it too */
            m->task = 1;
            m->have = m->start = m->done = have, m->dev_s = 0;
            m->out_s = ts_emul_xfer_s(&w->link, 64) * link_slow;
        }
        return;
    }
    double dev_s = device_time(w, &msg->u.task, flops, real_s) * slow;
    double start = have > w->dev_free ? have : w->dev_free;
    double done = start + dev_s;
    w->dev_free = done;

    ts_msg_hdr h = msg->h;
    h.type = TS_MSG_RESULT;
    outmsg *m = outmsg_new(&h);
    if (!m) {
        for (int i = 0; i < n_outs; i++)
            ts_free(outs[i].data);
        return;
    }
    ts_proto_result r = {.compute_s = real_s, .emulated_s = dev_s};
    ts_proto_put_result(&m->f, &r);
    size_t bytes = 0;
    for (int i = 0; i < n_outs; i++) {
        ts_proto_put_desc(&m->f, &outs[i].s);
        m->data[i] = (ts_proto_data){outs[i].data, ts_proto_tensor_bytes(&outs[i]), 1};
        bytes += m->data[i].bytes;
    }
    m->n = n_outs;
    TS_ASSERT(ts_proto_end(&m->f, (uint32_t)n_outs));
    m->release = ts_emul_outbound(&w->link, done, bytes + m->f.len, link_slow);
    m->task = 1;
    m->have = have, m->start = start, m->done = done, m->dev_s = dev_s;
    m->out_s = ts_emul_xfer_s(&w->link, bytes + m->f.len) * link_slow;
    w->st.tasks++;
    queue_push(w, m);
}

/* CANCEL: the master has what it needs of `job`. Its replies still queued
 * are dropped (their buffers freed), and the timeline of the replies kept
 * is replayed from `now` without them: a reply whose device work had not
 * started starts once the device is free of the kept work before it, so a
 * straggler stops falling further behind with every job it cannot finish in
 * time (its results, late anyway, held memory and its device). Work already
 * on the device or the link stays where it is; a cancelled task that was
 * running frees the device at `now`. */
static void cancel_job(worker *w, uint32_t job, double now) {
    double dev_free = now, link_free = now, last_release = 0;
    double latency = w->link.latency_s;
    outmsg **at = &w->q_head, *tail = NULL;
    while (*at) {
        outmsg *m = *at;
        if (m->task && m->job == job) {
            *at = m->next;
            outmsg_free(m);
            w->st.cancelled++;
            continue;
        }
        if (m->task && m->start > now) { /* not begun: replay it */
            m->start = m->have > dev_free ? m->have : dev_free;
            m->done = m->start + m->dev_s;
            double tx = m->done > link_free ? m->done : link_free;
            m->release = tx + m->out_s + latency;
        }
        if (m->task) {
            if (m->done > dev_free) dev_free = m->done;
            if (m->release - latency > link_free) link_free = m->release - latency;
        }
        if (m->release < last_release) m->release = last_release; /* stays ordered */
        last_release = m->release;
        tail = m;
        at = &m->next;
    }
    w->q_tail = tail;
    if (dev_free < w->dev_free) w->dev_free = dev_free;
    if (link_free < w->link.out_free) w->link.out_free = link_free;
}

typedef enum { ACT_NONE, ACT_RECONNECT, ACT_BACKOFF, ACT_SHUTDOWN } action;

static action handle_frame(worker *w, ts_proto_in *in, double now) {
    ts_proto_msg msg;
    ts_err e = {0};
    if (ts_proto_decode(in, 0, w->o->max_frame_bytes, &msg, &e) != TS_OK) {
        ts_log(TS_LOG_WARN, "worker %s: dropped a frame from the master: %s",
               w->o->name ? w->o->name : "", e.msg);
        return ACT_BACKOFF;
    }
    w->master_expiry = now + w->hb_s * w->liveness;
    switch ((ts_msg_type)msg.h.type) {
    case TS_MSG_READY:
        w->registered = 1;
        w->st.registrations++;
        w->id = msg.u.ready.worker_id;
        if (msg.u.ready.heartbeat_ms >= 1 && msg.u.ready.heartbeat_ms <= 3600000)
            w->hb_s = msg.u.ready.heartbeat_ms * 1e-3;
        if (msg.u.ready.liveness >= 1 && msg.u.ready.liveness <= 1000)
            w->liveness = (int)msg.u.ready.liveness;
        w->backoff_s = w->hb_s;
        w->master_expiry = now + w->hb_s * w->liveness;
        return ACT_NONE;
    case TS_MSG_HEARTBEAT: return ACT_NONE;
    case TS_MSG_DEPLOY: handle_deploy(w, in, &msg, now); return ACT_NONE;
    case TS_MSG_ALIAS: handle_alias(w, &msg, in->total_bytes, now); return ACT_NONE;
    case TS_MSG_TASK: handle_task(w, &msg, in->total_bytes, now); return ACT_NONE;
    case TS_MSG_CANCEL: cancel_job(w, msg.h.job, now); return ACT_NONE;
    case TS_MSG_DISCONNECT:
        if (msg.u.disc_reason == TS_DISC_SHUTDOWN)
            return w->o->exit_on_shutdown ? ACT_SHUTDOWN : ACT_BACKOFF;
        return ACT_RECONNECT;
    default:
        ts_log(TS_LOG_WARN, "worker %s: the master sent %s, which only workers send",
               w->o->name ? w->o->name : "", ts_msg_type_name(msg.h.type));
        return ACT_BACKOFF;
    }
}

/* ---- the loop ------------------------------------------------------------- */

static double next_wake(const worker *w, double now) {
    double t = w->master_expiry;
    if (w->registered && w->hb_at < t) t = w->hb_at;
    if (w->q_head && w->q_head->release < t) t = w->q_head->release;
    if (w->o->stop && now + STOP_CHECK_S < t) t = now + STOP_CHECK_S;
    ts_straggler_kind k = w->o->straggler.kind;
    if (k == TS_STRAGGLER_FAILSTOP || k == TS_STRAGGLER_CRASH) {
        double at = w->started + w->o->straggler.a;
        if (at > now && at < t) t = at;
    }
    return t;
}

/* A fail-stopped worker is alive but mute: it reads and discards. */
static ts_status fail_stopped(worker *w, ts_worker_exit *why, ts_err *err) {
    ts_log(TS_LOG_INFO, "worker %s: emulated fail-stop", w->o->name ? w->o->name : "");
    queue_clear(w);
    while (!stop_requested(w)) {
        zmq_pollitem_t it = {.socket = w->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, (long)(STOP_CHECK_S * 1e3)) < 0 && errno == ETERM) break;
        ts_proto_in in;
        while (ts_proto_recv(w->sock, &in, ZMQ_DONTWAIT) == 0)
            ts_proto_in_close(&in);
    }
    *why = TS_WORKER_EXIT_STOPPED;
    (void)err;
    return TS_OK;
}

static ts_status serve(worker *w, ts_worker_exit *why, ts_err *err) {
    for (;;) {
        int stop = stop_requested(w);
        if (stop) {
            if (stop == 1) send_simple(w, TS_MSG_DISCONNECT, TS_DISC_LEAVING);
            *why = TS_WORKER_EXIT_STOPPED;
            return TS_OK;
        }
        double now = ts_now();
        double since = now - w->started;
        if (w->o->straggler.kind == TS_STRAGGLER_CRASH && since >= w->o->straggler.a) {
            *why = TS_WORKER_EXIT_CRASH;
            return TS_OK;
        }
        if ((w->o->straggler.kind == TS_STRAGGLER_FAILSTOP && since >= w->o->straggler.a) ||
            stop_flag(w) == STOP_SILENCE)
            return fail_stopped(w, why, err);
        flush_due(w, now);
        if (w->registered && now >= w->hb_at) {
            send_simple(w, TS_MSG_HEARTBEAT, 0);
            w->hb_at = now + w->hb_s;
        }
        if (now > w->master_expiry) {
            ts_log(TS_LOG_INFO, "worker %s: master silent, reconnecting in %.3g s",
                   w->o->name ? w->o->name : "", w->backoff_s);
            TS_TRY(reconnect(w, w->backoff_s, err));
            continue;
        }
        double wait = next_wake(w, now) - now;
        /* zmq_poll counts whole milliseconds; rounding up would release
         * every emulated reply up to 1 ms late. Poll for the whole
         * milliseconds and sleep the sub-millisecond rest precisely. */
        if (wait > 0 && wait < 1e-3) {
            struct timespec ts = {0, (long)(wait * 1e9)};
            nanosleep(&ts, NULL);
            continue;
        }
        zmq_pollitem_t it = {.socket = w->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, wait <= 0 ? 0 : (long)(wait * 1e3)) < 0) {
            if (errno == EINTR) continue;
            return ts_errorf(err, TS_ERR_IO, "worker poll failed: %s", zmq_strerror(errno));
        }
        ts_proto_in in;
        action act = ACT_NONE;
        while (act == ACT_NONE && ts_proto_recv(w->sock, &in, ZMQ_DONTWAIT) == 0) {
            act = handle_frame(w, &in, ts_now());
            ts_proto_in_close(&in);
        }
        if (act == ACT_SHUTDOWN) {
            *why = TS_WORKER_EXIT_SHUTDOWN;
            return TS_OK;
        }
        if (act == ACT_RECONNECT || act == ACT_BACKOFF)
            TS_TRY(reconnect(w, act == ACT_BACKOFF ? w->backoff_s : 0, err));
    }
}

static ts_status check_opts(const ts_worker_opts *o, ts_err *err) {
    if (!o || !o->url) return ts_errorf(err, TS_ERR_INVALID, "worker needs a master URL");
    if (o->heartbeat_ms < 1 || o->liveness < 1)
        return ts_errorf(err, TS_ERR_INVALID, "heartbeat (%d ms) and liveness (%d) must be >= 1",
                         o->heartbeat_ms, o->liveness);
    if (!(o->gflops >= 0) || !(o->mbps >= 0) || !(o->latency_ms >= 0) || !isfinite(o->gflops) ||
        !isfinite(o->mbps) || !isfinite(o->latency_ms))
        return ts_errorf(err, TS_ERR_INVALID,
                         "emulation settings must be finite and >= 0 (gflops %g, mbps %g, "
                         "latency %g ms)",
                         o->gflops, o->mbps, o->latency_ms);
    if (o->max_frame_bytes < 1024)
        return ts_errorf(err, TS_ERR_INVALID, "frame cap of %zu bytes is too small",
                         o->max_frame_bytes);
    return TS_OK;
}

ts_status ts_worker_run(const ts_worker_opts *opts, ts_worker_exit *why, ts_err *err) {
    ts_worker_exit dummy;
    if (!why) why = &dummy;
    *why = TS_WORKER_EXIT_STOPPED;
    TS_TRY(check_opts(opts, err));
    worker w;
    memset(&w, 0, sizeof w);
    w.o = opts;
    w.hb_s = opts->heartbeat_ms * 1e-3;
    w.liveness = opts->liveness;
    w.backoff_s = w.hb_s;
    w.started = ts_now();
    w.link.mbps = opts->mbps;
    w.link.latency_s = opts->latency_ms * 1e-3;
    ts_rng_seed(&w.rng, opts->seed);
    ts_store_init(&w.store, opts->max_blob_bytes ? opts->max_blob_bytes : (size_t)4 << 30);
    int own_ctx = !opts->zmq_ctx;
    w.ctx = own_ctx ? zmq_ctx_new() : opts->zmq_ctx;
    if (!w.ctx) return ts_errorf(err, TS_ERR_IO, "zmq_ctx_new: %s", zmq_strerror(errno));
    ts_status s = open_socket(&w, err);
    if (s == TS_OK) s = serve(&w, why, err);
    /* A graceful stop lingers so DISCONNECT gets out; a crash does not. */
    close_socket(&w, (s == TS_OK && *why == TS_WORKER_EXIT_STOPPED && stop_requested(&w) == 1) ? 200
                                                                                               : 0);
    ts_store_clear(&w.store);
    if (own_ctx) zmq_ctx_term(w.ctx);
    if (opts->stats) *opts->stats = w.st;
    return s;
}

/* ---- worker threads ------------------------------------------------------- */

struct ts_worker_thread {
    pthread_t th;
    ts_worker_opts opts;
    char *url, *name, *curve_dir;
    int stop;
    ts_status status;
    ts_err err;
};

static void *worker_main(void *arg) {
    ts_worker_thread *t = arg;
    ts_worker_exit why;
    t->status = ts_worker_run(&t->opts, &why, &t->err);
    if (t->status != TS_OK)
        ts_log(TS_LOG_WARN, "worker thread %s ended: %s", t->name ? t->name : "", t->err.msg);
    return NULL;
}

ts_worker_thread *ts_worker_spawn(const ts_worker_opts *opts, ts_err *err) {
    if (check_opts(opts, err) != TS_OK) return NULL;
    ts_worker_thread *t = calloc(1, sizeof *t);
    if (!t) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory spawning a worker");
        return NULL;
    }
    t->opts = *opts;
    t->url = strdup(opts->url);
    t->name = opts->name ? strdup(opts->name) : NULL;
    t->curve_dir = opts->curve_dir ? strdup(opts->curve_dir) : NULL;
    t->opts.url = t->url;
    t->opts.name = t->name;
    t->opts.curve_dir = t->curve_dir;
    t->opts.stop = &t->stop;
    if (!t->url || (opts->name && !t->name) || (opts->curve_dir && !t->curve_dir) ||
        pthread_create(&t->th, NULL, worker_main, t) != 0) {
        free(t->url);
        free(t->name);
        free(t->curve_dir);
        free(t);
        ts_errorf(err, TS_ERR_IO, "cannot start a worker thread");
        return NULL;
    }
    return t;
}

void ts_worker_silence(ts_worker_thread *t) {
    if (t) __atomic_store_n(&t->stop, STOP_SILENCE, __ATOMIC_RELEASE);
}

void ts_worker_stop(ts_worker_thread *t, int graceful) {
    if (!t) return;
    __atomic_store_n(&t->stop, graceful ? 1 : 2, __ATOMIC_RELEASE);
    pthread_join(t->th, NULL);
    free(t->url);
    free(t->name);
    free(t->curve_dir);
    free(t);
}
