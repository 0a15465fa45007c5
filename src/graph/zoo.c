/* zoo.c: model builders (see zoo.h). */
#include "tessera/zoo.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const ts_zoo_names[] = {"fashion-cnn", "lenet5", "alexnet", "vgg16", "resnet18", NULL};

/* A builder threads the current value, a layer counter and the first error
 * through the helpers below, so model definitions read like a layer list. */
typedef struct {
    ts_graph *g;
    ts_rng rng;
    int cur;     /* current value id */
    int64_t c;   /* current channel count (or features after flatten) */
    int counter; /* for unique names */
    ts_status st;
    ts_err *err;
} builder;

static const char *uname(builder *b, const char *kind, char *buf, size_t len) {
    snprintf(buf, len, "%s%d", kind, ++b->counter);
    return buf;
}

static int add_param(builder *b, const char *node, const char *what, ts_shape s, float stddev,
                     float fill, int trainable) {
    if (b->st != TS_OK) return -1;
    ts_tensor *t = ts_tensor_new(&s, b->err);
    if (!t) {
        b->st = TS_ERR_NOMEM;
        return -1;
    }
    if (stddev > 0)
        ts_rng_fill_normal(&b->rng, t->data, t->size, stddev);
    else
        ts_tensor_fill(t, fill);
    char name[128];
    snprintf(name, sizeof name, "%s.%s", node, what);
    int id = ts_graph_add_init(b->g, name, t, trainable, b->err);
    if (id < 0) b->st = b->err ? b->err->status : TS_ERR_INVALID;
    return id;
}

static int add_node(builder *b, ts_op op, const char *name, const int *in, int n,
                    const ts_node_attrs *a) {
    if (b->st != TS_OK) return -1;
    char out[160];
    snprintf(out, sizeof out, "%s.out", name);
    int id = ts_graph_add_node(b->g, op, name, in, n, out, a, b->err);
    if (id < 0)
        b->st = b->err ? b->err->status : TS_ERR_INVALID;
    else
        b->cur = id;
    return id;
}

static void conv(builder *b, int64_t out_c, int k, int stride, int pad, int bias) {
    char name[64];
    uname(b, "conv", name, sizeof name);
    float he = sqrtf(2.0f / (float)(b->c * k * k));
    int in[3] = {b->cur, add_param(b, name, "weight", ts_shape4(out_c, b->c, k, k), he, 0, 1), -1};
    int64_t d[1] = {out_c};
    if (bias) in[2] = add_param(b, name, "bias", ts_shape_make(1, d), 0, 0.0f, 1);
    ts_node_attrs a = ts_node_attrs_default(TS_OP_CONV);
    a.conv.stride_h = a.conv.stride_w = stride;
    a.conv.pad_t = a.conv.pad_l = a.conv.pad_b = a.conv.pad_r = pad;
    add_node(b, TS_OP_CONV, name, in, bias ? 3 : 2, &a);
    b->c = out_c;
}

static void batchnorm(builder *b) {
    char name[64];
    uname(b, "bn", name, sizeof name);
    int64_t d[1] = {b->c};
    ts_shape s = ts_shape_make(1, d);
    int in[5] = {b->cur, add_param(b, name, "scale", s, 0, 1.0f, 1),
                 add_param(b, name, "bias", s, 0, 0.0f, 1),
                 add_param(b, name, "mean", s, 0, 0.0f, 0),
                 add_param(b, name, "var", s, 0, 1.0f, 0)};
    ts_node_attrs a = ts_node_attrs_default(TS_OP_BATCHNORM);
    add_node(b, TS_OP_BATCHNORM, name, in, 5, &a);
}

static void unary(builder *b, ts_op op, const char *kind) {
    char name[64];
    uname(b, kind, name, sizeof name);
    int in[1] = {b->cur};
    ts_node_attrs a = ts_node_attrs_default(op);
    add_node(b, op, name, in, 1, &a);
}

