/* fuzz_proto.c: libFuzzer target for the wire protocol's decoder
 * (ts_proto_decode, src/runtime/proto.c), which master and workers run on
 * every message a peer sends. The input is one message's frames
 * (fuzz_frames.h). A decoded message's tensor views are read to the end, so
 * a view past its frame is caught by ASan. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_frames.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile float sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ts_proto_in in;
    int first = fuzz_frames(data, size, &in);
    ts_proto_msg m;
    ts_err e = {0};
    if (first >= 0 && ts_proto_decode(&in, first, (size_t)1 << 20, &m, &e) == TS_OK) {
        float acc = 0;
        for (int t = 0; t < m.n_tensors; t++)
            for (int64_t j = 0; j < m.tensors[t].size; j++)
                acc += m.tensors[t].data[j];
        sink = acc;
    }
    ts_proto_in_close(&in);
    return 0;
}
