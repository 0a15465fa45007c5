/* proto_seeds.c: writes the seed inputs of fuzz_proto (one valid message of
 * every type, in fuzz_frames.h's format) into PROTO_DIR and of fuzz_worker
 * (DEPLOY then TASK sequences: a conv, a gemm, and a conv on an ALIASed
 * blob) into WORKER_DIR, encoded by the protocol's own writers so that the
 * seeds follow any change of the format. Usage: proto_seeds PROTO_DIR
 * WORKER_DIR (fuzz/corpus/proto and fuzz/corpus/worker). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "runtime/proto.h"

/* One message in fuzz_frames.h's format, appended to a byte buffer. */
typedef struct {
    uint8_t b[16384];
    size_t n;
    int overflow;
} bytes;

static void put(bytes *o, const void *p, size_t n) {
    if (o->overflow || sizeof o->b - o->n < n) {
        o->overflow = 1;
        return;
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_len(bytes *o, size_t n) {
    uint8_t len[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
    put(o, len, 2);
}

static void message(bytes *o, const ts_proto_frame0 *f, const ts_tensor *const *t, int nt) {
    uint8_t head[2] = {(uint8_t)nt, 0}; /* frames - 1; no ROUTER identity */
    put(o, head, 2);
    for (int i = 0; i <= nt; i++) {
        const void *p = i ? (const void *)t[i - 1]->data : f->buf;
        size_t n = i ? ts_proto_tensor_bytes(t[i - 1]) : f->len;
        if (i < nt) put_len(o, n); /* the last frame takes the rest */
        put(o, p, n);
    }
}

static int save(const char *dir, const char *name, const bytes *o) {
    char path[1024];
    snprintf(path, sizeof path, "%s/seed-%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || o->overflow) {
        fprintf(stderr, "proto_seeds: cannot write %s\n", path);
        if (f) fclose(f);
        return 1;
    }
    fwrite(o->b, 1, o->n, f);
    return fclose(f) != 0;
}

static ts_proto_frame0 frame(uint32_t type) {
    ts_proto_frame0 f;
    ts_msg_hdr h = {.type = type, .job = 1, .layer = 2, .shard = 3, .seq = 4};
    ts_proto_begin(&f, &h);
    return f;
}

/* A whole seed of fuzz_proto: one message. */
static int save_one(const char *dir, const char *name, ts_proto_frame0 *f,
                    const ts_tensor *const *t, int nt) {
    bytes o = {.n = 0};
    if (!ts_proto_end(f, (uint32_t)nt)) return 1;
    message(&o, f, t, nt);
    return save(dir, name, &o);
}

/* Appends to a fuzz_worker seed one length-prefixed message. */
static int append(bytes *seq, ts_proto_frame0 *f, const ts_tensor *const *t, int nt) {
    bytes o = {.n = 0};
    if (!ts_proto_end(f, (uint32_t)nt)) return 1;
    message(&o, f, t, nt);
    put_len(seq, o.n);
    put(seq, o.b, o.n);
    return o.overflow;
}

static ts_proto_frame0 deploy(ts_blob_key key, const ts_tensor *const *t, int nt) {
    ts_proto_frame0 f = frame(TS_MSG_DEPLOY);
    ts_proto_put_key(&f, key);
    for (int i = 0; i < nt; i++)
        ts_proto_put_desc(&f, &t[i]->s);
    return f;
}

static ts_proto_frame0 task(const ts_task *t) {
    ts_proto_frame0 f = frame(TS_MSG_TASK);
    ts_proto_put_task(&f, t);
    for (int i = 0; i < t->n_inputs; i++)
        ts_proto_put_desc(&f, &t->inputs[i]->s);
    return f;
}

static int proto_seeds(const char *dir, const ts_tensor *x, const ts_tensor *w) {
    const ts_tensor *one[1] = {x}, *two[2] = {x, w};
    int bad = 0;
    ts_proto_frame0 f = frame(TS_MSG_HELLO);
    ts_proto_hello hello = {.caps = TS_TASK_CAPS_ALL | TS_WORKER_CAP_ALIAS,
                            .heartbeat_ms = 1000,
                            .liveness = 3,
                            .gflops = 1,
                            .mbps = 100,
                            .latency_ms = 1};
    snprintf(hello.straggler, sizeof hello.straggler, "fixed:5");
    snprintf(hello.name, sizeof hello.name, "seed");
    ts_proto_put_hello(&f, &hello);
    bad |= save_one(dir, "hello", &f, NULL, 0);
    f = frame(TS_MSG_READY);
    ts_proto_put_ready(
        &f, &(ts_proto_ready){
                .worker_id = 7, .heartbeat_ms = 1000, .liveness = 3, .max_frame_bytes = 1 << 20});
    bad |= save_one(dir, "ready", &f, NULL, 0);
    f = frame(TS_MSG_HEARTBEAT);
    bad |= save_one(dir, "heartbeat", &f, NULL, 0);
    f = frame(TS_MSG_CANCEL);
    bad |= save_one(dir, "cancel", &f, NULL, 0);
    ts_blob_key key = {1, 2, 3};
    f = deploy(key, two, 2);
    bad |= save_one(dir, "deploy", &f, two, 2);
    f = frame(TS_MSG_DEPLOYED);
    ts_proto_put_key(&f, key);
    bad |= save_one(dir, "deployed", &f, NULL, 0);
    ts_task_pair pair = {.input = 0, .key = key};
    f = task(&(ts_task){.kind = TS_TASK_CONV2D,
                        .inputs = one,
                        .n_inputs = 1,
                        .pairs = &pair,
                        .n_pairs = 1,
                        .conv = ts_conv2d_params_default()});
    bad |= save_one(dir, "task", &f, one, 1);
    f = frame(TS_MSG_RESULT);
    ts_proto_put_result(&f, &(ts_proto_result){.compute_s = 0.01, .emulated_s = 0.02});
    ts_proto_put_desc(&f, &x->s);
    bad |= save_one(dir, "result", &f, one, 1);
    f = frame(TS_MSG_ERROR);
    ts_proto_put_error(&f, TS_ERR_SHAPE, "shape mismatch");
    bad |= save_one(dir, "error", &f, NULL, 0);
    f = frame(TS_MSG_DISCONNECT);
    ts_proto_put_u32(&f, TS_DISC_LEAVING);
    bad |= save_one(dir, "disconnect", &f, NULL, 0);
    f = frame(TS_MSG_ALIAS);
    ts_proto_put_key(&f, (ts_blob_key){1, 2, 4});
    ts_proto_put_key(&f, key);
    bad |= save_one(dir, "alias", &f, NULL, 0);
    return bad;
}

static int worker_seeds(const char *dir, const ts_tensor *x, const ts_tensor *w, const ts_tensor *a,
                        const ts_tensor *m) {
    const ts_tensor *xs[1] = {x}, *ws[1] = {w}, *as[1] = {a}, *ms[1] = {m};
    ts_blob_key key = {1, 2, 3}, alias = {1, 2, 4};
    ts_task_pair conv_pair = {.input = 0, .key = key}, alias_pair = {.input = 0, .key = alias};
    ts_task conv = {.kind = TS_TASK_CONV2D,
                    .inputs = xs,
                    .n_inputs = 1,
                    .pairs = &conv_pair,
                    .n_pairs = 1,
                    .conv = ts_conv2d_params_default()};
    conv.conv.pad_t = conv.conv.pad_l = conv.conv.pad_b = conv.conv.pad_r = 1;
    int bad = 0;

    bytes seq = {.n = 0};
    ts_proto_frame0 f = deploy(key, ws, 1);
    bad |= append(&seq, &f, ws, 1);
    f = task(&conv);
    bad |= append(&seq, &f, xs, 1) || save(dir, "conv", &seq);

    seq.n = 0;
    f = deploy(key, as, 1);
    bad |= append(&seq, &f, as, 1);
    f = task(&(ts_task){
        .kind = TS_TASK_GEMM, .inputs = ms, .n_inputs = 1, .pairs = &conv_pair, .n_pairs = 1});
    bad |= append(&seq, &f, ms, 1) || save(dir, "gemm", &seq);

    seq.n = 0;
    f = deploy(key, ws, 1);
    bad |= append(&seq, &f, ws, 1);
    f = frame(TS_MSG_ALIAS);
    ts_proto_put_key(&f, alias);
    ts_proto_put_key(&f, key);
    bad |= append(&seq, &f, NULL, 0);
    conv.pairs = &alias_pair;
    f = task(&conv);
    bad |= append(&seq, &f, xs, 1) || save(dir, "alias-conv", &seq);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: proto_seeds PROTO_DIR WORKER_DIR\n");
        return 2;
    }
    ts_err e = {0};
    ts_tensor *x = ts_tensor_new4(1, 2, 3, 3, &e), *w = ts_tensor_new4(2, 2, 3, 3, &e);
    ts_tensor *a = ts_tensor_new(&(ts_shape){.ndim = 2, .shape = {3, 4}}, &e);
    ts_tensor *m = ts_tensor_new(&(ts_shape){.ndim = 2, .shape = {4, 2}}, &e);
    if (!x || !w || !a || !m) return 1;
    for (int64_t i = 0; i < x->size; i++)
        x->data[i] = (float)i;
    for (int64_t i = 0; i < w->size; i++)
        w->data[i] = 0.5f;
    int bad = proto_seeds(argv[1], x, w) | worker_seeds(argv[2], x, w, a, m);
    ts_tensor_free(x);
    ts_tensor_free(w);
    ts_tensor_free(a);
    ts_tensor_free(m);
    return bad;
}
