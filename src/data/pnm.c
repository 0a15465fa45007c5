/* pnm.c: PGM/PPM images (P2, P3, P5, P6) and their preparation for a model.
 *
 * The parser works on a whole file in memory with an explicit cursor and
 * end, so a header or raster that runs past the end is a clear error and
 * never a read out of bounds. */
#include "tessera/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ASCII rasters take up to 6 bytes per sample ("65535 "); with the sample
 * cap this bounds the file size worth reading. */
#define PNM_MAX_FILE_BYTES (TS_IMAGE_MAX_SAMPLES * 6 + 4096)

typedef struct {
    const uint8_t *p, *end;
    const char *name;
    ts_err *err;
} cursor;

static int is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and '#' comments (which run to the end of the line). */
static void skip_blank(cursor *c) {
    while (c->p < c->end) {
        if (is_space(*c->p))
            c->p++;
        else if (*c->p == '#') {
            while (c->p < c->end && *c->p != '\n' && *c->p != '\r')
                c->p++;
        } else
            break;
    }
}

/* An unsigned decimal in [lo, hi]; what names the field for messages. */
static ts_status read_uint(cursor *c, const char *what, long lo, long hi, long *out) {
    skip_blank(c);
    if (c->p >= c->end)
        return ts_errorf(c->err, TS_ERR_FORMAT, "%s: file ends before the %s", c->name, what);
    if (*c->p < '0' || *c->p > '9')
        return ts_errorf(c->err, TS_ERR_FORMAT, "%s: expected a number for the %s, found '%c'",
                         c->name, what, is_space(*c->p) || *c->p < 32 ? '?' : *c->p);
    long v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (*c->p++ - '0');
        if (v > hi) break;
    }
    if (v < lo || v > hi)
        return ts_errorf(c->err, TS_ERR_FORMAT, "%s: %s must be in [%ld, %ld]", c->name, what, lo,
                         hi);
    if (c->p < c->end && !is_space(*c->p) && *c->p != '#')
        return ts_errorf(c->err, TS_ERR_FORMAT, "%s: junk after the %s", c->name, what);
    *out = v;
    return TS_OK;
}

static ts_status read_ascii_raster(cursor *c, long maxval, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        long v;
        skip_blank(c);
        if (c->p >= c->end)
            return ts_errorf(c->err, TS_ERR_FORMAT,
                             "%s: truncated raster: %lld of %lld samples present", c->name,
                             (long long)i, (long long)n);
        if (read_uint(c, "sample", 0, 65535, &v) != TS_OK) return TS_ERR_FORMAT;
        if (v > maxval)
            return ts_errorf(c->err, TS_ERR_FORMAT, "%s: sample %lld is %ld, above maxval %ld",
                             c->name, (long long)i, v, maxval);
        out[i] = (float)v / (float)maxval;
    }
    skip_blank(c);
    if (c->p != c->end)
        return ts_errorf(c->err, TS_ERR_FORMAT, "%s: trailing data after the raster", c->name);
    return TS_OK;
}

static ts_status read_binary_raster(cursor *c, long maxval, float *out, int64_t n) {
    /* exactly one whitespace byte separates maxval from a binary raster */
    if (c->p >= c->end || !is_space(*c->p))
        return ts_errorf(c->err, TS_ERR_FORMAT, "%s: no whitespace before the raster", c->name);
    c->p++;
    int64_t width = maxval < 256 ? 1 : 2;
    int64_t have = (int64_t)(c->end - c->p);
    if (have < n * width)
        return ts_errorf(c->err, TS_ERR_FORMAT,
                         "%s: truncated raster: %lld bytes present, %lld needed", c->name,
                         (long long)have, (long long)(n * width));
    if (have > n * width)
        return ts_errorf(c->err, TS_ERR_FORMAT, "%s: %lld bytes of trailing data after the raster",
                         c->name, (long long)(have - n * width));
    for (int64_t i = 0; i < n; i++) {
        long v = width == 1 ? c->p[i] : (long)c->p[2 * i] << 8 | c->p[2 * i + 1];
        if (v > maxval)
            return ts_errorf(c->err, TS_ERR_FORMAT, "%s: sample %lld is %ld, above maxval %ld",
                             c->name, (long long)i, v, maxval);
        out[i] = (float)v / (float)maxval;
    }
    return TS_OK;
}

