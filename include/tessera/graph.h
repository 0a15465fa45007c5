/*
 * graph.h: a model as a graph of named values and nodes, planned once and
 * executed many times (forward for inference, forward+backward for
 * training).
 *
 * Values are numbered: graph inputs, initializers (weights; owned by the
 * graph) and node outputs. Nodes are kept in topological order (a node may
 * only consume values defined before it), which is what ONNX requires too.
 *
 * Planning (ts_graph_plan) infers every shape for a batch size, allocates
 * each activation, gradient and scratch buffer once, and after that
 * forward/backward allocate nothing. A shape error found while planning
 * names the node.
 *
 * The layer executor is the one seam where distribution enters the engine:
 * conv and dense nodes are run through it (local by default; coded and
 * distributed executors live in coded/ and runtime/).
 */
#ifndef TESSERA_GRAPH_H
#define TESSERA_GRAPH_H

#include "tessera/core.h"
#include "tessera/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TS_OP_CONV,
    TS_OP_MAXPOOL,
    TS_OP_AVGPOOL,
    TS_OP_GLOBALAVGPOOL,
    TS_OP_RELU,
    TS_OP_LEAKYRELU,
    TS_OP_BATCHNORM,
    TS_OP_GEMM,    /* ONNX Gemm (dense layers) */
    TS_OP_MATMUL,  /* ONNX MatMul, 2-D */
    TS_OP_FLATTEN, /* ONNX Flatten(axis) */
    TS_OP_RESHAPE, /* ONNX Reshape; target shape in attrs */
    TS_OP_ADD,
    TS_OP_CONCAT,
    TS_OP_SOFTMAX,
    TS_OP_DROPOUT,
    TS_OP_IDENTITY,
    TS_OP_COUNT
} ts_op;

const char *ts_op_name(ts_op op); /* ONNX op_type, e.g. "Conv" */

typedef struct {
    ts_conv2d_params conv;   /* TS_OP_CONV */
    ts_pool2d_params pool;   /* MAXPOOL, AVGPOOL */
    float alpha, beta;       /* GEMM alpha/beta, LEAKYRELU alpha */
    int trans_a, trans_b;    /* GEMM */
    int axis;                /* FLATTEN, CONCAT, SOFTMAX */
    float epsilon, momentum; /* BATCHNORM */
    float ratio;             /* DROPOUT */
    int shape_ndim;          /* RESHAPE target (ONNX: 0 copies, -1 infers) */
    int64_t shape[TS_MAX_DIMS];
    int allowzero; /* RESHAPE */
} ts_node_attrs;

/* Attributes with ONNX defaults (stride 1, alpha 1, epsilon 1e-5, ...). */
ts_node_attrs ts_node_attrs_default(ts_op op);

typedef enum { TS_VALUE_INPUT, TS_VALUE_INIT, TS_VALUE_NODE } ts_value_kind;

typedef struct ts_graph ts_graph;

/* ---- building --------------------------------------------------------- */

ts_graph *ts_graph_new(void);
void ts_graph_free(ts_graph *g); /* accepts NULL; frees initializers too */

/* A graph input; shape[0] may be -1 (batch, fixed by ts_graph_plan).
 * Returns the value id, or -1 with err filled. */
int ts_graph_add_input(ts_graph *g, const char *name, const ts_shape *shape, ts_err *err);
/* An initializer (weight). The graph takes ownership of t in every case,
 * also on failure. trainable = 0 for BN running statistics. */
int ts_graph_add_init(ts_graph *g, const char *name, ts_tensor *t, int trainable, ts_err *err);
/* A node with n_in inputs (value ids; -1 for an absent optional input) and
 * one output named out_name. Returns the output value id or -1. */
int ts_graph_add_node(ts_graph *g, ts_op op, const char *name, const int *inputs, int n_in,
                      const char *out_name, const ts_node_attrs *attrs, ts_err *err);
ts_status ts_graph_set_output(ts_graph *g, int value, ts_err *err);
int ts_graph_find(const ts_graph *g, const char *name); /* value id or -1 */

/* ---- reading (for ONNX export, inspect, the planner) ------------------ */

typedef struct {
    ts_op op;
    const char *name;
    int n_in;
    const int *inputs;
    int output;
    const ts_node_attrs *attrs;
} ts_node_view;

typedef struct {
    const char *name;
    ts_value_kind kind;
    ts_shape shape;        /* declared (inputs, inits) or planned shape */
    const ts_tensor *init; /* initializer data, else NULL */
    int trainable;
} ts_value_view;

int ts_graph_num_nodes(const ts_graph *g);
ts_node_view ts_graph_node(const ts_graph *g, int i);
int ts_graph_num_values(const ts_graph *g);
ts_value_view ts_graph_value(const ts_graph *g, int id);
int ts_graph_input(const ts_graph *g); /* the first data input id, or -1 */
/* Graphs may have several run-time inputs (ONNX test graphs feed weights as
 * inputs); they are fed in declaration order to ts_graph_forward_multi. */
