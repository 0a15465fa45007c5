/* cmd_codes.c: `tessera codes` describes a straggler code: its recovery
 * threshold, what each worker stores and moves, and (on request) its
 * worst-case condition number over responder sets and its worst-case
 * normalized MSE under noise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tessera/code.h"

static void codes_usage(FILE *f) {
    fprintf(f,
            "usage: tessera codes [--code NAME] --workers N [--k K | --kA A --kB B] [--m M]\n"
            "                     [--replicas R] [--q PRIME] [--systematic] [--matvec] [--seed S]\n"
            "                     [--worst-cond] [--samples S] [--snr DB]\n\n"
            "Describes a straggler code: recovery threshold, storage and communication per\n"
            "worker, and with --worst-cond its worst-case 2-norm condition number over all\n"
            "responder sets (exhaustive when C(n, threshold) <= 1e5, else S random sets,\n"
            "default 3000, worst kept). --snr DB adds the worst-case normalized MSE when every\n"
            "worker's shares carry Gaussian noise DB below unit power (the CRME paper's\n"
            "experiment).\n\n"
            "codes: uncoded, replication, vandermonde, chebyshev, random (1-D: --k K),\n"
            "       polynomial, crme, complex (--kA A --kB B, or --k K for kA = 1; crme with\n"
            "       --k is the matrix-vector scheme: A whole, B in 2K blocks),\n"
            "       circulant (--k K [--q PRIME >= N]), matdot (--m M), polydot and gpolydot (--kA "
            "--m --kB).\n");
}

static long gcd(long a, long b) {
    while (b) {
        long t = a % b;
        a = b, b = t;
    }
    return a;
}

static void print_fraction(const char *what, long num, long den) {
    long g = gcd(num, den);
    printf("%s %ld/%ld", what, num / g, den / g);
}

static void describe(const ts_code *c) {
    const ts_code_params *p = ts_code_params_of(c);
    int n = ts_code_n(c), k = ts_code_threshold(c);
    int na = ts_code_a_blocks(c), nb = ts_code_b_blocks(c);
    int qa = ts_code_a_shares(c), qb = ts_code_b_shares(c), nt = ts_code_num_targets(c);
    printf("code: %s, %d workers", ts_code_kind_name(p->kind), n);
    if (p->kind == TS_CODE_MATDOT || p->kind == TS_CODE_POLYDOT || p->kind == TS_CODE_GPOLYDOT)
        printf(", A in %d x %d blocks, B in %d x %d blocks", p->kA, p->m, p->m, p->kB);
    else
        printf(", A in %d blocks, B in %d blocks", na, nb);
    printf("\nrecovery threshold: %d of %d workers (tolerates %d stragglers)\n", k, n, n - k);
    /* Sizes as fractions of A, of B and of the whole result (all targets). */
    printf("storage per worker:");
    print_fraction(" A", qa, na);
    print_fraction(", B", qb, nb);
    printf(" (%d + %d shares)\n", qa, qb);
    printf("communication per worker: download");
    print_fraction(" A", qa, na);
    printf(" (plus B if not stored), upload");
    print_fraction("", (long)qa * qb, nt);
    printf(" of the result (%d product%s of one target block each)\n", qa * qb,
           qa * qb == 1 ? "" : "s");
    if (p->kind == TS_CODE_CRME || p->kind == TS_CODE_COMPLEX)
        printf("decoding: %s\n",
               ts_code_fft_decode_chosen(c)
                   ? "fill in the missing workers' values, then an FFT of length n per system "
                     "(cheaper than the k x k solve here)"
                   : "k x k complex solve per system (cheaper than the FFT decode here)");
}

