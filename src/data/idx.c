/* idx.c: IDX datasets (gzip or plain, read through zlib) and Fashion-MNIST.
 *
 * Every header field is checked against the caps in data.h before anything
 * is allocated, and the pixel buffer grows as bytes actually arrive, so a
 * hostile header claiming a gigabyte in a tiny file costs nothing. */
#include "tessera/data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data_internal.h"

const char *const ts_fmnist_class_names[TS_FMNIST_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_DIMS 4
/* First allocation for a payload; it doubles up to the size the header
 * claims, only as fast as the file delivers bytes. */
#define IDX_FIRST_CHUNK (1 << 20)

typedef struct {
    int ndim;
    int64_t dims[IDX_MAX_DIMS];
    uint8_t *data;
    int64_t bytes;
} idx_file;

static void idx_file_release(idx_file *f) {
    free(f->data);
    f->data = NULL;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads exactly n bytes; returns the count read, -1 on a zlib error. */
static int64_t gz_read_full(gzFile gz, uint8_t *buf, int64_t n) {
    int64_t got = 0;
    while (got < n) {
        unsigned chunk = (unsigned)(n - got > (1 << 30) ? (1 << 30) : n - got);
        int r = gzread(gz, buf + got, chunk);
        if (r < 0) return -1;
        if (r == 0) break;
        got += r;
    }
    return got;
}

static ts_status gz_fail(gzFile gz, const char *path, const char *what, ts_err *err) {
    int code = 0;
    const char *msg = gzerror(gz, &code);
    return ts_errorf(err, TS_ERR_FORMAT, "%s: %s (%s)", path, what,
                     code != Z_OK && msg && *msg ? msg : "file ends early");
}

static ts_status idx_read_header(gzFile gz, const char *path, idx_file *f, int64_t *payload,
                                 ts_err *err) {
    uint8_t magic[4];
    int64_t got = gz_read_full(gz, magic, 4);
    if (got < 0) return gz_fail(gz, path, "cannot decompress the IDX header", err);
    if (got < 4) return ts_errorf(err, TS_ERR_FORMAT, "%s: too short for an IDX header", path);
    if (magic[0] != 0 || magic[1] != 0)
        return ts_errorf(err, TS_ERR_FORMAT,
                         "%s: not an IDX file (magic %02x %02x %02x %02x, expected 00 00 08 nn)",
                         path, magic[0], magic[1], magic[2], magic[3]);
    if (magic[2] != IDX_TYPE_UBYTE)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "%s: IDX data type 0x%02x is not supported (only unsigned bytes, 0x08)",
                         path, magic[2]);
    if (magic[3] < 1 || magic[3] > IDX_MAX_DIMS)
        return ts_errorf(err, TS_ERR_FORMAT, "%s: IDX file has %d dimensions (1..%d supported)",
                         path, magic[3], IDX_MAX_DIMS);
    f->ndim = magic[3];
    uint8_t dims[4 * IDX_MAX_DIMS];
    got = gz_read_full(gz, dims, 4 * f->ndim);
    if (got < 0) return gz_fail(gz, path, "cannot decompress the IDX header", err);
    if (got < 4 * f->ndim)
        return ts_errorf(err, TS_ERR_FORMAT, "%s: IDX header is truncated", path);
    int64_t total = 1;
    for (int i = 0; i < f->ndim; i++) {
        f->dims[i] = be32(dims + 4 * i);
        int64_t cap = i == 0 ? TS_DATA_MAX_ITEMS : TS_DATA_MAX_SIDE;
        if (f->dims[i] < 1 || f->dims[i] > cap)
            return ts_errorf(err, TS_ERR_FORMAT, "%s: IDX dimension %d is %lld (allowed 1..%lld)",
                             path, i, (long long)f->dims[i], (long long)cap);
        total *= f->dims[i];
        if (total > TS_DATA_MAX_BYTES)
            return ts_errorf(err, TS_ERR_NOMEM, "%s: IDX payload would exceed the %lld-byte cap",
                             path, (long long)TS_DATA_MAX_BYTES);
    }
    *payload = total;
    return TS_OK;
}

static ts_status idx_read_payload(gzFile gz, const char *path, idx_file *f, int64_t total,
                                  ts_err *err) {
    int64_t cap = total < IDX_FIRST_CHUNK ? total : IDX_FIRST_CHUNK;
    f->data = malloc((size_t)cap);
    if (!f->data) return ts_errorf(err, TS_ERR_NOMEM, "%s: out of memory", path);
    int64_t have = 0;
    while (have < total) {
        if (have == cap) {
            cap = cap * 2 < total ? cap * 2 : total;
            uint8_t *p = realloc(f->data, (size_t)cap);
            if (!p) return ts_errorf(err, TS_ERR_NOMEM, "%s: out of memory", path);
            f->data = p;
        }
        int64_t got = gz_read_full(gz, f->data + have, cap - have);
        if (got < 0) return gz_fail(gz, path, "corrupt compressed data", err);
        have += got;
        if (have < cap) break;
    }
    if (have < total)
        return ts_errorf(err, TS_ERR_FORMAT,
                         "%s: truncated: the header promises %lld data bytes, the file holds %lld",
                         path, (long long)total, (long long)have);
    uint8_t extra;
    int64_t more = gz_read_full(gz, &extra, 1);
    if (more < 0) return gz_fail(gz, path, "corrupt compressed data", err);
    if (more > 0)
        return ts_errorf(err, TS_ERR_FORMAT,
                         "%s: trailing bytes after the %lld the header promises", path,
                         (long long)total);
    f->bytes = total;
    return TS_OK;
}

static ts_status idx_read(const char *path, idx_file *f, ts_err *err) {
    memset(f, 0, sizeof *f);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return ts_errorf(err, TS_ERR_IO, "cannot open %s: %s", path,
                         errno ? strerror(errno) : "out of memory");
    int64_t total = 0;
    ts_status st = idx_read_header(gz, path, f, &total, err);
    if (st == TS_OK) st = idx_read_payload(gz, path, f, total, err);
    gzclose(gz);
    if (st != TS_OK) idx_file_release(f);
    return st;
}

static ts_dataset *dataset_alloc(int64_t count, int c, int h, int w, ts_err *err) {
    ts_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory creating a dataset");
        return NULL;
    }
    ds->count = count;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    return ds;
}

