/* conv_team.c: a short-lived team of threads for one conv call, sharing
 * the call's work through phases whose items any member may claim.
 *
 * Why per call and not a pool: the library has no mutable globals and the
 * op API has no context object to own one. Creating a thread costs 28 us
 * at best on the dev machine (pthread_create + join of an empty thread,
 * min of 2000; mean 70-280 us under load), so the team is built to not
 * wait for it:
 *
 * - No start gate and no barrier. A kernel splits its call into phases
 *   (e.g. pack the input, then multiply); each phase is a count of items
 *   that members claim in runs (ts_conv_work_claim). A member
 *   enters a phase only when every item of the earlier phases is finished,
 *   so it waits for work in progress, never for a thread that has not
 *   started or lost its CPU: the caller starts at once and does whatever
 *   the others have not claimed (a late member finds its phases done and
 *   leaves). With a static split and barriers, every phase waited for the
 *   slowest member's share.
 * - Each member owns a fixed range of every phase (the range a static
 *   split would give it) and claims from it first; only then does it help
 *   with the others' ranges. With all members running, each writes the
 *   same outputs and workspace on every call: here, data last written on
 *   the other CPU is slow to reach (one thread moved to the other CPU on
 *   alternate calls: ResNet 3x3 64->64 at 56x56 0.68 -> 1.23 ms min,
 *   3x3/2 64->128 0.63 -> 0.85, 3x3 256->256 at 14x14 1.36 -> 1.68), and
 *   with shared claims the threads swapped parts of the output at random.
 * - Members start off the caller's CPU (place_off_caller). */
#include "conv_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

struct ts_conv_team {
    ts_conv_team_fn fn;
    void *ctx;
    int size;          /* threads asked for (chunk sizes, per-thread slots) */
    int place;         /* members start off the caller's CPU, then get `allowed` */
    cpu_set_t allowed; /* the caller's CPU mask */
    /* Per range r (member r's share of the current phase): the phase
     * number << RANGE_SHIFT | the next item index. A range whose phase is
     * older than the claimant's is untouched in this phase. */
    _Atomic uint64_t cursor[TS_CONV_MAX_THREADS];
    _Atomic int64_t finished; /* items done, numbered across all phases */
};

enum { RANGE_SHIFT = 40 }; /* item indices below 2^40, phases below 2^24 */

typedef struct {
    ts_conv_team *team;
    int tid;
    _Atomic int started;
} member_arg;

/* Spins (pause) first: the items waited for are being finished by a
 * running member, usually within microseconds. Then yields, then sleeps in
 * 50 us steps: a member that lost its CPU to another process may need a
 * scheduler slice (milliseconds) to come back, and spinning for it would
 * take CPU time from that process. */
enum { WAIT_SPINS = 4096, WAIT_YIELDS = 64 };

static void wait_finished(ts_conv_team *team, int64_t target) {
    for (int n = 0; atomic_load_explicit(&team->finished, memory_order_acquire) < target; n++) {
        if (n < WAIT_SPINS) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else if (n < WAIT_SPINS + WAIT_YIELDS) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
            n = WAIT_SPINS + WAIT_YIELDS; /* no overflow */
        }
    }
}

static void report(ts_conv_team *team, ts_conv_work *w) {
    if (w->held) atomic_fetch_add_explicit(&team->finished, w->held, memory_order_release);
    w->held = 0;
}

void ts_conv_work_phase(ts_conv_team *team, ts_conv_work *w, int64_t items) {
    report(team, w);
    w->phase++;
    w->scan = 0;
    w->base = w->end;
    w->end = w->base + (items > 0 ? items : 0);
    wait_finished(team, w->base);
}

/* Claims up to an eighth of range r from its cursor: [*lo, *hi) within
 * the range [rlo, rhi); 0 when the range is used up in this phase. */
