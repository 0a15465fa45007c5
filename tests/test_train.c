/* test_train.c: training reduces the loss and learns (seeded, no timing),
 * resume reproduces an uninterrupted run bit for bit, the schedule, and
 * refusals of bad options and bad optimizer-state files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/data.h"
#include "tessera/train.h"
#include "tessera/zoo.h"
#include "ts_test.h"

static char tmpdir[256];
static ts_dataset *train_full, *test_full;
static int sanitized;

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

typedef struct {
    double first_loss, last_loss;
    int epochs_seen;
} loss_log;

static void log_progress(const ts_train_progress *p, void *user) {
    loss_log *l = user;
    if (!p->epoch_done) return;
    if (l->epochs_seen == 0) l->first_loss = p->loss;
    l->last_loss = p->loss;
    l->epochs_seen++;
}

/* Trains fashion-cnn on the first n training images and returns the test
 * accuracy on the first 1000 test images. */
static double train_and_eval(ts_optim_kind optim, double lr, int64_t n, int epochs, loss_log *log) {
    ts_err err = {0};
    ts_dataset *sub = ts_dataset_subset(train_full, 0, n, &err);
    ts_graph *g = ts_zoo_build("fashion-cnn", 7, &err);
    ts_train_opts o = ts_train_opts_default();
    o.optimizer = optim;
    o.lr = lr;
    o.batch = 32;
    o.epochs = epochs;
    o.seed = 7;
    o.weight_decay = 1e-4;
    ts_trainer *t = g && sub ? ts_trainer_new(g, &o, &err) : NULL;
    TS_CHECK_MSG(t != NULL, "%s", err.msg);
    double acc = 0;
    if (t) {
        ts_trainer_set_progress(t, log_progress, log);
        TS_CHECK_OK(ts_trainer_fit(t, sub, NULL, &err), &err);
        TS_CHECK(ts_trainer_epoch(t) == epochs);
        TS_CHECK(ts_trainer_step_count(t) == epochs * (n / 32));
        ts_eval_result r;
        TS_CHECK_OK(ts_evaluate(g, test_full, 100, 1000, 1, &r, &err), &err);
        acc = ts_eval_accuracy(&r);
        TS_CHECK(r.count == 1000);
        int64_t sum = 0;
        for (int i = 0; i < 100; i++)
            sum += r.confusion[i];
        TS_CHECK(sum == 1000);
        ts_eval_result_free(&r);
    }
    ts_trainer_free(t);
    ts_graph_free(g);
    ts_dataset_free(sub);
    return acc;
}

static void test_learns(void) {
    /* ~200 steps of batch 32 (100 under the sanitizers) */
    int64_t n = sanitized ? 1600 : 3200;
    int epochs = 2;
    /* the sanitizers run Adam only: SGD is the same code path, 10x slower */
    for (int k = 0; k < (sanitized ? 1 : 2); k++) {
        loss_log log = {0};
        ts_optim_kind optim = k ? TS_OPTIM_SGD : TS_OPTIM_ADAM;
        double acc = train_and_eval(optim, k ? 0.05 : 1e-3, n, epochs, &log);
        printf("  %s: epoch loss %.3f -> %.3f, test accuracy %.1f%%\n", ts_optim_name(optim),
               log.first_loss, log.last_loss, 100 * acc);
        TS_CHECK(log.epochs_seen == epochs);
        TS_CHECK(log.last_loss < log.first_loss);
        /* chance is 10%; a few hundred steps reach well above 60% */
        TS_CHECK_MSG(acc > 0.6, "%s accuracy %.3f", ts_optim_name(optim), acc);
    }
}

static int graphs_equal(ts_graph *a, ts_graph *b) {
    if (ts_graph_num_values(a) != ts_graph_num_values(b)) return 0;
    for (int i = 0; i < ts_graph_num_values(a); i++) {
        ts_value_view va = ts_graph_value(a, i), vb = ts_graph_value(b, i);
        if (!va.init) continue;
        if (!vb.init || va.init->size != vb.init->size ||
            memcmp(va.init->data, vb.init->data, (size_t)va.init->size * sizeof(float)) != 0)
            return 0;
    }
    return 1;
}

static ts_train_opts resume_opts(ts_optim_kind optim) {
    ts_train_opts o = ts_train_opts_default();
    o.optimizer = optim;
    o.lr = optim == TS_OPTIM_SGD ? 0.05 : 1e-3;
    o.batch = 16;
    o.epochs = 3;
    o.seed = 11;
    o.augment = 1;
    o.warmup_epochs = 0.5;
    o.weight_decay = 1e-3;
    o.checkpoint_dir = tmpdir;
    return o;
}