int ts_graph_num_inputs(const ts_graph *g);
int ts_graph_input_at(const ts_graph *g, int i);
int ts_graph_output(const ts_graph *g); /* output value id */
/* Mutable access to an initializer (training updates it in place). */
ts_tensor *ts_graph_init_tensor(ts_graph *g, int id);

/* ---- layer executor: where distribution enters ------------------------ */

typedef struct ts_layer_executor {
    /* Both may be NULL (then the local kernel runs). node is the node index. */
    ts_status (*conv)(void *ctx, int node, const ts_conv2d_params *p, const ts_tensor *x,
                      const ts_tensor *w, const ts_tensor *b, ts_tensor *y, ts_err *err);
    ts_status (*gemm)(void *ctx, int node, const ts_node_attrs *a, const ts_tensor *x,
                      const ts_tensor *w, const ts_tensor *c, ts_tensor *y, ts_err *err);
    void *ctx;
} ts_layer_executor;

/* NULL restores local execution. The executor is borrowed. */
void ts_graph_set_executor(ts_graph *g, const ts_layer_executor *ex);

/* ---- planning and execution ------------------------------------------- */

/* Infers shapes for this batch size (it replaces a -1 leading dimension of
 * each input; fixed dimensions are used as declared) and allocates every
 * buffer once. Inference plans reuse activation memory by liveness and run
 * element-wise ops in place, so peak memory is about the weights plus the two
 * largest live activations plus the largest scratch buffer. With
 * training = 1 also gradient buffers and BN/dropout training state. Can be
 * called again to re-plan (different batch or mode). */
ts_status ts_graph_plan(ts_graph *g, int batch, int training, ts_err *err);
/* Runs the forward pass; input must have the planned input shape. */
ts_status ts_graph_forward(ts_graph *g, const ts_tensor *input, ts_err *err);
/* Runs forward with one tensor per graph input, in declaration order. */
ts_status ts_graph_forward_multi(ts_graph *g, const ts_tensor *const *inputs, int n, ts_err *err);
/* Forward that also adds each node's wall time (seconds) to
 * node_seconds[i] (an array of ts_graph_num_nodes doubles). */
ts_status ts_graph_forward_profiled(ts_graph *g, const ts_tensor *input, double *node_seconds,
                                    ts_err *err);
/* The output of the last forward (owned by the graph). */
const ts_tensor *ts_graph_result(const ts_graph *g);
/* Any planned value's tensor after forward (owned by the graph), or NULL. */
const ts_tensor *ts_graph_value_tensor(const ts_graph *g, int id);
/* Backward from d(loss)/d(output); fills parameter gradients (zeroed first). */
ts_status ts_graph_backward(ts_graph *g, const ts_tensor *doutput, ts_err *err);
/* Trainable parameters and their gradients (valid after a training plan). */
int ts_graph_num_params(const ts_graph *g);
ts_tensor *ts_graph_param(ts_graph *g, int i);
ts_tensor *ts_graph_param_grad(ts_graph *g, int i);
const char *ts_graph_param_name(const ts_graph *g, int i);
/* Seed for dropout masks (training). */
void ts_graph_set_seed(ts_graph *g, uint64_t seed);

/* Bytes held by planned buffers: activations, scratch, gradients. */
size_t ts_graph_planned_bytes(const ts_graph *g);
/* Multiply-accumulates of a node for the planned batch (0 for cheap ops). */
int64_t ts_graph_node_macs(const ts_graph *g, int node);

/* Folds every Conv followed by an inference BatchNorm into the conv
 * (weights rewritten, BN becomes Identity); for inference only. */
ts_status ts_graph_fold_batchnorm(ts_graph *g, ts_err *err);

/* Makes g's initializers views of src's, for copies of one model that only
 * run forward side by side (pipeline lanes): g's own copies are freed.
 * Every initializer of g must have one in src with the same name, shape and
 * values, else nothing is shared and TS_ERR_INVALID names the first that
 * differs. Afterwards src must outlive g, and neither may be trained or
 * refolded; g must be planned (again). */
ts_status ts_graph_share_weights(ts_graph *g, const ts_graph *src, ts_err *err);

/* ---- ONNX (onnx.c) ---------------------------------------------------- */

/* Loads an ONNX model. Unsupported ops, opsets, data types or dynamic shapes
 * are refused with a message naming them and the node; truncated or corrupt
 * files are refused. Returns NULL with err filled on failure. */
ts_graph *ts_onnx_load(const char *path, ts_err *err);
ts_graph *ts_onnx_load_buffer(const void *buf, size_t len, ts_err *err);
/* Saves as ONNX (opset 13, IR version 7) that onnx.checker accepts. */
ts_status ts_onnx_save(const ts_graph *g, const char *path, ts_err *err);

#ifdef __cplusplus
}
#endif
#endif
