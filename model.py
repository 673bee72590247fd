"""The networks, loading, and the one way to run them on images (`upscale()`, colour too).

    python model.py                   # the first training run: the default network -> model.h5
    python model.py --arch seed       # the original repo's network, as a baseline (results/seed.h5)
    python model.py --export onnx     # model.h5 -> results/model.onnx, for programs that embed it

`python model.py ARGS` is `python training.py --new ARGS`: training.py holds the loop and its
settings (and imports this file). Importing this module registers the custom layers, so that
`keras.models.load_model("model.h5")` works in safe mode.
"""

import argparse
import functools
import os
import re
import sys
import weakref
import zlib
from pathlib import Path

import numpy as np
from skimage.color import rgb2ycbcr, ycbcr2rgb
from skimage.transform import resize
from tqdm import tqdm

import data_preparation
from data_preparation import LR_SIZE, REPO, SCALE, quiet_stderr, resize_bicubic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's Python-side start-up chatter
with quiet_stderr():  # and its C++ log, written past Python (scripts' --verbose shows it)
    import keras

RESULTS = REPO / "results"
DEFAULT_MODEL = REPO / "model.h5"  # clean input: the field's benchmark protocol
COMPRESSED_MODEL = RESULTS / "model_compressed.h5"  # JPEG / video input: what people's files are
CLEAN_MODELS = {2: DEFAULT_MODEL, 3: RESULTS / "model_x3.h5", 4: RESULTS / "model_x4.h5"}  # the committed ones
COMPRESSED_MODELS = {2: COMPRESSED_MODEL, 4: RESULTS / "model_compressed_x4.h5"}
SEED_MODEL = RESULTS / "seed.h5"  # ~340 MB of weights: kept out of git
SKIMAGE_ORDERS = {"skimage_nearest": 0, "skimage_bilinear": 1, "skimage_bicubic": 3}  # the original's baselines
WIDTH, BLOCKS = 32, 8  # chosen by measurement on this 2-core CPU (see README)
FLOAT32_LAYERS = ("bicubic", "sr")  # bf16 would cost the fixed skip and the output ~0.3 grey levels


# ---------------------------------------------------------------------------------------------
# Custom pieces, registered so that model.h5 loads without Lambda layers or unsafe deserialisation


def keys_cubic(distance, a=-0.5):
    """The bicubic kernel (Keys, a = -0.5: MATLAB's and the resize functions')."""
    x = np.abs(distance)
    return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1, np.where(x < 2, a * (x**3 - 5 * x**2 + 8 * x - 4), 0))


@functools.cache
def bicubic_kernel(scale):
    """(5, 5, 1, scale^2): bicubic enlarging by an integer `scale` as one convolution on the LR grid,
    an output channel for each of the scale x scale sub-pixel positions (half-pixel centres: the
    position p along an axis samples the LR at offset (p + 0.5) / scale - 0.5)."""
    offsets = np.arange(-2, 3)[None] - ((np.arange(scale)[:, None] + 0.5) / scale - 0.5)
    taps = keys_cubic(offsets)  # (scale, 5): each position's 5 weights
    return np.einsum("py,qx->yxpq", taps, taps).reshape(5, 5, 1, scale * scale).astype(np.float32)


def bicubic(images, scale=SCALE):
    """x`scale` bicubic upsampling of (N, H, W, C), as the field's benchmark does it (a backend
    tensor): keras.ops.image.resize's antialiased "bicubic" within float error (a test), as a
    convolution and depth-to-space: the same on every backend and for any traced size (the
    network's skip). At the borders the taps outside the image are dropped and the rest
    renormalised, as resize does: zero padding, divided by the weights' sum."""
    taps = bicubic_kernel(scale)
    kernel = keras.ops.cast(taps, images.dtype)
    # The weights' sum is separable: a column (N, H, 1, s^2) times a row (N, 1, W, s^2), not a third conv.
    rows, columns = (keras.ops.cast(taps.sum(axis, keepdims=True), images.dtype) for axis in (1, 0))
    weight = keras.ops.conv(keras.ops.ones_like(images[:, :, :1, :1]), rows, padding="same") * keras.ops.conv(
        keras.ops.ones_like(images[:, :1, :, :1]), columns, padding="same"
    )
    planes = [
        keras.ops.depth_to_space(keras.ops.conv(images[..., c : c + 1], kernel, padding="same") / weight, scale)
        for c in range(images.shape[-1])
    ]
    return planes[0] if len(planes) == 1 else keras.ops.concatenate(planes, -1)