static void test_resume_matches(void) {
    ts_err err = {0};
    ts_dataset *sub = ts_dataset_subset(train_full, 0, 160, &err);
    for (int k = 0; k < 2 && sub; k++) {
        ts_optim_kind optim = k ? TS_OPTIM_SGD : TS_OPTIM_ADAM;
        ts_train_opts o = resume_opts(optim);
        /* uninterrupted: 3 epochs, checkpoints after each */
        ts_graph *a = ts_zoo_build("fashion-cnn", 3, &err);
        ts_trainer *ta = ts_trainer_new(a, &o, &err);
        TS_CHECK_MSG(ta != NULL, "%s", err.msg);
        if (!ta) break;
        TS_CHECK_OK(ts_trainer_fit(ta, sub, NULL, &err), &err);
        /* resumed: from the checkpoint of epoch 1 to the end */
        ts_graph *b = ts_onnx_load(tmp_path("epoch-001.onnx"), &err);
        TS_CHECK_MSG(b != NULL, "%s", err.msg);
        ts_trainer *tb = b ? ts_trainer_new(b, &o, &err) : NULL;
        if (tb) {
            TS_CHECK_OK(ts_trainer_load_state(tb, tmp_path("epoch-001.onnx.state"), &err), &err);
            TS_CHECK(ts_trainer_epoch(tb) == 1 && ts_trainer_step_count(tb) == 10);
            TS_CHECK_OK(ts_trainer_fit(tb, sub, NULL, &err), &err);
            TS_CHECK(ts_trainer_step_count(tb) == 30);
            TS_CHECK_MSG(graphs_equal(a, b), "%s: resumed weights differ", ts_optim_name(optim));
        }
        /* and the resumed graph is not trivially equal: epoch 1's is not */
        ts_graph *c = ts_onnx_load(tmp_path("epoch-001.onnx"), &err);
        TS_CHECK(c && !graphs_equal(a, c));
        ts_graph_free(c);
        ts_trainer_free(tb);
        ts_graph_free(b);
        ts_trainer_free(ta);
        ts_graph_free(a);
    }
    ts_dataset_free(sub);
}

static void expect_bad(ts_train_opts o, const char *want) {
    ts_err err = {0};
    TS_CHECK(ts_train_opts_check(&o, &err) == TS_ERR_INVALID);
    TS_CHECK_MSG(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg, want);
    ts_graph *g = ts_zoo_build("lenet5", 1, &err);
    TS_CHECK(ts_trainer_new(g, &o, &err) == NULL);
    ts_graph_free(g);
}

static void test_bad_options(void) {
    ts_train_opts d = ts_train_opts_default(), o;
    ts_err err = {0};
    TS_CHECK_OK(ts_train_opts_check(&d, &err), &err);
    o = d, o.epochs = 0, expect_bad(o, "epochs");
    o = d, o.batch = 0, expect_bad(o, "batch");
    o = d, o.lr = -1, expect_bad(o, "learning rate");
    o = d, o.lr = NAN, expect_bad(o, "learning rate");
    o = d, o.lr = INFINITY, expect_bad(o, "learning rate");
    o = d, o.momentum = 1.5, expect_bad(o, "momentum");
    o = d, o.beta2 = 1.0, expect_bad(o, "betas");
    o = d, o.weight_decay = -0.1, expect_bad(o, "weight decay");
    o = d, o.warmup_epochs = 11, expect_bad(o, "warmup");
    o = d, o.optimizer = (ts_optim_kind)7, expect_bad(o, "optimizer");
    o = d, o.schedule = (ts_sched_kind)9, expect_bad(o, "schedule");
    o = d, o.step_epochs = 0, o.schedule = TS_SCHED_STEP, expect_bad(o, "step");
    TS_CHECK(ts_optim_parse("adam") == TS_OPTIM_ADAM && ts_optim_parse("rmsprop") < 0);
    TS_CHECK(ts_sched_parse("step") == TS_SCHED_STEP && ts_sched_parse("linear") < 0);
    /* a dataset smaller than one batch, and a model/dataset mismatch */
    ts_dataset *tiny = ts_dataset_subset(train_full, 0, 10, &err);
    ts_graph *g = ts_zoo_build("fashion-cnn", 1, &err);
    o = d, o.batch = 32;
    ts_trainer *t = ts_trainer_new(g, &o, &err);
    TS_CHECK(t && ts_trainer_fit(t, tiny, NULL, &err) == TS_ERR_INVALID);
    TS_CHECK(strstr(err.msg, "smaller than one batch") != NULL);
    ts_trainer_free(t);
    ts_graph_free(g);
    ts_dataset_free(tiny);
    g = ts_zoo_build("alexnet", 1, &err);
    o = d, o.batch = 1;
    t = g ? ts_trainer_new(g, &o, &err) : NULL;
    TS_CHECK(t && ts_trainer_fit(t, train_full, NULL, &err) == TS_ERR_SHAPE);
    ts_trainer_free(t);
    ts_graph_free(g);
}

