/* cmd_train.c: `tessera train` trains a model on Fashion-MNIST (or any IDX
 * dataset), checkpointing each epoch, with a progress bar on stderr. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tessera/data.h"
#include "tessera/train.h"
#include "tessera/zoo.h"

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: tessera train [--model zoo:fashion-cnn|M.onnx] [options]\n\n"
            "Trains on the Fashion-MNIST training set (60000 images), evaluates on the test\n"
            "set after each epoch, and saves the model as ONNX.\n\n"
            "  --model M          zoo:NAME or an ONNX file (default zoo:fashion-cnn)\n"
            "  --epochs N         epochs (default 10)\n"
            "  --batch B          mini-batch size (default 64)\n"
            "  --lr X             peak learning rate (default 1e-3 adam, 0.05 sgd)\n"
            "  --optimizer O      sgd | adam (default adam)\n"
            "  --momentum X       SGD momentum (default 0.9)\n"
            "  --wd X             weight decay on conv/dense weights (default 0)\n"
            "  --schedule S       cosine | step | constant (default cosine)\n"
            "  --warmup E         linear warmup epochs, may be fractional (default 0)\n"
            "  --augment          random horizontal flips and 2-pixel shifts\n"
            "  --seed N           seed for initialization, shuffling, dropout (default 1)\n"
            "  --threads N        compute threads (default 1)\n"
            "  --data DIR         Fashion-MNIST directory (default %s)\n"
            "  --limit N          train on the first N training images only\n"
            "  --no-eval          skip the per-epoch test-set evaluation\n"
            "  --out FILE         trained model (default trained.onnx)\n"
            "  --checkpoint-dir D write D/epoch-NNN.onnx (+ .state) after each epoch\n"
            "  --resume CKPT      continue from a checkpoint (CKPT.onnx and CKPT.onnx.state);\n"
            "                     give the original run's options: the learning-rate\n"
            "                     schedule follows --epochs, the batches follow --batch\n",
            ts_fmnist_default_dir());
}

typedef struct {
    ts_train_opts o;
    const char *model, *out, *data, *resume;
    long threads, limit;
    int no_eval, lr_set;
} train_args;

static const char *const VALUE_OPTS[] = {
    "--model",     "--out",      "--data",  "--resume", "--checkpoint-dir", "--epochs", "--batch",
    "--seed",      "--threads",  "--limit", "--lr",     "--momentum",       "--wd",     "--warmup",
    "--optimizer", "--schedule", NULL};

static int takes_value(const char *opt) {
    for (int k = 0; VALUE_OPTS[k]; k++)
        if (!strcmp(opt, VALUE_OPTS[k])) return 1;
    return 0;
}

static int parse_choice(const char *opt, const char *v, int (*parse)(const char *),
                        const char *choices, int *out) {
    int k = parse(v);
    if (k < 0) {
        fprintf(stderr, "tessera: %s expects %s, got '%s'\n", opt, choices, v);
        return 0;
    }
    *out = k;
    return 1;
}

/* Returns 1 when argv[*i] was a known option (its value consumed, *i
 * advanced), 0 when unknown, -1 for a bad or missing value. */
