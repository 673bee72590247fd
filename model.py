"""The networks, and the first training run of the default one into model.h5.

    python model.py                   # build the default network, train it on data/images.npz
    python model.py --arch seed       # the original repo's network, as a baseline (seed.h5)

Importing this module registers the custom layers, so that `keras.models.load_model("model.h5")`
works in safe mode. `upscale()` is the one way every script runs a model on images.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

import data_preparation  # first: it sets TensorFlow's log level before TensorFlow loads
import keras
import tensorflow as tf
from data_preparation import LR_SIZE, REPO, SCALE

RESULTS = REPO / "results"
DEFAULT_MODEL = REPO / "model.h5"
SEED_MODEL = RESULTS / "seed.h5"  # ~340 MB of weights: kept out of git
WIDTH, BLOCKS = 32, 8  # chosen by measurement on this 2-core CPU (see README)
FLOAT32_LAYERS = ("bicubic", "sr")  # bf16 would cost the fixed skip and the output ~0.3 grey levels


# ---------------------------------------------------------------------------------------------
# Custom pieces, registered so that model.h5 loads without Lambda layers or unsafe deserialisation


def scaled(size, scale):
    return None if size is None else size * scale


@keras.saving.register_keras_serializable(package="sr")
class DepthToSpace(keras.layers.Layer):
    """Sub-pixel upsampling: (N, H, W, C*s*s) -> (N, sH, sW, C)."""

    def __init__(self, scale=SCALE, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, scaled(h, self.scale), scaled(w, self.scale), c // self.scale**2)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="sr")
class Bicubic(keras.layers.Layer):
    """Fixed bicubic x`scale` upsampling (tf.image.resize, as the benchmark's bicubic): the global
    skip. Keras' UpSampling2D cannot take inputs of unknown height and width in graph mode."""

    def __init__(self, scale=SCALE, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * self.scale
        return tf.image.resize(inputs, size, method="bicubic")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, scaled(h, self.scale), scaled(w, self.scale), c)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="sr")
def psnr(y_true, y_pred):
    """PSNR in dB of images in [0, 1], per image (Keras averages over the batch)."""
    return tf.image.psnr(y_true, tf.clip_by_value(y_pred, 0.0, 1.0), max_val=1.0)


# ---------------------------------------------------------------------------------------------
# Architectures


def residual_block(x, width, name):
    y = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{name}_conv1")(x)
    y = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv2")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def build_residual(width=WIDTH, blocks=BLOCKS):
    """Fully convolutional x2 network for any H, W: features at low resolution, residual blocks,
    sub-pixel upsampling, plus bicubic of the input so the network learns only the residual."""
    inputs = keras.Input((None, None, 1), name="lr")
    features = keras.layers.Conv2D(width, 3, padding="same", name="head")(inputs)
    x = features
    for i in range(blocks):
        x = residual_block(x, width, f"block{i + 1}")
    x = keras.layers.Conv2D(width, 3, padding="same", name="body_end")(x)
    x = keras.layers.Add(name="long_skip")([x, features])
    x = keras.layers.Conv2D(SCALE * SCALE, 3, padding="same", name="to_subpixels")(x)
    residual = DepthToSpace(SCALE, name="depth_to_space")(x)
    bicubic = Bicubic(SCALE, name="bicubic", dtype="float32")(inputs)
    outputs = keras.layers.Add(name="sr", dtype="float32")([bicubic, residual])
    return keras.Model(inputs, outputs, name=f"residual_w{width}_b{blocks}")


def build_seed():
    """The original repo's network, layer for layer: 64x64 in, 128x128 out, ~85 M parameters.
    Every layer is linear (Keras' default activation), as listed."""
    return keras.Sequential([
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
    ], name="seed")


ARCHITECTURES = {"residual": build_residual, "seed": build_seed}


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


def load_model(path=DEFAULT_MODEL):
    """keras.models.load_model with a one-line error that says how to make the file."""
    path = Path(path)
    if not path.is_file():
        raise data_preparation.DataError(f"{path}: no such model; train one with `python model.py`")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py and Keras raise many types for a damaged file
        raise data_preparation.DataError(
            f"{path}: not a loadable model ({type(error).__name__}); retrain it with `python model.py`") from None


