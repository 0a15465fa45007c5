/* test_data.c: IDX datasets (the real Fashion-MNIST and hostile files),
 * the batcher, and PGM/PPM images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "tessera/data.h"
#include "ts_test.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    TS_CHECK(f != NULL);
    if (!f) return;
    TS_CHECK(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static void write_gz(const char *path, const void *data, size_t len) {
    gzFile gz = gzopen(path, "wb");
    TS_CHECK(gz != NULL);
    if (!gz) return;
    TS_CHECK(gzwrite(gz, data, (unsigned)len) == (int)len);
    gzclose(gz);
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* An IDX header: magic 00 00 type ndim, then big-endian dims. */
static size_t idx_header(uint8_t *p, int type, int ndim, const uint32_t *dims) {
    p[0] = 0, p[1] = 0, p[2] = (uint8_t)type, p[3] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        p[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        p[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        p[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        p[7 + 4 * i] = (uint8_t)dims[i];
    }
    return 4 + 4 * (size_t)ndim;
}

/* Writes a small valid image file (count x rows x cols, pixel = index) and
 * labels (i % classes); returns nothing, files land in tmpdir. */
static void write_small_idx(const char *img, const char *lbl, uint32_t count, uint32_t rows,
                            uint32_t cols, int classes, int gz) {
    size_t n = (size_t)count * rows * cols;
    uint8_t *b = malloc(16 + n);
    uint32_t d[3] = {count, rows, cols};
    size_t h = idx_header(b, 8, 3, d);
    for (size_t i = 0; i < n; i++)
        b[h + i] = (uint8_t)(i % 251);
    if (gz)
        write_gz(img, b, h + n);
    else
        write_file(img, b, h + n);
    free(b);
    if (!lbl) return;
    uint8_t *l = malloc(8 + count);
    h = idx_header(l, 8, 1, &count);
    for (uint32_t i = 0; i < count; i++)
        l[h + i] = (uint8_t)(i % (uint32_t)classes);
    if (gz)
        write_gz(lbl, l, h + count);
    else
        write_file(lbl, l, h + count);
    free(l);
}

static void test_fmnist_real(void) {
    ts_err err = {0};
    int scaled = getenv("TS_SANITIZED") != NULL;
    ts_dataset *test = ts_fmnist_load(NULL, "test", &err);
    TS_CHECK_MSG(test != NULL, "%s", err.msg);
    if (!test) return;
    TS_CHECK(ts_dataset_count(test) == 10000);
    TS_CHECK(ts_dataset_channels(test) == 1 && ts_dataset_height(test) == 28 &&
             ts_dataset_width(test) == 28);
    TS_CHECK(ts_dataset_num_classes(test) == 10);
    int hist[10] = {0};
    const int32_t *lab = ts_dataset_labels(test);
    for (int64_t i = 0; i < ts_dataset_count(test); i++)
        hist[lab[i]]++;
    for (int k = 0; k < 10; k++)
        TS_CHECK_MSG(hist[k] == 1000, "class %d: %d", k, hist[k]);
    TS_CHECK(!strcmp(ts_dataset_class_name(test, 9), "Ankle boot"));
    TS_CHECK(ts_dataset_class_name(test, 10) == NULL);
    /* the first test image is an ankle boot (label 9) with a dark border */
    TS_CHECK(lab[0] == 9);
    TS_CHECK(ts_dataset_pixels(test, 0)[0] == 0);
    /* mean of normalized pixels over the test set is near 0 (the train
     * set's statistics are used) */
    float *x = malloc(784 * sizeof(float));
    double sum = 0;
    for (int64_t i = 0; i < 1000; i++) {
        ts_dataset_get(test, i, x);
        for (int k = 0; k < 784; k++)
            sum += x[k];
    }
    free(x);
    TS_CHECK_NEAR(sum / (1000.0 * 784), 0.0, 0.05);
    ts_dataset_free(test);
    if (scaled) return;
    ts_dataset *train = ts_fmnist_load(NULL, "train", &err);
    TS_CHECK_MSG(train != NULL, "%s", err.msg);
    if (!train) return;
    TS_CHECK(ts_dataset_count(train) == 60000);
    memset(hist, 0, sizeof hist);
    lab = ts_dataset_labels(train);
    for (int64_t i = 0; i < 60000; i++)
        hist[lab[i]]++;
    for (int k = 0; k < 10; k++)
        TS_CHECK_MSG(hist[k] == 6000, "class %d: %d", k, hist[k]);
    ts_dataset_free(train);
}

static void test_fmnist_bad_split_and_dir(void) {
    ts_err err = {0};
    TS_CHECK(ts_fmnist_load(NULL, "validation", &err) == NULL);
    TS_CHECK(strstr(err.msg, "unknown split") != NULL);
    TS_CHECK(ts_fmnist_load(tmpdir, "test", &err) == NULL);
    TS_CHECK(err.status == TS_ERR_IO && strstr(err.msg, "cannot open") != NULL);
}

static void test_small_idx_plain_and_gz(void) {
    ts_err err = {0};
    for (int gz = 0; gz < 2; gz++) {
        const char *img = tmp_path(gz ? "s-img.gz" : "s-img"),
                   *lbl = tmp_path(gz ? "s-lbl.gz" : "s-lbl");
        write_small_idx(img, lbl, 7, 3, 5, 4, gz);
        ts_dataset *ds = ts_dataset_load_idx(img, lbl, &err);
        TS_CHECK_MSG(ds != NULL, "%s", err.msg);
        if (!ds) continue;
        TS_CHECK(ts_dataset_count(ds) == 7 && ts_dataset_height(ds) == 3 &&
                 ts_dataset_width(ds) == 5 && ts_dataset_channels(ds) == 1);
        TS_CHECK(ts_dataset_num_classes(ds) == 4);
        TS_CHECK(ts_dataset_labels(ds)[6] == 2);
        TS_CHECK(ts_dataset_pixels(ds, 2)[1] == 31);
        TS_CHECK(ts_dataset_class_name(ds, 0) == NULL);
        float x[15];
        ts_dataset_get(ds, 2, x);
        TS_CHECK_NEAR(x[1], (31 / 255.0 - TS_DATA_MEAN) / TS_DATA_STD, 1e-5);
        ts_dataset *sub = ts_dataset_subset(ds, 5, 2, &err);
        TS_CHECK(sub && ts_dataset_count(sub) == 2 && ts_dataset_labels(sub)[0] == 1 &&
                 ts_dataset_pixels(sub, 0)[0] == ts_dataset_pixels(ds, 5)[0]);
        ts_dataset_free(sub);
        TS_CHECK(ts_dataset_subset(ds, 6, 2, &err) == NULL);
        TS_CHECK(ts_dataset_subset(ds, -1, 1, &err) == NULL);
        ts_dataset_free(ds);
    }
    /* 4-D [count, channels, rows, cols], no labels */
    uint8_t b[20 + 2 * 3 * 2 * 2];
    uint32_t d[4] = {2, 3, 2, 2};
    size_t h = idx_header(b, 8, 4, d);
    memset(b + h, 200, 24);
    write_file(tmp_path("four"), b, h + 24);
    ts_dataset *ds = ts_dataset_load_idx(tmp_path("four"), NULL, &err);
    TS_CHECK_MSG(ds != NULL, "%s", err.msg);
    if (ds) {
        TS_CHECK(ts_dataset_channels(ds) == 3 && ts_dataset_labels(ds) == NULL &&
                 ts_dataset_num_classes(ds) == 0);
        ts_dataset_free(ds);
    }
}

/* Expects loading to fail with a message containing want. */
static void expect_idx_fail(const char *img, const char *lbl, const char *want) {
    ts_err err = {0};
    ts_dataset *ds = ts_dataset_load_idx(img, lbl, &err);
    TS_CHECK_MSG(ds == NULL, "%s loaded but should fail (%s)", img, want);
    TS_CHECK_MSG(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    ts_dataset_free(ds);
}

static void test_hostile_idx(void) {
    uint8_t b[64];
    uint32_t d[4] = {2, 3, 3, 0};
    size_t h;
    write_file(tmp_path("empty"), "", 0);
    expect_idx_fail(tmp_path("empty"), NULL, "too short");
    expect_idx_fail(tmp_path("does-not-exist"), NULL, "cannot open");
    write_file(tmp_path("magic"), "\x01\x02\x08\x03garbage", 11);
    expect_idx_fail(tmp_path("magic"), NULL, "not an IDX file");
    h = idx_header(b, 0x0D, 3, d); /* float data */
    write_file(tmp_path("type"), b, h + 18);
    expect_idx_fail(tmp_path("type"), NULL, "not supported");
    write_file(tmp_path("ndim"), "\x00\x00\x08\x07", 4);
    expect_idx_fail(tmp_path("ndim"), NULL, "dimensions");
    h = idx_header(b, 8, 3, d);
    write_file(tmp_path("hdr"), b, h - 2);
    expect_idx_fail(tmp_path("hdr"), NULL, "header is truncated");
    uint32_t zero[3] = {0, 28, 28};
    h = idx_header(b, 8, 3, zero);
    write_file(tmp_path("zero"), b, h);
    expect_idx_fail(tmp_path("zero"), NULL, "dimension 0 is 0");
    uint32_t many[3] = {100000000u, 28, 28};
    h = idx_header(b, 8, 3, many);
    write_file(tmp_path("many"), b, h);
    expect_idx_fail(tmp_path("many"), NULL, "allowed 1..");
    uint32_t wide[3] = {10, 5000, 28};
    h = idx_header(b, 8, 3, wide);
    write_file(tmp_path("wide"), b, h);
    expect_idx_fail(tmp_path("wide"), NULL, "dimension 1 is 5000");
    /* within every per-dimension cap but over the byte cap */
    uint32_t big[3] = {9000000u, 400, 400};
    h = idx_header(b, 8, 3, big);
    write_file(tmp_path("big"), b, h);
    expect_idx_fail(tmp_path("big"), NULL, "cap");
    /* a header promising 60000x28x28 in a file of a few bytes: refused
     * without allocating the promised 47 MB up front */
    uint32_t lie[3] = {60000, 28, 28};
    h = idx_header(b, 8, 3, lie);
    memset(b + h, 1, 10);
    write_gz(tmp_path("lie.gz"), b, h + 10);
    expect_idx_fail(tmp_path("lie.gz"), NULL, "truncated");
    h = idx_header(b, 8, 3, d);
    memset(b + h, 1, 19);
    write_file(tmp_path("trail"), b, h + 19);
    expect_idx_fail(tmp_path("trail"), NULL, "trailing");
    /* labels: wrong count, wrong rank */
    write_small_idx(tmp_path("i5"), tmp_path("l5"), 5, 2, 2, 3, 0);
    write_small_idx(tmp_path("i6"), tmp_path("l6"), 6, 2, 2, 3, 0);
    expect_idx_fail(tmp_path("i5"), tmp_path("l6"), "6 labels for 5 images");
    expect_idx_fail(tmp_path("i5"), tmp_path("i5"), "1 dimension");
    expect_idx_fail(tmp_path("l5"), NULL, "3 dimensions");
}

static void test_corrupt_gzip(void) {
    /* cut and damaged copies of the real compressed test labels */
    char src[512];
    snprintf(src, sizeof src, "%s/t10k-labels-idx1-ubyte.gz", ts_fmnist_default_dir());
    size_t len = 0;
    uint8_t *b = read_file(src, &len);
    TS_CHECK(b != NULL && len > 1000);
    if (!b) return;
    write_file(tmp_path("cut.gz"), b, len / 2);
    expect_idx_fail(tmp_path("cut.gz"), NULL, "");
    ts_err err = {0};
    TS_CHECK(ts_dataset_load_idx(tmp_path("cut.gz"), NULL, &err) == NULL);
    TS_CHECK(err.status == TS_ERR_FORMAT);
    for (size_t i = len / 3; i < len / 3 + 64; i++)
        b[i] ^= 0x5A;
    write_file(tmp_path("bad.gz"), b, len);
    TS_CHECK(ts_dataset_load_idx(tmp_path("bad.gz"), NULL, &err) == NULL);
    TS_CHECK_MSG(err.status == TS_ERR_FORMAT && strstr(err.msg, "bad.gz") != NULL, "%s", err.msg);
    free(b);
    /* a Fashion-MNIST directory whose files have the wrong geometry or
     * labels out of range */
    char dir[300];
    snprintf(dir, sizeof dir, "%s/fm", tmpdir);
    TS_CHECK(mkdir(dir, 0777) == 0);
    char img[400], lbl[400];
    snprintf(img, sizeof img, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(lbl, sizeof lbl, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_small_idx(img, lbl, 4, 28, 27, 10, 1);
    TS_CHECK(ts_fmnist_load(dir, "test", &err) == NULL);
    TS_CHECK_MSG(strstr(err.msg, "1x28x28") != NULL, "%s", err.msg);
    write_small_idx(img, lbl, 12, 28, 28, 12, 1);
    TS_CHECK(ts_fmnist_load(dir, "test", &err) == NULL);
    TS_CHECK_MSG(strstr(err.msg, "label 11") != NULL, "%s", err.msg);
    write_small_idx(img, lbl, 12, 28, 28, 10, 1);
    ts_dataset *ds = ts_fmnist_load(dir, "test", &err);
    TS_CHECK_MSG(ds && ts_dataset_count(ds) == 12 && ts_dataset_num_classes(ds) == 10, "%s",
                 err.msg);
    ts_dataset_free(ds);
}

static void test_batcher(void) {
    ts_err err = {0};
    write_small_idx(tmp_path("b-img"), tmp_path("b-lbl"), 10, 1, 1, 10, 0);
    ts_dataset *ds = ts_dataset_load_idx(tmp_path("b-img"), tmp_path("b-lbl"), &err);
    TS_CHECK(ds != NULL);
    if (!ds) return;
    ts_batcher *b = ts_batcher_new(ds, 4, 42, &err), *b2 = ts_batcher_new(ds, 4, 42, &err);
    TS_CHECK(b && b2);
    TS_CHECK(ts_batcher_num_batches(b, 0) == 3 && ts_batcher_num_batches(b, 1) == 2);
    const ts_tensor *x;
    const int32_t *l;
    /* identity order before any shuffle; last batch padded with label -1 */
    int n, seen = 0;
    while ((n = ts_batcher_next(b, &x, &l)) > 0) {
        for (int k = 0; k < n; k++)
            TS_CHECK(l[k] == seen + k);
        if (n < 4) TS_CHECK(l[n] == -1 && x->data[n] == 0.0f);
        seen += n;
    }
    TS_CHECK(seen == 10);
    /* a shuffle is a permutation, reproducible per (seed, epoch) */
    int order[3][10];
    for (int e = 0; e < 3; e++) {
        ts_batcher_shuffle(b, e == 2 ? 1 : (uint64_t)e);
        int mark[10] = {0}, pos = 0;
        while ((n = ts_batcher_next(b, &x, &l)) > 0)
            for (int k = 0; k < n; k++) {
                order[e][pos++] = l[k];
                mark[l[k]]++;
            }
        for (int k = 0; k < 10; k++)
            TS_CHECK(mark[k] == 1);
    }
    TS_CHECK(memcmp(order[1], order[2], sizeof order[1]) == 0);
    TS_CHECK(memcmp(order[0], order[1], sizeof order[0]) != 0);
    ts_batcher_shuffle(b2, 1);
    ts_batcher_next(b2, &x, &l);
    TS_CHECK(memcmp(l, order[1], 4 * sizeof *l) == 0);
    ts_batcher_rewind(b2);
    ts_batcher_next(b2, &x, &l);
    TS_CHECK(memcmp(l, order[1], 4 * sizeof *l) == 0);
    /* seek: batch 2 of this pass is the 2-item partial one; past the end
     * nothing is left; back to batch 1 */
    ts_batcher_seek(b2, 2);
    TS_CHECK(ts_batcher_next(b2, &x, &l) == 2);
    TS_CHECK(l[0] == order[1][8] && l[1] == order[1][9] && l[2] == -1);
    ts_batcher_seek(b2, 3);
    TS_CHECK(ts_batcher_next(b2, &x, &l) == 0);
    ts_batcher_seek(b2, 1);
    TS_CHECK(ts_batcher_next(b2, &x, &l) == 4);
    TS_CHECK(memcmp(l, order[1] + 4, 4 * sizeof *l) == 0);
    TS_CHECK(ts_batcher_new(ds, 0, 1, &err) == NULL);
    ts_batcher_free(b);
    ts_batcher_free(b2);
    ts_dataset_free(ds);
}

static ts_tensor *parse(const char *text, size_t len, ts_err *err) {
    return ts_image_parse_pnm(text, len ? len : strlen(text), "img", err);
}

static void test_pnm_parse(void) {
    ts_err err = {0};
    ts_tensor *t = parse("P2\n# a comment\n3 2\n# another\n10\n0 5 10\n10 5 0\n", 0, &err);
    TS_CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        TS_CHECK(t->s.shape[1] == 1 && t->s.shape[2] == 2 && t->s.shape[3] == 3);
        TS_CHECK_NEAR(t->data[1], 0.5, 1e-6);
        TS_CHECK_NEAR(t->data[3], 1.0, 1e-6);
        ts_tensor_free(t);
    }
    /* P3: interleaved RGB becomes planar */
    t = parse("P3 2 1 255 255 0 0  0 0 255\n", 0, &err);
    TS_CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        TS_CHECK(t->s.shape[1] == 3 && t->s.shape[3] == 2);
        TS_CHECK(t->data[0] == 1.0f && t->data[1] == 0.0f); /* R plane */
        TS_CHECK(t->data[5] == 1.0f && t->data[4] == 0.0f); /* B plane */
        ts_tensor *g = ts_image_convert_channels(t, 1, &err);
        TS_CHECK(g && fabsf(g->data[0] - 0.299f) < 1e-6f && fabsf(g->data[1] - 0.114f) < 1e-6f);
        ts_tensor_free(g);
        ts_tensor_free(t);
    }
    const char p5[] = "P5\n2 2\n255\n\x00\x40\x80\xff";
    t = parse(p5, sizeof p5 - 1, &err);
    TS_CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        TS_CHECK_NEAR(t->data[2], 128 / 255.0, 1e-6);
        TS_CHECK(t->data[3] == 1.0f);
        ts_tensor_free(t);
    }
    /* 16-bit big-endian P6 */
    const char p6[] = "P6 1 1 65535\n\x80\x00\x00\x00\xff\xff";
    t = parse(p6, sizeof p6 - 1, &err);
    TS_CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        TS_CHECK_NEAR(t->data[0], 32768 / 65535.0, 1e-6);
        TS_CHECK(t->data[1] == 0.0f && t->data[2] == 1.0f);
        ts_tensor_free(t);
    }
}

static void expect_pnm_fail(const char *text, size_t len, const char *want) {
    ts_err err = {0};
    ts_tensor *t = parse(text, len, &err);
    TS_CHECK_MSG(t == NULL, "parsed but should fail: %s", want);
    TS_CHECK_MSG(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    ts_tensor_free(t);
}

static void test_pnm_bad(void) {
    expect_pnm_fail("P7 1 1 255\n", 0, "not a PGM/PPM");
    expect_pnm_fail("GIF89a", 0, "not a PGM/PPM");
    expect_pnm_fail("P", 0, "not a PGM/PPM");
    expect_pnm_fail("P2x 1 1 255 0", 0, "junk after the magic");
    expect_pnm_fail("P2 1", 0, "ends before the height");
    expect_pnm_fail("P2 0 1 255 0", 0, "width must be");
    expect_pnm_fail("P2 -1 1 255 0", 0, "expected a number for the width");
    expect_pnm_fail("P2 99999999999999999999 1 255 0", 0, "width must be");
    expect_pnm_fail("P2 20000 1 255 0", 0, "width must be");
    expect_pnm_fail("P2 16000 16000 255 0", 0, "more than");
    expect_pnm_fail("P2 1 1 0 0", 0, "maxval must be");
    expect_pnm_fail("P2 1 1 70000 0", 0, "maxval must be");
    expect_pnm_fail("P2 2 1 255 3", 0, "truncated raster");
    expect_pnm_fail("P2 1 1 10 11", 0, "above maxval");
    expect_pnm_fail("P2 1 1 10 5 6", 0, "trailing data");
    expect_pnm_fail("P2 1 1 10 5x", 0, "junk after the sample");
    expect_pnm_fail("P5 2 2 255\n\x01\x02\x03", 13, "truncated raster");
    expect_pnm_fail("P5 1 1 255\n\x01\x02", 13, "trailing data");
    expect_pnm_fail("P5 1 1 255", 10, "no whitespace before the raster");
    expect_pnm_fail("P5 1 1 100\n\xff", 12, "above maxval");
    expect_pnm_fail("P6 1 1 65535\n\x01\x02\x03", 16, "truncated raster");
}

static void test_pnm_files_and_resize(void) {
    ts_err err = {0};
    TS_CHECK(ts_image_load_pnm(tmp_path("nope.pgm"), &err) == NULL);
    TS_CHECK(err.status == TS_ERR_IO && strstr(err.msg, "nope.pgm"));
    TS_CHECK(ts_image_load_pnm(tmpdir, &err) == NULL); /* a directory */
    /* 2x2 -> 4x4 bilinear with half-pixel centres: corners keep the corner
     * values, inner samples interpolate at 1/4 and 3/4 */
    write_file(tmp_path("sq.pgm"), "P2 2 2 4 0 4 0 4\n", 17);
    ts_tensor *img = ts_image_load_pnm(tmp_path("sq.pgm"), &err);
    TS_CHECK_MSG(img != NULL, "%s", err.msg);
    if (!img) return;
    ts_tensor *r = ts_image_resize(img, 4, 4, &err);
    TS_CHECK(r && r->s.shape[2] == 4 && r->s.shape[3] == 4);
    if (r) {
        TS_CHECK_NEAR(r->data[0], 0.0, 1e-6);
        TS_CHECK_NEAR(r->data[1], 0.25, 1e-6);
        TS_CHECK_NEAR(r->data[2], 0.75, 1e-6);
        TS_CHECK_NEAR(r->data[3], 1.0, 1e-6);
        TS_CHECK_NEAR(r->data[13], 0.25, 1e-6);
    }
    ts_tensor_free(r);
    r = ts_image_resize(img, 2, 2, &err); /* same size: unchanged */
    TS_CHECK(r && ts_tensor_rel_err(r, img) < 1e-7);
    ts_tensor_free(r);
    TS_CHECK(ts_image_resize(img, 0, 4, &err) == NULL);
    ts_tensor_free(img);
    /* the model path: grey 2x2 -> 3 channels at 3x3, normalized */
    ts_tensor *m = ts_image_load_for_model(tmp_path("sq.pgm"), 3, 3, 3, &err);
    TS_CHECK_MSG(m && m->s.shape[1] == 3 && m->s.shape[2] == 3, "%s", err.msg);
    if (m) {
        TS_CHECK_NEAR(m->data[0], (0 - TS_DATA_MEAN) / TS_DATA_STD, 1e-5);
        TS_CHECK_NEAR(m->data[9 + 4], (0.5 - TS_DATA_MEAN) / TS_DATA_STD, 1e-5);
    }
    ts_tensor_free(m);
    write_file(tmp_path("bad.pgm"), "P2 2 2 4 0 4 0\n", 15);
    TS_CHECK(ts_image_load_for_model(tmp_path("bad.pgm"), 1, 28, 28, &err) == NULL);
    TS_CHECK(strstr(err.msg, "bad.pgm") && strstr(err.msg, "truncated"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ts_test_data_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    TS_RUN(test_fmnist_real);
    TS_RUN(test_fmnist_bad_split_and_dir);
    TS_RUN(test_small_idx_plain_and_gz);
    TS_RUN(test_hostile_idx);
    TS_RUN(test_corrupt_gzip);
    TS_RUN(test_batcher);
    TS_RUN(test_pnm_parse);
    TS_RUN(test_pnm_bad);
    TS_RUN(test_pnm_files_and_resize);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return ts_test_summary();
}
