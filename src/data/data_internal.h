/* data_internal.h: the dataset struct, shared by idx.c and batcher.c. */
#ifndef TS_DATA_INTERNAL_H
#define TS_DATA_INTERNAL_H

#include "tessera/data.h"

struct ts_dataset {
    int64_t count;
    int c, h, w;
    uint8_t *pixels; /* count * c * h * w bytes, as in the file */
    int32_t *labels; /* count labels, or NULL */
    int num_classes;
    int fmnist; /* 1: class names are Fashion-MNIST's */
};

#endif
