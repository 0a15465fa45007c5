/* test_runtime.c: wire protocol, master/worker over inproc, ipc and tcp,
 * k-of-n collection, failures, rogue peers and emulation.
 *
 * No timing thresholds: every wait has a generous deadline only so that a
 * bug shows up as a failed check instead of a hung test. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "runtime/emul.h"
#include "runtime/proto.h"
#include "runtime/tasks.h"
#include "tessera/ops.h"
#include "tessera/runtime.h"
#include "ts_test.h"

#define DEADLINE 30.0 /* seconds; only reached when something is broken */
#define HB_MS 100
#define LIVENESS 20 /* 2 s of silence: survives a loaded (or sanitized) machine */

static int url_counter;

/* A fresh endpoint of the given transport ("inproc", "ipc", "tcp"). */
static void make_url(const char *transport, char *buf, size_t len) {
    url_counter++;
    if (!strcmp(transport, "inproc"))
        snprintf(buf, len, "inproc://ts-test-%d", url_counter);
    else if (!strcmp(transport, "ipc"))
        snprintf(buf, len, "ipc:///tmp/ts-test-%d-%d.ipc", (int)getpid(), url_counter);
    else
        snprintf(buf, len, "tcp://127.0.0.1:0");
}

typedef struct {
    ts_master *m;
    ts_worker_thread *w[16];
    int nw;
    uint32_t ids[16];
} cluster;

static ts_worker_opts worker_opts(cluster *c, const char *name) {
    ts_worker_opts o = ts_worker_opts_default();
    o.url = ts_master_endpoint(c->m);
    /* inproc endpoints live inside one context: share the master's */
    if (!strncmp(o.url, "inproc://", 9)) o.zmq_ctx = ts_master_zmq_ctx(c->m);
    o.heartbeat_ms = HB_MS;
    o.liveness = LIVENESS;
    o.name = name;
    return o;
}

static ts_master *master_on(const char *transport, size_t max_frame) {
    char url[128];
    make_url(transport, url, sizeof url);
    ts_master_opts mo = ts_master_opts_default();
    mo.url = url;
    mo.heartbeat_ms = HB_MS;
    mo.liveness = LIVENESS;
    if (max_frame) mo.max_frame_bytes = max_frame;
    ts_err err = {0};
    ts_master *m = ts_master_new(&mo, &err);
    TS_CHECK_MSG(m != NULL, "%s", err.msg);
    return m;
}

/* Starts n workers (opts[i] may tweak each one) and waits for them. */
static int cluster_start(cluster *c, const char *transport, int n, const ts_worker_opts *opts) {
    memset(c, 0, sizeof *c);
    c->m = master_on(transport, 0);
    if (!c->m) return 0;
    ts_err err = {0};
    char names[16][16];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "w%d", i);
        ts_worker_opts o = opts ? opts[i] : worker_opts(c, names[i]);
        if (opts) {
            ts_worker_opts base = worker_opts(c, o.name ? o.name : "w");
            o.url = base.url;
            o.zmq_ctx = base.zmq_ctx;
        }
        c->w[i] = ts_worker_spawn(&o, &err);
        TS_CHECK_MSG(c->w[i] != NULL, "%s", err.msg);
    }
    c->nw = n;
    ts_status s = ts_master_wait_workers(c->m, n, DEADLINE, &err);
    TS_CHECK_MSG(s == TS_OK, "%s", err.msg);
    uint32_t ids[16];
    int live = ts_master_workers(c->m, ids, 16);
    TS_CHECK(live == n);
    /* ids follow join order, which threads make random: map them back to
     * spawn order by name so that c->ids[i] is the id of c->w[i] */
    for (int i = 0; i < live && i < 16; i++)
        c->ids[i] = ids[i];
    for (int i = 0; i < live && i < 16; i++) {
        ts_worker_info info;
        if (opts || ts_master_worker_info(c->m, ids[i], &info, &err) != TS_OK) continue;
        int k = atoi(info.name + 1);
        if (k >= 0 && k < n) c->ids[k] = ids[i];
    }
    return s == TS_OK && live == n;
}

static void cluster_stop(cluster *c) {
    for (int i = 0; i < c->nw; i++)
        ts_worker_stop(c->w[i], 1);
    ts_master_free(c->m);
}

static ts_tensor *random_tensor(const ts_shape *s, ts_rng *rng) {
    ts_tensor *t = ts_tensor_new(s, NULL);
    TS_ASSERT(t);
    ts_rng_fill_uniform(rng, t->data, t->size, -1.0f, 1.0f);
    return t;
}

/* ---- protocol unit tests ---------------------------------------------------- */

/* Builds a ts_proto_in from raw byte frames. */
static void make_in(ts_proto_in *in, const void *const *frames, const size_t *lens, int n) {
    memset(in, 0, sizeof *in);
    for (int i = 0; i < n; i++) {
        zmq_msg_init_size(&in->part[i], lens[i]);
        if (lens[i]) memcpy(zmq_msg_data(&in->part[i]), frames[i], lens[i]);
        in->total_bytes += lens[i];
    }
    in->n = n;
}

static ts_status decode_raw(const ts_proto_frame0 *f, const void *const *data, const size_t *dlens,
                            int nd, ts_proto_msg *msg, ts_err *err) {
    const void *frames[TS_PROTO_MAX_PARTS];
    size_t lens[TS_PROTO_MAX_PARTS];
    frames[0] = f->buf;
    lens[0] = f->len;
    for (int i = 0; i < nd; i++) {
        frames[1 + i] = data[i];
        lens[1 + i] = dlens[i];
    }
    ts_proto_in in;
    make_in(&in, frames, lens, 1 + nd);
    ts_status s = ts_proto_decode(&in, 0, 1 << 20, msg, err);
    /* views point into in: copy what the caller checks before closing */
    static float keep[64];
    if (s == TS_OK && msg->n_tensors > 0 && msg->tensors[0].size <= 64) {
        memcpy(keep, msg->tensors[0].data, ts_proto_tensor_bytes(&msg->tensors[0]));
        msg->tensors[0].data = keep;
    }
    ts_proto_in_close(&in);
    return s;
}

static void build_task_frame(ts_proto_frame0 *f, const ts_shape *s) {
    ts_msg_hdr h = {.type = TS_MSG_TASK, .job = 7, .layer = 3, .shard = 2, .seq = 99};
    ts_task_pair pairs[2] = {{0, {1, 2, 3}}, {0, {4, 5, 6}}};
    ts_task t = {.kind = TS_TASK_CONV2D, .pairs = pairs, .n_pairs = 2};
    t.conv = ts_conv2d_params_default();
    t.conv.pad_t = 1;
    ts_proto_begin(f, &h);
    ts_proto_put_task(f, &t);
    ts_proto_put_desc(f, s);
    TS_ASSERT(ts_proto_end(f, 1));
}

static void test_proto_roundtrip(void) {
    ts_shape s = ts_shape4(1, 2, 2, 2);
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const void *d[1] = {data};
    size_t dl[1] = {sizeof data};
    ts_proto_frame0 f;
    build_task_frame(&f, &s);
    ts_proto_msg msg;
    ts_err err = {0};
    TS_CHECK_OK(decode_raw(&f, d, dl, 1, &msg, &err), &err);
    TS_CHECK(msg.h.type == TS_MSG_TASK && msg.h.job == 7 && msg.h.layer == 3);
    TS_CHECK(msg.h.shard == 2 && msg.h.seq == 99);
    TS_CHECK(msg.u.task.kind == TS_TASK_CONV2D && msg.u.task.n_pairs == 2);
    TS_CHECK(msg.u.task.pairs[1].key.model == 4 && msg.u.task.pairs[1].key.index == 6);
    TS_CHECK(msg.u.task.conv.pad_t == 1 && msg.u.task.conv.stride_w == 1);
    TS_CHECK(msg.n_tensors == 1 && ts_shape_eq(&msg.tensors[0].s, &s));
    TS_CHECK(msg.tensors[0].data[7] == 8.0f);

    /* HELLO round trip keeps strings and doubles */
    ts_msg_hdr hh = {.type = TS_MSG_HELLO};
    ts_proto_hello hello = {.caps = 6, .gflops = 12.5, .latency_ms = 3};
    snprintf(hello.name, sizeof hello.name, "edge-7");
    snprintf(hello.straggler, sizeof hello.straggler, "pareto:2.5");
    ts_proto_begin(&f, &hh);
    ts_proto_put_hello(&f, &hello);
    TS_ASSERT(ts_proto_end(&f, 0));
    TS_CHECK_OK(decode_raw(&f, NULL, NULL, 0, &msg, &err), &err);
    TS_CHECK(msg.u.hello.caps == 6 && msg.u.hello.gflops == 12.5);
    TS_CHECK(!strcmp(msg.u.hello.name, "edge-7") && !strcmp(msg.u.hello.straggler, "pareto:2.5"));
}

/* Offset of the first tensor descriptor in build_task_frame's frame:
 * header 32 + fixed task body 60 + 2 pairs of 16. */
#define DESC_OFF (32 + 60 + 32)