/* Raster is stored interleaved (HWC); tensors are planar (CHW). */
static void hwc_to_chw(const float *hwc, ts_tensor *t) {
    int64_t c = t->s.shape[1], hw = t->s.shape[2] * t->s.shape[3];
    for (int64_t i = 0; i < hw; i++)
        for (int64_t k = 0; k < c; k++)
            t->data[k * hw + i] = hwc[i * c + k];
}

ts_tensor *ts_image_parse_pnm(const void *buf, size_t len, const char *name, ts_err *err) {
    cursor c = {buf, (const uint8_t *)buf + len, name ? name : "image", err};
    if (len < 2 || c.p[0] != 'P' || !strchr("2356", c.p[1]) || c.p[1] == 0) {
        ts_errorf(err, TS_ERR_FORMAT, "%s: not a PGM/PPM image (expected magic P2, P3, P5 or P6)",
                  c.name);
        return NULL;
    }
    char kind = (char)c.p[1];
    c.p += 2;
    if (c.p < c.end && !is_space(*c.p) && *c.p != '#') {
        ts_errorf(err, TS_ERR_FORMAT, "%s: junk after the magic number", c.name);
        return NULL;
    }
    long w, h, maxval;
    if (read_uint(&c, "width", 1, TS_IMAGE_MAX_SIDE, &w) != TS_OK ||
        read_uint(&c, "height", 1, TS_IMAGE_MAX_SIDE, &h) != TS_OK ||
        read_uint(&c, "maxval", 1, 65535, &maxval) != TS_OK)
        return NULL;
    int ch = kind == '3' || kind == '6' ? 3 : 1;
    int64_t n = (int64_t)w * h * ch;
    if (n > TS_IMAGE_MAX_SAMPLES) {
        ts_errorf(err, TS_ERR_FORMAT, "%s: %ldx%ld image has more than %lld samples", c.name, w, h,
                  (long long)TS_IMAGE_MAX_SAMPLES);
        return NULL;
    }
    float *hwc = malloc((size_t)n * sizeof(float));
    ts_tensor *t = ts_tensor_new4(1, ch, h, w, err);
    if (!hwc || !t) {
        if (t) ts_errorf(err, TS_ERR_NOMEM, "%s: out of memory", c.name);
        free(hwc);
        ts_tensor_free(t);
        return NULL;
    }
    ts_status st = kind == '2' || kind == '3' ? read_ascii_raster(&c, maxval, hwc, n)
                                              : read_binary_raster(&c, maxval, hwc, n);
    if (st == TS_OK) hwc_to_chw(hwc, t);
    free(hwc);
    if (st != TS_OK) {
        ts_tensor_free(t);
        return NULL;
    }
    return t;
}

