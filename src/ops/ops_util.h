/* ops_util.h: small helpers shared by the kernel files in src/ops/ (private). */
#ifndef TS_OPS_UTIL_H
#define TS_OPS_UTIL_H

#include "tessera/core.h"

/* Room for one shape rendered by ts_shape_str ("[a, b, c, d, e, f]"). */
#define TS_SHAPE_BUF 128

typedef struct {
    char s[TS_SHAPE_BUF];
} ts_shape_text;

static inline ts_shape_text ts_shape_text_of(const ts_shape *s) {
    ts_shape_text t;
    ts_shape_str(s, t.s, sizeof t.s);
    return t;
}

/* SHP(&tensor->s) yields a temporary C string; valid for the enclosing full
 * expression, which is all an error message needs. */
#define SHP(shape_ptr) (ts_shape_text_of(shape_ptr).s)

/* Rejects a NULL tensor or one whose data is missing for a non-empty shape. */
static inline int ts_tensor_ok(const ts_tensor *t) {
    return t && t->size == ts_shape_numel(&t->s) && (t->size == 0 || t->data);
}

#endif
