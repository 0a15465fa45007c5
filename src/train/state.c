/* state.c: the optimizer-state side file of a checkpoint.
 *
 * Layout (all integers little-endian):
 *   "TSOPTST\0"  magic (8 bytes)
 *   u32 version (1), u32 optimizer, u32 parameter count, u32 completed epochs
 *   u64 optimizer steps, u64 seed
 *   per parameter: u32 name length, name bytes, u64 element count,
 *                  slots x count float32 (SGD: velocity; Adam: m then v)
 *   u32 CRC-32 (zlib) of everything before it
 * The reader computes the exact size the graph implies and refuses any
 * other, so a truncated, padded or foreign file never reaches the parser's
 * inner loop with a wrong length. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "train_internal.h"

static const char STATE_MAGIC[8] = {'T', 'S', 'O', 'P', 'T', 'S', 'T', '\0'};
#define STATE_VERSION 1u
#define STATE_HEADER_BYTES (8 + 4 * 4 + 8 + 8)

typedef struct {
    uint8_t *p;
    size_t len, cap;
} wbuf;

static int wb_put(wbuf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) return 0;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 1;
}

static int wb_u32(wbuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return wb_put(b, x, 4);
}

static int wb_u64(wbuf *b, uint64_t v) {
    return wb_u32(b, (uint32_t)v) && wb_u32(b, (uint32_t)(v >> 32));
}

static int wb_floats(wbuf *b, const float *f, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        if (!wb_u32(b, u)) return 0;
    }
    return 1;
}

static uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(const uint8_t *p) {
    return rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}

/* The exact file size for this trainer's graph and optimizer. */
static size_t state_size(const ts_trainer *t) {
    size_t n = STATE_HEADER_BYTES + 4;
    for (int i = 0; i < t->n_params; i++)
        n += 4 + strlen(ts_graph_param_name(t->g, i)) + 8 +
             (size_t)ts_trainer_slots(t) * (size_t)ts_graph_param(t->g, i)->size * 4;
    return n;
}