ts_tensor *ts_image_load_pnm(const char *path, ts_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        ts_errorf(err, TS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        ts_errorf(err, TS_ERR_IO, "cannot read %s (not a regular file?)", path);
        return NULL;
    }
    if (size > PNM_MAX_FILE_BYTES) {
        fclose(f);
        ts_errorf(err, TS_ERR_FORMAT, "%s: %ld bytes is too large for an image", path, size);
        return NULL;
    }
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        ts_errorf(err, TS_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    fclose(f);
    ts_tensor *t = NULL;
    if (got != (size_t)size)
        ts_errorf(err, TS_ERR_IO, "%s: short read", path);
    else
        t = ts_image_parse_pnm(buf, got, path, err);
    free(buf);
    return t;
}

static float sample_clamped(const float *plane, int64_t h, int64_t w, int64_t y, int64_t x) {
    y = y < 0 ? 0 : y >= h ? h - 1 : y;
    x = x < 0 ? 0 : x >= w ? w - 1 : x;
    return plane[y * w + x];
}

ts_tensor *ts_image_resize(const ts_tensor *img, int h, int w, ts_err *err) {
    if (!img || img->s.ndim != 4 || img->s.shape[0] != 1 || h < 1 || w < 1 ||
        h > TS_IMAGE_MAX_SIDE || w > TS_IMAGE_MAX_SIDE) {
        ts_errorf(err, TS_ERR_INVALID, "resize needs a [1,C,H,W] image and a size in 1..%d",
                  TS_IMAGE_MAX_SIDE);
        return NULL;
    }
    int64_t c = img->s.shape[1], ih = img->s.shape[2], iw = img->s.shape[3];
    ts_tensor *out = ts_tensor_new4(1, c, h, w, err);
    if (!out) return NULL;
    double sy = (double)ih / h, sx = (double)iw / w;
    for (int64_t k = 0; k < c; k++) {
        const float *src = img->data + k * ih * iw;
        float *dst = out->data + k * (int64_t)h * w;
        for (int y = 0; y < h; y++) {
            double fy = (y + 0.5) * sy - 0.5;
            if (fy < 0) fy = 0;
            int64_t y0 = (int64_t)fy;
            double dy = fy - (double)y0;
            for (int x = 0; x < w; x++) {
                double fx = (x + 0.5) * sx - 0.5;
                if (fx < 0) fx = 0;
                int64_t x0 = (int64_t)fx;
                double dx = fx - (double)x0;
                double top = (1 - dx) * sample_clamped(src, ih, iw, y0, x0) +
                             dx * sample_clamped(src, ih, iw, y0, x0 + 1);
                double bot = (1 - dx) * sample_clamped(src, ih, iw, y0 + 1, x0) +
                             dx * sample_clamped(src, ih, iw, y0 + 1, x0 + 1);
                dst[(int64_t)y * w + x] = (float)((1 - dy) * top + dy * bot);
            }
        }
    }
    return out;
}

ts_tensor *ts_image_convert_channels(const ts_tensor *img, int c, ts_err *err) {
    if (!img || img->s.ndim != 4 || img->s.shape[0] != 1) {
        ts_errorf(err, TS_ERR_INVALID, "channel conversion needs a [1,C,H,W] image");
        return NULL;
    }
    int64_t ic = img->s.shape[1], hw = img->s.shape[2] * img->s.shape[3];
    if (!(c == ic || (ic == 3 && c == 1) || (ic == 1 && c == 3))) {
        ts_errorf(err, TS_ERR_UNSUPPORTED, "cannot convert a %lld-channel image to %d channels",
                  (long long)ic, c);
        return NULL;
    }
    ts_tensor *out = ts_tensor_new4(1, c, img->s.shape[2], img->s.shape[3], err);
    if (!out) return NULL;
    if (c == ic)
        memcpy(out->data, img->data, (size_t)img->size * sizeof(float));
    else if (c == 1)
        for (int64_t i = 0; i < hw; i++)
            out->data[i] =
                0.299f * img->data[i] + 0.587f * img->data[hw + i] + 0.114f * img->data[2 * hw + i];
    else
        for (int k = 0; k < 3; k++)
            memcpy(out->data + k * hw, img->data, (size_t)hw * sizeof(float));
    return out;
}

ts_tensor *ts_image_load_for_model(const char *path, int c, int h, int w, ts_err *err) {
    ts_tensor *img = ts_image_load_pnm(path, err);
    if (!img) return NULL;
    ts_tensor *conv = ts_image_convert_channels(img, c, err);
    ts_tensor_free(img);
    if (!conv) return NULL;
    ts_tensor *out = conv;
    if (conv->s.shape[2] != h || conv->s.shape[3] != w) {
        out = ts_image_resize(conv, h, w, err);
        ts_tensor_free(conv);
        if (!out) return NULL;
    }
    for (int64_t i = 0; i < out->size; i++)
        out->data[i] = (out->data[i] - TS_DATA_MEAN) / TS_DATA_STD;
    return out;
}
