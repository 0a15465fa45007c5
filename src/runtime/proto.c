/* proto.c: encoding, decoding and validation of wire messages. */
#include "runtime/proto.h"

#include <errno.h>
#include <string.h>

/* ---- little-endian field access (byte by byte: alignment-free) -------- */

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(const uint8_t *p) {
    return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}

static double rd_f64(const uint8_t *p) {
    uint64_t u = rd_u64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void wr_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A bounds-checked cursor over a received body. */
typedef struct {
    const uint8_t *p;
    size_t len, off;
} reader;

static int rd_ok(reader *r, size_t n) {
    return r->len - r->off >= n;
}

static uint32_t get_u32(reader *r) {
    uint32_t v = rd_u32(r->p + r->off);
    r->off += 4;
    return v;
}

static uint64_t get_u64(reader *r) {
    uint64_t v = rd_u64(r->p + r->off);
    r->off += 8;
    return v;
}

static double get_f64(reader *r) {
    double v = rd_f64(r->p + r->off);
    r->off += 8;
    return v;
}

static void get_str(reader *r, char *dst, size_t n) {
    memcpy(dst, r->p + r->off, n);
    dst[n - 1] = '\0'; /* a peer's unterminated string is cut, not trusted */
    r->off += n;
}

const char *ts_msg_type_name(uint32_t type) {
    static const char *names[] = {"?",    "HELLO",  "READY", "HEARTBEAT",  "DEPLOY", "DEPLOYED",
                                  "TASK", "RESULT", "ERROR", "DISCONNECT", "ALIAS",  "CANCEL"};
    return type <= TS_MSG_TYPE_MAX ? names[type] : "?";
}

size_t ts_proto_tensor_bytes(const ts_tensor *t) {
    return (size_t)t->size * sizeof(float);
}

/* ---- receiving ---------------------------------------------------------- */

int ts_proto_recv(void *sock, ts_proto_in *in, int flags) {
    in->n = 0;
    in->too_many = 0;
    in->total_bytes = 0;
    for (;;) {
        zmq_msg_t scratch;
        zmq_msg_t *part = in->n < TS_PROTO_MAX_PARTS ? &in->part[in->n] : &scratch;
        zmq_msg_init(part);
        int first = in->n == 0 && !in->too_many;
        if (zmq_msg_recv(part, sock, first ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(part);
            ts_proto_in_close(in); /* after the first part only ETERM/EINTR can land here */
            errno = e;
            return -1;
        }
        in->total_bytes += zmq_msg_size(part);
        int more = zmq_msg_more(part);
        if (part == &scratch) {
            in->too_many = 1;
            zmq_msg_close(part);
        } else {
            in->n++;
        }
        if (!more) return 0;
    }
}

void ts_proto_in_close(ts_proto_in *in) {
    for (int i = 0; i < in->n; i++)
        zmq_msg_close(&in->part[i]);
    in->n = 0;
}

/* ---- decoding ----------------------------------------------------------- */

static ts_status decode_header(const uint8_t *p, size_t len, ts_msg_hdr *h, ts_err *err) {
    if (len < TS_PROTO_HDR_BYTES)
        return ts_errorf(err, TS_ERR_FORMAT,
                         "frame of %zu bytes is shorter than the %u-byte header", len,
                         TS_PROTO_HDR_BYTES);
    if (len > TS_PROTO_MAX_FRAME0)
        return ts_errorf(err, TS_ERR_FORMAT, "header frame of %zu bytes exceeds the %u-byte cap",
                         len, TS_PROTO_MAX_FRAME0);
    uint32_t magic = rd_u32(p);
    if (magic != TS_PROTO_MAGIC)
        return ts_errorf(err, TS_ERR_FORMAT, "bad magic 0x%08x (expected 0x%08x)", magic,
                         TS_PROTO_MAGIC);
    uint32_t word = rd_u32(p + 4); /* u16 version, u8 type, u8 reserved */
    uint32_t version = word & 0xffffu;
    if (version != TS_PROTO_VERSION)
        return ts_errorf(err, TS_ERR_FORMAT, "protocol version %u is not supported (this is %u)",
                         version, TS_PROTO_VERSION);
    h->type = (word >> 16) & 0xffu;
    if (h->type < 1 || h->type > TS_MSG_TYPE_MAX)
        return ts_errorf(err, TS_ERR_FORMAT, "unknown message type %u", h->type);
    if (word >> 24)
        return ts_errorf(err, TS_ERR_FORMAT, "reserved header byte is %u, not 0", word >> 24);
    h->job = rd_u32(p + 8);
    h->layer = rd_u32(p + 12);
    h->shard = rd_u32(p + 16);
    h->seq = rd_u32(p + 20);
    h->n_tensors = rd_u32(p + 24);
    h->body_len = rd_u32(p + 28);
    if (h->body_len != len - TS_PROTO_HDR_BYTES)
        return ts_errorf(err, TS_ERR_FORMAT, "%s header says %u body bytes but %zu arrived",
                         ts_msg_type_name(h->type), h->body_len, len - TS_PROTO_HDR_BYTES);
    if (h->n_tensors > TS_RT_MAX_TENSORS)
        return ts_errorf(err, TS_ERR_FORMAT, "%u tensors exceed the cap of %d", h->n_tensors,
                         TS_RT_MAX_TENSORS);
    return TS_OK;
}

/* Only blobs (DEPLOY), task inputs (TASK) and outputs (RESULT) travel as
 * tensor frames; every other type is refused when it announces any, so that
 * a peer cannot make the receiver map frames that nothing will read. */
static ts_status check_tensor_count(const ts_msg_hdr *h, ts_err *err) {
    int carries = h->type == TS_MSG_DEPLOY || h->type == TS_MSG_TASK || h->type == TS_MSG_RESULT;
    if (!carries && h->n_tensors != 0)
        return ts_errorf(err, TS_ERR_FORMAT, "%s carries no tensors, but its header announces %u",
                         ts_msg_type_name(h->type), h->n_tensors);
    return TS_OK;
}

/* Fixed (non-descriptor) body size of each message type. */
static ts_status fixed_body_len(const ts_msg_hdr *h, const uint8_t *body, size_t *out,
                                ts_err *err) {
    switch ((ts_msg_type)h->type) {
    case TS_MSG_HELLO: *out = 40 + 2 * TS_PROTO_NAME_BYTES; return TS_OK;
    case TS_MSG_READY: *out = 24; return TS_OK;
    case TS_MSG_HEARTBEAT:
    case TS_MSG_CANCEL: *out = 0; return TS_OK;
    case TS_MSG_DEPLOY:
    case TS_MSG_DEPLOYED: *out = 16; return TS_OK;
    case TS_MSG_RESULT: *out = 16; return TS_OK;
    case TS_MSG_ALIAS: *out = 32; return TS_OK;
    case TS_MSG_DISCONNECT: *out = 4; return TS_OK;
    case TS_MSG_TASK: {
        if (h->body_len < 60) break;
        uint32_t n_pairs = rd_u32(body + 4);
        if (n_pairs > TS_RT_MAX_PAIRS)
            return ts_errorf(err, TS_ERR_FORMAT, "TASK with %u pairs exceeds the cap of %d",
                             n_pairs, TS_RT_MAX_PAIRS);
        *out = 60 + 16 * (size_t)n_pairs;
        return TS_OK;
    }
    case TS_MSG_ERROR: {
        if (h->body_len < 8) break;
        uint32_t n = rd_u32(body + 4);
        if (n > TS_PROTO_ERRMSG_MAX)
            return ts_errorf(err, TS_ERR_FORMAT, "ERROR message of %u bytes exceeds %u", n,
                             TS_PROTO_ERRMSG_MAX);
        *out = 8 + (size_t)n;
        return TS_OK;
    }
    }
    return ts_errorf(err, TS_ERR_FORMAT, "%s body of %u bytes is truncated",
                     ts_msg_type_name(h->type), h->body_len);
}

static ts_status decode_desc(reader *r, ts_shape *s, int i, ts_err *err) {
    uint32_t ndim = get_u32(r);
    uint32_t dtype = get_u32(r);
    if (dtype != 1)
        return ts_errorf(err, TS_ERR_FORMAT, "tensor %d has dtype %u (only 1 = float32)", i, dtype);
    if (ndim < 1 || ndim > TS_MAX_DIMS)
        return ts_errorf(err, TS_ERR_FORMAT, "tensor %d has %u dimensions (1..%d allowed)", i, ndim,
                         TS_MAX_DIMS);
    s->ndim = (int)ndim;
    for (int d = 0; d < TS_MAX_DIMS; d++) {
        int64_t v = (int64_t)get_u64(r);
        if (d >= (int)ndim) {
            if (v != 0)
                return ts_errorf(err, TS_ERR_FORMAT, "tensor %d: unused dimension %d is not 0", i,
                                 d);
            s->shape[d] = 0;
            continue;
        }
        if (v < 1 || v > TS_PROTO_MAX_DIM)
            return ts_errorf(err, TS_ERR_FORMAT, "tensor %d: dimension %d = %lld out of range", i,
                             d, (long long)v);
        s->shape[d] = v;
    }
    return TS_OK;
}

/* Checks a descriptor against the frame that carries its data, without ever
 * forming a product that could overflow. */
static ts_status check_frame(const ts_shape *s, size_t frame_bytes, size_t max_frame, int i,
                             ts_err *err) {
    uint64_t elems = 1;
    uint64_t cap = max_frame / sizeof(float);
    for (int d = 0; d < s->ndim; d++) {
        if ((uint64_t)s->shape[d] > cap / elems)
            return ts_errorf(err, TS_ERR_FORMAT, "tensor %d is larger than the %zu-byte frame cap",
                             i, max_frame);
        elems *= (uint64_t)s->shape[d];
    }
    if (elems * sizeof(float) != frame_bytes)
        return ts_errorf(err, TS_ERR_FORMAT,
                         "tensor %d: descriptor needs %llu bytes but its frame has %zu", i,
                         (unsigned long long)(elems * sizeof(float)), frame_bytes);
    return TS_OK;
}

static ts_blob_key get_key(reader *r) {
    ts_blob_key k;
    k.model = get_u32(r);
    k.layer = get_u32(r);
    k.index = get_u32(r);
    (void)get_u32(r); /* reserved */
    return k;
}

static void decode_task(reader *r, ts_proto_task *t) {
    t->kind = get_u32(r);
    t->n_pairs = get_u32(r);
    ts_conv2d_params *c = &t->conv;
    int *fields[] = {&c->stride_h, &c->stride_w, &c->pad_t, &c->pad_l, &c->pad_b,
                     &c->pad_r,    &c->dil_h,    &c->dil_w, &c->groups};
    for (int i = 0; i < 9; i++)
        *fields[i] = (int)(int32_t)get_u32(r);
    t->trans_a = get_u32(r);
    t->trans_b = get_u32(r);
    t->echo_sleep_ms = get_u32(r);
    (void)get_u32(r); /* reserved */
    for (uint32_t i = 0; i < t->n_pairs; i++) {
        t->pairs[i].input = get_u32(r);
        t->pairs[i].key.model = get_u32(r);
        t->pairs[i].key.layer = get_u32(r);
        t->pairs[i].key.index = get_u32(r);
    }
}

static void decode_body(reader *r, ts_proto_msg *m) {
    switch ((ts_msg_type)m->h.type) {
    case TS_MSG_HELLO: {
        ts_proto_hello *b = &m->u.hello;
        b->caps = get_u32(r);
        b->heartbeat_ms = get_u32(r);
        b->liveness = get_u32(r);
        (void)get_u32(r);
        b->gflops = get_f64(r);
        b->mbps = get_f64(r);
        b->latency_ms = get_f64(r);
        get_str(r, b->straggler, TS_PROTO_NAME_BYTES);
        get_str(r, b->name, TS_PROTO_NAME_BYTES);
        break;
    }
    case TS_MSG_READY:
        m->u.ready.worker_id = get_u32(r);
        m->u.ready.heartbeat_ms = get_u32(r);
        m->u.ready.liveness = get_u32(r);
        (void)get_u32(r);
        m->u.ready.max_frame_bytes = get_u64(r);
        break;
    case TS_MSG_HEARTBEAT:
    case TS_MSG_CANCEL: break;
    case TS_MSG_DEPLOY:
    case TS_MSG_DEPLOYED: m->u.key = get_key(r); break;
    case TS_MSG_ALIAS:
        m->u.alias.dst = get_key(r);
        m->u.alias.src = get_key(r);
        break;
    case TS_MSG_TASK: decode_task(r, &m->u.task); break;
    case TS_MSG_RESULT:
        m->u.result.compute_s = get_f64(r);
        m->u.result.emulated_s = get_f64(r);
        break;
    case TS_MSG_ERROR: {
        m->u.error.code = get_u32(r);
        uint32_t n = get_u32(r);
        memcpy(m->u.error.msg, r->p + r->off, n);
        m->u.error.msg[n] = '\0';
        r->off += n;
        break;
    }
    case TS_MSG_DISCONNECT: m->u.disc_reason = get_u32(r); break;
    }
}

static void free_given(void *data, void *hint);

/* Over tcp and ipc libzmq may hand out frames that point into its receive
 * buffer at any offset. Such a frame is replaced by an aligned copy (the one
 * case where receiving copies), so kernels always see aligned floats. */
static ts_status align_frame(zmq_msg_t *f, int i, ts_err *err) {
    size_t n = zmq_msg_size(f);
    void *copy = ts_alloc(n);
    if (!copy) return ts_errorf(err, TS_ERR_NOMEM, "out of memory aligning tensor %d", i);
    memcpy(copy, zmq_msg_data(f), n);
    zmq_msg_close(f);
    if (zmq_msg_init_data(f, copy, n, free_given, NULL) != 0) {
        ts_free(copy);
        zmq_msg_init(f);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory aligning tensor %d", i);
    }
    return TS_OK;
}

/* Binds the data frames to tensor views. */
static ts_status bind_tensors(ts_proto_in *in, int first, size_t max_frame, ts_proto_msg *m,
                              ts_err *err) {
    for (int i = 0; i < m->n_tensors; i++) {
        zmq_msg_t *f = &in->part[first + 1 + i];
        ts_tensor *t = &m->tensors[i];
        TS_TRY(check_frame(&t->s, zmq_msg_size(f), max_frame, i, err));
        if ((uintptr_t)zmq_msg_data(f) % TS_ALIGN) TS_TRY(align_frame(f, i, err));
        t->data = zmq_msg_data(f);
        t->size = ts_shape_numel(&t->s);
        t->owns_data = 0;
    }
    return TS_OK;
}

ts_status ts_proto_decode(ts_proto_in *in, int first, size_t max_frame, ts_proto_msg *m,
                          ts_err *err) {
    memset(&m->h, 0, sizeof m->h);
    m->n_tensors = 0;
    if (in->too_many)
        return ts_errorf(err, TS_ERR_FORMAT, "message has more than %d frames", TS_PROTO_MAX_PARTS);
    if (in->n <= first) return ts_errorf(err, TS_ERR_FORMAT, "message has no header frame");
    const uint8_t *p = zmq_msg_data(&in->part[first]);
    size_t len = zmq_msg_size(&in->part[first]);
    TS_TRY(decode_header(p, len, &m->h, err));
    TS_TRY(check_tensor_count(&m->h, err));
    if ((uint32_t)(in->n - first - 1) != m->h.n_tensors)
        return ts_errorf(err, TS_ERR_FORMAT, "%s header announces %u tensor frames but %d came",
                         ts_msg_type_name(m->h.type), m->h.n_tensors, in->n - first - 1);
    const uint8_t *body = p + TS_PROTO_HDR_BYTES;
    size_t fixed = 0;
    TS_TRY(fixed_body_len(&m->h, body, &fixed, err));
    size_t want = fixed + (size_t)m->h.n_tensors * TS_PROTO_DESC_BYTES;
    if (want != m->h.body_len)
        return ts_errorf(err, TS_ERR_FORMAT, "%s body is %u bytes, expected %zu",
                         ts_msg_type_name(m->h.type), m->h.body_len, want);
    reader r = {body, m->h.body_len, 0};
    decode_body(&r, m);
    m->n_tensors = (int)m->h.n_tensors;
    for (int i = 0; i < m->n_tensors; i++) {
        TS_ASSERT(rd_ok(&r, TS_PROTO_DESC_BYTES)); /* guaranteed by the length check */
        TS_TRY(decode_desc(&r, &m->tensors[i].s, i, err));
    }
    return bind_tensors(in, first, max_frame, m, err);
}

/* ---- encoding ----------------------------------------------------------- */

static void put_raw(ts_proto_frame0 *f, const void *p, size_t n) {
    if (f->overflow || sizeof f->buf - f->len < n) {
        f->overflow = 1;
        return;
    }
    memcpy(f->buf + f->len, p, n);
    f->len += n;
}

void ts_proto_put_u32(ts_proto_frame0 *f, uint32_t v) {
    uint8_t b[4];
    wr_u32(b, v);
    put_raw(f, b, 4);
}

void ts_proto_put_u64(ts_proto_frame0 *f, uint64_t v) {
    ts_proto_put_u32(f, (uint32_t)v);
    ts_proto_put_u32(f, (uint32_t)(v >> 32));
}

void ts_proto_put_f64(ts_proto_frame0 *f, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    ts_proto_put_u64(f, u);
}

void ts_proto_put_bytes(ts_proto_frame0 *f, const void *p, size_t n) {
    put_raw(f, p, n);
}

void ts_proto_begin(ts_proto_frame0 *f, const ts_msg_hdr *h) {
    f->len = 0;
    f->overflow = 0;
    ts_proto_put_u32(f, TS_PROTO_MAGIC);
    ts_proto_put_u32(f, TS_PROTO_VERSION | (h->type & 0xffu) << 16);
    ts_proto_put_u32(f, h->job);
    ts_proto_put_u32(f, h->layer);
    ts_proto_put_u32(f, h->shard);
    ts_proto_put_u32(f, h->seq);
    ts_proto_put_u32(f, 0); /* n_tensors, patched by ts_proto_end */
    ts_proto_put_u32(f, 0); /* body_len, patched by ts_proto_end */
}

int ts_proto_end(ts_proto_frame0 *f, uint32_t n_tensors) {
    if (f->overflow) return 0;
    wr_u32(f->buf + 24, n_tensors);
    wr_u32(f->buf + 28, (uint32_t)(f->len - TS_PROTO_HDR_BYTES));
    return 1;
}

void ts_proto_put_desc(ts_proto_frame0 *f, const ts_shape *s) {
    ts_proto_put_u32(f, (uint32_t)s->ndim);
    ts_proto_put_u32(f, 1); /* float32 */
    for (int d = 0; d < TS_MAX_DIMS; d++)
        ts_proto_put_u64(f, d < s->ndim ? (uint64_t)s->shape[d] : 0);
}

static void put_name(ts_proto_frame0 *f, const char *s) {
    char b[TS_PROTO_NAME_BYTES] = {0};
    if (s) snprintf(b, sizeof b, "%s", s);
    put_raw(f, b, sizeof b);
}

void ts_proto_put_hello(ts_proto_frame0 *f, const ts_proto_hello *b) {
    ts_proto_put_u32(f, b->caps);
    ts_proto_put_u32(f, b->heartbeat_ms);
    ts_proto_put_u32(f, b->liveness);
    ts_proto_put_u32(f, 0);
    ts_proto_put_f64(f, b->gflops);
    ts_proto_put_f64(f, b->mbps);
    ts_proto_put_f64(f, b->latency_ms);
    put_name(f, b->straggler);
    put_name(f, b->name);
}

void ts_proto_put_ready(ts_proto_frame0 *f, const ts_proto_ready *b) {
    ts_proto_put_u32(f, b->worker_id);
    ts_proto_put_u32(f, b->heartbeat_ms);
    ts_proto_put_u32(f, b->liveness);
    ts_proto_put_u32(f, 0);
    ts_proto_put_u64(f, b->max_frame_bytes);
}

void ts_proto_put_key(ts_proto_frame0 *f, ts_blob_key k) {
    ts_proto_put_u32(f, k.model);
    ts_proto_put_u32(f, k.layer);
    ts_proto_put_u32(f, k.index);
    ts_proto_put_u32(f, 0);
}

void ts_proto_put_task(ts_proto_frame0 *f, const ts_task *t) {
    ts_proto_put_u32(f, (uint32_t)t->kind);
    ts_proto_put_u32(f, (uint32_t)t->n_pairs);
    const ts_conv2d_params *c = &t->conv;
    int32_t fields[] = {c->stride_h, c->stride_w, c->pad_t, c->pad_l, c->pad_b,
                        c->pad_r,    c->dil_h,    c->dil_w, c->groups};
    for (int i = 0; i < 9; i++)
        ts_proto_put_u32(f, (uint32_t)fields[i]);
    ts_proto_put_u32(f, (uint32_t)t->trans_a);
    ts_proto_put_u32(f, (uint32_t)t->trans_b);
    ts_proto_put_u32(f, t->echo_sleep_ms);
    ts_proto_put_u32(f, 0);
    for (int i = 0; i < t->n_pairs; i++) {
        ts_proto_put_u32(f, t->pairs[i].input);
        ts_proto_put_u32(f, t->pairs[i].key.model);
        ts_proto_put_u32(f, t->pairs[i].key.layer);
        ts_proto_put_u32(f, t->pairs[i].key.index);
    }
}

void ts_proto_put_result(ts_proto_frame0 *f, const ts_proto_result *b) {
    ts_proto_put_f64(f, b->compute_s);
    ts_proto_put_f64(f, b->emulated_s);
}

void ts_proto_put_error(ts_proto_frame0 *f, uint32_t code, const char *msg) {
    size_t n = strlen(msg);
    if (n > TS_PROTO_ERRMSG_MAX) n = TS_PROTO_ERRMSG_MAX;
    ts_proto_put_u32(f, code);
    ts_proto_put_u32(f, (uint32_t)n);
    put_raw(f, msg, n);
}

/* ---- sending ------------------------------------------------------------ */

static void free_given(void *data, void *hint) {
    (void)hint;
    ts_free(data);
}

static void release_given(const ts_proto_data *data, int from, int n) {
    for (int i = from; i < n; i++)
        if (data[i].give) ts_free((void *)data[i].ptr);
}

static int send_copy(void *sock, const void *p, size_t n, int flags) {
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, n) != 0) return -1;
    if (n) memcpy(zmq_msg_data(&m), p, n);
    if (zmq_msg_send(&m, sock, flags) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    return 0;
}

static int send_data(void *sock, const ts_proto_data *d, int flags) {
    if (!d->give || d->bytes == 0) {
        int rc = send_copy(sock, d->ptr, d->bytes, flags);
        if (d->give) ts_free((void *)d->ptr);
        return rc;
    }
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, (void *)d->ptr, d->bytes, free_given, NULL) != 0) {
        ts_free((void *)d->ptr);
        return -1;
    }
    if (zmq_msg_send(&m, sock, flags) < 0) {
        zmq_msg_close(&m); /* runs free_given */
        return -1;
    }
    return 0;
}

ts_status ts_proto_send(void *sock, const void *ident, size_t ident_len, const ts_proto_frame0 *f,
                        const ts_proto_data *data, int n, ts_err *err) {
    TS_ASSERT(!f->overflow && f->len >= TS_PROTO_HDR_BYTES);
    /* Only the first part may be refused (EHOSTUNREACH with ROUTER_MANDATORY,
     * EAGAIN when the queue is full); later parts of an accepted message are
     * always taken, which keeps a multipart message all-or-nothing. */
    int rc = 0;
    if (ident) rc = send_copy(sock, ident, ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc == 0) rc = send_copy(sock, f->buf, f->len, (n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
    if (rc != 0) {
        int e = errno;
        release_given(data, 0, n);
        return ts_errorf(err, TS_ERR_IO, "cannot send %s: %s", ts_msg_type_name(f->buf[6]),
                         zmq_strerror(e));
    }
    for (int i = 0; i < n; i++) {
        if (send_data(sock, &data[i], (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) != 0) {
            int e = errno;
            release_given(data, i + 1, n);
            return ts_errorf(err, TS_ERR_IO, "cannot send tensor frame %d: %s", i, zmq_strerror(e));
        }
    }
    return TS_OK;
}