static int claim_in_range(ts_conv_team *team, const ts_conv_work *w, int r, int64_t rlo,
                          int64_t rhi, int64_t *lo, int64_t *hi) {
    const uint64_t phase = (uint64_t)w->phase;
    const int64_t run = (rhi - rlo + 7) / 8;
    uint64_t c = atomic_load_explicit(&team->cursor[r], memory_order_relaxed);
    for (;;) {
        const uint64_t tag = c >> RANGE_SHIFT;
        if (tag > phase) return 0; /* a later phase started: this one is done */
        const int64_t start = tag < phase ? rlo : (int64_t)(c & (((uint64_t)1 << RANGE_SHIFT) - 1));
        if (start >= rhi) return 0;
        const int64_t stop = rhi - start < run ? rhi : start + run;
        const uint64_t next = phase << RANGE_SHIFT | (uint64_t)stop;
        if (atomic_compare_exchange_weak_explicit(&team->cursor[r], &c, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *lo = start, *hi = stop;
            return 1;
        }
    }
}

int ts_conv_work_claim(ts_conv_team *team, ts_conv_work *w, int64_t *lo, int64_t *hi) {
    report(team, w);
    const int T = team->size;
    const int64_t n = w->end - w->base;
    /* Own range first (w->scan 0), then the others' in turn. */
    for (; w->scan < T; w->scan++) {
        const int r = (w->tid + w->scan) % T;
        if (claim_in_range(team, w, r, n * r / T, n * (r + 1) / T, lo, hi)) {
            w->held = *hi - *lo;
            return 1;
        }
    }
    return 0;
}

/* Where a new member starts. Linux puts a new thread on its creator's CPU
 * unless another CPU is idle at that instant, and a CPU that idles only in
 * short gaps does not pull waiting threads over (its average idle time is
 * below the migration cost): measured with `perf sched timehist` during
 * `bench_conv -n alexnet -t 2 -b 1 --no-torch` on an idle machine, members
 * sat on the caller's CPU for the whole of the caller's share (0.5 ms
 * scheduling delay) and then ran their own share there, so 2 threads took
 * as long as 1 plus the team's overhead while the other CPU idled. Members
 * therefore start with the caller's allowed CPUs minus the one it runs on
 * (returns 0 and leaves attr alone when there is no other CPU). */
static int place_off_caller(ts_conv_team *team, pthread_attr_t *attr) {
    if (sched_getaffinity(0, sizeof team->allowed, &team->allowed) != 0) return 0;
    const int here = sched_getcpu();
    if (here < 0 || here >= CPU_SETSIZE || !CPU_ISSET(here, &team->allowed) ||
        CPU_COUNT(&team->allowed) < 2)
        return 0;
    cpu_set_t others = team->allowed;
    CPU_CLR(here, &others);
    return pthread_attr_setaffinity_np(attr, sizeof others, &others) == 0;
}

static void *member_main(void *arg) {
    member_arg *ma = arg;
    ts_conv_team *team = ma->team;
    atomic_store_explicit(&ma->started, 1, memory_order_relaxed);
    /* Running now on another CPU than the caller: give the member the
     * caller's whole mask back so the scheduler may still move it later. */
    if (team->place) pthread_setaffinity_np(pthread_self(), sizeof team->allowed, &team->allowed);
    team->fn(team->ctx, ma->tid, team->size, team);
    return NULL;
}

/* The caller has claimed the last item, so a member that has not started
 * has nothing left to do but must still start before it can be joined.
 * Placed on a CPU that another process occupies, it would wait there for
 * a scheduler slice (measured under load: joins 3-4 ms after a 1 ms call);
 * moved onto the caller's CPU, it runs as soon as the caller blocks in
 * pthread_join. (Moving a member that has just started is harmless: it
 * finds every phase claimed and leaves.) */
static void pull_late_members(const ts_conv_team *team, member_arg *args, const pthread_t *tids,
                              const int *ok, int threads) {
    if (!team->place) return;
    const int here = sched_getcpu();
    if (here < 0 || here >= CPU_SETSIZE) return;
    cpu_set_t mine;
    CPU_ZERO(&mine);
    CPU_SET(here, &mine);
    for (int t = 1; t < threads; t++)
        if (ok[t] && !atomic_load_explicit(&args[t].started, memory_order_relaxed))
            pthread_setaffinity_np(tids[t], sizeof mine, &mine);
}

int ts_conv_team_size(int threads, double flops) {
    if (threads > TS_CONV_MAX_THREADS) threads = TS_CONV_MAX_THREADS;
    while (threads > 1 && flops / threads < TS_CONV_MIN_FLOPS_PER_THREAD)
        threads--;
    return threads < 1 ? 1 : threads;
}

void ts_conv_team_run(int threads, ts_conv_team_fn fn, void *ctx) {
    if (threads > TS_CONV_MAX_THREADS) threads = TS_CONV_MAX_THREADS;
    if (threads < 1) threads = 1;
    ts_conv_team team = {.fn = fn, .ctx = ctx, .size = threads};
    for (int r = 0; r < TS_CONV_MAX_THREADS; r++)
        atomic_init(&team.cursor[r], 0);
    atomic_init(&team.finished, 0);
    if (threads == 1) {
        fn(ctx, 0, 1, &team);
        return;
    }
    member_arg args[TS_CONV_MAX_THREADS];
    pthread_t tids[TS_CONV_MAX_THREADS];
    int ok[TS_CONV_MAX_THREADS] = {0};
    pthread_attr_t attr;
    const int have_attr = pthread_attr_init(&attr) == 0;
    if (have_attr) team.place = place_off_caller(&team, &attr);
    /* A member that fails to start leaves its share to the others. */
    for (int t = 1; t < threads; t++) {
        args[t].team = &team, args[t].tid = t;
        atomic_init(&args[t].started, 0);
        ok[t] = pthread_create(&tids[t], have_attr ? &attr : NULL, member_main, &args[t]) == 0;
    }
    if (have_attr) pthread_attr_destroy(&attr);
    fn(ctx, 0, threads, &team);
    pull_late_members(&team, args, tids, ok, threads);
    for (int t = 1; t < threads; t++)
        if (ok[t]) pthread_join(tids[t], NULL);
}