static int parse_opt(train_args *a, int argc, char **argv, int *i) {
    const char *opt = argv[*i];
    if (!strcmp(opt, "--augment")) return a->o.augment = 1;
    if (!strcmp(opt, "--no-eval")) return a->no_eval = 1;
    if (!takes_value(opt)) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "tessera: %s needs a value\n", opt);
        return -1;
    }
    const char *v = argv[++*i];
    long l = 0;
    int ok = 1, k = 0;
    if (!strcmp(opt, "--model"))
        a->model = v;
    else if (!strcmp(opt, "--out"))
        a->out = v;
    else if (!strcmp(opt, "--data"))
        a->data = v;
    else if (!strcmp(opt, "--resume"))
        a->resume = v;
    else if (!strcmp(opt, "--checkpoint-dir"))
        a->o.checkpoint_dir = v;
    else if (!strcmp(opt, "--epochs")) {
        if ((ok = ts_cli_parse_int(opt, v, 1, 100000, &l))) a->o.epochs = (int)l;
    } else if (!strcmp(opt, "--batch")) {
        if ((ok = ts_cli_parse_int(opt, v, 1, 65536, &l))) a->o.batch = (int)l;
    } else if (!strcmp(opt, "--seed")) {
        if ((ok = ts_cli_parse_int(opt, v, 0, 2147483647L, &l))) a->o.seed = (uint64_t)l;
    } else if (!strcmp(opt, "--threads"))
        ok = ts_cli_parse_int(opt, v, 1, 256, &a->threads);
    else if (!strcmp(opt, "--limit"))
        ok = ts_cli_parse_int(opt, v, 1, TS_DATA_MAX_ITEMS, &a->limit);
    else if (!strcmp(opt, "--lr"))
        ok = a->lr_set = ts_cli_parse_double(opt, v, 1e-9, 10, &a->o.lr);
    else if (!strcmp(opt, "--momentum"))
        ok = ts_cli_parse_double(opt, v, 0, 0.999, &a->o.momentum);
    else if (!strcmp(opt, "--wd"))
        ok = ts_cli_parse_double(opt, v, 0, 1, &a->o.weight_decay);
    else if (!strcmp(opt, "--warmup"))
        ok = ts_cli_parse_double(opt, v, 0, 100000, &a->o.warmup_epochs);
    else if (!strcmp(opt, "--optimizer")) {
        if ((ok = parse_choice(opt, v, ts_optim_parse, "sgd or adam", &k)))
            a->o.optimizer = (ts_optim_kind)k;
    } else if (!strcmp(opt, "--schedule")) {
        if ((ok = parse_choice(opt, v, ts_sched_parse, "cosine, step or constant", &k)))
            a->o.schedule = (ts_sched_kind)k;
    }
    return ok ? 1 : -1;
}

/* ---- progress ----------------------------------------------------------- */

typedef struct {
    int tty;
    double last_draw;
    int64_t last_tenth;
} bar_state;

