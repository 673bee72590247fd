"""The same measurements on any Keras backend and device. Run by hand, once per backend:

    KERAS_BACKEND=jax python tests/benchmarks/backends.py        # or torch, tensorflow
    KERAS_BACKEND=jax python tests/benchmarks/backends.py --quick   # fewer repeats

Prints, all measured in this one run: the matmul peak of the device (float32 and bfloat16,
keras.ops); training steps/s of the compressed-input network (48 channels x 10 blocks) on batches
of 64 LR tiles of 64x64, in the precision `upscale()` would choose and in float32; `upscale()`
frames/s on 960x540 -> 1920x1080 frames; and the tiles/s the NumPy input pipeline makes (clean and
JPEG), which a GPU's training steps must not outrun.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import data_preparation as dp  # noqa: E402
import model  # noqa: E402
import training  # noqa: E402

keras = model.keras


def best_seconds(function, repeats):
    function()  # warm-up: compilation, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_tflops(dtype, size, repeats):
    a = keras.ops.cast(keras.random.normal((size, size)), dtype)
    b = keras.ops.cast(keras.random.normal((size, size)), dtype)
    seconds = best_seconds(
        lambda: keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.matmul(a, b)[0, 0], "float32")), repeats
    )
    return 2 * size**3 / seconds / 1e12


def training_steps_per_second(precision, steps, batch=64):
    net = model.build_residual(48, 10)
    if precision == "bfloat16":
        net = model.with_precision(net, "mixed_bfloat16")
    net.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mean_absolute_error", metrics=[training.psnr])
    rng = np.random.default_rng(0)
    lr = rng.random((batch, 64, 64, 1), np.float32)
    hr = rng.random((batch, 128, 128, 1), np.float32)
    return steps / best_seconds(lambda: [net.train_on_batch(lr, hr) for _ in range(steps)], 2)


def upscale_frames_per_second(frames, precision):
    net = model.load_model(model.COMPRESSED_MODEL)
    lr = np.random.default_rng(0).random((frames, 540, 960, 1), np.float32)
    return frames / best_seconds(lambda: model.upscale(net, lr, batch_size=frames, precision=precision), 2)


def pipeline_tiles_per_second(degradation, batches=40, batch=64):
    x_train, y_train = dp.load_dataset()[:2]
    stream = dp.TrainingBatches(batch, x_train, y_train, patch=None, degradation=degradation)(0)
    next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    seconds = time.perf_counter() - start
    stream.close()
    return batches * batch / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and frames (a CPU)")
    args = parser.parse_args()
    steps, frames, size = (3, 2, 1024) if args.quick else (20, 8, 4096)
    precision = model.resolve_precision("auto")
    print(model.backend_line("auto"), f"({os.cpu_count()} CPU cores)", flush=True)
    peaks = {dtype: matmul_tflops(dtype, size, 3) for dtype in ("float32", "bfloat16")}
    print(f"matmul peak: float32 {peaks['float32']:.2f} TFLOP/s, bfloat16 {peaks['bfloat16']:.2f} TFLOP/s", flush=True)
    for chosen in dict.fromkeys([precision, "float32"]):
        rate = training_steps_per_second(chosen, steps)
        print(f"training, 48x10 network, batch 64 of 64x64, {chosen}: {rate:.2f} steps/s", flush=True)
    for chosen in dict.fromkeys([precision, "float32"]):
        rate = upscale_frames_per_second(frames, chosen)
        print(f"upscale(), 960x540 -> 1920x1080, {chosen}: {rate:.2f} frames/s", flush=True)
    for degradation in ("none", "jpeg"):
        rate = pipeline_tiles_per_second(degradation)
        print(f"input pipeline, {degradation}: {rate:.0f} tiles/s on {os.cpu_count()} threads", flush=True)


if __name__ == "__main__":
    main()