def interpolate(lr, method, scale=SCALE):
    """x`scale` upscaling of (N, H, W, C) by a fixed method: scikit-image's resize of the given order
    (the original repo's baselines) or "bicubic", the field's (MATLAB-like: Pillow's, which equals
    bicubic() within float error (a test) and is 1.3x faster on arrays: the video's chroma)."""
    lr = np.asarray(lr, np.float32)
    height, width = scale * lr.shape[1], scale * lr.shape[2]
    if method == "bicubic":
        return np.stack([resize_bicubic(image, height, width) for image in lr]).clip(0, 1)
    shape = (height, width, lr.shape[-1])
    return np.stack([resize(image, shape, order=SKIMAGE_ORDERS[method]) for image in lr]).astype(np.float32)


def scaled(size, scale):
    return None if size is None else size * scale


@keras.saving.register_keras_serializable(package="sr")
class DepthToSpace(keras.layers.Layer):
    """Sub-pixel upsampling: (N, H, W, C*s*s) -> (N, sH, sW, C)."""

    def __init__(self, scale=SCALE, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return keras.ops.depth_to_space(inputs, self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, scaled(h, self.scale), scaled(w, self.scale), c // self.scale**2)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="sr")
class Bicubic(keras.layers.Layer):
    """Fixed bicubic x`scale` upsampling (bicubic(), as the benchmark's): the global
    skip. Keras' UpSampling2D has no bicubic."""

    def __init__(self, scale=SCALE, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return bicubic(inputs, self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, scaled(h, self.scale), scaled(w, self.scale), c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


# ---------------------------------------------------------------------------------------------
# Architectures


def residual_block(x, width, name):
    y = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{name}_conv1")(x)
    y = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def build_residual(width=WIDTH, blocks=BLOCKS, scale=SCALE):
    """Fully convolutional x`scale` network for any H, W: features at low resolution, residual
    blocks, sub-pixel upsampling (one convolution to scale^2 channels, then depth-to-space: the
    network runs on the LR grid), plus bicubic of the input so the network learns only the residual."""
    inputs = keras.Input((None, None, 1), name="lr")
    features = keras.layers.Conv2D(width, 3, padding="same", name="head")(inputs)
    x = features
    for i in range(blocks):
        x = residual_block(x, width, f"block{i + 1}")
    x = keras.layers.Conv2D(width, 3, padding="same", name="body_end")(x)
    x = keras.layers.Add(name="long_skip")([x, features])
    # Zero at first, so that a new network starts as bicubic and only learns what it adds (the body
    # gets gradients from the first step on): at x3 and x4 a random start costs more than it can learn.
    x = keras.layers.Conv2D(scale * scale, 3, padding="same", kernel_initializer="zeros", name="to_subpixels")(x)
    residual = DepthToSpace(scale, name="depth_to_space")(x)
    bicubic = Bicubic(scale, name="bicubic", dtype="float32")(inputs)
    outputs = keras.layers.Add(name="sr", dtype="float32")([bicubic, residual])
    name = f"residual_w{width}_b{blocks}" + (f"_x{scale}" if scale != SCALE else "")
    return keras.Model(inputs, outputs, name=name)


def build_seed(scale=SCALE):
    """The original repo's network, layer for layer: 64x64 in, 128x128 out, ~85 M parameters.
    Every layer is linear (Keras' default activation), as listed. x2 only."""
    if scale != SCALE:
        raise data_preparation.DataError(f"the seed network is x{SCALE} only, not x{scale}")
    return keras.Sequential(
        [
            keras.Input((LR_SIZE, LR_SIZE, 1)),
            keras.layers.Conv2D(1, 1),
            keras.layers.Conv2D(2, 3),
            keras.layers.Conv2D(3, 4),
            keras.layers.Dropout(0.05),
            keras.layers.Conv2DTranspose(3, 3),
            keras.layers.Conv2DTranspose(2, 5),
            keras.layers.Conv2DTranspose(1, 8),
            keras.layers.Dropout(0.1),
            keras.layers.Flatten(),
            keras.layers.Dense(SCALE * LR_SIZE * SCALE * LR_SIZE),
            keras.layers.Reshape((SCALE * LR_SIZE, SCALE * LR_SIZE, 1)),
        ],
        name="seed",
    )


ARCHITECTURES = {"residual": build_residual, "seed": build_seed}


def grow(model, width, blocks, scale=None):
    """The residual `model` with `width` channels and `blocks` residual blocks that computes exactly
    what it did: old weights copied, weights reading the new channels zero, weights writing them
    fresh (so they learn), and each new block (added last) with its second convolution zero, so it
    adds nothing until it has learned something. Lets a trained network grow instead of starting again.
    At another `scale`, the body is kept and the sub-pixel convolution starts at zero (the output
    starts as bicubic): a x2 model is the start of a x3 or x4 one."""
    old_names = {layer.name for layer in model.layers}
    old_scale = model_scale(model)
    scale = scale or old_scale
    if "head" not in old_names:  # not the residual network (the seed's): as it is
        return model
    old_width = model.get_layer("head").filters
    old_blocks = sum(name.endswith("_add") for name in old_names)
    if width <= old_width and blocks <= old_blocks and scale == old_scale:
        return model
    grown = build_residual(max(width, old_width), max(blocks, old_blocks), scale)
    for layer in grown.layers:
        if not layer.weights or layer.name == "bicubic":
            continue
        kernel, bias = layer.get_weights()
        fresh = layer.name not in old_names or (layer.name == "to_subpixels" and scale != old_scale)
        if fresh:  # a new block, or the upsampling of another scale
            if layer.name.endswith("_conv2") or layer.name == "to_subpixels":
                layer.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
            continue
        old_kernel, old_bias = model.get_layer(layer.name).get_weights()
        kernel[:, :, old_kernel.shape[2] :, :] = 0
        kernel[:, :, : old_kernel.shape[2], : old_kernel.shape[3]] = old_kernel
        bias[: old_bias.shape[0]] = old_bias
        layer.set_weights([kernel, bias])
    return grown


def model_scale(model):
    """The factor `model` upscales by: its sub-pixel layer's (the seed network's: x2)."""
    factors = [layer.scale for layer in model.layers if isinstance(layer, DepthToSpace)]
    return factors[0] if factors else SCALE


def build_model(arch="residual", **kwargs):
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)


def with_precision(model, policy):
    """A copy of `model` whose layers compute in `policy` ("float32" or "mixed_bfloat16", which
    trains ~1.7x faster on CPUs with AVX512-BF16); layers built float32 on purpose (the fixed
    bicubic skip, the output) stay so. Weights are float32 either way."""
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] != "InputLayer" and layer["config"].get("name") not in FLOAT32_LAYERS:
            layer["config"]["dtype"] = policy
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


# ---------------------------------------------------------------------------------------------
# Running a model


def load_model(path=DEFAULT_MODEL, scale=None):
    """keras.models.load_model (float32, as saved) with a one-line error that says how to make the
    file; given `scale`, a model of another scale is one too."""
    path = Path(path)
    if not path.is_file():
        how = f" --scale {scale} --out {path}" if scale and scale != SCALE else ""
        raise data_preparation.DataError(f"{path}: no such model; train one with `python model.py{how}`")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py and Keras raise many types for a damaged file
        raise data_preparation.DataError(
            f"{path}: not a loadable model ({type(error).__name__}); retrain it with `python model.py`"
        ) from None
    if scale is not None and model_scale(model) != scale:
        raise data_preparation.DataError(f"{path}: a x{model_scale(model)} model, not x{scale}")
    return model


def load_models(path=None, scale=None):
    """{name: model}: the one at `path` (of `scale`, when given), or the committed ones of `scale`
    (default x2): the clean-input model (model.h5 at x2) and, when there is one, the compressed-input model."""
    if path is not None:
        return {"model": load_model(path, scale)}
    scale = scale or SCALE
    compressed = COMPRESSED_MODELS.get(scale)
    return {
        "model": load_model(CLEAN_MODELS[scale], scale),
        **({"model_compressed": load_model(compressed, scale)} if compressed and compressed.is_file() else {}),
    }


PRECISIONS = ("auto", "float32", "bfloat16")


def cpu_computes_bfloat16():
    """True where the CPU has bfloat16 arithmetic (AVX512-BF16 or AMX-BF16): there oneDNN runs
    bfloat16 convolutions several times faster than float32. Elsewhere bfloat16 is emulated, slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, so stay exact
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


@functools.cache
def compute_device():
    """ "gpu" or "cpu": where the Keras backend computes by default (its framework imported here)."""
    backend = keras.backend.backend()
    with quiet_stderr():  # TensorFlow logs its search for CUDA when it first looks
        if backend == "jax":
            import jax

            return "gpu" if jax.default_backend() == "gpu" else "cpu"
        if backend == "torch":
            import torch

            return "gpu" if torch.cuda.is_available() else "cpu"
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def resolve_precision(precision="auto"):
    """ "auto" -> "bfloat16" on a GPU, or with TensorFlow on a CPU with bfloat16 arithmetic (JAX and
    PyTorch run bfloat16 slower than float32 on a CPU), else "float32"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    fast = compute_device() == "gpu" or (keras.backend.backend() == "tensorflow" and cpu_computes_bfloat16())
    return "bfloat16" if fast else "float32"


def add_compute_arguments(parser):
    """--precision and --verbose, as every script that runs a model takes them."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: bfloat16 on a GPU, or "
                        "TensorFlow on a CPU that computes it natively; else float32 (default: auto)")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="also the backend's own start-up log")


def backend_line(precision=None):
    """What the scripts print first: the Keras backend, its device, and the precision."""
    line = f"Keras {keras.__version__}, {keras.backend.backend()} backend, computing on the {compute_device()}"
    return line + (f" in {resolve_precision(precision)}" if precision else "")


def weights_crc32(model):
    """A fingerprint of the model's weights: equal on every worker of a cluster, changed by training."""
    return zlib.crc32(b"".join(np.asarray(weights, np.float32).tobytes() for weights in model.get_weights()))


_bfloat16_twins = weakref.WeakKeyDictionary()  # model -> (its weights' fingerprint, bfloat16 copy)


def compute_in(model, precision):
    """`model` itself (float32), or its mixed-bfloat16 copy, made once and remade only when the
    model's weights have changed since."""
    if resolve_precision(precision) == "float32" or any(layer.compute_dtype == "bfloat16" for layer in model.layers):
        return model
    weights = model.get_weights()
    fingerprint = tuple(float(w.sum()) for w in weights)
    cached = _bfloat16_twins.get(model)
    if cached is None or cached[0] != fingerprint:
        cached = (fingerprint, with_precision(model, "mixed_bfloat16"))
        _bfloat16_twins[model] = cached
    return cached[1]


def upscale(model, lr, batch_size=32, self_ensemble=False, tile=None, precision="auto"):
    """The model's output (x its scale) for LR images (N, H, W, 1) in [0, 1], clipped to [0, 1]:
    the one way every script runs a model.

    precision: "auto" computes in bfloat16 where the hardware does it natively (the fixed bicubic
    skip and the output stay float32; a test bounds the loss at 0.02 dB), else float32.
    self_ensemble: average over the 8 flips/rotations (EDSR+). tile: run images larger than
    `tile` pixels through the network in overlapping tiles, so memory stays bounded; the overlap
    covers the network's receptive field, so the result equals the untiled one.
    """
    network = compute_in(model, precision)
    lr = np.asarray(lr, dtype=np.float32)
    if tile and max(lr.shape[1:3]) > tile + 2 * margin(model):
        return np.stack([upscale_tiled(network, image, tile, self_ensemble) for image in lr])
    if not self_ensemble:
        return np.clip(predict(network, lr, batch_size), 0, 1)
    total = 0
    for quarter_turns in range(4):
        for mirror in (False, True):
            x = np.rot90(lr, quarter_turns, axes=(1, 2))
            x = x[:, :, ::-1] if mirror else x
            y = predict(network, np.ascontiguousarray(x), batch_size)
            y = y[:, :, ::-1] if mirror else y
            total = total + np.rot90(y, -quarter_turns, axes=(1, 2))
    return np.clip(total / 8, 0, 1)


def predict(network, x, batch_size):
    """The network on `x` in batches; the last batch filled up to the same size, so that JAX,
    which compiles the network for each input shape, compiles it once per image size."""
    outputs = []
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if len(x) > batch_size > len(batch):
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - len(batch), axis=0)])
        outputs.append(keras.ops.convert_to_numpy(network.predict_on_batch(batch))[: len(x) - start])
    return np.concatenate(outputs)