def upscale(model, lr, batch_size=32, self_ensemble=False, tile=None):
    """The model's x2 output for LR images (N, H, W, 1) in [0, 1], clipped to [0, 1].

    self_ensemble: average over the 8 flips/rotations (EDSR+). tile: run images larger than
    `tile` pixels through the network in overlapping tiles, so memory stays bounded; the overlap
    covers the network's receptive field, so the result equals the untiled one.
    """
    lr = np.asarray(lr, dtype=np.float32)
    if tile and max(lr.shape[1:3]) > tile + 2 * TILE_MARGIN:
        return np.stack([upscale_tiled(model, image, tile, self_ensemble) for image in lr])
    if not self_ensemble:
        return np.clip(predict(model, lr, batch_size), 0, 1)
    total = 0
    for quarter_turns in range(4):
        for mirror in (False, True):
            x = np.rot90(lr, quarter_turns, axes=(1, 2))
            x = x[:, :, ::-1] if mirror else x
            y = predict(model, np.ascontiguousarray(x), batch_size)
            y = y[:, :, ::-1] if mirror else y
            total = total + np.rot90(y, -quarter_turns, axes=(1, 2))
    return np.clip(total / 8, 0, 1)


def predict(model, x, batch_size):
    return np.concatenate([model.predict_on_batch(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


TILE_MARGIN = 32  # LR pixels of context around each tile: more than the 19 3x3 convolutions see


def upscale_tiled(model, image, tile, self_ensemble=False):
    """upscale() of one (H, W, 1) image, `tile` x `tile` LR pixels at a time (plus margins)."""
    height, width = image.shape[:2]
    window_h, window_w = min(height, tile + 2 * TILE_MARGIN), min(width, tile + 2 * TILE_MARGIN)
    out = np.empty((SCALE * height, SCALE * width, 1), np.float32)
    corners = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
    for top, left in tqdm(corners, desc="tiles", unit="tile", leave=False, disable=len(corners) < 16):
        # Same-sized windows (one traced graph), shifted inwards at the image's edges.
        window_top = min(max(top - TILE_MARGIN, 0), height - window_h)
        window_left = min(max(left - TILE_MARGIN, 0), width - window_w)
        window = image[window_top:window_top + window_h, window_left:window_left + window_w]
        sr = upscale(model, window[None], self_ensemble=self_ensemble)[0]
        bottom, right = min(top + tile, height), min(left + tile, width)
        out[SCALE * top:SCALE * bottom, SCALE * left:SCALE * right] = sr[
            SCALE * (top - window_top):SCALE * (bottom - window_top),
            SCALE * (left - window_left):SCALE * (right - window_left)]
    return out


def main(argv=None):
    import training  # training imports this module: a top-level import would be circular

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=list(ARCHITECTURES), default="residual",
                        help="residual: the default network; seed: the original repo's network with its own "
                             "settings (MSE, Adam, batch 200, 40 epochs, no augmentation) (default: residual)")
    parser.add_argument("--width", type=int, default=WIDTH, help=f"residual: channels (default: {WIDTH})")
    parser.add_argument("--blocks", type=int, default=BLOCKS, help=f"residual: residual blocks (default: {BLOCKS})")
    training.add_training_arguments(parser)
    args = parser.parse_args(argv)
    if args.arch == "seed":
        build = build_seed
        settings = dict(loss="mse", batch_size=200, epochs=40, lr=1e-3, patch=None, augment=False,
                        schedule="constant", precision="float32",
                        backup_every=args.backup_every)
        out = args.out or SEED_MODEL
        history = args.history or RESULTS / "history_seed.csv"
    else:
        build = lambda: build_residual(args.width, args.blocks)
        settings = training.settings_from(args)
        out = args.out or DEFAULT_MODEL
        history = args.history or RESULTS / "history.csv"
    try:
        training.run(build, out=out, data=args.data, seed=args.seed, history=history, **settings)
    except data_preparation.DataError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