/* Every corruption of a valid TASK is refused with TS_ERR_FORMAT. */
static void test_proto_rejects(void) {
    ts_shape s = ts_shape4(1, 2, 2, 2);
    float data[16] = {0}; /* room for the "longer than shape" frame */
    const void *d[2] = {data, data};
    size_t dl[2] = {8 * sizeof(float), 8 * sizeof(float)};
    ts_proto_frame0 good, f;
    build_task_frame(&good, &s);
    ts_proto_msg msg;
    ts_err err = {0};

    struct {
        const char *what;
        size_t off; /* byte to overwrite (SIZE_MAX: none) */
        uint8_t val;
        size_t len;      /* frame length to send (0: full) */
        int n_data;      /* data frames to attach */
        size_t data_len; /* length of the first data frame */
    } cases[] = {
        {"truncated header", SIZE_MAX, 0, 20, 1, 32},
        {"truncated body", SIZE_MAX, 0, 40, 1, 32},
        {"wrong magic", 0, 'X', 0, 1, 32},
        {"wrong version", 4, 2, 0, 1, 32},
        {"unknown type", 6, 77, 0, 1, 32},
        {"reserved byte set", 7, 1, 0, 1, 32},
        {"too many tensors claimed", 24, 65, 0, 1, 32},
        {"tensor count mismatch", SIZE_MAX, 0, 0, 2, 32},
        {"missing tensor frame", SIZE_MAX, 0, 0, 0, 32},
        {"frame shorter than shape", SIZE_MAX, 0, 0, 1, 28},
        {"frame longer than shape", SIZE_MAX, 0, 0, 1, 36},
        {"body length lies", 28, 200, 0, 1, 32},
        {"pairs beyond cap", 36, 200, 0, 1, 32},
        {"bad dtype", DESC_OFF + 4, 2, 0, 1, 32},
        {"ndim 0", DESC_OFF, 0, 0, 1, 32},
        {"ndim 7", DESC_OFF, 7, 0, 1, 32},
        {"huge dimension", DESC_OFF + 8 + 7, 0x7f, 0, 1, 32},
        {"negative dimension", DESC_OFF + 8 + 15, 0x80, 0, 1, 32},
        {"unused dimension set", DESC_OFF + 8 + 40, 1, 0, 1, 32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f = good;
        if (cases[i].off != SIZE_MAX) f.buf[cases[i].off] = cases[i].val;
        if (cases[i].len) f.len = cases[i].len;
        size_t lens[2] = {cases[i].data_len, dl[1]};
        (void)dl;
        err.msg[0] = '\0';
        ts_status st = decode_raw(&f, d, lens, cases[i].n_data, &msg, &err);
        TS_CHECK_MSG(st == TS_ERR_FORMAT, "%s: got %s", cases[i].what, ts_status_name(st));
        TS_CHECK_MSG(err.msg[0] != '\0', "%s: no message", cases[i].what);
    }
    /* a dimension product beyond the frame cap is refused without overflow */
    f = good;
    for (int dd = 0; dd < 4; dd++) {
        size_t off = DESC_OFF + 8 + 8 * (size_t)dd;
        memset(f.buf + off, 0, 8);
        f.buf[off + 3] = 0x40; /* 2^30 per dimension */
    }
    TS_CHECK(decode_raw(&f, d, dl, 1, &msg, &err) == TS_ERR_FORMAT);
}

/* ALIAS round trip; with a tensor frame or a short body it is refused. */
static void test_proto_alias(void) {
    ts_msg_hdr h = {.type = TS_MSG_ALIAS, .seq = 41};
    ts_proto_frame0 f;
    ts_proto_begin(&f, &h);
    ts_proto_put_key(&f, (ts_blob_key){2, 7, 5});
    ts_proto_put_key(&f, (ts_blob_key){1, 7, 5});
    TS_ASSERT(ts_proto_end(&f, 0));
    ts_proto_msg msg;
    ts_err err = {0};
    TS_CHECK_OK(decode_raw(&f, NULL, NULL, 0, &msg, &err), &err);
    TS_CHECK(msg.h.type == TS_MSG_ALIAS && msg.h.seq == 41 && msg.n_tensors == 0);
    TS_CHECK(msg.u.alias.dst.model == 2 && msg.u.alias.dst.layer == 7 &&
             msg.u.alias.dst.index == 5);
    TS_CHECK(msg.u.alias.src.model == 1 && msg.u.alias.src.layer == 7 &&
             msg.u.alias.src.index == 5);
    TS_CHECK(!strcmp(ts_msg_type_name(TS_MSG_ALIAS), "ALIAS"));

    ts_proto_frame0 bad;
    ts_proto_begin(&bad, &h); /* an ALIAS that carries a tensor */
    ts_proto_put_key(&bad, (ts_blob_key){2, 7, 5});
    ts_proto_put_key(&bad, (ts_blob_key){1, 7, 5});
    ts_shape s1 = ts_shape2(1, 2);
    ts_proto_put_desc(&bad, &s1);
    TS_ASSERT(ts_proto_end(&bad, 1));
    float two[2] = {1, 2};
    const void *d[1] = {two};
    size_t dl[1] = {sizeof two};
    err.msg[0] = '\0';
    TS_CHECK(decode_raw(&bad, d, dl, 1, &msg, &err) == TS_ERR_FORMAT && strstr(err.msg, "ALIAS"));
    ts_proto_begin(&bad, &h); /* one key only */
    ts_proto_put_key(&bad, (ts_blob_key){2, 7, 5});
    TS_ASSERT(ts_proto_end(&bad, 0));
    TS_CHECK(decode_raw(&bad, NULL, NULL, 0, &msg, &err) == TS_ERR_FORMAT);
}

/* Messages other than DEPLOY, TASK and RESULT may not carry tensor frames:
 * a HEARTBEAT (or DEPLOYED, DISCONNECT) with a well-formed descriptor and
 * frame is refused and names its type; without the tensor it decodes. */
static void test_proto_stray_tensors(void) {
    static const struct {
        ts_msg_type type;
        size_t fixed; /* zero bytes of fixed body that decode */
    } cases[] = {{TS_MSG_HEARTBEAT, 0}, {TS_MSG_DEPLOYED, 16}, {TS_MSG_DISCONNECT, 4}};
    float two[2] = {1, 2};
    const void *d[1] = {two};
    size_t dl[1] = {sizeof two};
    ts_shape s1 = ts_shape2(1, 2);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ts_msg_hdr h = {.type = cases[c].type, .seq = 3};
        ts_proto_msg msg;
        ts_err err = {0};
        for (int with = 0; with <= 1; with++) {
            ts_proto_frame0 f;
            ts_proto_begin(&f, &h);
            for (size_t b = 0; b < cases[c].fixed; b += 4)
                ts_proto_put_u32(&f, 0);
            if (with) ts_proto_put_desc(&f, &s1);
            TS_ASSERT(ts_proto_end(&f, (uint32_t)with));
            err.msg[0] = '\0';
            ts_status r = decode_raw(&f, with ? d : NULL, with ? dl : NULL, with, &msg, &err);
            if (with)
                TS_CHECK(r == TS_ERR_FORMAT && strstr(err.msg, ts_msg_type_name(cases[c].type)) &&
                         strstr(err.msg, "carries no tensors"));
            else
                TS_CHECK_OK(r, &err);
        }
    }
}

/* Stores a one-tensor blob of floats v[0..n) under key k, as a DEPLOY does. */
static ts_status store_floats(ts_blob_store *st, ts_blob_key k, const float *v, int n,
                              ts_err *err) {
    ts_msg_hdr h = {.type = TS_MSG_DEPLOY, .seq = 1};
    ts_proto_frame0 f;
    ts_shape s = ts_shape2(1, n);
    ts_proto_begin(&f, &h);
    ts_proto_put_key(&f, k);
    ts_proto_put_desc(&f, &s);
    TS_ASSERT(ts_proto_end(&f, 1));
    const void *frames[2] = {f.buf, v};
    size_t lens[2] = {f.len, (size_t)n * sizeof(float)};
    ts_proto_in in;
    make_in(&in, frames, lens, 2);
    ts_proto_msg msg;
    ts_status r = ts_proto_decode(&in, 0, 1 << 20, &msg, err);
    if (r == TS_OK) r = ts_store_put(st, &in, 0, &msg, err);
    ts_proto_in_close(&in);
    return r;
}

/* Blobs held under at least one key, each counted once. */
static int distinct_blobs(const ts_blob_store *st) {
    int n = 0;
    for (int i = 0; i < st->n; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= st->ent[j].blob == st->ent[i].blob;
        n += !seen;
    }
    return n;
}

/* The worker's store: an alias shares its source's bytes (counted once
 * against the cap), keeps the content it was given when the source key is
 * replaced, and the blob goes with its last key (ASan checks the frees). */
static void test_store_alias(void) {
    ts_blob_store st;
    ts_store_init(&st, 3 * 4 * sizeof(float)); /* room for three 4-float blobs */
    ts_err err = {0};
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    ts_blob_key k1 = {1, 0, 0}, k2 = {2, 0, 0}, k3 = {3, 0, 0};
    TS_CHECK(ts_store_alias(&st, k1, k2, &err) == TS_ERR_INVALID &&
             strstr(err.msg, "not deployed"));
    TS_CHECK_OK(store_floats(&st, k1, a, 4, &err), &err);
    TS_CHECK_OK(ts_store_alias(&st, k1, k2, &err), &err);
    TS_CHECK_OK(ts_store_alias(&st, k1, k3, &err), &err);
    TS_CHECK(st.n == 3 && distinct_blobs(&st) == 1 && st.bytes == sizeof a);
    TS_CHECK_OK(ts_store_alias(&st, k2, k2, &err), &err); /* onto itself: no change */
    TS_CHECK(st.n == 3 && distinct_blobs(&st) == 1 && st.ent[0].blob->refs == 3);
    TS_CHECK_OK(store_floats(&st, k1, b, 4, &err), &err); /* k1 moves on, k2 and k3 keep a */
    TS_CHECK(distinct_blobs(&st) == 2 && st.bytes == sizeof a + sizeof b);
    for (int i = 0; i < st.n; i++) {
        const float *v = st.ent[i].blob->t[0].data;
        int is_k1 = st.ent[i].key.model == 1;
        TS_CHECK_MSG(v[0] == (is_k1 ? 5.0f : 1.0f), "key %u holds %g", st.ent[i].key.model,
                     (double)v[0]);
    }
    TS_CHECK_OK(store_floats(&st, k2, b, 4, &err), &err); /* a still held by k3 */
    TS_CHECK(distinct_blobs(&st) == 3 && st.bytes == 3 * sizeof a);
    TS_CHECK_OK(store_floats(&st, k3, b, 4, &err), &err); /* a's last key: a is freed */
    TS_CHECK(distinct_blobs(&st) == 3 && st.bytes == 3 * sizeof a);
    float c[8] = {0};
    TS_CHECK(store_floats(&st, (ts_blob_key){4, 0, 0}, c, 8, &err) == TS_ERR_NOMEM);
    TS_CHECK(st.n == 3 && distinct_blobs(&st) == 3);
    ts_store_clear(&st);
    TS_CHECK(st.n == 0 && st.bytes == 0 && distinct_blobs(&st) == 0);
}

