/* ts_test.h: the tiny test harness shared by every tests/test_*.c.
 * A test file defines static void test_xxx(void) functions and runs them
 * with TS_RUN(test_xxx) from main, ending with return ts_test_summary(). */
#ifndef TS_TEST_H
#define TS_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int ts_test_failures;
static int ts_test_checks;
static int ts_test_cases;
static int ts_test_failed_cases;

#define TS_CHECK(cond)                                                                             \
    do {                                                                                           \
        ts_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            ts_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define TS_CHECK_MSG(cond, ...)                                                                    \
    do {                                                                                           \
        ts_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            ts_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define TS_CHECK_NEAR(a, b, tol)                                                                   \
    TS_CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %.3g)", (double)(a), \
                 (double)(b), (double)(tol))

#define TS_CHECK_OK(expr, errp)                                                                    \
    do {                                                                                           \
        ts_status s_ = (expr);                                                                     \
        TS_CHECK_MSG(s_ == TS_OK, "%s -> %s: %s", #expr, ts_status_name(s_), (errp)->msg);         \
    } while (0)

#define TS_RUN(fn)                                                                                 \
    do {                                                                                           \
        int before_ = ts_test_failures;                                                            \
        ts_test_cases++;                                                                           \
        fn();                                                                                      \
        if (ts_test_failures != before_) ts_test_failed_cases++;                                   \
        printf("%-50s %s\n", #fn, ts_test_failures == before_ ? "ok" : "FAILED");                  \
        fflush(stdout);                                                                            \
    } while (0)

static inline int ts_test_summary(void) {
    printf("%d passed, %d failed\n", ts_test_cases - ts_test_failed_cases, ts_test_failed_cases);
    return ts_test_failures ? 1 : 0;
}

#endif
