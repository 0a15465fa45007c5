/* replay.c: runs a fuzz target's LLVMFuzzerTestOneInput over files, so that
 * every build (not only the clang -DTS_FUZZ=ON one) replays the seed corpus
 * and every input that once crashed (fuzz/corpus/TARGET/) as a CTest test.
 * Arguments: files or directories (walked recursively). Prints the count of
 * inputs run; exits 1 when an argument cannot be read or no input was run.
 * A crash of the target is the test's failure. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long inputs_run;
static int read_errors;

static int run_file(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)ftw;
    if (type != FTW_F) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        read_errors++;
        return 0;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap * 2);
            if (!bigger) free(buf);
            buf = bigger, cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "replay: out of memory reading %s\n", path);
        read_errors++;
        return 0;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    inputs_run++;
    return 0;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (nftw(argv[i], run_file, 16, FTW_PHYS) != 0) {
            fprintf(stderr, "replay: cannot walk %s\n", argv[i]);
            read_errors++;
        }
    printf("replay: %ld inputs run, %d unreadable\n", inputs_run, read_errors);
    return read_errors || inputs_run == 0;
}