static void test_schedule(void) {
    ts_train_opts o = ts_train_opts_default();
    o.lr = 0.1, o.epochs = 10;
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 0, 100), 0.1, 1e-12);
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 500, 100), 0.05, 1e-12);
    TS_CHECK(ts_trainer_lr_at(&o, 999, 100) < 1e-5);
    o.warmup_epochs = 2;
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 0, 100), 0.001, 1e-12);
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 100, 100), 0.1 * (0.01 + 0.99 * 0.5), 1e-12);
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 200, 100), 0.1, 1e-12);
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 600, 100), 0.05, 1e-12);
    o.warmup_epochs = 0, o.schedule = TS_SCHED_STEP, o.step_epochs = 3, o.step_gamma = 0.5;
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 299, 100), 0.1, 1e-12);
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 300, 100), 0.05, 1e-12);
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 650, 100), 0.025, 1e-12);
    o.schedule = TS_SCHED_CONSTANT;
    TS_CHECK_NEAR(ts_trainer_lr_at(&o, 999, 100), 0.1, 1e-12);
}

static void write_bytes(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    TS_CHECK(f != NULL);
    if (!f) return;
    TS_CHECK(fwrite(b, 1, n, f) == n);
    fclose(f);
}

static void expect_state_fail(ts_trainer *t, const char *path, const char *want) {
    ts_err err = {0};
    TS_CHECK(ts_trainer_load_state(t, path, &err) != TS_OK);
    TS_CHECK_MSG(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg, want);
    TS_CHECK(ts_trainer_epoch(t) == 0 && ts_trainer_step_count(t) == 0);
}

static void test_bad_state_files(void) {
    ts_err err = {0};
    ts_graph *g = ts_zoo_build("lenet5", 1, &err);
    ts_train_opts o = ts_train_opts_default();
    o.batch = 4;
    ts_trainer *t = ts_trainer_new(g, &o, &err);
    TS_CHECK(t != NULL);
    if (!t) return;
    char good[512];
    snprintf(good, sizeof good, "%s", tmp_path("good.state"));
    TS_CHECK_OK(ts_trainer_save_state(t, good, &err), &err);
    FILE *f = fopen(good, "rb");
    uint8_t *b = malloc(1 << 22);
    size_t n = f ? fread(b, 1, 1 << 22, f) : 0;
    if (f) fclose(f);
    TS_CHECK(n > 100);
    TS_CHECK_OK(ts_trainer_load_state(t, good, &err), &err);
    expect_state_fail(t, tmp_path("missing.state"), "cannot open");
    write_bytes(tmp_path("short"), b, n - 1);
    expect_state_fail(t, tmp_path("short"), "truncated or foreign");
    uint8_t *longer = malloc(n + 8);
    memcpy(longer, b, n);
    memset(longer + n, 0, 8);
    write_bytes(tmp_path("long"), longer, n + 8);
    expect_state_fail(t, tmp_path("long"), "truncated or foreign");
    free(longer);
    b[n / 2] ^= 1;
    write_bytes(tmp_path("flip"), b, n);
    expect_state_fail(t, tmp_path("flip"), "checksum");
    b[n / 2] ^= 1;
    b[0] = 'X';
    write_bytes(tmp_path("magic"), b, n);
    expect_state_fail(t, tmp_path("magic"), "not a Tessera optimizer-state");
    b[0] = 'T';
    b[8] = 9;
    write_bytes(tmp_path("version"), b, n);
    expect_state_fail(t, tmp_path("version"), "version 9");
    b[8] = 1;
    write_bytes(tmp_path("empty"), b, 0);
    expect_state_fail(t, tmp_path("empty"), "not a Tessera");
    /* SGD state into an Adam run, lenet5 state into fashion-cnn */
    ts_graph *g2 = ts_zoo_build("lenet5", 1, &err);
    ts_train_opts os = o;
    os.optimizer = TS_OPTIM_SGD;
    ts_trainer *ts = ts_trainer_new(g2, &os, &err);
    TS_CHECK_OK(ts_trainer_save_state(ts, tmp_path("sgd.state"), &err), &err);
    expect_state_fail(t, tmp_path("sgd.state"), "holds sgd state");
    ts_graph *g3 = ts_zoo_build("fashion-cnn", 1, &err);
    ts_trainer *tf = ts_trainer_new(g3, &o, &err);
    TS_CHECK(tf != NULL);
    if (tf) expect_state_fail(tf, good, "parameters");
    /* a state whose epoch exceeds the run's --epochs */
    ts_train_opts o1 = o;
    o1.epochs = 1;
    ts_graph *g4 = ts_zoo_build("lenet5", 1, &err);
    ts_trainer *t1 = ts_trainer_new(g4, &o1, &err);
    ts_dataset *sub = ts_dataset_subset(train_full, 0, 8, &err);
    TS_CHECK_OK(ts_trainer_fit(t1, sub, NULL, &err), &err);
    TS_CHECK_OK(ts_trainer_save_state(t1, tmp_path("e1.state"), &err), &err);
    ts_train_opts o0 = o1;
    ts_trainer_free(t1);
    t1 = ts_trainer_new(g4, &o0, &err);
    TS_CHECK_OK(ts_trainer_load_state(t1, tmp_path("e1.state"), &err), &err);
    TS_CHECK(ts_trainer_epoch(t1) == 1);
    TS_CHECK_OK(ts_trainer_fit(t1, sub, NULL, &err), &err); /* nothing left: no-op */
    TS_CHECK(ts_trainer_step_count(t1) == 2);
    ts_dataset_free(sub);
    ts_trainer_free(t1);
    ts_graph_free(g4);
    ts_trainer_free(tf);
    ts_graph_free(g3);
    ts_trainer_free(ts);
    ts_graph_free(g2);
    free(b);
    ts_trainer_free(t);
    ts_graph_free(g);
}