static ts_status attach_labels(ts_dataset *ds, const char *path, ts_err *err) {
    idx_file lf;
    TS_TRY(idx_read(path, &lf, err));
    ts_status st = TS_OK;
    if (lf.ndim != 1)
        st = ts_errorf(err, TS_ERR_FORMAT, "%s: a label file must have 1 dimension, it has %d",
                       path, lf.ndim);
    else if (lf.dims[0] != ds->count)
        st = ts_errorf(err, TS_ERR_FORMAT, "%s: %lld labels for %lld images", path,
                       (long long)lf.dims[0], (long long)ds->count);
    else if (!(ds->labels = malloc((size_t)ds->count * sizeof(int32_t))))
        st = ts_errorf(err, TS_ERR_NOMEM, "%s: out of memory", path);
    if (st == TS_OK) {
        int max = 0;
        for (int64_t i = 0; i < ds->count; i++) {
            ds->labels[i] = lf.data[i];
            if (lf.data[i] > max) max = lf.data[i];
        }
        ds->num_classes = max + 1;
    }
    idx_file_release(&lf);
    return st;
}

ts_dataset *ts_dataset_load_idx(const char *images, const char *labels, ts_err *err) {
    if (!images) {
        ts_errorf(err, TS_ERR_INVALID, "no image file given");
        return NULL;
    }
    idx_file f;
    if (idx_read(images, &f, err) != TS_OK) return NULL;
    if (f.ndim != 3 && f.ndim != 4) {
        ts_errorf(err, TS_ERR_FORMAT,
                  "%s: an image file must have 3 dimensions [count, rows, cols] or 4 "
                  "[count, channels, rows, cols], it has %d",
                  images, f.ndim);
        idx_file_release(&f);
        return NULL;
    }
    int c = f.ndim == 4 ? (int)f.dims[1] : 1;
    int h = (int)f.dims[f.ndim - 2], w = (int)f.dims[f.ndim - 1];
    ts_dataset *ds = dataset_alloc(f.dims[0], c, h, w, err);
    if (!ds) {
        idx_file_release(&f);
        return NULL;
    }
    ds->pixels = f.data;
    if (labels && attach_labels(ds, labels, err) != TS_OK) {
        ts_dataset_free(ds);
        return NULL;
    }
    return ds;
}

const char *ts_fmnist_default_dir(void) {
    const char *env = getenv("TESSERA_FMNIST_DIR");
    return env && *env ? env : "/usr/share/datasets/fashion-mnist";
}

