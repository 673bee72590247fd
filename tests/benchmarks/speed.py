"""How fast are training and inference? Run by hand: python tests/benchmarks/speed.py [--model model.h5]

Prints, all measured in this one run (ratios are what to compare on a noisy machine):
- inference, 64x64 -> 128x128 in batches of 32: a plain float32 Keras call against `upscale()`
  (bfloat16 where the CPU has it), with GFLOP/s against the peak of a large bfloat16 and float32 matmul;
- training steps/s (batch 16 of 48x48 patches), float32 against mixed bfloat16, and the forward,
  forward + backward and whole-step times of each;
- a 3072x2048 photo through `testing.py --upscale`'s path (read, colour, tiles, write), seconds;
- with --shapes: the same inference rates for other widths x residual blocks (the README's table);
- with --input DIR: training tiles/s the input pipeline delivers (no model), from the bundled .npz
  and streamed from the image files in DIR (`training.py --images`);
- with --runtimes: ONNX Runtime (float32, int8), OpenVINO (float32, bfloat16, int8) and LiteRT on
  the exported model against `upscale()`, frames/s and the PSNR each loses on the bundled test split
  (`pip install openvino==2026.4.1 ai-edge-litert==2.3.0` for the two not in requirements.txt).
"""

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import imageio.v3 as iio  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import data_preparation  # noqa: E402
import model  # noqa: E402
import testing  # noqa: E402
import training  # noqa: E402


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


def matmul_gflops(dtype, size=2048, repeats=10):
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    seconds = best_time(lambda: tf.linalg.matmul(a, b).numpy(), repeats)
    return 2 * size**3 / seconds / 1e9


def training_milliseconds(precision, batch=(16, 48, 48), repeats=10):
    """Milliseconds of the forward pass, forward + backward, and a whole Adam step on a batch
    (default: training's 16 48x48 patches): where bfloat16 gains in training and where it does not."""
    net = model.build_residual()
    if precision == "bfloat16":
        net = model.with_precision(net, "mixed_bfloat16")
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(net.trainable_variables)
    rng = np.random.default_rng(0)
    count, height, width = batch
    x = tf.constant(rng.random((count, height, width, 1), np.float32))
    y = tf.constant(rng.random((count, 2 * height, 2 * width, 1), np.float32))

    def gradients():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(net(x, training=True) - y))
        return tape.gradient(loss, net.trainable_variables)

    forward = tf.function(lambda: net(x, training=True))
    backward = tf.function(gradients)
    step = tf.function(lambda: optimizer.apply_gradients(zip(gradients(), net.trainable_variables)))
    return {
        name: 1000 * best_time(function, repeats)
        for name, function in [("forward", forward), ("forward + backward", backward), ("step", step)]
    }