int ts_cmd_codes(int argc, char **argv) {
    if (ts_cli_wants_help(argc, argv)) {
        codes_usage(stdout);
        return TS_EXIT_OK;
    }
    ts_code_params p = {.kind = TS_CODE_CRME, .seed = 1};
    long workers = 0, qprime = 0, k = 0, ka = 0, kb = 0, m = 0, reps = 0, seed = 1, samples = 3000;
    double snr = 0;
    int worst = 0, want_snr = 0;
    ts_err e = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--code") && v) {
            if (ts_code_kind_parse(argv[++i], &p.kind, &e) != TS_OK) {
                fprintf(stderr, "tessera codes: %s\n", e.msg);
                return TS_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--workers") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 1024, &workers);
        else if (!strcmp(a, "--k") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 1024, &k);
        else if (!strcmp(a, "--kA") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 1024, &ka);
        else if (!strcmp(a, "--kB") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 1024, &kb);
        else if (!strcmp(a, "--q") && v)
            ok = ts_cli_parse_int(a, argv[++i], 2, 4096, &qprime);
        else if (!strcmp(a, "--m") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 1024, &m);
        else if (!strcmp(a, "--replicas") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 1024, &reps);
        else if (!strcmp(a, "--seed") && v)
            ok = ts_cli_parse_int(a, argv[++i], 0, 1L << 40, &seed);
        else if (!strcmp(a, "--samples") && v)
            ok = ts_cli_parse_int(a, argv[++i], 1, 10000000, &samples);
        else if (!strcmp(a, "--snr") && v)
            ok = ts_cli_parse_double(a, argv[++i], 0, 400, &snr), want_snr = 1;
        else if (!strcmp(a, "--systematic"))
            p.systematic = 1;
        else if (!strcmp(a, "--matvec"))
            p.matvec = 1;
        else if (!strcmp(a, "--worst-cond"))
            worst = 1;
        else {
            fprintf(stderr, "tessera codes: unexpected argument '%s'\n", a);
            codes_usage(stderr);
            return TS_EXIT_USAGE;
        }
        if (!ok) return TS_EXIT_USAGE;
    }
    if (!workers) {
        fprintf(stderr, "tessera codes: --workers N is required\n");
        codes_usage(stderr);
        return TS_EXIT_USAGE;
    }
    if (k && (ka || kb)) {
        fprintf(stderr, "tessera codes: give either --k or --kA/--kB, not both\n");
        return TS_EXIT_USAGE;
    }
    p.n = (int)workers, p.q = (int)qprime, p.m = (int)m, p.replicas = (int)reps,
    p.seed = (uint64_t)seed;
    p.kA = k ? 1 : (int)ka;
    p.kB = k ? (int)k : (int)kb;
    if (k && p.kind == TS_CODE_CRME) p.matvec = 1; /* --k: the paper's matrix-vector scheme */
    if (p.kind == TS_CODE_MATDOT || p.kind == TS_CODE_POLYDOT || p.kind == TS_CODE_GPOLYDOT) {
        if (!p.kA) p.kA = 1;
        if (!p.kB) p.kB = 1;
    }
    ts_code *c = ts_code_new(&p, &e);
    if (!c) return ts_cli_fail(&e);
    describe(c);
    int rc = TS_EXIT_OK, set[1024];
    if (worst || want_snr) {
        ts_code_search s = {.samples = samples, .seed = (uint64_t)seed};
        ts_code_cond_report rep;
        if (ts_code_worst_cond(c, &s, &rep, set, &e) != TS_OK) {
            ts_code_free(c);
            return ts_cli_fail(&e);
        }
        printf("worst-case condition number: %.2f\n", rep.worst);
        printf("  (%s over %ld responder sets; mean %.4g; worst set {",
               rep.exhaustive ? "exhaustive" : "sampled", rep.sets, rep.mean);
        for (int i = 0; i < ts_code_threshold(c); i++)
            printf(i ? ",%d" : "%d", set[i]);
        printf("})\n");
    }
    if (want_snr) {
        ts_code_noise_opts o = {.snr_db = snr, .t = 100, .ba = 12, .bb = 8, .seed = (uint64_t)seed};
        if (ts_code_a_blocks(c) == 1 && ts_code_a_shares(c) == 1) o.ba = 1; /* mat-vec */
        double mse = 0;
        if (ts_code_noise_mse(c, set, &o, &mse, &e) != TS_OK)
            rc = ts_cli_fail(&e);
        else
            printf("worst-case normalized MSE at %.1f dB: %.3g\n", snr, mse);
    }
    ts_code_free(c);
    return rc;
}
