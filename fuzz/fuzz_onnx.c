/* fuzz_onnx.c: libFuzzer target for the ONNX loader (ts_onnx_load_buffer)
 * and, for what loads, shape inference and planning at batch 1
 * (ts_graph_plan): any byte string must give a graph or a clear error,
 * never a crash, a leak or undefined behaviour. Built by -DTS_FUZZ=ON
 * (clang); fuzz/replay.c runs the same function over a corpus as a CTest
 * test in every build (docs/fuzzing.md). */
#include <stddef.h>
#include <stdint.h>

#include "tessera/graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ts_err e = {0};
    ts_graph *g = ts_onnx_load_buffer(data, size, &e);
    if (g) {
        ts_err pe = {0};
        (void)ts_graph_plan(g, 1, 0, &pe);
    }
    ts_graph_free(g);
    return 0;
}