ts_dataset *ts_fmnist_load(const char *dir, const char *split, ts_err *err) {
    const char *prefix;
    int64_t expect;
    if (split && !strcmp(split, "train"))
        prefix = "train", expect = 60000;
    else if (split && !strcmp(split, "test"))
        prefix = "t10k", expect = 10000;
    else {
        ts_errorf(err, TS_ERR_INVALID, "unknown split '%s' (expected train or test)",
                  split ? split : "");
        return NULL;
    }
    if (!dir) dir = ts_fmnist_default_dir();
    char img[4096], lbl[4096];
    snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lbl, sizeof lbl, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    ts_dataset *ds = ts_dataset_load_idx(img, lbl, err);
    if (!ds) return NULL;
    if (ds->c != 1 || ds->h != TS_FMNIST_SIDE || ds->w != TS_FMNIST_SIDE) {
        ts_errorf(err, TS_ERR_FORMAT,
                  "%s: Fashion-MNIST images are 1x28x28, this file has %dx%dx%d", img, ds->c, ds->h,
                  ds->w);
        ts_dataset_free(ds);
        return NULL;
    }
    if (ds->num_classes > TS_FMNIST_CLASSES) {
        ts_errorf(err, TS_ERR_FORMAT, "%s: label %d is outside Fashion-MNIST's 0..9", lbl,
                  ds->num_classes - 1);
        ts_dataset_free(ds);
        return NULL;
    }
    if (ds->count != expect)
        ts_log(TS_LOG_WARN, "%s holds %lld items; Fashion-MNIST's %s split has %lld", img,
               (long long)ds->count, split, (long long)expect);
    ds->num_classes = TS_FMNIST_CLASSES;
    ds->fmnist = 1;
    return ds;
}

ts_dataset *ts_dataset_subset(const ts_dataset *ds, int64_t first, int64_t count, ts_err *err) {
    if (!ds || first < 0 || count < 1 || first > ds->count - count) {
        ts_errorf(err, TS_ERR_INVALID, "subset [%lld, +%lld) is outside the dataset of %lld items",
                  (long long)first, (long long)count, ds ? (long long)ds->count : 0LL);
        return NULL;
    }
    ts_dataset *sub = dataset_alloc(count, ds->c, ds->h, ds->w, err);
    if (!sub) return NULL;
    size_t item = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    sub->pixels = malloc(item * (size_t)count);
    if (ds->labels) sub->labels = malloc((size_t)count * sizeof(int32_t));
    if (!sub->pixels || (ds->labels && !sub->labels)) {
        ts_dataset_free(sub);
        ts_errorf(err, TS_ERR_NOMEM, "out of memory copying a subset");
        return NULL;
    }
    memcpy(sub->pixels, ds->pixels + item * (size_t)first, item * (size_t)count);
    if (ds->labels) memcpy(sub->labels, ds->labels + first, (size_t)count * sizeof(int32_t));
    sub->num_classes = ds->num_classes;
    sub->fmnist = ds->fmnist;
    return sub;
}

void ts_dataset_free(ts_dataset *ds) {
    if (!ds) return;
    free(ds->pixels);
    free(ds->labels);
    free(ds);
}

int64_t ts_dataset_count(const ts_dataset *ds) {
    return ds->count;
}
int ts_dataset_channels(const ts_dataset *ds) {
    return ds->c;
}
int ts_dataset_height(const ts_dataset *ds) {
    return ds->h;
}
int ts_dataset_width(const ts_dataset *ds) {
    return ds->w;
}
const int32_t *ts_dataset_labels(const ts_dataset *ds) {
    return ds->labels;
}
int ts_dataset_num_classes(const ts_dataset *ds) {
    return ds->labels ? ds->num_classes : 0;
}

const char *ts_dataset_class_name(const ts_dataset *ds, int label) {
    if (!ds->fmnist || label < 0 || label >= TS_FMNIST_CLASSES) return NULL;
    return ts_fmnist_class_names[label];
}

const uint8_t *ts_dataset_pixels(const ts_dataset *ds, int64_t i) {
    TS_ASSERT(i >= 0 && i < ds->count);
    return ds->pixels + (size_t)i * (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
}

void ts_dataset_get(const ts_dataset *ds, int64_t i, float *out) {
    const uint8_t *p = ts_dataset_pixels(ds, i);
    size_t n = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    /* one multiply-add per pixel: (p/255 - mean)/std folded into a*p + b */
    const float a = 1.0f / (255.0f * TS_DATA_STD), b = -TS_DATA_MEAN / TS_DATA_STD;
    for (size_t k = 0; k < n; k++)
        out[k] = a * (float)p[k] + b;
}