static void fmt_time(double s, char *buf, size_t len) {
    if (s < 0 || s > 1e7) s = 0;
    long t = (long)(s + 0.5);
    snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

static void on_progress(const ts_train_progress *p, void *user) {
    bar_state *b = user;
    char eta[32];
    fmt_time(p->eta_s, eta, sizeof eta);
    if (p->epoch_done) {
        if (b->tty) fputc('\n', stderr);
        fprintf(stderr, "epoch %d/%d: loss %.4f  train acc %.2f%%", p->epoch + 1, p->epochs,
                p->loss, 100 * p->accuracy);
        if (p->val_accuracy >= 0) fprintf(stderr, "  test acc %.2f%%", 100 * p->val_accuracy);
        if (p->checkpoint) fprintf(stderr, "  -> %s", p->checkpoint);
        fputc('\n', stderr);
        b->last_tenth = -1;
        return;
    }
    double now = ts_now();
    int64_t tenth = p->step_in_epoch * 10 / p->steps_per_epoch;
    if (b->tty) {
        if (now - b->last_draw < 0.1 && p->step_in_epoch != p->steps_per_epoch) return;
        b->last_draw = now;
        enum { WIDTH = 24 };
        int fill = (int)(WIDTH * p->step_in_epoch / p->steps_per_epoch);
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = 0;
        fprintf(stderr,
                "\repoch %d/%d [%s] %lld/%lld  loss %.4f  acc %.2f%%  lr %.2e  %.0f img/s  ETA "
                "%s\033[K",
                p->epoch + 1, p->epochs, bar, (long long)p->step_in_epoch,
                (long long)p->steps_per_epoch, p->loss, 100 * p->accuracy, p->lr, p->images_per_s,
                eta);
    } else {
        /* not a terminal (a log file, CI): one plain line per tenth */
        if (tenth == b->last_tenth) return;
        b->last_tenth = tenth;
        if (tenth == 0) return;
        fprintf(stderr,
                "epoch %d/%d step %lld/%lld loss %.4f acc %.2f%% lr %.2e %.0f img/s ETA %s\n",
                p->epoch + 1, p->epochs, (long long)p->step_in_epoch, (long long)p->steps_per_epoch,
                p->loss, 100 * p->accuracy, p->lr, p->images_per_s, eta);
    }
    fflush(stderr);
}

/* ---- command ------------------------------------------------------------ */

static ts_graph *load_model(const train_args *a, ts_err *err) {
    if (a->resume) return ts_onnx_load(a->resume, err);
    if (!strncmp(a->model, "zoo:", 4)) return ts_zoo_build(a->model + 4, a->o.seed, err);
    return ts_onnx_load(a->model, err);
}

static int run_training(train_args *a) {
    ts_err err = {0};
    ts_threads_set((int)a->threads);
    ts_dataset *train = ts_fmnist_load(a->data, "train", &err);
    if (!train) return ts_cli_fail(&err);
    if (a->limit > 0 && a->limit < ts_dataset_count(train)) {
        ts_dataset *sub = ts_dataset_subset(train, 0, a->limit, &err);
        ts_dataset_free(train);
        if (!(train = sub)) return ts_cli_fail(&err);
    }
    ts_dataset *test = a->no_eval ? NULL : ts_fmnist_load(a->data, "test", &err);
    ts_graph *g = (a->no_eval || test) ? load_model(a, &err) : NULL;
    ts_trainer *t = g ? ts_trainer_new(g, &a->o, &err) : NULL;
    ts_status st = t ? TS_OK : TS_ERR_INVALID;
    if (st == TS_OK && a->resume) {
        char state[4200];
        snprintf(state, sizeof state, "%s.state", a->resume);
        st = ts_trainer_load_state(t, state, &err);
        if (st == TS_OK)
            fprintf(stderr, "resuming %s after epoch %d (step %lld)\n", a->resume,
                    ts_trainer_epoch(t), (long long)ts_trainer_step_count(t));
    }
    double t0 = ts_now();
    if (st == TS_OK) {
        fprintf(stderr,
                "training %s on %lld images: %d epochs, batch %d, %s lr %g, wd %g, seed %llu, %ld "
                "thread(s)\n",
                a->resume ? a->resume : a->model, (long long)ts_dataset_count(train), a->o.epochs,
                a->o.batch, ts_optim_name(a->o.optimizer), a->o.lr, a->o.weight_decay,
                (unsigned long long)a->o.seed, a->threads);
        bar_state bar = {isatty(2), 0, -1};
        ts_trainer_set_progress(t, on_progress, &bar);
        st = ts_trainer_fit(t, train, test, &err);
    }
    if (st == TS_OK) st = ts_onnx_save(g, a->out, &err);
    if (st == TS_OK)
        printf("trained %d epochs in %.1f s; model saved to %s\n", a->o.epochs, ts_now() - t0,
               a->out);
    ts_trainer_free(t);
    ts_graph_free(g);
    ts_dataset_free(train);
    ts_dataset_free(test);
    return st == TS_OK ? TS_EXIT_OK : ts_cli_fail(&err);
}

int ts_cmd_train(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        train_usage(stdout);
        return TS_EXIT_OK;
    }
    train_args a = {.o = ts_train_opts_default(),
                    .model = "zoo:fashion-cnn",
                    .out = "trained.onnx",
                    .threads = 1};
    for (int i = 1; i < argc; i++) {
        int r = parse_opt(&a, argc, argv, &i);
        if (r < 0) return TS_EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "tessera train: unexpected argument '%s'\n", argv[i]);
            train_usage(stderr);
            return TS_EXIT_USAGE;
        }
    }
    if (a.o.optimizer == TS_OPTIM_SGD && !a.lr_set) a.o.lr = 0.05;
    ts_err err = {0};
    if (ts_train_opts_check(&a.o, &err) != TS_OK) {
        fprintf(stderr, "tessera train: %s\n", err.msg);
        return TS_EXIT_USAGE;
    }
    return run_training(&a);
}
