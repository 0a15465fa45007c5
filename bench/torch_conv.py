#!/usr/bin/python3
"""Times PyTorch's conv2d forward for bench_conv, in the same run.

bench_conv starts this script once as a co-process (`torch_conv.py --serve`)
and, for every point it measures, sends one line

    C H W M KH KW SH SW PT PL PB PR GROUPS BIAS BATCH THREADS MIN_SECONDS

and reads back one line `ok T1 T2 ...` (seconds of each timed run) or
`error MESSAGE`. Interleaving the two engines point by point means both see
the same machine load. Same repeat policy as bench_conv: one warm-up run,
then at least 3 and at most 30 timed runs, until min_seconds are filled.

The first line written is `ready torch VERSION threads-default N` (or
`unavailable REASON` when torch cannot be imported; bench_conv then reports
that and prints tessera's numbers alone).

Run by hand (`torch_conv.py --serve`, type a line) to check one point.
"""
import sys
import time

MIN_REPS, MAX_REPS = 3, 30


def bench(vals, torch, F):
    c, h, w, m, kh, kw, sh, sw, pt, pl, pb, pr, groups, bias, batch, threads = map(int, vals[:16])
    min_seconds = float(vals[16])
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, c, h, w, generator=g) * 2 - 1
    wt = (torch.rand(m, c // groups, kh, kw, generator=g) * 2 - 1) * 0.1
    b = (torch.rand(m, generator=g) * 2 - 1) * 0.1 if bias else None
    if pt == pb and pl == pr:
        padding = (pt, pl)
    else:  # asymmetric: pad once outside the timed region
        x = F.pad(x, (pl, pr, pt, pb))
        padding = (0, 0)
    times = []
    with torch.no_grad():
        F.conv2d(x, wt, b, stride=(sh, sw), padding=padding, groups=groups)  # warm-up
        while len(times) < MAX_REPS and (len(times) < MIN_REPS or sum(times) < min_seconds):
            t0 = time.perf_counter()
            F.conv2d(x, wt, b, stride=(sh, sw), padding=padding, groups=groups)
            times.append(time.perf_counter() - t0)
    return times


def serve():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"unavailable cannot import torch ({e})", flush=True)
        return 0
    print(f"ready torch {torch.__version__} threads-default {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        vals = line.split()
        if not vals:
            continue
        if len(vals) != 17:
            print(f"error expected 17 fields, got {len(vals)}", flush=True)
            continue
        try:
            times = bench(vals, torch, F)
        except (ValueError, RuntimeError) as e:
            print(f"error {e}".replace("\n", " "), flush=True)
            continue
        print("ok " + " ".join(f"{t:.9f}" for t in times), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--serve"]:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(serve())