def other_runtimes(net, folder):
    """{name: function(batch) -> SR batch} for each runtime that is installed and takes the model;
    a runtime that fails says why instead."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    onnx_path, int8_path = Path(folder) / "model.onnx", Path(folder) / "model_int8.onnx"
    model.export_onnx(net, onnx_path)
    calibration = data_preparation.load_dataset()[0][:64]  # training tiles: the test split is measured

    class Calibration(CalibrationDataReader):
        batches = iter([{"lr": calibration[i : i + 8]} for i in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(
        onnx_path,
        int8_path,
        Calibration(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    runtimes = {}
    for name, path in [("ONNX Runtime float32", onnx_path), ("ONNX Runtime int8 (static, per channel)", int8_path)]:
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        runtimes[name] = lambda batch, session=session: session.run(None, {"lr": batch})[0]
    try:
        import openvino

        core = openvino.Core()
        for name, path, hint in [
            ("OpenVINO float32", onnx_path, "f32"),
            ("OpenVINO bfloat16", onnx_path, "bf16"),
            ("OpenVINO int8 (the ONNX int8 file)", int8_path, None),
        ]:
            compiled = core.compile_model(
                core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": hint} if hint else {}
            )
            runtimes[name] = lambda batch, compiled=compiled: compiled(batch)[0]
    except ImportError:
        print("OpenVINO: not installed")
    try:
        from ai_edge_litert.interpreter import Interpreter

        function = tf.function(lambda lr: net(lr, training=False)).get_concrete_function(
            tf.TensorSpec((32, 64, 64, 1), tf.float32)
        )
        interpreter = Interpreter(
            model_content=tf.lite.TFLiteConverter.from_concrete_functions([function], net).convert(), num_threads=2
        )
        interpreter.allocate_tensors()
        runtimes["LiteRT float32"] = lambda batch: (
            interpreter.set_tensor(0, batch),
            interpreter.invoke(),
            interpreter.get_tensor(interpreter.get_output_details()[0]["index"]),
        )[2]
    except ImportError:
        print("LiteRT: not installed")
    except Exception as error:  # the converter raises its own types
        unsupported = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", str(error))))
        missing = (
            ", ".join(unsupported) + " needs TensorFlow ops (flex) that ai-edge-litert lacks" if unsupported else ""
        )
        print(f"LiteRT: cannot convert the model ({type(error).__name__}: {missing})")
    return runtimes


def compare_runtimes(net, repeats):
    _, _, x_test, y_test = data_preparation.load_dataset()
    x_test, y_test = x_test[: len(x_test) // 32 * 32], y_test[: len(y_test) // 32 * 32]  # whole batches of 32

    def measure(function):
        out = np.concatenate([function(x_test[i : i + 32]) for i in range(0, len(x_test), 32)])
        seconds = best_time(lambda: function(x_test[:32]), repeats)
        return 32 / seconds, float(np.mean(keras.ops.convert_to_numpy(training.psnr(y_test, out))))

    with tempfile.TemporaryDirectory() as folder:
        runtimes = {
            f"TensorFlow upscale() {model.resolve_precision()}": lambda batch: model.upscale(net, batch),
            "TensorFlow float32 Keras call": lambda batch: net(batch, training=False).numpy(),
            **other_runtimes(net, folder),
        }
        results = {name: measure(function) for name, function in runtimes.items()}
    reference_fps, reference_psnr = next(iter(results.values()))
    print("| runtime | frames/s | vs upscale() | PSNR loss, test split (dB) |\n| --- | --- | --- | --- |")
    for name, (fps, psnr) in results.items():
        print(f"| {name} | {fps:.0f} | {fps / reference_fps:.2f}x | {reference_psnr - psnr:+.3f} |")


def pipeline_tiles_per_second(folder, batches=300):
    x_train, y_train = data_preparation.load_dataset()[:2]
    files = data_preparation.image_files([folder])
    sources = {
        "bundled .npz (in memory)": dict(x=x_train, y=y_train),
        f"{folder} (streamed, {len(files)} files)": dict(files=files),
    }
    for name, source in sources.items():
        iterator = data_preparation.TrainingBatches(16, patch=48, degradation="jpeg", **source)(0)
        for _ in range(50):  # the shuffle buffer fills
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        print(
            f"input pipeline, {name}: {16 * batches / (time.perf_counter() - start):.0f} tiles/s "
            "(48x48 LR patches, JPEG degradation)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=model.DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--shapes", action="store_true", help="also time other widths x blocks (untrained)")
    parser.add_argument("--input", type=Path, metavar="DIR", help="only: the input pipeline's tiles/s")
    parser.add_argument("--runtimes", action="store_true", help="only: other runtimes against upscale()")
    args = parser.parse_args()
    net = model.load_model(args.model)
    if args.input:
        return pipeline_tiles_per_second(args.input)
    if args.runtimes:
        return compare_runtimes(net, args.repeats)
    batch = np.random.default_rng(0).random((32, 64, 64, 1)).astype(np.float32)
    plain = len(batch) / best_time(lambda: net(batch, training=False), args.repeats)
    fast = len(batch) / best_time(lambda: model.upscale(net, batch), args.repeats)
    gflop = conv_gflop_per_frame(net)
    peaks = {dtype: matmul_gflops(dtype) for dtype in (tf.bfloat16, tf.float32)}
    print(f"{args.model.name}: {net.count_params():,} parameters, {gflop:.3f} GFLOP per 64x64 frame")
    print(f"matmul peaks: bfloat16 {peaks[tf.bfloat16]:.0f} GFLOP/s, float32 {peaks[tf.float32]:.0f} GFLOP/s")
    print(f"inference, plain float32 Keras call: {plain:.0f} frames/s ({plain * gflop:.0f} GFLOP/s)")
    print(
        f"inference, upscale() in {model.resolve_precision()}: {fast:.0f} frames/s ({fast * gflop:.0f} GFLOP/s, "
        f"{fast * gflop / peaks[tf.bfloat16]:.0%} of the bfloat16 matmul peak): {fast / plain:.2f}x float32"
    )
    times = {precision: training_milliseconds(precision) for precision in ("float32", "bfloat16")}
    print(
        f"training, batch 16 of 48x48: float32 {1000 / times['float32']['step']:.2f} steps/s, bfloat16 "
        f"{1000 / times['bfloat16']['step']:.2f} steps/s: {times['float32']['step'] / times['bfloat16']['step']:.2f}x"
    )
    inference_batch = {precision: training_milliseconds(precision, (32, 64, 64)) for precision in times}
    for batch, measured in [("16 of 48x48", times), ("32 of 64x64, inference's batch", inference_batch)]:
        for part in measured["float32"]:
            print(
                f"  {batch}, {part}: float32 {measured['float32'][part]:.1f} ms, bfloat16 "
                f"{measured['bfloat16'][part]:.1f} ms: {measured['float32'][part] / measured['bfloat16'][part]:.2f}x"
            )
    for width, blocks in [(32, 6), (32, 8), (32, 10), (48, 4), (40, 6), (48, 8)] if args.shapes else []:
        other = model.build_residual(width, blocks)
        plain = len(batch) / best_time(lambda: other(batch, training=False), args.repeats)
        fast = len(batch) / best_time(lambda: model.upscale(other, batch), args.repeats)
        print(
            f"{width} x {blocks}: {other.count_params():,} parameters, float32 {plain:.0f} frames/s, "
            f"upscale() {fast:.0f} frames/s"
        )
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "photo.png"
        iio.imwrite(photo, np.random.default_rng(0).integers(0, 256, (2048, 3072, 3), dtype=np.uint8))
        models = {"model": net}
        testing.upscale_files(models, [photo], Path(folder) / "warm")  # tracing, once
        start = time.perf_counter()
        testing.upscale_files(models, [photo], Path(folder) / "out")
        print(f"3072x2048 photo -> 6144x4096, read + upscale + write: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
