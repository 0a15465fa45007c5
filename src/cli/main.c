/* main.c: dispatches `tessera <command>` through the command table. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* One declaration and one table row per command (src/cli/cmd_<name>.c). */
int ts_cmd_inspect(int argc, char **argv);
int ts_cmd_bench(int argc, char **argv);
int ts_cmd_worker(int argc, char **argv);
int ts_cmd_cluster(int argc, char **argv);
int ts_cmd_probe(int argc, char **argv);
int ts_cmd_keygen(int argc, char **argv);
int ts_cmd_train(int argc, char **argv);
int ts_cmd_eval(int argc, char **argv);
int ts_cmd_infer(int argc, char **argv);
int ts_cmd_plan(int argc, char **argv);
int ts_cmd_codes(int argc, char **argv);

static int ts_cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("tessera 0.1\n");
    return TS_EXIT_OK;
}

static const ts_cli_command COMMANDS[] = {
    {"inspect", "list a model's layers, shapes, parameters, MACs and memory", ts_cmd_inspect},
    {"bench", "time a model's forward pass layer by layer", ts_cmd_bench},
    {"worker", "serve a master's tasks (tessera worker --connect URL)", ts_cmd_worker},
    {"cluster", "run a command against N local worker processes", ts_cmd_cluster},
    {"probe", "check workers end to end with verified conv tasks", ts_cmd_probe},
    {"keygen", "make CURVE keys for --curve-keys, or authorize a worker", ts_cmd_keygen},
    {"train", "train a model on Fashion-MNIST with checkpoints and resume", ts_cmd_train},
    {"eval", "accuracy and confusion matrix of a model on Fashion-MNIST", ts_cmd_eval},
    {"infer", "classify PGM/PPM images or IDX files, top-k with class names", ts_cmd_infer},
    {"plan", "per-layer coded plan: split, traffic, storage, FLOPs, conditioning", ts_cmd_plan},
    {"codes", "a straggler code's threshold, costs and worst-case conditioning", ts_cmd_codes},
    {"version", "print the version", ts_cmd_version},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

int ts_cli_fail(const ts_err *err) {
    fprintf(stderr, "tessera: %s\n", err->msg[0] ? err->msg : ts_status_name(err->status));
    return TS_EXIT_FAIL;
}

int ts_cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: tessera <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\n'tessera <command> --help' describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return TS_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return TS_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tessera: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return TS_EXIT_USAGE;
}
