/* onnx_internal.h: helpers shared by the ONNX loader (onnx.c) and writer
 * (onnx_save.c); private to src/graph/. */
#ifndef TS_ONNX_INTERNAL_H
#define TS_ONNX_INTERNAL_H

#include "tessera/graph.h"

/* Caps on what a model file may ask us to allocate, checked before any
 * allocation: a protobuf message cannot exceed 2 GiB anyway, and no model
 * Tessera targets has a tensor above 2^28 floats (1 GiB). */
#define TS_ONNX_MAX_FILE_BYTES ((size_t)2 << 30)
#define TS_ONNX_MAX_TENSOR_ELEMS ((int64_t)1 << 28)
/* Nodes (and initializers) per model: the largest CNNs have ~1000; building
 * a graph costs O(values^2) name look-ups, so a hostile file with millions
 * of nodes would otherwise stall the loader for hours. */
#define TS_ONNX_MAX_NODES (1 << 15)
/* Kernel sizes, strides, pads and dilations beyond this are hostile. */
#define TS_ONNX_MAX_WINDOW_PARAM (1 << 24)

/* Infers the output shape of one node from its input shapes. A dimension of
 * -1 is not known before planning (the batch) and propagates as -1. in[i]
 * is NULL for an absent optional input. On a mismatch fills err (the
 * caller adds the node's name). */
ts_status ts_onnx_infer_shape(ts_op op, const ts_node_attrs *a, const ts_shape *const *in, int n_in,
                              ts_shape *out, ts_err *err);

/* "FLOAT", "UINT8", ... for a TensorProto.DataType value. */
const char *ts_onnx_dtype_name(int32_t dtype);

#endif
