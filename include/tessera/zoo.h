/*
 * zoo.h: builders for the models Tessera uses.
 *
 * - "fashion-cnn": 1x28x28 -> two [conv3x3 + BN + ReLU + maxpool2] blocks
 *   (32 and 64 channels), dense 3136->128 + ReLU + dropout, dense 128->10.
 * - "lenet5": 1x28x28 LeNet-5 (conv5x5 pad 2 ->6, avgpool, conv5x5 ->16,
 *   avgpool, dense 400->120->84->10), ReLU.
 * - "alexnet", "vgg16", "resnet18": the torchvision layouts at 3x224x224
 *   with 1000 classes, random (He) initialization: for speed work, where
 *   the weights do not matter.
 * Weights are He-normal, biases zero, BN scale 1 / shift 0 / mean 0 / var 1,
 * drawn from a ts_rng seeded with `seed`, so a build is reproducible. The
 * graph input is named "input" with a dynamic batch dimension; the output is
 * the last dense layer's logits (no softmax: training applies softmax
 * cross-entropy).
 */
#ifndef TESSERA_ZOO_H
#define TESSERA_ZOO_H

#include "tessera/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns an owned graph (free with ts_graph_free) or NULL with err. */
ts_graph *ts_zoo_build(const char *name, uint64_t seed, ts_err *err);
/* Names accepted by ts_zoo_build, NULL-terminated. */
extern const char *const ts_zoo_names[];

#ifdef __cplusplus
}
#endif
#endif
