/* fuzz_worker.c: libFuzzer target for what a worker does with the messages
 * it is sent (src/runtime/worker.c's handlers, without the socket): DEPLOY
 * stores blobs, ALIAS names them again, TASK runs a conv, gemm or echo on
 * the stored blobs and the task's input frames (ts_task_run). The input is a
 * sequence of messages, each a 2-byte little-endian length and that many
 * bytes in fuzz_frames.h's format; one blob store lives through the
 * sequence, as in a worker. Whatever a master sends must give a result or
 * an error status, never a crash, a leak or undefined behaviour (this target
 * checks the latter under ASan/UBSan; the answers themselves are not
 * compared with anything). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_frames.h"
#include "runtime/tasks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Outputs above this are refused, as a worker refuses frames over its
 * max_frame_bytes (kept small so that hostile shapes stay quick). */
#define FUZZ_MAX_OUT ((size_t)1 << 20)

static void run_message(ts_blob_store *store, const uint8_t *data, size_t size) {
    ts_proto_in in;
    int first = fuzz_frames(data, size, &in);
    ts_proto_msg m;
    ts_err e = {0};
    if (first < 0 || ts_proto_decode(&in, first, FUZZ_MAX_OUT, &m, &e) != TS_OK) {
        ts_proto_in_close(&in);
        return;
    }
    if (m.h.type == TS_MSG_DEPLOY) {
        (void)ts_store_put(store, &in, first, &m, &e);
    } else if (m.h.type == TS_MSG_ALIAS) {
        (void)ts_store_alias(store, m.u.alias.src, m.u.alias.dst, &e);
    } else if (m.h.type == TS_MSG_TASK) {
        ts_tensor outs[TS_RT_MAX_PAIRS > TS_RT_MAX_TENSORS ? TS_RT_MAX_PAIRS : TS_RT_MAX_TENSORS];
        int n_outs = 0;
        double flops = 0;
        if (ts_task_run(store, &m.u.task, m.tensors, m.n_tensors, FUZZ_MAX_OUT, outs, &n_outs,
                        &flops, &e) == TS_OK)
            for (int i = 0; i < n_outs; i++)
                ts_free(outs[i].data);
    }
    ts_proto_in_close(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ts_blob_store store;
    ts_store_init(&store, FUZZ_MAX_OUT);
    for (size_t at = 0; size - at >= 2;) {
        size_t len = (size_t)data[at] | (size_t)data[at + 1] << 8;
        at += 2;
        if (len > size - at) len = size - at;
        run_message(&store, data + at, len);
        at += len;
    }
    ts_store_clear(&store);
    return 0;
}