/* Several lanes (copies of one model, each run by its own thread) give
 * exactly what one lane gives: counts, confusion matrix and loss, also with
 * a partial last batch; bad lane arguments are refused. */
static void test_evaluate_lanes(void) {
    ts_err err = {0};
    ts_graph *g[3] = {0};
    for (int i = 0; i < 3; i++) {
        g[i] = ts_zoo_build("fashion-cnn", 5, &err);
        TS_CHECK_MSG(g[i] != NULL, "%s", err.msg);
    }
    if (!g[0] || !g[1] || !g[2]) goto done;
    int64_t limit = sanitized ? 300 : 1000;
    ts_eval_result one, three;
    TS_CHECK_OK(ts_evaluate(g[0], test_full, 64, limit, 1, &one, &err), &err);
    TS_CHECK_OK(ts_evaluate_lanes(g, 3, test_full, 64, limit, 1, &three, &err), &err);
    TS_CHECK(one.count == limit && three.count == limit);
    TS_CHECK(one.correct == three.correct);
    TS_CHECK_MSG(one.loss == three.loss, "loss %.17g vs %.17g", one.loss, three.loss);
    TS_CHECK(memcmp(one.confusion, three.confusion, 100 * sizeof *one.confusion) == 0);
    ts_eval_result_free(&one);
    ts_eval_result_free(&three);
    ts_eval_result bad;
    TS_CHECK(ts_evaluate_lanes(g, 0, test_full, 64, limit, 1, &bad, &err) == TS_ERR_INVALID);
    /* a lane planned for another batch size is refused before anything runs */
    TS_CHECK_OK(ts_graph_plan(g[2], 32, 0, &err), &err);
    TS_CHECK(ts_evaluate_lanes(g, 3, test_full, 64, limit, 0, &bad, &err) == TS_ERR_SHAPE);
    ts_eval_result_free(&bad);
done:
    for (int i = 0; i < 3; i++)
        ts_graph_free(g[i]);
}

int main(void) {
    sanitized = getenv("TS_SANITIZED") != NULL;
    ts_threads_set(1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ts_test_train_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    ts_err err = {0};
    train_full = ts_fmnist_load(NULL, "train", &err);
    test_full = train_full ? ts_fmnist_load(NULL, "test", &err) : NULL;
    if (!test_full) {
        fprintf(stderr, "cannot load Fashion-MNIST: %s\n", err.msg);
        return 1;
    }
    TS_RUN(test_schedule);
    TS_RUN(test_bad_options);
    TS_RUN(test_bad_state_files);
    TS_RUN(test_resume_matches);
    TS_RUN(test_learns);
    TS_RUN(test_evaluate_lanes);
    ts_dataset_free(train_full);
    ts_dataset_free(test_full);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return ts_test_summary();
}
