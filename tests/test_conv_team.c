/* test_conv_team.c: the conv kernels' thread team (src/ops/conv_team.c).
 *
 * Members share a call's work through phases of claimable items; the
 * kernels rely on two properties, checked here on values:
 * - every item of every phase is done exactly once, whoever claims it;
 * - an item of phase k runs only after every item of phase k-1 finished
 *   (phase k reads phase k-1's results; a too-early start reads zeros).
 * Both with members that share the items (the caller waits, bounded, until
 * a member has claimed something, and then works slowly, so the runs
 * really interleave and members reach the next phase early) and with a
 * member that starts after the caller has done everything. The conv paths
 * themselves are checked against a reference at 2 threads in test_ops.c. */
#include "ops/conv_internal.h"
#include "ts_test.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

enum { PHASES = 6, MAX_ITEMS = 257 };

typedef struct {
    int64_t items[PHASES];
    /* out[k][i] = k + i + 1 + a few outputs of phase k-1. */
    double out[PHASES][MAX_ITEMS];
    _Atomic int done_count[PHASES][MAX_ITEMS];
    _Atomic int claims_by_member; /* items claimed by tid > 0 */
    int share;                    /* 1: tid 0 waits (bounded) for a member's claim */
    int late_ms;                  /* members sleep this long before starting */
} team_case;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The value an item of phase k must get, from phase k-1's outputs. */
static double item_value(const team_case *tc, int k, int64_t i) {
    double v = (double)(k + i + 1); /* never 0: an unwritten item reads 0 */
    if (k > 0) {
        int64_t n = tc->items[k - 1];
        for (int64_t r = 0; r < 3 && n > 0; r++)
            v += tc->out[k - 1][(i * 7 + r * 31) % n];
    }
    return v;
}

static void expected(const team_case *tc, double exp_out[PHASES][MAX_ITEMS]) {
    team_case tmp = *tc; /* out filled in phase order by one thread */
    for (int k = 0; k < PHASES; k++)
        for (int64_t i = 0; i < tc->items[k]; i++)
            tmp.out[k][i] = item_value(&tmp, k, i);
    memcpy(exp_out, tmp.out, sizeof tmp.out);
}

static void member(void *ctx, int tid, int size, ts_conv_team *team) {
    (void)size;
    team_case *tc = ctx;
    if (tid > 0 && tc->late_ms) sleep_ms(tc->late_ms);
    ts_conv_work w = {.tid = tid};
    int64_t lo, hi;
    for (int k = 0; k < PHASES; k++) {
        ts_conv_work_phase(team, &w, tc->items[k]);
        while (ts_conv_work_claim(team, &w, &lo, &hi)) {
            if (tid > 0) atomic_fetch_add(&tc->claims_by_member, (int)(hi - lo));
            /* Hold tid 0 until a member has claimed work (at most ~1 s, so a
             * member that never starts cannot hang the test). */
            for (int spins = 0;
                 tid == 0 && tc->share && spins < 1000 && atomic_load(&tc->claims_by_member) == 0;
                 spins++)
                sleep_ms(1);
            /* ... and make its items slow, so members finish first and would
             * run into the next phase before these are done. */
            if (tid == 0 && tc->share) sleep_ms(1);
            for (int64_t i = lo; i < hi; i++) {
                tc->out[k][i] = item_value(tc, k, i);
                atomic_fetch_add(&tc->done_count[k][i], 1);
            }
        }
    }
}

static void run_case(int threads, int share, int late_ms, const int64_t *items) {
    static team_case tc;
    static double exp_out[PHASES][MAX_ITEMS];
    memset(&tc, 0, sizeof tc);
    memcpy(tc.items, items, sizeof tc.items);
    tc.share = share && threads > 1;
    tc.late_ms = late_ms;
    for (int k = 0; k < PHASES; k++)
        for (int64_t i = 0; i < MAX_ITEMS; i++)
            atomic_init(&tc.done_count[k][i], 0);
    atomic_init(&tc.claims_by_member, 0);
    ts_conv_team_run(threads, member, &tc);
    expected(&tc, exp_out);
    int bad_count = 0, bad_value = 0;
    for (int k = 0; k < PHASES; k++)
        for (int64_t i = 0; i < tc.items[k]; i++) {
            bad_count += atomic_load(&tc.done_count[k][i]) != 1;
            bad_value += tc.out[k][i] != exp_out[k][i];
        }
    TS_CHECK_MSG(bad_count == 0, "%d threads, share %d, late %d ms: %d items not done once",
                 threads, share, late_ms, bad_count);
    TS_CHECK_MSG(bad_value == 0, "%d threads, share %d, late %d ms: %d items wrong", threads, share,
                 late_ms, bad_value);
}

static void test_team_phases_shared(void) {
    const int64_t items[PHASES] = {1, 257, 5, 0, 64, 3};
    for (int threads = 1; threads <= 4; threads++)
        for (int rep = 0; rep < 2; rep++)
            run_case(threads, 1, 0, items);
}

static void test_team_phases_free_running(void) {
    const int64_t items[PHASES] = {100, 2, 257, 17, 1, 200};
    for (int threads = 2; threads <= TS_CONV_MAX_THREADS + 1; threads++)
        for (int rep = 0; rep < 3; rep++)
            run_case(threads, 0, 0, items);
}

static void test_team_late_member(void) {
    const int64_t items[PHASES] = {31, 257, 8, 2, 99, 1};
    run_case(2, 0, 20, items); /* the caller does everything, the member finds it done */
    run_case(3, 0, 5, items);
}

/* A member asked for is told the team size; the size does not change the
 * result (claims do not depend on which members exist). */
typedef struct {
    _Atomic int seen, bad, items;
} size_case;

static void size_member(void *ctx, int tid, int size, ts_conv_team *team) {
    size_case *sc = ctx; /* no TS_CHECK here: its counters are not atomic */
    if (tid < 0 || tid >= size) atomic_fetch_add(&sc->bad, 1);
    atomic_fetch_or(&sc->seen, 1 << tid);
    ts_conv_work w = {.tid = tid};
    int64_t lo, hi;
    ts_conv_work_phase(team, &w, 10);
    while (ts_conv_work_claim(team, &w, &lo, &hi)) {
        if (lo < 0 || lo >= hi || hi > 10) atomic_fetch_add(&sc->bad, 1);
        atomic_fetch_add(&sc->items, (int)(hi - lo));
    }
}

static void test_team_members(void) {
    for (int threads = 1; threads <= TS_CONV_MAX_THREADS; threads++) {
        size_case sc;
        atomic_init(&sc.seen, 0), atomic_init(&sc.bad, 0), atomic_init(&sc.items, 0);
        ts_conv_team_run(threads, size_member, &sc);
        TS_CHECK_MSG(atomic_load(&sc.seen) == (1 << threads) - 1, "%d threads: members seen %#x",
                     threads, atomic_load(&sc.seen));
        TS_CHECK(atomic_load(&sc.bad) == 0);
        TS_CHECK(atomic_load(&sc.items) == 10);
    }
}

int main(void) {
    TS_RUN(test_team_phases_shared);
    TS_RUN(test_team_phases_free_running);
    TS_RUN(test_team_late_member);
    TS_RUN(test_team_members);
    return ts_test_summary();
}
