#!/usr/bin/python3
"""Per-layer conv forward throughput of PyTorch (torch.nn.functional.conv2d).

The same layers, batch sizes, thread counts and repeat policy as
bench/bench_conv.c (one warm-up run, then at least 3 and at most 30 timed
runs, until ~min_seconds are filled), printing the same CSV rows:
    net,layer,batch,threads,gflop,median_ms,p95_ms,gflops

usage: torch_conv.py [-b 1,8] [-t 1,2] [-n alexnet,vgg16,resnet18] [-s seconds]
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # reported, not hidden: run_conv_bench.sh checks the exit code
    print(f"torch_conv.py: cannot import torch ({e})", file=sys.stderr)
    sys.exit(3)

# (net, layer, C, H(=W), M, K, stride, pad, bias) -- keep in sync with bench_conv.c
LAYERS = [
    ("alexnet", "conv1", 3, 224, 64, 11, 4, 2, 1),
    ("alexnet", "conv2", 64, 27, 192, 5, 1, 2, 1),
    ("alexnet", "conv3", 192, 13, 384, 3, 1, 1, 1),
    ("alexnet", "conv4", 384, 13, 256, 3, 1, 1, 1),
    ("alexnet", "conv5", 256, 13, 256, 3, 1, 1, 1),
    ("vgg16", "conv1_1", 3, 224, 64, 3, 1, 1, 1),
    ("vgg16", "conv1_2", 64, 224, 64, 3, 1, 1, 1),
    ("vgg16", "conv2_1", 64, 112, 128, 3, 1, 1, 1),
    ("vgg16", "conv2_2", 128, 112, 128, 3, 1, 1, 1),
    ("vgg16", "conv3_1", 128, 56, 256, 3, 1, 1, 1),
    ("vgg16", "conv3_2", 256, 56, 256, 3, 1, 1, 1),
    ("vgg16", "conv4_1", 256, 28, 512, 3, 1, 1, 1),
    ("vgg16", "conv4_2", 512, 28, 512, 3, 1, 1, 1),
    ("vgg16", "conv5_1", 512, 14, 512, 3, 1, 1, 1),
    ("resnet18", "conv1", 3, 224, 64, 7, 2, 3, 0),
    ("resnet18", "layer1_conv", 64, 56, 64, 3, 1, 1, 0),
    ("resnet18", "layer2_conv1", 64, 56, 128, 3, 2, 1, 0),
    ("resnet18", "layer2_conv2", 128, 28, 128, 3, 1, 1, 0),
    ("resnet18", "layer2_down", 64, 56, 128, 1, 2, 0, 0),
    ("resnet18", "layer3_conv1", 128, 28, 256, 3, 2, 1, 0),
    ("resnet18", "layer3_conv2", 256, 14, 256, 3, 1, 1, 0),
    ("resnet18", "layer3_down", 128, 28, 256, 1, 2, 0, 0),
    ("resnet18", "layer4_conv1", 256, 14, 512, 3, 2, 1, 0),
    ("resnet18", "layer4_conv2", 512, 7, 512, 3, 1, 1, 0),
    ("resnet18", "layer4_down", 256, 14, 512, 1, 2, 0, 0),
]

MIN_REPS, MAX_REPS = 3, 30


def int_list(s):
    vals = [int(v) for v in s.split(",")]
    if not vals or any(v < 1 or v > 1024 for v in vals):
        raise argparse.ArgumentTypeError(f"bad list '{s}'")
    return vals


def bench(layer, batch, threads, min_seconds):
    net, name, c, h, m, k, stride, pad, bias = layer
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, c, h, h, generator=g) * 2 - 1
    w = (torch.rand(m, c, k, k, generator=g) * 2 - 1) * 0.1
    b = (torch.rand(m, generator=g) * 2 - 1) * 0.1 if bias else None
    with torch.no_grad():
        y = F.conv2d(x, w, b, stride=stride, padding=pad)  # warm-up
        times = []
        while len(times) < MAX_REPS and (len(times) < MIN_REPS or sum(times) < min_seconds):
            t0 = time.perf_counter()
            y = F.conv2d(x, w, b, stride=stride, padding=pad)
            times.append(time.perf_counter() - t0)
    n, mo, oh, ow = y.shape
    gflop = 2.0 * n * mo * oh * ow * c * k * k / 1e9
    times.sort()
    r = len(times)
    med = times[r // 2] if r % 2 else 0.5 * (times[r // 2 - 1] + times[r // 2])
    i95 = min(r - 1, math.ceil(0.95 * (r - 1) - 0.001))
    print(f"{net},{name},{batch},{threads},{gflop:.4f},{med * 1e3:.3f},"
          f"{times[i95] * 1e3:.3f},{gflop / med:.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-b", type=int_list, default=[1, 8])
    ap.add_argument("-t", type=int_list, default=[1, 2])
    ap.add_argument("-n", default="alexnet,vgg16,resnet18")
    ap.add_argument("-s", type=float, default=0.4)
    a = ap.parse_args()
    print("net,layer,batch,threads,gflop,median_ms,p95_ms,gflops")
    for t in a.t:
        for bsz in a.b:
            for layer in LAYERS:
                if layer[0] in a.n.split(","):
                    bench(layer, bsz, t, a.s)


if __name__ == "__main__":
    main()
