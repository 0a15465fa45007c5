/* tasks.h: the worker's blob store and task kernels (private to runtime/).
 * Blobs keep the ZeroMQ frames they arrived in (no copy); task outputs are
 * allocated with ts_alloc so that they can be handed to ZeroMQ unchanged. */
#ifndef TS_RUNTIME_TASKS_H
#define TS_RUNTIME_TASKS_H

#include "runtime/proto.h"

/* One stored blob: its tensors and the frames they arrived in. Several keys
 * may name it (ALIAS: pipeline lanes deploying the same share), so it is
 * counted and freed when its last key goes. */
typedef struct {
    int refs;
    int n;
    ts_tensor t[TS_RT_MAX_TENSORS];
    zmq_msg_t frames[TS_RT_MAX_TENSORS];
    size_t bytes;
} ts_blob;

typedef struct {
    ts_blob_key key;
    ts_blob *blob;
} ts_blob_entry;

typedef struct {
    ts_blob_entry *ent;
    int n, cap;
    size_t bytes, max_bytes; /* bytes: distinct blobs only (an alias is free) */
    float *ws;               /* conv scratch, grown once to the largest need and reused */
    size_t ws_floats;
} ts_blob_store;

void ts_store_init(ts_blob_store *s, size_t max_bytes);
void ts_store_clear(ts_blob_store *s);
/* Takes the tensor frames of a decoded DEPLOY (parts first+1.. of in) into
 * the store, replacing a blob with the same key. */
ts_status ts_store_put(ts_blob_store *s, ts_proto_in *in, int first, const ts_proto_msg *msg,
                       ts_err *err);
/* Makes key dst name the blob that key src names now (replacing what dst
 * named). Later changes to src do not move dst. TS_ERR_INVALID when src is
 * not stored. */
ts_status ts_store_alias(ts_blob_store *s, ts_blob_key src, ts_blob_key dst, ts_err *err);

/* Runs a decoded TASK on its input views. outs[i].data come from ts_alloc and
 * belong to the caller; *flops is the arithmetic the task did (for the
 * device-speed emulation). No output may exceed max_out_bytes. */
ts_status ts_task_run(ts_blob_store *s, const ts_proto_task *t, const ts_tensor *inputs,
                      int n_inputs, size_t max_out_bytes, ts_tensor *outs, int *n_outs,
                      double *flops, ts_err *err);

#endif
