/* cli.h: the table-driven subcommands of the tessera tool. Each command lives
 * in src/cli/cmd_<name>.c and exports one function; main.c holds the table.
 * Exit codes a script can rely on: 0 success, 1 runtime failure (bad model,
 * I/O, lost workers), 2 usage error. */
#ifndef TS_CLI_H
#define TS_CLI_H

#include <stdio.h>

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

/* ---- coded execution options (cli_coded.c) ------------------------------
 * `eval` and `infer` accept the same options to run every conv and dense
 * layer coded across workers:
 *   --workers N      N worker threads in this process (inproc://), or the
 *                    number of remote workers to wait for with --listen
 *   --stragglers S   workers that may fail to answer per layer
 *   --scheme X       crme | uncoded | replication | mds | polynomial
 *   --listen URL     bind URL (tcp://host:port, ipc:///path) for workers
 *                    started elsewhere (`tessera worker --connect URL`)
 *   --expect N       with --listen: wait for N workers before starting
 *   --deadline S     seconds a layer may take before the run fails
 *   --curve-keys DIR with --listen: CURVE, only listed workers may join
 *   --max-cond C     refuse a decoding whose condition number exceeds C
 *   --pipeline D     D inferences (batches) in flight at once, each lane a
 *                    copy of the model with its own coded executor
 * Usage: call ts_cli_coded_arg for each argv[i] the command does not know;
 * after parsing, if ts_cli_coded_active, ts_cli_coded_begin attaches the
 * coded executor to the (planned) graph; ts_cli_coded_end detaches it. */
#define TS_CLI_MAX_LANES 16 /* --pipeline at most */

typedef struct {
    int workers, stragglers, expect;
    const char *scheme, *listen, *curve_dir;
    double deadline_s, max_cond;
    int pipeline; /* lanes, >= 1 */
    int set;      /* any option given */
} ts_cli_coded;

void ts_cli_coded_init(ts_cli_coded *o);
/* 1: argv[*i] (and its value) consumed, *i advanced past the value;
 * 0: not a coded option; -1: bad value (usage error already printed). */
int ts_cli_coded_arg(ts_cli_coded *o, int argc, char **argv, int *i);
int ts_cli_coded_active(const ts_cli_coded *o);
/* One help paragraph for the options above. */
void ts_cli_coded_usage(FILE *f);

typedef struct ts_cli_coded_session ts_cli_coded_session;
/* g must already be planned for inference at its batch size (batch norm
 * folded). With --pipeline D the session loads D-1 more copies of the
 * model from model_spec (as ts_cli_load_model), prepares them the same way
 * and gives every lane its own coded executor; all lanes share the workers.
 * Prints the deployment (workers, scheme, plan) to stderr. */
ts_cli_coded_session *ts_cli_coded_begin(ts_graph *g, const char *model_spec, const ts_cli_coded *o,
                                         ts_err *err);
/* The lanes' graphs (lane 0 is the caller's g); returns their number. */
int ts_cli_coded_lanes(ts_cli_coded_session *s, ts_graph ***graphs);
void ts_cli_coded_end(ts_cli_coded_session *s); /* accepts NULL */

#endif