static void pool(builder *b, ts_op op, int k, int stride, int pad) {
    char name[64];
    uname(b, op == TS_OP_MAXPOOL ? "maxpool" : "avgpool", name, sizeof name);
    int in[1] = {b->cur};
    ts_node_attrs a = ts_node_attrs_default(op);
    a.pool.kh = a.pool.kw = k;
    a.pool.stride_h = a.pool.stride_w = stride;
    a.pool.pad_t = a.pool.pad_l = a.pool.pad_b = a.pool.pad_r = pad;
    add_node(b, op, name, in, 1, &a);
}

static void flatten(builder *b, int64_t features) {
    char name[64];
    uname(b, "flatten", name, sizeof name);
    int in[1] = {b->cur};
    ts_node_attrs a = ts_node_attrs_default(TS_OP_FLATTEN);
    a.axis = 1;
    add_node(b, TS_OP_FLATTEN, name, in, 1, &a);
    b->c = features;
}

static void dense(builder *b, int64_t out, const char *name_override) {
    char name[64];
    if (name_override)
        snprintf(name, sizeof name, "%s", name_override);
    else
        uname(b, "fc", name, sizeof name);
    float he = sqrtf(2.0f / (float)b->c);
    int64_t d[1] = {out};
    int in[3] = {b->cur, add_param(b, name, "weight", ts_shape2(out, b->c), he, 0, 1),
                 add_param(b, name, "bias", ts_shape_make(1, d), 0, 0.0f, 1)};
    ts_node_attrs a = ts_node_attrs_default(TS_OP_GEMM);
    a.trans_b = 1; /* weights stored [out, in], as PyTorch exports them */
    add_node(b, TS_OP_GEMM, name, in, 3, &a);
    b->c = out;
}

static void dropout(builder *b, float ratio) {
    char name[64];
    uname(b, "dropout", name, sizeof name);
    int in[1] = {b->cur};
    ts_node_attrs a = ts_node_attrs_default(TS_OP_DROPOUT);
    a.ratio = ratio;
    add_node(b, TS_OP_DROPOUT, name, in, 1, &a);
}

static void conv_bn_relu(builder *b, int64_t out_c, int k, int stride, int pad) {
    conv(b, out_c, k, stride, pad, 0);
    batchnorm(b);
    unary(b, TS_OP_RELU, "relu");
}

static void build_fashion_cnn(builder *b) {
    conv(b, 32, 3, 1, 1, 1);
    batchnorm(b);
    unary(b, TS_OP_RELU, "relu");
    pool(b, TS_OP_MAXPOOL, 2, 2, 0);
    conv(b, 64, 3, 1, 1, 1);
    batchnorm(b);
    unary(b, TS_OP_RELU, "relu");
    pool(b, TS_OP_MAXPOOL, 2, 2, 0);
    flatten(b, 64 * 7 * 7);
    dense(b, 128, NULL);
    unary(b, TS_OP_RELU, "relu");
    dropout(b, 0.3f);
    dense(b, 10, NULL);
}

static void build_lenet5(builder *b) {
    conv(b, 6, 5, 1, 2, 1);
    unary(b, TS_OP_RELU, "relu");
    pool(b, TS_OP_AVGPOOL, 2, 2, 0);
    conv(b, 16, 5, 1, 0, 1);
    unary(b, TS_OP_RELU, "relu");
    pool(b, TS_OP_AVGPOOL, 2, 2, 0);
    flatten(b, 16 * 5 * 5);
    dense(b, 120, NULL);
    unary(b, TS_OP_RELU, "relu");
    dense(b, 84, NULL);
    unary(b, TS_OP_RELU, "relu");
    dense(b, 10, NULL);
}

static void build_alexnet(builder *b) {
    static const struct {
        int64_t c;
        int k, s, p, pool_after;
    } L[] = {{64, 11, 4, 2, 1},
             {192, 5, 1, 2, 1},
             {384, 3, 1, 1, 0},
             {256, 3, 1, 1, 0},
             {256, 3, 1, 1, 1}};
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        conv(b, L[i].c, L[i].k, L[i].s, L[i].p, 1);
        unary(b, TS_OP_RELU, "relu");
        if (L[i].pool_after) pool(b, TS_OP_MAXPOOL, 3, 2, 0);
    }
    flatten(b, 256 * 6 * 6);
    dropout(b, 0.5f);
    dense(b, 4096, NULL);
    unary(b, TS_OP_RELU, "relu");
    dropout(b, 0.5f);
    dense(b, 4096, NULL);
    unary(b, TS_OP_RELU, "relu");
    dense(b, 1000, NULL);
}

