/* proto.h: the Tessera wire protocol (docs/protocol.md), private to runtime/.
 *
 * A message is one ZeroMQ multipart message: frame 0 holds a fixed 32-byte
 * little-endian header and a typed body; frames 1..n hold raw float32 tensor
 * data, one tensor per frame, described by fixed-width descriptors at the end
 * of the body. On the master's ROUTER socket an identity frame comes first.
 * Everything received is untrusted: decode checks every field and length
 * before anything is used, and never asserts on what came off the wire. */
#ifndef TS_RUNTIME_PROTO_H
#define TS_RUNTIME_PROTO_H

#include <zmq.h>

#include "tessera/runtime.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tensor frames are little-endian float32 sent in host order: port the frame copy first"
#endif

#define TS_PROTO_MAGIC 0x41525354u /* bytes "TSRA" on the wire */
#define TS_PROTO_VERSION 1u
#define TS_PROTO_HDR_BYTES 32u
#define TS_PROTO_DESC_BYTES 56u /* u32 ndim, u32 dtype, i64 dims[6] */
#define TS_PROTO_NAME_BYTES 64u
#define TS_PROTO_ERRMSG_MAX 256u
/* Frame 0 never exceeds this: the largest body is a TASK with 64 pairs and 64
 * descriptors (about 4.7 KB); the cap stops a peer from making us parse more. */
#define TS_PROTO_MAX_FRAME0 8192u
/* identity + frame 0 + tensors */
#define TS_PROTO_MAX_PARTS (2 + TS_RT_MAX_TENSORS)
/* A single dimension above 2^31 is rejected before any multiplication. */
#define TS_PROTO_MAX_DIM (INT64_C(1) << 31)

typedef enum {
    TS_MSG_HELLO = 1,      /* worker -> master: capabilities + emulation */
    TS_MSG_READY = 2,      /* master -> worker: accepted, worker id, heartbeat */
    TS_MSG_HEARTBEAT = 3,  /* both ways */
    TS_MSG_DEPLOY = 4,     /* master -> worker: store a blob */
    TS_MSG_DEPLOYED = 5,   /* worker -> master: blob stored */
    TS_MSG_TASK = 6,       /* master -> worker */
    TS_MSG_RESULT = 7,     /* worker -> master */
    TS_MSG_ERROR = 8,      /* worker -> master: task or deploy failed */
    TS_MSG_DISCONNECT = 9, /* both ways */
    TS_MSG_ALIAS = 10,     /* master -> worker: store a blob the worker holds under a new key */
    TS_MSG_CANCEL = 11,    /* master -> worker: the header's job is done, drop its work */
    TS_MSG_TYPE_MAX = 11
} ts_msg_type;

typedef enum {
    TS_DISC_PROTOCOL = 1, /* peer broke the protocol or is unknown: re-register */
    TS_DISC_SHUTDOWN = 2, /* master is going away */
    TS_DISC_LEAVING = 3,  /* worker is going away */
} ts_disc_reason;

typedef struct {
    uint32_t type;
    uint32_t job, layer, shard, seq;
    uint32_t n_tensors;
    uint32_t body_len;
} ts_msg_hdr;

typedef struct {
    uint32_t caps, heartbeat_ms, liveness;
    double gflops, mbps, latency_ms;
    char straggler[TS_PROTO_NAME_BYTES];
    char name[TS_PROTO_NAME_BYTES];
} ts_proto_hello;

typedef struct {
    uint32_t worker_id, heartbeat_ms, liveness;
    uint64_t max_frame_bytes;
} ts_proto_ready;

typedef struct {
    uint32_t kind, n_pairs;
    ts_conv2d_params conv;
    uint32_t trans_a, trans_b, echo_sleep_ms;
    ts_task_pair pairs[TS_RT_MAX_PAIRS];
} ts_proto_task;

typedef struct {
    double compute_s, emulated_s;
} ts_proto_result;

/* ALIAS: key dst names the blob the worker holds under src (answered with
 * DEPLOYED for dst, as a DEPLOY). Sent only to workers whose HELLO caps have
 * TS_WORKER_CAP_ALIAS. */
