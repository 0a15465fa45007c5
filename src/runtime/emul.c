/* emul.c: straggler models (parsing and seeded draws) and the link model
 * used by the worker's device and network emulation. */
#include "runtime/emul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    ts_straggler_kind kind;
    double lo; /* smallest allowed parameter */
} MODELS[] = {
    {"none", TS_STRAGGLER_NONE, 0},         {"fixed", TS_STRAGGLER_FIXED, 1},
    {"shiftexp", TS_STRAGGLER_SHIFTEXP, 0}, {"pareto", TS_STRAGGLER_PARETO, 1e-3},
    {"failstop", TS_STRAGGLER_FAILSTOP, 0}, {"crash", TS_STRAGGLER_CRASH, 0},
};
#define N_MODELS (sizeof MODELS / sizeof MODELS[0])

#define LINK_SUFFIX "+link"

static int timing_model(ts_straggler_kind k) {
    return k == TS_STRAGGLER_FIXED || k == TS_STRAGGLER_SHIFTEXP || k == TS_STRAGGLER_PARETO;
}

ts_status ts_straggler_parse(const char *s, ts_straggler *out, ts_err *err) {
    out->kind = TS_STRAGGLER_NONE;
    out->a = 0;
    out->link = 0;
    if (!s || !*s || !strcmp(s, "none")) return TS_OK;
    const char *colon = strchr(s, ':');
    size_t nlen = colon ? (size_t)(colon - s) : strlen(s);
    for (size_t i = 1; i < N_MODELS; i++) {
        if (strlen(MODELS[i].name) != nlen || strncmp(s, MODELS[i].name, nlen)) continue;
        if (!colon)
            return ts_errorf(err, TS_ERR_INVALID,
                             "straggler model '%s' needs a parameter, e.g. %s:2", s,
                             MODELS[i].name);
        char *end;
        double a = strtod(colon + 1, &end);
        int link = end != colon + 1 && !strcmp(end, LINK_SUFFIX);
        if (link && !timing_model(MODELS[i].kind))
            return ts_errorf(err, TS_ERR_INVALID,
                             "straggler '%s': only fixed, shiftexp and pareto can slow the link "
                             "(" LINK_SUFFIX ")",
                             s);
        if (end == colon + 1 || (*end && !link) || !isfinite(a) || a < MODELS[i].lo)
            return ts_errorf(err, TS_ERR_INVALID,
                             "straggler '%s': parameter must be a number >= %g, optionally "
                             "followed by " LINK_SUFFIX,
                             s, MODELS[i].lo);
        out->kind = MODELS[i].kind;
        out->a = a;
        out->link = link;
        return TS_OK;
    }
    return ts_errorf(err, TS_ERR_INVALID,
                     "unknown straggler model '%s' (none, fixed:F, shiftexp:MEAN, pareto:SHAPE, "
                     "failstop:T, crash:T; the first three may end in " LINK_SUFFIX ")",
                     s);
}

const char *ts_straggler_str(const ts_straggler *s, char *buf, size_t len) {
    for (size_t i = 0; i < N_MODELS; i++) {
        if (MODELS[i].kind != s->kind) continue;
        if (s->kind == TS_STRAGGLER_NONE)
            snprintf(buf, len, "none");
        else
            snprintf(buf, len, "%s:%g%s", MODELS[i].name, s->a,
                     s->link && timing_model(s->kind) ? LINK_SUFFIX : "");
        return buf;
    }
    snprintf(buf, len, "?");
    return buf;
}

double ts_emul_slowdown(const ts_straggler *s, ts_rng *rng) {
    switch (s->kind) {
    case TS_STRAGGLER_FIXED: return s->a;
    /* 1 + a * Exp(1): the shifted exponential of the coded-computing papers,
     * shift = the nominal time, mean extra delay = a times it. */
    case TS_STRAGGLER_SHIFTEXP: return 1.0 - s->a * log(1.0 - ts_rng_uniform(rng));
    /* Pareto with x_m = 1: heavy tail, P(factor > x) = x^-a. */
    case TS_STRAGGLER_PARETO: return pow(1.0 - ts_rng_uniform(rng), -1.0 / s->a);
    default: return 1.0;
    }
}

double ts_emul_xfer_s(const ts_link *l, size_t bytes) {
    return l->mbps > 0 ? (double)bytes * 8.0 / (l->mbps * 1e6) : 0.0;
}

double ts_emul_inbound(ts_link *l, double now, size_t bytes, double slow) {
    double start = now > l->in_free ? now : l->in_free;
    l->in_free = start + ts_emul_xfer_s(l, bytes) * slow;
    return l->in_free + l->latency_s;
}

double ts_emul_outbound(ts_link *l, double ready, size_t bytes, double slow) {
    double start = ready > l->out_free ? ready : l->out_free;
    l->out_free = start + ts_emul_xfer_s(l, bytes) * slow;
    return l->out_free + l->latency_s;
}
