/* cli_util.c: helpers shared by the subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tessera/zoo.h"

ts_graph *ts_cli_load_model(const char *spec, ts_err *err) {
    if (!strncmp(spec, "zoo:", 4)) return ts_zoo_build(spec + 4, 1, err);
    return ts_onnx_load(spec, err);
}

int ts_cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || !*s || *end || v < lo || v > hi) {
        fprintf(stderr, "tessera: %s expects an integer in [%ld, %ld], got '%s'\n", opt, lo, hi,
                s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

int ts_cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s ? s : "", &end);
    if (!s || !*s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "tessera: %s expects a number in [%g, %g], got '%s'\n", opt, lo, hi,
                s ? s : "");
        return 0;
    }
    *out = v;
    return 1;
}

const char *ts_cli_human_bytes(double b, char *buf, size_t len) {
    const char *u[] = {"B", "KiB", "MiB", "GiB"};
    int i = 0;
    while (b >= 1024 && i < 3)
        b /= 1024, i++;
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
    return buf;
}