typedef struct {
    ts_blob_key dst, src;
} ts_proto_alias;

typedef struct {
    uint32_t code;
    char msg[TS_PROTO_ERRMSG_MAX + 1];
} ts_proto_error;

/* A decoded message: typed body plus tensor views into the received frames. */
typedef struct {
    ts_msg_hdr h;
    union {
        ts_proto_hello hello;
        ts_proto_ready ready;
        ts_blob_key key; /* DEPLOY, DEPLOYED */
        ts_proto_alias alias;
        ts_proto_task task;
        ts_proto_result result;
        ts_proto_error error;
        uint32_t disc_reason;
    } u;
    int n_tensors;
    ts_tensor tensors[TS_RT_MAX_TENSORS];
} ts_proto_msg;

/* Received parts of one multipart message. */
typedef struct {
    zmq_msg_t part[TS_PROTO_MAX_PARTS];
    int n;
    int too_many; /* more parts arrived than fit; the rest were discarded */
    size_t total_bytes;
} ts_proto_in;

/* Receives one whole multipart message (flags: 0 or ZMQ_DONTWAIT). Returns 0,
 * or -1 with errno (EAGAIN when nothing is pending). Close with _in_close. */
int ts_proto_recv(void *sock, ts_proto_in *in, int flags);
void ts_proto_in_close(ts_proto_in *in);

/* Validates parts[first..n) as one message and decodes it. Tensor views point
 * into the frames (which stay owned by in). Any violation: TS_ERR_FORMAT with
 * a sentence naming the field. */
ts_status ts_proto_decode(ts_proto_in *in, int first, size_t max_frame_bytes, ts_proto_msg *out,
                          ts_err *err);

/* ---- encoding ---------------------------------------------------------- */

/* Frame-0 builder over a fixed buffer (no allocation). */
typedef struct {
    uint8_t buf[TS_PROTO_MAX_FRAME0];
    size_t len;
    int overflow;
} ts_proto_frame0;

void ts_proto_begin(ts_proto_frame0 *f, const ts_msg_hdr *h);
void ts_proto_put_u32(ts_proto_frame0 *f, uint32_t v);
void ts_proto_put_u64(ts_proto_frame0 *f, uint64_t v);
void ts_proto_put_f64(ts_proto_frame0 *f, double v);
void ts_proto_put_bytes(ts_proto_frame0 *f, const void *p, size_t n);
void ts_proto_put_desc(ts_proto_frame0 *f, const ts_shape *s);
/* Patches body_len and n_tensors into the header; 0 on overflow. */
int ts_proto_end(ts_proto_frame0 *f, uint32_t n_tensors);

void ts_proto_put_hello(ts_proto_frame0 *f, const ts_proto_hello *b);
void ts_proto_put_ready(ts_proto_frame0 *f, const ts_proto_ready *b);
void ts_proto_put_key(ts_proto_frame0 *f, ts_blob_key k);
void ts_proto_put_task(ts_proto_frame0 *f, const ts_task *t);
void ts_proto_put_result(ts_proto_frame0 *f, const ts_proto_result *b);
void ts_proto_put_error(ts_proto_frame0 *f, uint32_t code, const char *msg);

/* One tensor data frame to send. give = 1: ptr came from ts_alloc and ZeroMQ
 * takes it over (zero copy, freed after sending); 0: copied into the frame. */
typedef struct {
    const void *ptr;
    size_t bytes;
    int give;
} ts_proto_data;

/* Sends [ident][frame0][data...] (ident may be NULL for DEALER sockets). Given
 * data is released even when sending fails. Never blocks: TS_ERR_IO when the
 * peer cannot take the message now (unreachable or queue full). */
ts_status ts_proto_send(void *sock, const void *ident, size_t ident_len, const ts_proto_frame0 *f,
                        const ts_proto_data *data, int n, ts_err *err);

const char *ts_msg_type_name(uint32_t type);
size_t ts_proto_tensor_bytes(const ts_tensor *t);

#endif
