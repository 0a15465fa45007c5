/* conv_team.c: a short-lived team of threads for one conv call.
 *
 * Why per call and not a pool: the library has no mutable globals, and a
 * conv layer runs for hundreds of microseconds to tens of milliseconds, so
 * creating one extra thread (~20 us) is cheap next to the work; callers
 * shrink the team for small layers (ts_conv_team_size). The team size is
 * fixed before any member starts (a start gate), so a thread that fails to
 * start just shrinks the team instead of leaving the barrier one short. */
#include "conv_internal.h"

#include <pthread.h>

struct ts_conv_team {
    ts_conv_team_fn fn;
    void *ctx;
    int size;
    pthread_barrier_t barrier;
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    int gate_open;
};

typedef struct {
    ts_conv_team *team;
    int tid;
} member_arg;

void ts_conv_team_barrier(ts_conv_team *team) {
    if (team->size > 1) pthread_barrier_wait(&team->barrier);
}

static void *member_main(void *arg) {
    const member_arg *ma = arg;
    ts_conv_team *team = ma->team;
    pthread_mutex_lock(&team->gate_mu);
    while (!team->gate_open)
        pthread_cond_wait(&team->gate_cv, &team->gate_mu);
    pthread_mutex_unlock(&team->gate_mu);
    team->fn(team->ctx, ma->tid, team->size, team);
    return NULL;
}

int ts_conv_team_size(int threads, double flops) {
    if (threads > TS_CONV_MAX_THREADS) threads = TS_CONV_MAX_THREADS;
    while (threads > 1 && flops / threads < TS_CONV_MIN_FLOPS_PER_THREAD)
        threads--;
    return threads < 1 ? 1 : threads;
}

void ts_conv_team_run(int threads, ts_conv_team_fn fn, void *ctx) {
    ts_conv_team team = {.fn = fn, .ctx = ctx, .size = 1};
    if (threads > TS_CONV_MAX_THREADS) threads = TS_CONV_MAX_THREADS;
    if (threads <= 1) {
        fn(ctx, 0, 1, &team);
        return;
    }
    member_arg args[TS_CONV_MAX_THREADS];
    pthread_t tids[TS_CONV_MAX_THREADS];
    pthread_mutex_init(&team.gate_mu, NULL);
    pthread_cond_init(&team.gate_cv, NULL);
    int started = 1;
    for (int t = 1; t < threads; t++) {
        args[t] = (member_arg){&team, t};
        if (pthread_create(&tids[t], NULL, member_main, &args[t]) != 0) break;
        started++;
    }
    team.size = started;
    if (started > 1 && pthread_barrier_init(&team.barrier, NULL, (unsigned)started) != 0)
        TS_ASSERT(!"pthread_barrier_init failed"); /* cannot fail for a valid count */
    pthread_mutex_lock(&team.gate_mu);
    team.gate_open = 1;
    pthread_cond_broadcast(&team.gate_cv);
    pthread_mutex_unlock(&team.gate_mu);
    fn(ctx, 0, started, &team);
    for (int t = 1; t < started; t++)
        pthread_join(tids[t], NULL);
    if (started > 1) pthread_barrier_destroy(&team.barrier);
    pthread_cond_destroy(&team.gate_cv);
    pthread_mutex_destroy(&team.gate_mu);
}