ts_status ts_trainer_save_state(const ts_trainer *t, const char *path, ts_err *err) {
    wbuf b = {NULL, 0, state_size(t)};
    if (!(b.p = malloc(b.cap)))
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory saving %s", path);
    int ok = wb_put(&b, STATE_MAGIC, 8) && wb_u32(&b, STATE_VERSION) &&
             wb_u32(&b, (uint32_t)t->o.optimizer) && wb_u32(&b, (uint32_t)t->n_params) &&
             wb_u32(&b, (uint32_t)t->epoch) && wb_u64(&b, (uint64_t)t->step) &&
             wb_u64(&b, t->o.seed);
    for (int i = 0; ok && i < t->n_params; i++) {
        const char *name = ts_graph_param_name(t->g, i);
        int64_t n = ts_graph_param(t->g, i)->size;
        ok = wb_u32(&b, (uint32_t)strlen(name)) && wb_put(&b, name, strlen(name)) &&
             wb_u64(&b, (uint64_t)n) && wb_floats(&b, t->m[i], n) &&
             (ts_trainer_slots(t) < 2 || wb_floats(&b, t->v[i], n));
    }
    ok = ok && wb_u32(&b, (uint32_t)crc32(0L, b.p, (uInt)b.len));
    TS_ASSERT(ok && b.len == b.cap);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    ts_status st = TS_OK;
    if (!f)
        st = ts_errorf(err, TS_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    else {
        int wrote = fwrite(b.p, 1, b.len, f) == b.len;
        if (fclose(f) != 0 || !wrote)
            st = ts_errorf(err, TS_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            st =
                ts_errorf(err, TS_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        if (st != TS_OK) remove(tmp);
    }
    free(b.p);
    return st;
}

static ts_status check_header(ts_trainer *t, const uint8_t *p, size_t len, const char *path,
                              ts_err *err) {
    if (len < STATE_HEADER_BYTES || memcmp(p, STATE_MAGIC, 8) != 0)
        return ts_errorf(err, TS_ERR_FORMAT, "%s is not a Tessera optimizer-state file", path);
    uint32_t version = rd_u32(p + 8), optim = rd_u32(p + 12), n = rd_u32(p + 16);
    if (version != STATE_VERSION)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "%s: optimizer-state version %u is not supported (this build reads %u)",
                         path, version, STATE_VERSION);
    if (optim != (uint32_t)t->o.optimizer)
        return ts_errorf(err, TS_ERR_INVALID, "%s holds %s state but the run uses %s", path,
                         optim == TS_OPTIM_ADAM  ? "adam"
                         : optim == TS_OPTIM_SGD ? "sgd"
                                                 : "unknown",
                         ts_optim_name(t->o.optimizer));
    if (n != (uint32_t)t->n_params)
        return ts_errorf(err, TS_ERR_FORMAT, "%s holds %u parameters, the model has %d", path, n,
                         t->n_params);
    size_t want = state_size(t);
    if (len != want)
        return ts_errorf(err, TS_ERR_FORMAT,
                         "%s is %zu bytes, %zu expected for this model (truncated or foreign)",
                         path, len, want);
    uint32_t crc = (uint32_t)crc32(0L, p, (uInt)(len - 4));
    if (crc != rd_u32(p + len - 4))
        return ts_errorf(err, TS_ERR_FORMAT, "%s: checksum mismatch (corrupt file)", path);
    return TS_OK;
}

static ts_status parse_state(ts_trainer *t, const uint8_t *p, size_t len, const char *path,
                             ts_err *err) {
    TS_TRY(check_header(t, p, len, path, err));
    uint32_t epoch = rd_u32(p + 20);
    uint64_t step = rd_u64(p + 24), seed = rd_u64(p + 32);
    if (epoch > (uint32_t)t->o.epochs)
        return ts_errorf(err, TS_ERR_INVALID,
                         "%s was written after epoch %u; --epochs %d leaves nothing to train", path,
                         epoch, t->o.epochs);
    const uint8_t *q = p + STATE_HEADER_BYTES;
    /* sizes were proven consistent by check_header: walk and compare names */
    for (int i = 0; i < t->n_params; i++) {
        const char *name = ts_graph_param_name(t->g, i);
        uint32_t nl = rd_u32(q);
        int64_t n = (int64_t)rd_u64(q + 4 + nl);
        if (nl != strlen(name) || memcmp(q + 4, name, nl) != 0 ||
            n != ts_graph_param(t->g, i)->size)
            return ts_errorf(
                err, TS_ERR_FORMAT,
                "%s: parameter %d is not '%s' of %lld values: written for another model", path, i,
                name, (long long)ts_graph_param(t->g, i)->size);
        q += 4 + nl + 8;
        for (int s = 0; s < ts_trainer_slots(t); s++) {
            float *dst = s == 0 ? t->m[i] : t->v[i];
            for (int64_t k = 0; k < n; k++, q += 4) {
                uint32_t u = rd_u32(q);
                memcpy(&dst[k], &u, 4);
            }
        }
    }
    t->epoch = (int)epoch;
    t->step = (int64_t)step;
    if (seed != t->o.seed)
        ts_log(TS_LOG_WARN, "%s was written with seed %llu; resuming with it (not %llu)", path,
               (unsigned long long)seed, (unsigned long long)t->o.seed);
    t->o.seed = seed;
    return TS_OK;
}

ts_status ts_trainer_load_state(ts_trainer *t, const char *path, ts_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return ts_errorf(err, TS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = state_size(t) + 1; /* one more byte reveals an over-long file */
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t len = fread(buf, 1, cap, f);
    int bad = ferror(f);
    fclose(f);
    ts_status st = bad ? ts_errorf(err, TS_ERR_IO, "cannot read %s", path)
                       : parse_state(t, buf, len, path, err);
    free(buf);
    return st;
}