static void test_straggler_models(void) {
    ts_straggler s;
    ts_err err = {0};
    char buf[64];
    TS_CHECK_OK(ts_straggler_parse("pareto:2.5", &s, &err), &err);
    TS_CHECK(s.kind == TS_STRAGGLER_PARETO && s.a == 2.5);
    TS_CHECK(!strcmp(ts_straggler_str(&s, buf, sizeof buf), "pareto:2.5"));
    TS_CHECK_OK(ts_straggler_parse("none", &s, &err), &err);
    TS_CHECK(s.kind == TS_STRAGGLER_NONE);
    TS_CHECK_OK(ts_straggler_parse("crash:3", &s, &err), &err);
    TS_CHECK(s.kind == TS_STRAGGLER_CRASH && s.a == 3 && !s.link);
    /* "+link": the factor stretches the link too; round-trips */
    TS_CHECK_OK(ts_straggler_parse("fixed:5+link", &s, &err), &err);
    TS_CHECK(s.kind == TS_STRAGGLER_FIXED && s.a == 5 && s.link);
    TS_CHECK(!strcmp(ts_straggler_str(&s, buf, sizeof buf), "fixed:5+link"));
    TS_CHECK_OK(ts_straggler_parse("pareto:1.5+link", &s, &err), &err);
    TS_CHECK(s.kind == TS_STRAGGLER_PARETO && s.link);
    TS_CHECK_OK(ts_straggler_parse("fixed:5", &s, &err), &err);
    TS_CHECK(!s.link && !strcmp(ts_straggler_str(&s, buf, sizeof buf), "fixed:5"));
    const char *bad[] = {
        "fixed",           "fixed:",      "fixed:0.5",   "fixed:x",           "pareto:0",
        "slow:2",          "shiftexp:-1", "fixed:2x",    "crash:nan",         "crash:3+link",
        "failstop:1+link", "fixed:+link", "fixed:2+lnk", "fixed:2+link+link", "fixed:0.5+link"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        TS_CHECK_MSG(ts_straggler_parse(bad[i], &s, &err) == TS_ERR_INVALID, "%s", bad[i]);

    /* seeded draws reproduce, and the timing models never speed a task up */
    const char *models[] = {"fixed:5", "shiftexp:0.5", "pareto:2"};
    for (int m = 0; m < 3; m++) {
        TS_CHECK_OK(ts_straggler_parse(models[m], &s, &err), &err);
        ts_rng a, b;
        ts_rng_seed(&a, 42);
        ts_rng_seed(&b, 42);
        double sum = 0;
        int same = 1, ge1 = 1;
        for (int i = 0; i < 20000; i++) {
            double x = ts_emul_slowdown(&s, &a), y = ts_emul_slowdown(&s, &b);
            same &= x == y;
            ge1 &= x >= 1.0;
            sum += x;
        }
        TS_CHECK_MSG(same && ge1, "%s", models[m]);
        /* means: fixed 5, shiftexp 1 + 0.5, pareto a/(a-1) = 2 */
        double want[] = {5.0, 1.5, 2.0};
        TS_CHECK_MSG(fabs(sum / 20000 - want[m]) < 0.1 * want[m], "%s mean %g", models[m],
                     sum / 20000);
    }
    /* link model: serial pipe plus latency */
    ts_link l = {.mbps = 8, .latency_s = 0.01};
    TS_CHECK_NEAR(ts_emul_inbound(&l, 100.0, 1000000, 1.0), 101.01, 1e-9);
    TS_CHECK_NEAR(ts_emul_inbound(&l, 100.5, 1000000, 1.0), 102.01, 1e-9); /* queued behind */
    TS_CHECK_NEAR(ts_emul_outbound(&l, 200.0, 500000, 1.0), 200.51, 1e-9);
    /* a link straggler stretches the transfer, not the latency */
    TS_CHECK_NEAR(ts_emul_outbound(&l, 300.0, 500000, 5.0), 302.51, 1e-9);
    TS_CHECK_NEAR(ts_emul_inbound(&l, 300.0, 1000000, 3.0), 303.01, 1e-9);
}

/* ---- echo / collect ---------------------------------------------------------- */

typedef struct {
    int calls;
    int bad;
    uint32_t shards[64];
    uint32_t workers[64];
    const ts_tensor *expect[64]; /* by shard */
    int reject_shard;            /* -1: accept all */
} collect_log;

static int echo_cb(void *user, const ts_result *r) {
    collect_log *l = user;
    if (l->calls < 64) {
        l->shards[l->calls] = r->shard;
        l->workers[l->calls] = r->worker;
    }
    l->calls++;
    const ts_tensor *e = r->shard < 64 ? l->expect[r->shard] : NULL;
    if (!e || r->n_outputs != 1 || !ts_shape_eq(&r->outputs[0].s, &e->s) ||
        memcmp(r->outputs[0].data, e->data, ts_proto_tensor_bytes(e)))
        l->bad++;
    return (int)r->shard != l->reject_shard;
}

static void test_echo_transports(void) {
    const char *transports[] = {"inproc", "ipc", "tcp"};
    ts_rng rng;
    ts_rng_seed(&rng, 5);
    for (int t = 0; t < 3; t++) {
        cluster c;
        if (!cluster_start(&c, transports[t], 3, NULL)) {
            cluster_stop(&c);
            continue;
        }
        ts_shape s = ts_shape2(3, 5);
        ts_tensor *in[3];
        ts_task tasks[3];
        collect_log log = {.reject_shard = -1};
        for (int i = 0; i < 3; i++) {
            in[i] = random_tensor(&s, &rng);
            log.expect[i] = in[i];
            tasks[i] = (ts_task){.kind = TS_TASK_ECHO,
                                 .worker = c.ids[i],
                                 .shard = (uint32_t)i,
                                 .inputs = (const ts_tensor *const *)&in[i],
                                 .n_inputs = 1};
        }
        ts_err err = {0};
        ts_job *job = ts_master_submit(c.m, 1, tasks, 3, &err);
        TS_CHECK_MSG(job != NULL, "%s", err.msg);
        if (job) {
            TS_CHECK_OK(ts_master_collect(c.m, job, 3, DEADLINE, echo_cb, &log, &err), &err);
            TS_CHECK_MSG(log.calls == 3 && log.bad == 0, "%s: %d calls, %d bad", transports[t],
                         log.calls, log.bad);
            ts_master_job_free(c.m, job);
        }
        for (int i = 0; i < 3; i++)
            ts_tensor_free(in[i]);
        cluster_stop(&c);
    }
}

/* ---- gemm and conv against the local kernels ------------------------------- */

typedef struct {
    int calls, bad;
    const ts_tensor *expect[64][4]; /* [shard][output] */
    double worst;
    double emulated_s; /* of the last result */
} compute_log;

static int compute_cb(void *user, const ts_result *r) {
    compute_log *l = user;
    l->calls++;
    l->emulated_s = r->emulated_s;
    for (int o = 0; o < r->n_outputs && o < 4; o++) {
        const ts_tensor *e = l->expect[r->shard][o];
        if (!e || !ts_shape_eq(&e->s, &r->outputs[o].s)) {
            l->bad++;
            continue;
        }
        double rel = ts_tensor_rel_err(&r->outputs[o], e);
        if (rel > l->worst) l->worst = rel;
    }
    return 1;
}

static void run_gemm(const char *transport) {
    cluster c;
    if (!cluster_start(&c, transport, 2, NULL)) {
        cluster_stop(&c);
        return;
    }
    ts_rng rng;
    ts_rng_seed(&rng, 11);
    ts_shape as = ts_shape2(6, 8), xs = ts_shape2(8, 3);
    ts_tensor *a[2], *x = random_tensor(&xs, &rng), *y[2];
    ts_err err = {0};
    compute_log log = {0};
    ts_task tasks[2];
    ts_task_pair pairs[2];
    for (int i = 0; i < 2; i++) {
        a[i] = random_tensor(&as, &rng);
        ts_blob_key key = {9, 1, (uint32_t)i};
        TS_CHECK_OK(ts_master_deploy(c.m, c.ids[i], key, (const ts_tensor *const *)&a[i], 1, &err),
                    &err);
        y[i] = ts_tensor_new(&(ts_shape){2, {6, 3}}, NULL);
        TS_CHECK_OK(ts_gemm_forward(0, 0, 1.0f, 0.0f, a[i], x, NULL, y[i], &err), &err);
        log.expect[i][0] = y[i];
        pairs[i] = (ts_task_pair){0, key};
        tasks[i] = (ts_task){.kind = TS_TASK_GEMM,
                             .worker = c.ids[i],
                             .shard = (uint32_t)i,
                             .inputs = (const ts_tensor *const *)&x,
                             .n_inputs = 1,
                             .pairs = &pairs[i],
                             .n_pairs = 1};
    }
    TS_CHECK_OK(ts_master_deploy_wait(c.m, DEADLINE, &err), &err);
    ts_job *job = ts_master_submit(c.m, 2, tasks, 2, &err);
    TS_CHECK(job != NULL);
    if (job) {
        TS_CHECK_OK(ts_master_collect(c.m, job, 2, DEADLINE, compute_cb, &log, &err), &err);
        TS_CHECK_MSG(log.calls == 2 && log.bad == 0 && log.worst < 1e-6,
                     "%s: %d calls %d bad worst %g", transport, log.calls, log.bad, log.worst);
        ts_master_job_free(c.m, job);
    }
    /* a task naming a blob the worker does not hold fails that shard only */
    ts_task_pair missing = {0, {9, 1, 77}};
    tasks[0].pairs = &missing;
    job = ts_master_submit(c.m, 3, tasks, 1, &err);
    TS_CHECK(job != NULL);
    if (job) {
        ts_status s = ts_master_collect(c.m, job, 1, DEADLINE, compute_cb, &log, &err);
        TS_CHECK_MSG(s == TS_ERR_UNAVAILABLE, "missing blob: %s", ts_status_name(s));
        ts_master_job_free(c.m, job);
    }
    for (int i = 0; i < 2; i++) {
        ts_tensor_free(a[i]);
        ts_tensor_free(y[i]);
    }
    ts_tensor_free(x);
    cluster_stop(&c);
}

static void test_gemm_transports(void) {
    run_gemm("inproc");
    run_gemm("ipc");
    run_gemm("tcp");
}

/* FCDCC shape: each worker holds 2 filter shares and gets 2 input slabs per
 * task, computing the 4 (input, filter) convolutions. */
static void run_conv(const char *transport) {
    enum { NW = 3 };
    cluster c;
    if (!cluster_start(&c, transport, NW, NULL)) {
        cluster_stop(&c);
        return;
    }
    ts_rng rng;
    ts_rng_seed(&rng, 21);
    ts_conv2d_params p = ts_conv2d_params_default();
    p.pad_t = p.pad_l = p.pad_b = p.pad_r = 1;
    p.stride_h = 2;
    ts_shape xs = ts_shape4(1, 3, 9, 7), ws = ts_shape4(4, 3, 3, 3);
    ts_tensor *x[NW][2], *w[NW][2], *y[NW][4];
    ts_task tasks[NW];
    ts_task_pair pairs[NW][4];
    compute_log log = {0};
    ts_err err = {0};
    for (int i = 0; i < NW; i++) {
        for (int f = 0; f < 2; f++) {
            w[i][f] = random_tensor(&ws, &rng);
            x[i][f] = random_tensor(&xs, &rng);
            ts_blob_key key = {1, 5, (uint32_t)(2 * i + f)};
            TS_CHECK_OK(
                ts_master_deploy(c.m, c.ids[i], key, (const ts_tensor *const *)&w[i][f], 1, &err),
                &err);
        }
        for (int q = 0; q < 4; q++) {
            int xi = q / 2, fi = q % 2;
            pairs[i][q] = (ts_task_pair){(uint32_t)xi, {1, 5, (uint32_t)(2 * i + fi)}};
            ts_shape ys;
            TS_CHECK_OK(ts_conv2d_out_shape(&p, &xs, &ws, &ys, &err), &err);
            y[i][q] = ts_tensor_new(&ys, NULL);
            size_t nws = ts_conv2d_workspace_floats(&p, &xs, &ws);
            float *scratch = nws ? malloc(nws * sizeof(float)) : NULL;
            TS_CHECK_OK(ts_conv2d_forward(&p, x[i][xi], w[i][fi], NULL, y[i][q], scratch, &err),
                        &err);
            free(scratch);
            log.expect[i][q] = y[i][q];
        }
        tasks[i] = (ts_task){.kind = TS_TASK_CONV2D,
                             .worker = c.ids[i],
                             .shard = (uint32_t)i,
                             .inputs = (const ts_tensor *const *)x[i],
                             .n_inputs = 2,
                             .pairs = pairs[i],
                             .n_pairs = 4,
                             .conv = p};
    }
    TS_CHECK_OK(ts_master_deploy_wait(c.m, DEADLINE, &err), &err);
    ts_job *job = ts_master_submit(c.m, 5, tasks, NW, &err);
    TS_CHECK_MSG(job != NULL, "%s", err.msg);
    if (job) {
        TS_CHECK_OK(ts_master_collect(c.m, job, NW, DEADLINE, compute_cb, &log, &err), &err);
        TS_CHECK_MSG(log.calls == NW && log.bad == 0 && log.worst == 0.0,
                     "%s: %d calls %d bad worst %g", transport, log.calls, log.bad, log.worst);
        ts_master_job_free(c.m, job);
    }
    for (int i = 0; i < NW; i++)
        for (int q = 0; q < 4; q++) {
            ts_tensor_free(y[i][q]);
            if (q < 2) {
                ts_tensor_free(x[i][q]);
                ts_tensor_free(w[i][q]);
            }
        }
    cluster_stop(&c);
}

static void test_conv_transports(void) {
    run_conv("inproc");
    run_conv("ipc");
    run_conv("tcp");
}

/* ---- k of n, stragglers, late and pipelined jobs ----------------------------- */

static ts_job *submit_echo(cluster *c, uint32_t layer, ts_tensor **in, const uint32_t *workers,
                           const uint32_t *sleep_ms, int n) {
    ts_task tasks[16];
    for (int i = 0; i < n; i++)
        tasks[i] = (ts_task){.kind = TS_TASK_ECHO,
                             .worker = workers[i],
                             .shard = (uint32_t)i,
                             .inputs = (const ts_tensor *const *)&in[i],
                             .n_inputs = 1,
                             .echo_sleep_ms = sleep_ms ? sleep_ms[i] : 0};
    ts_err err = {0};
    ts_job *job = ts_master_submit(c->m, layer, tasks, n, &err);
    TS_CHECK_MSG(job != NULL, "%s", err.msg);
    return job;
}

/* Polls the master until pred holds or the deadline passes. */
static int poll_until(ts_master *m, int (*pred)(ts_master *, void *), void *arg) {
    double end = ts_now() + DEADLINE;
    ts_err err;
    while (!pred(m, arg) && ts_now() < end)
        ts_master_poll(m, 0.05, &err);
    return pred(m, arg);
}

static int stale_above(ts_master *m, void *arg) {
    ts_master_stats st;
    ts_master_get_stats(m, &st);
    return st.dropped_stale > *(uint64_t *)arg;
}

static int workers_equal(ts_master *m, void *arg) {
    return ts_master_workers(m, NULL, 0) == *(int *)arg;
}

/* Default options for n workers named w0, w1, ... with the tests' heartbeat,
 * for cluster_start (which fills in the master's URL). */
static void named_opts(ts_worker_opts *opts, char (*names)[16], int n) {
    for (int i = 0; i < n; i++) {
        opts[i] = ts_worker_opts_default();
        snprintf(names[i], sizeof names[i], "w%d", i);
        opts[i].name = names[i];
        opts[i].heartbeat_ms = HB_MS;
        opts[i].liveness = LIVENESS;
    }
}

static void test_k_of_n_straggler(void) {
    cluster c;
    /* workers that do not take CANCEL, so that a freed job's late result
     * still reaches the master (test_cancel has the ones that do) */
    ts_worker_opts opts[4];
    char names[4][16];
    named_opts(opts, names, 4);
    for (int i = 0; i < 4; i++)
        opts[i].no_cancel = 1;
    if (!cluster_start(&c, "inproc", 4, opts)) {
        cluster_stop(&c);
        return;
    }
    ts_rng rng;
    ts_rng_seed(&rng, 3);
    ts_shape s = ts_shape2(2, 4);
    ts_tensor *in[4];
    collect_log log = {.reject_shard = -1};
    for (int i = 0; i < 4; i++) {
        in[i] = random_tensor(&s, &rng);
        log.expect[i] = in[i];
    }
    /* the callback may reject a result (say, detected as corrupt): it does
     * not count, so asking for all 4 fails as soon as shard 1 is rejected;
     * the same job then still completes k = 3 from the others (plain k = 3
     * would race: shard 1 may come last and never be looked at) */
    collect_log log2 = {.reject_shard = 1};
    for (int i = 0; i < 4; i++)
        log2.expect[i] = in[i];
    ts_err err = {0};
    ts_job *job = submit_echo(&c, 2, in, c.ids, NULL, 4);
    ts_status st4 = ts_master_collect(c.m, job, 4, DEADLINE, echo_cb, &log2, &err);
    TS_CHECK_MSG(st4 == TS_ERR_UNAVAILABLE, "%s: %s", ts_status_name(st4), err.msg);
    TS_CHECK(ts_job_accepted(job) == log2.calls - 1);
    TS_CHECK_OK(ts_master_collect(c.m, job, 3, DEADLINE, echo_cb, &log2, &err), &err);
    TS_CHECK(ts_job_accepted(job) == 3 && log2.calls == 4 && log2.bad == 0);
    ts_master_job_free(c.m, job);

    /* a late result of a freed job is dropped by id */
    ts_master_stats st;
    ts_master_get_stats(c.m, &st);
    uint64_t stale0 = st.dropped_stale;
    uint32_t late_ms[4] = {0, 0, 0, 200};
    collect_log log3 = {.reject_shard = -1};
    for (int i = 0; i < 4; i++)
        log3.expect[i] = in[i];
    job = submit_echo(&c, 3, in, c.ids, late_ms, 4);
    TS_CHECK_OK(ts_master_collect(c.m, job, 3, DEADLINE, echo_cb, &log3, &err), &err);
    ts_master_job_free(c.m, job);
    TS_CHECK(poll_until(c.m, stale_above, &stale0));
    TS_CHECK(log3.calls == 3);

    /* two jobs in flight, collected in the opposite order */
    collect_log la = {.reject_shard = -1}, lb = {.reject_shard = -1};
    for (int i = 0; i < 4; i++)
        la.expect[i] = lb.expect[i] = in[i];
    ts_job *ja = submit_echo(&c, 4, in, c.ids, NULL, 4);
    ts_job *jb = submit_echo(&c, 5, in, c.ids, NULL, 4);
    TS_CHECK_OK(ts_master_collect(c.m, jb, 4, DEADLINE, echo_cb, &lb, &err), &err);
    TS_CHECK_OK(ts_master_collect(c.m, ja, 4, DEADLINE, echo_cb, &la, &err), &err);
    TS_CHECK(la.calls == 4 && lb.calls == 4 && la.bad == 0 && lb.bad == 0);
    ts_master_job_free(c.m, ja);
    ts_master_job_free(c.m, jb);
    /* shard 3's device takes a minute: k = 3 must finish without it */
    uint32_t sleep_ms[4] = {0, 0, 0, 60000};
    job = submit_echo(&c, 1, in, c.ids, sleep_ms, 4);
    TS_CHECK_OK(ts_master_collect(c.m, job, 3, DEADLINE, echo_cb, &log, &err), &err);
    TS_CHECK(log.calls == 3 && log.bad == 0 && ts_job_accepted(job) == 3);
    for (int i = 0; i < log.calls && i < 3; i++)
        TS_CHECK(log.shards[i] != 3);
    TS_CHECK(ts_job_in_flight(job) == 1);
    ts_master_job_free(c.m, job);

    for (int i = 0; i < 4; i++)
        ts_tensor_free(in[i]);
    cluster_stop(&c);
}

static int cancels_at_least(ts_master *m, void *arg) {
    ts_master_stats st;
    ts_master_get_stats(m, &st);
    return st.cancels_sent >= *(uint64_t *)arg;
}

/* CANCEL: freeing a job whose straggler has not answered tells that worker
 * to drop it, which frees its emulated device at once. Worker 3's task
 * would hold its device for two minutes, longer than DEADLINE: without the
 * cancel, the job queued behind it on the same worker, and the next job on
 * all four, could not finish in time. */
static void test_cancel(void) {
    cluster c;
    ts_worker_opts opts[4];
    ts_worker_stats wst[4];
    char names[4][16];
    memset(wst, 0, sizeof wst);
    named_opts(opts, names, 4);
    for (int i = 0; i < 4; i++)
        opts[i].stats = &wst[i];
    if (!cluster_start(&c, "inproc", 4, opts)) {
        cluster_stop(&c);
        return;
    }
    ts_rng rng;
    ts_rng_seed(&rng, 5);
    ts_shape s = ts_shape2(2, 3);
    ts_tensor *in[4];
    collect_log la = {.reject_shard = -1}, lq = {.reject_shard = -1}, lb = {.reject_shard = -1};
    for (int i = 0; i < 4; i++) {
        in[i] = random_tensor(&s, &rng);
        la.expect[i] = lq.expect[i] = lb.expect[i] = in[i];
    }
    ts_err err = {0};
    uint32_t slow_ms[4] = {0, 0, 0, 120000};
    ts_job *ja = submit_echo(&c, 1, in, c.ids, slow_ms, 4);
    TS_CHECK_OK(ts_master_collect(c.m, ja, 3, DEADLINE, echo_cb, &la, &err), &err);
    /* a job for the slow worker alone, queued behind its two-minute task */
    ts_job *jq = submit_echo(&c, 2, &in[3], &c.ids[3], NULL, 1);
    lq.expect[0] = in[3];
    ts_master_stats st;
    ts_master_get_stats(c.m, &st);
    uint64_t want = st.cancels_sent + 1;
    ts_master_job_free(c.m, ja);
    TS_CHECK(poll_until(c.m, cancels_at_least, &want));
    TS_CHECK_OK(ts_master_collect(c.m, jq, 1, DEADLINE, echo_cb, &lq, &err), &err);
    TS_CHECK(lq.calls == 1 && lq.bad == 0);
    ts_master_job_free(c.m, jq);
    ts_job *jb = submit_echo(&c, 3, in, c.ids, NULL, 4);
    TS_CHECK_OK(ts_master_collect(c.m, jb, 4, DEADLINE, echo_cb, &lb, &err), &err);
    TS_CHECK(lb.calls == 4 && lb.bad == 0 && la.bad == 0);
    ts_master_job_free(c.m, jb);
    ts_master_get_stats(c.m, &st);
    TS_CHECK(st.cancels_sent == want); /* finished jobs: nothing to cancel */
    for (int i = 0; i < 4; i++)
        ts_tensor_free(in[i]);
    cluster_stop(&c);
    uint64_t cancelled = 0, tasks = 0;
    for (int i = 0; i < 4; i++)
        cancelled += wst[i].cancelled, tasks += wst[i].tasks;
    TS_CHECK_MSG(cancelled == 1, "%llu replies cancelled", (unsigned long long)cancelled);
    TS_CHECK(tasks == 9); /* computed: 4 + 1 + 4, one of them never sent */
}

/* Workers that vanish mid-job: collection completes from the others, or says
 * clearly that it cannot; a new worker joins and is used. */
static void test_worker_loss(const char *transport) {
    cluster c;
    if (!cluster_start(&c, transport, 3, NULL)) {
        cluster_stop(&c);
        return;
    }
    ts_rng rng;
    ts_rng_seed(&rng, 8);
    ts_shape s = ts_shape2(2, 2);
    ts_tensor *in[3];
    collect_log log = {.reject_shard = -1};
    for (int i = 0; i < 3; i++) {
        in[i] = random_tensor(&s, &rng);
        log.expect[i] = in[i];
    }
    uint64_t epoch0 = ts_master_epoch(c.m);
    uint32_t sleep_ms[3] = {100, 100, 100};
    ts_job *job = submit_echo(&c, 1, in, c.ids, sleep_ms, 3);
    ts_worker_stop(c.w[2], 0); /* vanishes without a word, its task in flight */
    c.w[2] = NULL;
    ts_err err = {0};
    TS_CHECK_OK(ts_master_collect(c.m, job, 2, DEADLINE, echo_cb, &log, &err), &err);
    TS_CHECK(log.bad == 0);
    /* k = 3 is now impossible: a clear UNAVAILABLE once the silence is noticed */
    ts_status st = ts_master_collect(c.m, job, 3, DEADLINE, echo_cb, &log, &err);
    TS_CHECK_MSG(st == TS_ERR_UNAVAILABLE, "got %s: %s", ts_status_name(st), err.msg);
    TS_CHECK(strstr(err.msg, "cannot reach 3") != NULL);
    TS_CHECK(ts_master_workers(c.m, NULL, 0) == 2 && !ts_master_worker_alive(c.m, c.ids[2]));
    TS_CHECK(ts_master_epoch(c.m) != epoch0);
    ts_master_job_free(c.m, job);

    /* a task aimed at the dead worker is lost at once */
    job = submit_echo(&c, 2, in, c.ids, NULL, 3);
    st = ts_master_collect(c.m, job, 3, DEADLINE, echo_cb, &log, &err);
    TS_CHECK(st == TS_ERR_UNAVAILABLE);
    ts_master_job_free(c.m, job);

    /* graceful leave is noticed at once (DISCONNECT) */
    ts_worker_stop(c.w[1], 1);
    c.w[1] = NULL;
    int one = 1;
    TS_CHECK(poll_until(c.m, workers_equal, &one));

    /* a replacement joins with a new id and gets work */
    ts_worker_opts o = worker_opts(&c, "replacement");
    c.w[1] = ts_worker_spawn(&o, &err);
    TS_CHECK_OK(ts_master_wait_workers(c.m, 2, DEADLINE, &err), &err);
    uint32_t ids[4];
    TS_CHECK(ts_master_workers(c.m, ids, 4) == 2);
    TS_CHECK(ids[1] > c.ids[2]);
    ts_worker_info info;
    TS_CHECK_OK(ts_master_worker_info(c.m, ids[1], &info, &err), &err);
    TS_CHECK(!strcmp(info.name, "replacement"));
    collect_log log2 = {.reject_shard = -1};
    for (int i = 0; i < 2; i++)
        log2.expect[i] = in[i];
    job = submit_echo(&c, 3, in, ids, NULL, 2);
    TS_CHECK_OK(ts_master_collect(c.m, job, 2, DEADLINE, echo_cb, &log2, &err), &err);
    TS_CHECK(log2.calls == 2 && log2.bad == 0);
    ts_master_job_free(c.m, job);
    for (int i = 0; i < 3; i++)
        ts_tensor_free(in[i]);
    cluster_stop(&c);
}

static void test_worker_loss_inproc(void) {
    test_worker_loss("inproc");
}

static void test_worker_loss_tcp(void) {
    test_worker_loss("tcp");
}

/* Emulated crash and fail-stop: both end up removed by missed heartbeats. */
static int only_survivor_left(ts_master *m, void *arg) {
    (void)arg;
    uint32_t id;
    ts_worker_info info;
    ts_err err;
    ts_master_stats st;
    ts_master_get_stats(m, &st);
    return ts_master_workers(m, &id, 1) == 1 &&
           ts_master_worker_info(m, id, &info, &err) == TS_OK && !strcmp(info.name, "none") &&
           st.workers_joined >= 2 && st.workers_joined - st.workers_lost == 1;
}

static void test_emulated_failures(void) {
    cluster c;
    memset(&c, 0, sizeof c);
    c.m = master_on("inproc", 0);
    if (!c.m) return;
    ts_err err = {0};
    const char *models[] = {"none", "crash:0.2", "failstop:0.2"};
    for (int i = 0; i < 3; i++) {
        ts_worker_opts o = worker_opts(&c, models[i]);
        TS_CHECK_OK(ts_straggler_parse(models[i], &o.straggler, &err), &err);
        c.w[i] = ts_worker_spawn(&o, &err);
    }
    c.nw = 3;
    /* Wait for a settled state, not a count: the survivor is the one live
     * worker AND the fail-stopped worker has joined (its HELLO leaves before
     * it goes mute and its socket stays open, so it always registers) and
     * been removed. The crashing worker may die before or after joining;
     * either way it must not be live. A count alone raced: a failing worker
     * could be the first and only one live for a moment. */
    TS_CHECK(poll_until(c.m, only_survivor_left, NULL));
    uint32_t id;
    TS_CHECK(ts_master_workers(c.m, &id, 1) == 1);
    ts_worker_info info;
    TS_CHECK_OK(ts_master_worker_info(c.m, id, &info, &err), &err);
    ts_master_stats st;
    ts_master_get_stats(c.m, &st);
    TS_CHECK(st.workers_joined >= 2 && st.workers_lost >= 1);
    TS_CHECK(st.workers_joined - st.workers_lost == 1);
    TS_CHECK(!strcmp(info.name, "none"));
    cluster_stop(&c);
}

/* Device emulation reports exactly the time it emulated. */
static void test_emulation_accounting(void) {
    cluster c;
    memset(&c, 0, sizeof c);
    c.m = master_on("inproc", 0);
    if (!c.m) return;
    ts_err err = {0};
    ts_worker_opts o = worker_opts(&c, "slow");
    o.gflops = 2.0;
    o.latency_ms = 40;
    o.mbps = 1000;
    TS_CHECK_OK(ts_straggler_parse("fixed:3", &o.straggler, &err), &err);
    c.w[0] = ts_worker_spawn(&o, &err);
    c.nw = 1;
    TS_CHECK_OK(ts_master_wait_workers(c.m, 1, DEADLINE, &err), &err);
    uint32_t id;
    ts_master_workers(c.m, &id, 1);
    ts_worker_info info;
    TS_CHECK_OK(ts_master_worker_info(c.m, id, &info, &err), &err);
    TS_CHECK(info.gflops == 2.0 && info.latency_ms == 40 && !strcmp(info.straggler, "fixed:3"));

    ts_rng rng;
    ts_rng_seed(&rng, 4);
    ts_shape as = ts_shape2(16, 32), xs = ts_shape2(32, 8);
    ts_tensor *a = random_tensor(&as, &rng), *x = random_tensor(&xs, &rng);
    ts_blob_key key = {1, 1, 1};
    TS_CHECK_OK(ts_master_deploy(c.m, id, key, (const ts_tensor *const *)&a, 1, &err), &err);
    TS_CHECK_OK(ts_master_deploy_wait(c.m, DEADLINE, &err), &err);
    ts_task_pair pair = {0, key};
    ts_task t = {.kind = TS_TASK_GEMM,
                 .worker = id,
                 .inputs = (const ts_tensor *const *)&x,
                 .n_inputs = 1,
                 .pairs = &pair,
                 .n_pairs = 1};
    double t0 = ts_now();
    ts_job *job = ts_master_submit(c.m, 1, &t, 1, &err);
    compute_log log = {0};
    ts_tensor *y = ts_tensor_new(&(ts_shape){2, {16, 8}}, NULL);
    TS_CHECK_OK(ts_gemm_forward(0, 0, 1, 0, a, x, NULL, y, &err), &err);
    log.expect[0][0] = y;
    TS_CHECK_OK(ts_master_collect(c.m, job, 1, DEADLINE, compute_cb, &log, &err), &err);
    double elapsed = ts_now() - t0;
    /* 2*M*N*K flops at 2 GFLOP/s, slowed down 3 times */
    TS_CHECK_NEAR(log.emulated_s, 3.0 * 2 * 16 * 8 * 32 / 2e9, 1e-15);
    TS_CHECK(log.calls == 1 && log.bad == 0 && log.worst < 1e-6);
    /* latency each way is a floor the link model must respect */
    TS_CHECK_MSG(elapsed >= 0.08, "result came back after %.3f s, before two 40 ms latencies",
                 elapsed);
    ts_master_job_free(c.m, job);
    ts_tensor_free(a);
    ts_tensor_free(x);
    ts_tensor_free(y);
    cluster_stop(&c);
}

/* ---- rogue peers and a lying worker ---------------------------------------- */

static void *raw_dealer(ts_master *m) {
    const char *url = ts_master_endpoint(m);
    int inproc = !strncmp(url, "inproc://", 9);
    void *ctx = inproc ? ts_master_zmq_ctx(m) : zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    TS_CHECK(zmq_connect(s, url) == 0);
    return s;
}

static void raw_close(ts_master *m, void *s) {
    int inproc = !strncmp(ts_master_endpoint(m), "inproc://", 9);
    zmq_close(s);
    (void)inproc; /* a private context of a tcp rogue is left to process exit */
}

static void raw_send(void *s, const void *const *frames, const size_t *lens, int n) {
    for (int i = 0; i < n; i++)
        zmq_send(s, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
}

static void send_f0(void *s, const ts_proto_frame0 *f, const ts_proto_data *d, int n) {
    ts_err e;
    TS_CHECK_OK(ts_proto_send(s, NULL, 0, f, d, n, &e), &e);
}

/* Receives the next message of a type on a raw socket, skipping others,
 * while the master's loop keeps turning. */
static int raw_expect(ts_master *m, void *s, uint32_t type, ts_proto_in *in, ts_proto_msg *msg) {
    double end = ts_now() + DEADLINE;
    ts_err err;
    while (ts_now() < end) {
        ts_master_poll(m, 0.01, &err);
        while (ts_proto_recv(s, in, ZMQ_DONTWAIT) == 0) {
            if (ts_proto_decode(in, 0, 1 << 20, msg, &err) == TS_OK && msg->h.type == type)
                return 1;
            ts_proto_in_close(in);
        }
    }
    return 0;
}

static void hello_frame(ts_proto_frame0 *f, const char *name) {
    ts_msg_hdr h = {.type = TS_MSG_HELLO};
    ts_proto_hello b = {.caps = TS_TASK_CAPS_ALL};
    snprintf(b.name, sizeof b.name, "%s", name);
    ts_proto_begin(f, &h);
    ts_proto_put_hello(f, &b);
    TS_ASSERT(ts_proto_end(f, 0));
}

static void result_frame(ts_proto_frame0 *f, const ts_msg_hdr *ids, const ts_shape *s, int n) {
    ts_msg_hdr h = *ids;
    h.type = TS_MSG_RESULT;
    ts_proto_result r = {0};
    ts_proto_begin(f, &h);
    ts_proto_put_result(f, &r);
    for (int i = 0; i < n; i++)
        ts_proto_put_desc(f, s);
    TS_ASSERT(ts_proto_end(f, (uint32_t)n));
}

typedef struct {
    uint64_t invalid, unknown, stale;
} stat_floor;

static int stats_reached(ts_master *m, void *arg) {
    stat_floor *f = arg;
    ts_master_stats st;
    ts_master_get_stats(m, &st);
    return st.dropped_invalid >= f->invalid && st.dropped_unknown >= f->unknown &&
           st.dropped_stale >= f->stale;
}

/* Two good workers compute a gemm job; returns 1 when both results are right. */
static int good_gemm_round(cluster *c, uint32_t layer, const ts_tensor *x, const ts_tensor *y0,
                           const ts_tensor *y1) {
    ts_task_pair pairs[2] = {{0, {9, 9, 0}}, {0, {9, 9, 1}}};
    ts_task t[2];
    for (int i = 0; i < 2; i++)
        t[i] = (ts_task){.kind = TS_TASK_GEMM,
                         .worker = c->ids[i],
                         .shard = (uint32_t)i,
                         .inputs = &x,
                         .n_inputs = 1,
                         .pairs = &pairs[i],
                         .n_pairs = 1};
    compute_log log = {0};
    log.expect[0][0] = y0;
    log.expect[1][0] = y1;
    ts_err err = {0};
    ts_job *job = ts_master_submit(c->m, layer, t, 2, &err);
    if (!job) return 0;
    ts_status s = ts_master_collect(c->m, job, 2, DEADLINE, compute_cb, &log, &err);
    TS_CHECK_MSG(s == TS_OK, "%s", err.msg);
    ts_master_job_free(c->m, job);
    return s == TS_OK && log.calls == 2 && log.bad == 0 && log.worst < 1e-6;
}

static void run_rogue(const char *transport) {
    cluster c;
    if (!cluster_start(&c, transport, 2, NULL)) {
        cluster_stop(&c);
        return;
    }
    ts_rng rng;
    ts_rng_seed(&rng, 13);
    ts_shape as = ts_shape2(5, 7), xs = ts_shape2(7, 2);
    ts_tensor *a[2], *y[2], *x = random_tensor(&xs, &rng);
    ts_err err = {0};
    for (int i = 0; i < 2; i++) {
        a[i] = random_tensor(&as, &rng);
        y[i] = ts_tensor_new(&(ts_shape){2, {5, 2}}, NULL);
        ts_gemm_forward(0, 0, 1, 0, a[i], x, NULL, y[i], &err);
        ts_blob_key key = {9, 9, (uint32_t)i};
        TS_CHECK_OK(ts_master_deploy(c.m, c.ids[i], key, (const ts_tensor *const *)&a[i], 1, &err),
                    &err);
    }
    TS_CHECK_OK(ts_master_deploy_wait(c.m, DEADLINE, &err), &err);
    TS_CHECK(good_gemm_round(&c, 1, x, y[0], y[1]));

    void *rogue = raw_dealer(c.m);
    ts_master_stats st0;
    ts_master_get_stats(c.m, &st0);

    /* as a stranger: truncated, wrong magic, wrong version, too many frames,
     * a lying tensor count, a result with made-up ids */
    ts_proto_frame0 f;
    hello_frame(&f, "rogue");
    const void *fr[1] = {"0123456789"};
    size_t ln[1] = {10};
    raw_send(rogue, fr, ln, 1);
    ts_proto_frame0 bad = f;
    bad.buf[0] = 'X';
    send_f0(rogue, &bad, NULL, 0);
    bad = f;
    bad.buf[4] = 9;
    send_f0(rogue, &bad, NULL, 0);
    const void *many[80];
    size_t many_len[80];
    many[0] = f.buf;
    many_len[0] = f.len;
    for (int i = 1; i < 80; i++) {
        many[i] = "";
        many_len[i] = 0;
    }
    raw_send(rogue, many, many_len, 80);
    ts_msg_hdr ids = {.job = 1, .layer = 1, .shard = 0, .seq = 1};
    ts_shape ys = ts_shape2(5, 2);
    result_frame(&bad, &ids, &ys, 3); /* announces 3 tensors, sends 1 */
    float junk[10] = {0};
    ts_proto_data one = {junk, sizeof junk, 0};
    send_f0(rogue, &bad, &one, 1);
    result_frame(&bad, &ids, &ys, 1); /* well-formed, but from nobody */
    send_f0(rogue, &bad, &one, 1);
    stat_floor fl = {st0.dropped_invalid + 5, st0.dropped_unknown + 1, 0};
    TS_CHECK(poll_until(c.m, stats_reached, &fl));
    ts_proto_in in;
    ts_proto_msg msg;
    TS_CHECK(raw_expect(c.m, rogue, TS_MSG_DISCONNECT, &in, &msg));
    ts_proto_in_close(&in);
    TS_CHECK(good_gemm_round(&c, 2, x, y[0], y[1]));

    /* oversized: over tcp ZeroMQ refuses it before allocating (MAXMSGSIZE); the
     * master in any case must keep serving */
    if (strcmp(transport, "inproc")) {
        size_t big = (size_t)2 << 20;
        char *huge = calloc(1, big);
        const void *hf[1] = {huge};
        size_t hl[1] = {big};
        raw_send(rogue, hf, hl, 1);
        free(huge);
        TS_CHECK(good_gemm_round(&c, 3, x, y[0], y[1]));
    }

    /* as a registered worker: a stale result is dropped, garbage gets it removed */
    send_f0(rogue, &f, NULL, 0);
    TS_CHECK_OK(ts_master_wait_workers(c.m, 3, DEADLINE, &err), &err);
    TS_CHECK(raw_expect(c.m, rogue, TS_MSG_READY, &in, &msg));
    ts_proto_in_close(&in);
    ts_master_stats st1;
    ts_master_get_stats(c.m, &st1);
    ids.job = 999;
    result_frame(&bad, &ids, &ys, 1);
    send_f0(rogue, &bad, &one, 1);
    fl = (stat_floor){0, 0, st1.dropped_stale + 1};
    TS_CHECK(poll_until(c.m, stats_reached, &fl));
    TS_CHECK(ts_master_workers(c.m, NULL, 0) == 3);
    bad = f;
    bad.buf[28] = 3; /* body length lie */
    send_f0(rogue, &bad, NULL, 0);
    int two = 2;
    TS_CHECK(poll_until(c.m, workers_equal, &two));
    TS_CHECK(raw_expect(c.m, rogue, TS_MSG_DISCONNECT, &in, &msg));
    ts_proto_in_close(&in);
    TS_CHECK(good_gemm_round(&c, 4, x, y[0], y[1]));
    raw_close(c.m, rogue);
    for (int i = 0; i < 2; i++) {
        ts_tensor_free(a[i]);
        ts_tensor_free(y[i]);
    }
    ts_tensor_free(x);
    cluster_stop(&c);
}

static void test_rogue_inproc(void) {
    run_rogue("inproc");
}

static void test_rogue_tcp(void) {
    ts_log_set(NULL, NULL, TS_LOG_ERROR); /* the expected warnings are noise here */
    run_rogue("tcp");
    ts_log_set(NULL, NULL, TS_LOG_WARN);
}

/* A worker that answers twice, with wrong ids, late, and with the wrong
 * number of outputs: exactly one result counts; the last lie removes it. */
static void test_duplicate_results(void) {
    ts_master *m = master_on("inproc", 0);
    if (!m) return;
    void *fake = raw_dealer(m);
    ts_proto_frame0 f;
    hello_frame(&f, "liar");
    send_f0(fake, &f, NULL, 0);
    ts_err err = {0};
    TS_CHECK_OK(ts_master_wait_workers(m, 1, DEADLINE, &err), &err);
    ts_proto_in in;
    ts_proto_msg msg;
    TS_CHECK(raw_expect(m, fake, TS_MSG_READY, &in, &msg));
    uint32_t id = msg.u.ready.worker_id;
    ts_proto_in_close(&in);

    ts_shape s = ts_shape2(1, 3);
    float v[3] = {1, 2, 3};
    ts_tensor x = ts_tensor_view(v, &s);
    const ts_tensor *xp = &x;
    ts_task t = {.kind = TS_TASK_ECHO, .worker = id, .shard = 0, .inputs = &xp, .n_inputs = 1};
    ts_job *job = ts_master_submit(m, 6, &t, 1, &err);
    TS_CHECK(raw_expect(m, fake, TS_MSG_TASK, &in, &msg));
    ts_msg_hdr ids = msg.h;
    ts_proto_in_close(&in);

    ts_proto_frame0 r;
    ts_proto_data d = {v, sizeof v, 0};
    result_frame(&r, &ids, &s, 1);
    for (int i = 0; i < 3; i++)
        send_f0(fake, &r, &d, 1); /* one good, two duplicates */
    ts_msg_hdr wrong = ids;
    wrong.seq++;
    result_frame(&r, &wrong, &s, 1);
    send_f0(fake, &r, &d, 1);
    wrong = ids;
    wrong.layer++;
    result_frame(&r, &wrong, &s, 1);
    send_f0(fake, &r, &d, 1);

    collect_log log = {.reject_shard = -1};
    log.expect[0] = &x;
    TS_CHECK_OK(ts_master_collect(m, job, 1, DEADLINE, echo_cb, &log, &err), &err);
    stat_floor fl = {0, 0, 4};
    TS_CHECK(poll_until(m, stats_reached, &fl));
    TS_CHECK(log.calls == 1 && log.bad == 0 && ts_job_accepted(job) == 1);
    ts_master_job_free(m, job);
    result_frame(&r, &ids, &s, 1); /* late: the job is gone */
    send_f0(fake, &r, &d, 1);
    fl.stale = 5;
    TS_CHECK(poll_until(m, stats_reached, &fl));

    /* wrong number of outputs for a live shard: a protocol violation */
    job = ts_master_submit(m, 7, &t, 1, &err);
    TS_CHECK(raw_expect(m, fake, TS_MSG_TASK, &in, &msg));
    ids = msg.h;
    ts_proto_in_close(&in);
    result_frame(&r, &ids, &s, 2);
    ts_proto_data d2[2] = {{v, sizeof v, 0}, {v, sizeof v, 0}};
    send_f0(fake, &r, d2, 2);
    ts_status st = ts_master_collect(m, job, 1, DEADLINE, echo_cb, &log, &err);
    TS_CHECK_MSG(st == TS_ERR_UNAVAILABLE, "%s", ts_status_name(st));
    TS_CHECK(log.calls == 1 && ts_master_workers(m, NULL, 0) == 0);
    ts_master_job_free(m, job);
    zmq_close(fake);
    ts_master_free(m);
}

/* Bad arguments are refused with a sentence, nothing is sent. */
static void test_master_arguments(void) {
    cluster c;
    if (!cluster_start(&c, "inproc", 1, NULL)) {
        cluster_stop(&c);
        return;
    }
    ts_err err = {0};
    ts_shape s = ts_shape2(1, 2);
    float v[2] = {1, 2};
    ts_tensor x = ts_tensor_view(v, &s);
    const ts_tensor *xp = &x;
    ts_task_pair pair = {3, {0, 0, 0}};
    ts_task bad_kind = {.kind = (ts_task_kind)42, .worker = c.ids[0], .inputs = &xp, .n_inputs = 1};
    TS_CHECK(ts_master_submit(c.m, 0, &bad_kind, 1, &err) == NULL && err.status == TS_ERR_INVALID);
    ts_task bad_pair = {.kind = TS_TASK_GEMM,
                        .worker = c.ids[0],
                        .inputs = &xp,
                        .n_inputs = 1,
                        .pairs = &pair,
                        .n_pairs = 1};
    TS_CHECK(ts_master_submit(c.m, 0, &bad_pair, 1, &err) == NULL && err.status == TS_ERR_INVALID);
    ts_task twice[2] = {{.kind = TS_TASK_ECHO, .worker = c.ids[0], .inputs = &xp, .n_inputs = 1},
                        {.kind = TS_TASK_ECHO, .worker = c.ids[0], .inputs = &xp, .n_inputs = 1}};
    TS_CHECK(ts_master_submit(c.m, 0, twice, 2, &err) == NULL && err.status == TS_ERR_INVALID);
    TS_CHECK(ts_master_deploy(c.m, 999, (ts_blob_key){0, 0, 0}, &xp, 1, &err) ==
             TS_ERR_UNAVAILABLE);
    ts_master_opts mo = ts_master_opts_default();
    TS_CHECK(ts_master_new(&mo, &err) == NULL && err.status == TS_ERR_INVALID);
    mo.url = "bogus://nowhere";
    TS_CHECK(ts_master_new(&mo, &err) == NULL && err.status == TS_ERR_IO);
    ts_worker_opts wo = ts_worker_opts_default();
    wo.url = "tcp://127.0.0.1:1";
    wo.gflops = -1;
    ts_worker_exit why;
    TS_CHECK(ts_worker_run(&wo, &why, &err) == TS_ERR_INVALID);
    cluster_stop(&c);
}

/* A worker refuses a blob beyond its memory cap; deploy_wait says so. */
static void test_deploy_cap(void) {
    cluster c;
    memset(&c, 0, sizeof c);
    c.m = master_on("inproc", 0);
    if (!c.m) return;
    ts_err err = {0};
    ts_worker_opts o = worker_opts(&c, "small");
    o.max_blob_bytes = 1024;
    c.w[0] = ts_worker_spawn(&o, &err);
    c.nw = 1;
    TS_CHECK_OK(ts_master_wait_workers(c.m, 1, DEADLINE, &err), &err);
    uint32_t id;
    ts_master_workers(c.m, &id, 1);
    ts_tensor *big = ts_tensor_new(&(ts_shape){1, {1000}}, NULL);
    TS_CHECK_OK(
        ts_master_deploy(c.m, id, (ts_blob_key){1, 2, 3}, (const ts_tensor *const *)&big, 1, &err),
        &err);
    ts_status s = ts_master_deploy_wait(c.m, DEADLINE, &err);
    TS_CHECK_MSG(s == TS_ERR_UNAVAILABLE && strstr(err.msg, "cap"), "%s: %s", ts_status_name(s),
                 err.msg);
    ts_tensor_free(big);
    cluster_stop(&c);
}

/* Content a worker already holds goes out as an ALIAS: no data is sent, the
 * worker counts its bytes once (a cap with room for two copies holds it
 * under two keys and one more blob), each key computes with the content it
 * was given, also after the first key is redeployed with other content,
 * and the same floats under another shape are a different blob. */
static void run_deploy_alias(const char *transport) {
    cluster c;
    memset(&c, 0, sizeof c);
    c.m = master_on(transport, 0);
    if (!c.m) return;
    ts_err err = {0};
    ts_worker_stats ws = {0};
    ts_worker_opts o = worker_opts(&c, "w0");
    ts_shape as = ts_shape2(6, 8), xs = ts_shape2(8, 3);
    size_t abytes = 6 * 8 * sizeof(float);
    o.max_blob_bytes = 2 * abytes + 16;
    o.stats = &ws;
    c.w[0] = ts_worker_spawn(&o, &err);
    c.nw = 1;
    TS_CHECK_OK(ts_master_wait_workers(c.m, 1, DEADLINE, &err), &err);
    uint32_t id = 0;
    ts_master_workers(c.m, &id, 1);
    ts_rng rng;
    ts_rng_seed(&rng, 17);
    ts_tensor *a = random_tensor(&as, &rng), *b = random_tensor(&as, &rng);
    ts_tensor *x = random_tensor(&xs, &rng);
    ts_blob_key k1 = {3, 1, 0}, k2 = {4, 1, 0}, k3 = {5, 1, 0};
    const ts_tensor *const *ap = (const ts_tensor *const *)&a, *const *bp =
                                                                   (const ts_tensor *const *)&b;
    TS_CHECK_OK(ts_master_deploy(c.m, id, k1, ap, 1, &err), &err);
    TS_CHECK_OK(ts_master_deploy_wait(c.m, DEADLINE, &err), &err);
    TS_CHECK_OK(ts_master_deploy(c.m, id, k2, ap, 1, &err), &err); /* the same content */
    TS_CHECK_OK(ts_master_deploy_wait(c.m, DEADLINE, &err), &err);
    ts_master_stats st;
    ts_master_get_stats(c.m, &st);
    TS_CHECK_MSG(st.deploys_aliased == 1 && st.deploy_bytes_saved == abytes,
                 "%s: %llu aliased, %llu bytes saved", transport,
                 (unsigned long long)st.deploys_aliased, (unsigned long long)st.deploy_bytes_saved);
    TS_CHECK_OK(ts_master_deploy(c.m, id, k1, bp, 1, &err), &err); /* k1 moves on to b */
    TS_CHECK_OK(ts_master_deploy_wait(c.m, DEADLINE, &err), &err);
    ts_master_get_stats(c.m, &st);
    TS_CHECK(st.deploys_aliased == 1);

    ts_tensor *yb = ts_tensor_new(&(ts_shape){2, {6, 3}}, NULL);
    ts_tensor *ya = ts_tensor_new(&(ts_shape){2, {6, 3}}, NULL);
    TS_CHECK_OK(ts_gemm_forward(0, 0, 1.0f, 0.0f, b, x, NULL, yb, &err), &err);
    TS_CHECK_OK(ts_gemm_forward(0, 0, 1.0f, 0.0f, a, x, NULL, ya, &err), &err);
    ts_task_pair pairs[2] = {{0, k1}, {0, k2}};
    ts_task t = {.kind = TS_TASK_GEMM,
                 .worker = id,
                 .inputs = (const ts_tensor *const *)&x,
                 .n_inputs = 1,
                 .pairs = pairs,
                 .n_pairs = 2};
    compute_log log = {0};
    log.expect[0][0] = yb;
    log.expect[0][1] = ya;
    ts_job *job = ts_master_submit(c.m, 1, &t, 1, &err);
    TS_CHECK_MSG(job != NULL, "%s", err.msg);
    if (job) {
        TS_CHECK_OK(ts_master_collect(c.m, job, 1, DEADLINE, compute_cb, &log, &err), &err);
        TS_CHECK_MSG(log.calls == 1 && log.bad == 0 && log.worst < 1e-6,
                     "%s: %d calls %d bad worst %g", transport, log.calls, log.bad, log.worst);
        ts_master_job_free(c.m, job);
    }
    /* a's floats as 8 x 6: not the same blob, sent in full, and over the cap */
    ts_tensor *at = ts_tensor_new(&(ts_shape){2, {8, 6}}, NULL);
    memcpy(at->data, a->data, abytes);
    TS_CHECK_OK(ts_master_deploy(c.m, id, k3, (const ts_tensor *const *)&at, 1, &err), &err);
    ts_status s = ts_master_deploy_wait(c.m, DEADLINE, &err);
    TS_CHECK_MSG(s == TS_ERR_UNAVAILABLE && strstr(err.msg, "cap"), "%s: %s", ts_status_name(s),
                 err.msg);
    ts_master_get_stats(c.m, &st);
    TS_CHECK(st.deploys_aliased == 1);
    cluster_stop(&c);
    TS_CHECK_MSG(ws.blobs == 2 && ws.aliases == 1 && ws.blob_bytes_peak == 2 * abytes,
                 "%s: worker stored %llu blobs, %llu aliases, peak %llu bytes", transport,
                 (unsigned long long)ws.blobs, (unsigned long long)ws.aliases,
                 (unsigned long long)ws.blob_bytes_peak);
    ts_tensor_free(a);
    ts_tensor_free(b);
    ts_tensor_free(at);
    ts_tensor_free(x);
    ts_tensor_free(ya);
    ts_tensor_free(yb);
}

static void test_deploy_alias(void) {
    run_deploy_alias("inproc");
    run_deploy_alias("tcp");
}

/* A worker that does not announce TS_WORKER_CAP_ALIAS (an older build) gets
 * every deploy in full, even of content it holds. */
static void test_deploy_alias_needs_cap(void) {
    ts_master *m = master_on("inproc", 0);
    if (!m) return;
    void *peer = raw_dealer(m);
    ts_proto_frame0 f;
    hello_frame(&f, "old"); /* caps: the task kinds only */
    send_f0(peer, &f, NULL, 0);
    ts_proto_in in;
    ts_proto_msg msg;
    TS_CHECK(raw_expect(m, peer, TS_MSG_READY, &in, &msg));
    uint32_t id = msg.u.ready.worker_id;
    ts_proto_in_close(&in);
    ts_rng rng;
    ts_rng_seed(&rng, 19);
    ts_shape as = ts_shape2(3, 4);
    ts_tensor *a = random_tensor(&as, &rng);
    ts_err err = {0};
    for (uint32_t k = 0; k < 2; k++) {
        TS_CHECK_OK(ts_master_deploy(m, id, (ts_blob_key){k + 1, 0, 0},
                                     (const ts_tensor *const *)&a, 1, &err),
                    &err);
        int got = raw_expect(m, peer, TS_MSG_DEPLOY, &in, &msg);
        TS_CHECK_MSG(got && msg.n_tensors == 1 && msg.u.key.model == k + 1,
                     "deploy %u: not a full DEPLOY", k);
        if (!got) break;
        ts_msg_hdr h = msg.h;
        h.type = TS_MSG_DEPLOYED;
        ts_proto_begin(&f, &h);
        ts_proto_put_key(&f, msg.u.key);
        TS_ASSERT(ts_proto_end(&f, 0));
        ts_proto_in_close(&in);
        send_f0(peer, &f, NULL, 0);
        TS_CHECK_OK(ts_master_deploy_wait(m, DEADLINE, &err), &err);
    }
    ts_master_stats st;
    ts_master_get_stats(m, &st);
    TS_CHECK(st.deploys_aliased == 0);
    ts_tensor_free(a);
    raw_close(m, peer);
    ts_master_free(m);
}

/* CURVE: a worker whose public key is listed joins and computes over the
 * encrypted link; one with an unlisted key is refused in the handshake and
 * never appears in the worker table. */
static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "r"), *b = fopen(to, "w");
    char buf[256];
    size_t n = a ? fread(buf, 1, sizeof buf, a) : 0;
    int ok = a && b && n > 0 && fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b) fclose(b);
    return ok;
}

