"""How fast is the model? Run by hand: python tests/benchmark_speed.py [--model model.h5]

Prints frames/s at 64x64 -> 128x128 in batches of 32, the GFLOP per frame (multiply-adds x 2 of
the convolutions), and the share of this machine's fp32 matmul peak, measured in the same run.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import model  # noqa: E402


def best_time(function, repeats):
    function()  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed run on a noisy machine


def conv_gflop_per_frame(net, height=64, width=64):
    flop = 0
    for layer in net.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            flop += 2 * kh * kw * cin * cout * height * width  # every conv runs at LR, 'same' padding
    return flop / 1e9


def matmul_gflops(size=2048, repeats=10):
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    seconds = best_time(lambda: tf.linalg.matmul(a, b).numpy(), repeats)
    return 2 * size**3 / seconds / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=model.DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    net = model.load_model(args.model)
    batch = np.random.default_rng(0).random((32, 64, 64, 1)).astype(np.float32)
    seconds = best_time(lambda: model.upscale(net, batch), args.repeats)
    fps = len(batch) / seconds
    gflop = conv_gflop_per_frame(net)
    peak = matmul_gflops()
    print(f"{args.model.name}: {net.count_params():,} parameters")
    print(f"speed: {fps:.0f} frames/s (64x64 -> 128x128, batch 32, best of {args.repeats})")
    print(f"work: {gflop:.3f} GFLOP per frame -> {fps * gflop:.0f} GFLOP/s")
    print(f"fp32 matmul on this machine: {peak:.0f} GFLOP/s -> the model runs at {fps * gflop / peak:.0%} of it")


if __name__ == "__main__":
    main()
