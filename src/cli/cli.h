/* cli.h: the table-driven subcommands of the tessera tool. Each command lives
 * in src/cli/cmd_<name>.c and exports one function; main.c holds the table.
 * Exit codes a script can rely on: 0 success, 1 runtime failure (bad model,
 * I/O, lost workers), 2 usage error. */
#ifndef TS_CLI_H
#define TS_CLI_H

#include "tessera/core.h"
#include "tessera/graph.h"

enum { TS_EXIT_OK = 0, TS_EXIT_FAIL = 1, TS_EXIT_USAGE = 2 };

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
} ts_cli_command;

/* Prints "tessera: <msg>" to stderr and returns TS_EXIT_FAIL. */
int ts_cli_fail(const ts_err *err);
/* Returns 1 when argv holds -h or --help. */
int ts_cli_wants_help(int argc, char **argv);

/* Loads a model: an ONNX path, or "zoo:NAME" for a zoo builder. */
ts_graph *ts_cli_load_model(const char *spec, ts_err *err);
/* Parse a numeric option value; print a usage error and return 0 if bad. */
int ts_cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out);
int ts_cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);
const char *ts_cli_human_bytes(double bytes, char *buf, size_t len);

#endif
