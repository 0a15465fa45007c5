/* scheme.c: names of the coded-execution schemes. */
#include <string.h>

#include "tessera/coded.h"

static const char *const scheme_names[] = {
    [TS_SCHEME_UNCODED] = "uncoded", [TS_SCHEME_REPLICATION] = "replication",
    [TS_SCHEME_MDS] = "mds",         [TS_SCHEME_POLYNOMIAL] = "polynomial",
    [TS_SCHEME_CRME] = "crme",
};

const char *ts_scheme_name(ts_scheme s) {
    if ((int)s < 0 || (int)s >= (int)(sizeof scheme_names / sizeof scheme_names[0])) return "?";
    return scheme_names[s];
}

ts_status ts_scheme_parse(const char *name, ts_scheme *out, ts_err *err) {
    for (int i = 0; i < (int)(sizeof scheme_names / sizeof scheme_names[0]); i++)
        if (name && !strcmp(name, scheme_names[i])) {
            *out = (ts_scheme)i;
            return TS_OK;
        }
    return ts_errorf(err, TS_ERR_INVALID,
                     "unknown scheme '%s' (use crme, uncoded, replication, mds or polynomial)",
                     name ? name : "(null)");
}