static void build_vgg16(builder *b) {
    static const int64_t cfg[] = {64, 64,  0,   128, 128, 0,   256, 256, 256,
                                  0,  512, 512, 512, 0,   512, 512, 512, 0};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        if (cfg[i] == 0) {
            pool(b, TS_OP_MAXPOOL, 2, 2, 0);
            continue;
        }
        conv(b, cfg[i], 3, 1, 1, 1);
        unary(b, TS_OP_RELU, "relu");
    }
    flatten(b, 512 * 7 * 7);
    dense(b, 4096, NULL);
    unary(b, TS_OP_RELU, "relu");
    dropout(b, 0.5f);
    dense(b, 4096, NULL);
    unary(b, TS_OP_RELU, "relu");
    dropout(b, 0.5f);
    dense(b, 1000, NULL);
}

/* ResNet basic block: two 3x3 convs with BN, identity or 1x1 projection. */
static void basic_block(builder *b, int64_t out_c, int stride) {
    int shortcut = b->cur;
    int64_t in_c = b->c;
    conv_bn_relu(b, out_c, 3, stride, 1);
    conv(b, out_c, 3, 1, 1, 0);
    batchnorm(b);
    int main_path = b->cur;
    if (stride != 1 || in_c != out_c) {
        b->cur = shortcut;
        b->c = in_c;
        conv(b, out_c, 1, stride, 0, 0);
        batchnorm(b);
        shortcut = b->cur;
    }
    char name[64];
    uname(b, "add", name, sizeof name);
    int in[2] = {main_path, shortcut};
    ts_node_attrs a = ts_node_attrs_default(TS_OP_ADD);
    add_node(b, TS_OP_ADD, name, in, 2, &a);
    b->c = out_c;
    unary(b, TS_OP_RELU, "relu");
}

static void build_resnet18(builder *b) {
    conv_bn_relu(b, 64, 7, 2, 3);
    pool(b, TS_OP_MAXPOOL, 3, 2, 1);
    static const int64_t widths[] = {64, 128, 256, 512};
    for (int s = 0; s < 4; s++) {
        basic_block(b, widths[s], s == 0 ? 1 : 2);
        basic_block(b, widths[s], 1);
    }
    unary(b, TS_OP_GLOBALAVGPOOL, "gap");
    flatten(b, 512);
    dense(b, 1000, NULL);
}

ts_graph *ts_zoo_build(const char *name, uint64_t seed, ts_err *err) {
    static const struct {
        const char *name;
        int64_t c, hw;
        void (*build)(builder *);
    } MODELS[] = {
        {"fashion-cnn", 1, 28, build_fashion_cnn}, {"lenet5", 1, 28, build_lenet5},
        {"alexnet", 3, 224, build_alexnet},        {"vgg16", 3, 224, build_vgg16},
        {"resnet18", 3, 224, build_resnet18},
    };
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) {
        if (strcmp(name, MODELS[i].name)) continue;
        builder b;
        memset(&b, 0, sizeof b);
        b.err = err;
        b.g = ts_graph_new();
        if (!b.g) {
            ts_errorf(err, TS_ERR_NOMEM, "out of memory building %s", name);
            return NULL;
        }
        ts_rng_seed(&b.rng, seed);
        ts_shape in = ts_shape4(-1, MODELS[i].c, MODELS[i].hw, MODELS[i].hw);
        b.cur = ts_graph_add_input(b.g, "input", &in, err);
        b.c = MODELS[i].c;
        if (b.cur < 0) b.st = TS_ERR_INVALID;
        MODELS[i].build(&b);
        if (b.st == TS_OK) {
            ts_graph_set_output(b.g, b.cur, err);
            return b.g;
        }
        ts_graph_free(b.g);
        return NULL;
    }
    ts_errorf(err, TS_ERR_INVALID,
              "unknown model '%s' (known: fashion-cnn, lenet5, alexnet, vgg16, resnet18)", name);
    return NULL;
}