static int refused_some(ts_master *m, void *arg) {
    (void)arg;
    ts_master_stats st;
    ts_master_get_stats(m, &st);
    return st.auth_refused > 0;
}

static void test_curve(void) {
    if (!ts_curve_available()) {
        printf("(CURVE not available in this libzmq: skipped)\n");
        return;
    }
    char root[] = "/tmp/ts-curve-XXXXXX";
    TS_CHECK(mkdtemp(root) != NULL);
    char mdir[64], good[64], bad[64], path[128], path2[128];
    snprintf(mdir, sizeof mdir, "%s/master", root);
    snprintf(good, sizeof good, "%s/good", root);
    snprintf(bad, sizeof bad, "%s/bad", root);
    ts_err err = {0};
    char pub[41];
    TS_CHECK_OK(ts_curve_keygen(mdir, "master", NULL, &err), &err);
    TS_CHECK_OK(ts_curve_keygen(good, "worker", pub, &err), &err);
    TS_CHECK_OK(ts_curve_authorize(mdir, pub, &err), &err);
    TS_CHECK_OK(ts_curve_keygen(bad, "worker", NULL, &err), &err);
    snprintf(path, sizeof path, "%s/master.pub", mdir);
    snprintf(path2, sizeof path2, "%s/master.pub", good);
    TS_CHECK(copy_file(path, path2));
    snprintf(path2, sizeof path2, "%s/master.pub", bad);
    TS_CHECK(copy_file(path, path2));
    /* refusals of bad input: a bad key line, inproc, a missing directory */
    TS_CHECK(ts_curve_authorize(mdir, "not-a-key", &err) == TS_ERR_INVALID);
    ts_master_opts mo = ts_master_opts_default();
    mo.url = "inproc://curve";
    mo.curve_dir = mdir;
    TS_CHECK(ts_master_new(&mo, &err) == NULL && err.status == TS_ERR_INVALID);
    mo.url = "tcp://127.0.0.1:0";
    mo.curve_dir = root; /* no master.secret there */
    TS_CHECK(ts_master_new(&mo, &err) == NULL && err.status == TS_ERR_IO);

    mo.curve_dir = mdir;
    mo.heartbeat_ms = HB_MS;
    mo.liveness = LIVENESS;
    cluster c;
    memset(&c, 0, sizeof c);
    c.m = ts_master_new(&mo, &err);
    TS_CHECK_MSG(c.m != NULL, "%s", err.msg);
    if (c.m) {
        ts_worker_opts o = worker_opts(&c, "good");
        o.curve_dir = good;
        c.w[0] = ts_worker_spawn(&o, &err);
        o = worker_opts(&c, "bad");
        o.curve_dir = bad;
        c.w[1] = ts_worker_spawn(&o, &err);
        c.nw = 2;
        TS_CHECK_OK(ts_master_wait_workers(c.m, 1, DEADLINE, &err), &err);
        TS_CHECK(poll_until(c.m, refused_some, NULL));
        uint32_t ids[4];
        TS_CHECK(ts_master_workers(c.m, ids, 4) == 1);
        ts_worker_info info;
        TS_CHECK_OK(ts_master_worker_info(c.m, ids[0], &info, &err), &err);
        TS_CHECK(!strcmp(info.name, "good"));
        /* and it computes over the encrypted link */
        ts_rng rng;
        ts_rng_seed(&rng, 8);
        ts_shape s = ts_shape2(3, 4);
        ts_tensor *in = random_tensor(&s, &rng);
        collect_log log = {.reject_shard = -1};
        log.expect[0] = in;
        c.ids[0] = ids[0];
        ts_job *job = submit_echo(&c, 1, &in, ids, NULL, 1);
        TS_CHECK_OK(ts_master_collect(c.m, job, 1, DEADLINE, echo_cb, &log, &err), &err);
        TS_CHECK(log.calls == 1 && log.bad == 0);
        ts_master_job_free(c.m, job);
        ts_tensor_free(in);
        TS_CHECK(ts_master_workers(c.m, NULL, 0) == 1);
        cluster_stop(&c);
    }
    const char *files[] = {"master/master.pub", "master/master.secret", "master/authorized_workers",
                           "good/worker.pub",   "good/worker.secret",   "good/master.pub",
                           "bad/worker.pub",    "bad/worker.secret",    "bad/master.pub"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", root, files[i]);
        unlink(path);
    }
    rmdir(mdir);
    rmdir(good);
    rmdir(bad);
    rmdir(root);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    TS_RUN(test_proto_roundtrip);
    TS_RUN(test_proto_rejects);
    TS_RUN(test_proto_alias);
    TS_RUN(test_proto_stray_tensors);
    TS_RUN(test_store_alias);
    TS_RUN(test_straggler_models);
    TS_RUN(test_echo_transports);
    TS_RUN(test_gemm_transports);
    TS_RUN(test_conv_transports);
    TS_RUN(test_k_of_n_straggler);
    TS_RUN(test_cancel);
    TS_RUN(test_worker_loss_inproc);
    TS_RUN(test_worker_loss_tcp);
    TS_RUN(test_emulated_failures);
    TS_RUN(test_emulation_accounting);
    TS_RUN(test_rogue_inproc);
    TS_RUN(test_rogue_tcp);
    TS_RUN(test_duplicate_results);
    TS_RUN(test_master_arguments);
    TS_RUN(test_deploy_cap);
    TS_RUN(test_deploy_alias);
    TS_RUN(test_deploy_alias_needs_cap);
    TS_RUN(test_curve);
    return ts_test_summary();
}