TILE_MARGIN = 32  # LR pixels of context around each tile, at least: more than model.h5's 19 3x3 convolutions see


def margin(model):
    """LR pixels of context a tile or strip needs so that its output equals the whole image's: the
    network's receptive radius (each k x k convolution sees (k - 1) / 2 further, the bicubic skip
    2), rounded up to 8, and at least TILE_MARGIN."""
    radius = 2 + sum((layer.kernel_size[0] - 1) // 2 for layer in model.layers if hasattr(layer, "kernel_size"))
    return max(TILE_MARGIN, -(-radius // 8) * 8)


def tiling(size, tile, context=TILE_MARGIN):
    """(step, window) along one axis: as few equal tiles of at most `tile` pixels as cover `size`
    (a 540-pixel side is one window, not 512 + 28), each window with its `context` margins."""
    if size <= tile + 2 * context:
        return size, size
    step = -(-size // -(-size // tile))  # ceil(size / number of tiles)
    return step, min(size, step + 2 * context)


def upscale_tiled(network, image, tile, self_ensemble=False):
    """upscale() of one (H, W, 1) image, at most `tile` x `tile` LR pixels at a time (plus margins)."""
    height, width = image.shape[:2]
    scale, context = model_scale(network), margin(network)
    (step_h, window_h), (step_w, window_w) = tiling(height, tile, context), tiling(width, tile, context)
    out = np.empty((scale * height, scale * width, 1), np.float32)
    corners = [(top, left) for top in range(0, height, step_h) for left in range(0, width, step_w)]
    for top, left in tqdm(corners, desc="tiles", unit="tile", leave=False, disable=len(corners) < 16):
        # Same-sized windows (one traced graph), shifted inwards at the image's edges.
        window_top = min(max(top - context, 0), height - window_h)
        window_left = min(max(left - context, 0), width - window_w)
        window = image[window_top : window_top + window_h, window_left : window_left + window_w]
        sr = upscale(network, window[None], self_ensemble=self_ensemble, precision="float32")[0]
        bottom, right = min(top + step_h, height), min(left + step_w, width)
        out[scale * top : scale * bottom, scale * left : scale * right] = sr[
            scale * (top - window_top) : scale * (bottom - window_top),
            scale * (left - window_left) : scale * (right - window_left),
        ]
    return out


TILE = 512  # LR pixels per tile for large images: bounded memory (a test), identical result, few overlaps


def upscale_color(model, images, self_ensemble=False, tile=TILE, precision="auto"):
    """x`scale` of (N, H, W, C) images in [0, 1]: grey through the network; colour as Y through the
    network and chroma bicubic (BT.601, as MATLAB's rgb2ycbcr); alpha bicubic."""
    if images.shape[-1] == 1:
        return upscale(model, images, self_ensemble=self_ensemble, tile=tile, precision=precision)
    ycbcr = rgb2ycbcr(images[..., :3]).astype(np.float32) / 255
    y = upscale(model, ycbcr[..., :1], self_ensemble=self_ensemble, tile=tile, precision=precision)
    rest = interpolate(np.concatenate([ycbcr[..., 1:], images[..., 3:]], -1), "bicubic", model_scale(model))
    rgb = np.clip(ycbcr2rgb(np.concatenate([y, rest[..., :2]], -1) * 255), 0, 1).astype(np.float32)
    return np.concatenate([rgb, rest[..., 2:]], -1)


STRIP = 256  # LR rows of a photo converted, upscaled and quantized at a time (upscale_image)


def upscale_image(model, image, dtype=np.uint8, self_ensemble=False, precision="auto", rows=STRIP):
    """upscale_color() of one (H, W, C) image as the integer pixels of `dtype` a file holds, `rows`
    LR rows at a time with margin() rows of context (the result is the whole image's): memory is
    the input, the output and one strip, so a 108 MP photo fits in a few GB."""
    height, width, channels = image.shape
    scale, context = model_scale(model), margin(model)
    out = np.empty((scale * height, scale * width, channels), dtype)
    full_scale = np.iinfo(dtype).max
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        start, stop = max(0, top - context), min(height, bottom + context)
        sr = upscale_color(model, image[None, start:stop], self_ensemble, precision=precision)[0]
        out[scale * top : scale * bottom] = np.round(sr[scale * (top - start) : scale * (bottom - start)] * full_scale)
    return out


# ---------------------------------------------------------------------------------------------
# Export


def export_onnx(model, path, opset=17):
    """`model` as an ONNX file (input "lr": any batch, height and width, float32 luma in [0, 1]),
    for ONNX Runtime, OpenVINO and the programs that embed them; through tf2onnx, so it needs the
    TensorFlow backend (both imported only here)."""
    if keras.backend.backend() != "tensorflow":
        raise data_preparation.DataError("ONNX export needs the TensorFlow backend: KERAS_BACKEND=tensorflow")
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError:
        raise data_preparation.DataError("ONNX export needs tf2onnx: pip install tf2onnx==1.17.0") from None
    signature = (tf.TensorSpec((None, None, None, 1), tf.float32, name="lr"),)
    graph, _ = tf2onnx.convert.from_function(
        tf.function(lambda lr: model(lr, training=False)), input_signature=signature, opset=opset
    )
    data_preparation.write_bytes(path, graph.SerializeToString())


def export_main(argv):
    parser = argparse.ArgumentParser(prog="model.py --export", description="Export a trained model.")
    parser.add_argument("--export", choices=["onnx"], required=True, help="the format")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help=f"the model (default: {DEFAULT_MODEL.name})")
    parser.add_argument("--out", type=Path, help="the file written (default: results/<model name>.onnx)")
    parser.add_argument("--verbose", action="store_true", help="also the backend's own start-up log")
    args = parser.parse_args(argv)
    print(backend_line())
    out = args.out or RESULTS / f"{args.model.stem}.onnx"
    try:
        data_preparation.output_folder(out)
        export_onnx(load_model(args.model), out)
    except data_preparation.DataError as error:
        sys.exit(f"error: {error}")
    print(f"{args.model} -> {out}")


def main(argv=None):
    """The first training run: this process becomes `training.py --new ARGS` (training.py imports
    this file, so this file starts it rather than importing it); or, with --export, an export."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg == "--export" or arg.startswith("--export=") for arg in argv):
        return export_main(argv)
    training_script = str(REPO / "training.py")
    os.execv(sys.executable, [sys.executable, training_script, "--new", *argv])


if __name__ == "__main__":
    main()
