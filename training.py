"""Training: the loop, its losses and metric, and its one configuration. Continues (or resumes)
model.h5 by default; `python model.py ARGS` is the first run, `python training.py --new ARGS`.

    python training.py                          # continue training model.h5 where it stands
    python training.py --epochs 50 --lr 2e-4 --data data/images.npz more.npz
    python training.py --degradation jpeg --out results/model_compressed.h5   # the compressed-input model
    python training.py --new --images ~/photos --steps-per-epoch 500   # stream tiles from a folder
    python training.py --strategy mirrored      # all local GPUs
    TF_CONFIG=... python training.py --strategy multiworker   # the same command on every machine

Under multiworker, only the chief (worker 0) writes the model, the curve and the CSV; the others write
to a temporary folder that is removed at the end. Each worker reads its share of --images.

A run that is killed (even with SIGKILL) resumes from its last backup, optimizer state included,
when started again with the same command; the model file is only ever replaced whole.
"""
import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import absl.logging
import numpy as np
from tqdm import tqdm

import keras
import matplotlib
import tensorflow as tf
from data_preparation import (DEFAULT_DATASET, HR_SIZE, MAX_SIDE, MIN_CROP_STD, SCALE, DataError, atomic_output,
                              degrade, h264_luma, jfif_to_luma, jpeg_luma, list_files, load_dataset, luma_to_jfif,
                              shrink, stream_problem, to_luma, warn, write_bytes)
from model import (ARCHITECTURES, BLOCKS, DEFAULT_MODEL, RESULTS, SEED_MODEL, WIDTH, build_model, load_model,
                   grow, with_precision)

matplotlib.use("Agg")  # figures go to files; no window may open during training
import matplotlib.pyplot as plt  # noqa: E402


# ---------------------------------------------------------------------------------------------
# The configuration: one dataclass; its fields are the command-line flags


IMAGE_STEPS_PER_EPOCH = 500  # an "epoch" over an endless stream of tiles: how often to validate and save
TILES_PER_IMAGE = 32  # random 128x128 tiles cut from each decoded image, so decoding is not the bottleneck
SHUFFLE_TILES = 1024  # the shuffle buffer of streamed tiles: bounded memory (~80 MB) whatever the folder holds

# Compressed-input training: each LR tile JPEG'd whole (so the 8x8 grid falls where a real file's does), or left
# clean, or ("compressed") encoded by libx264 before training (it is not a tf.data op) at one of H264_CRFS.
JPEG_QUALITIES, H264_CRFS = (30, 95), (18, 23, 28, 33)
CLEAN_SHARE, H264_SHARE = 0.2, 0.3  # the defaults of --shares
VALIDATION_QUALITIES = (None, 30, 40, 50, 60, 75, 90)  # JPEG, cycled over the test split; None = clean
VALIDATION_CRFS = (23, 28)  # "compressed": H.264 test pairs too


def flag(default, help, **argparse_options):
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass(frozen=True)
class Config:
    new: bool = flag(False, "train a new network (what `python model.py` does) instead of continuing --model",
                     action="store_true")
    arch: str = flag("residual", "with --new: residual (the default network) or seed (the original repo's "
                     "network; its recipe becomes the defaults)", choices=list(ARCHITECTURES))
    width: int = flag(WIDTH, "residual: channels; a narrower model continued is widened to this (model.grow())")
    blocks: int = flag(BLOCKS, "residual: residual blocks; a shallower model continued gets more (model.grow())")
    model: Path = flag(DEFAULT_MODEL, "without --new: the model to continue", type=Path)
    out: Path = flag(None, "where the best model goes (None: --model when continuing, model.h5 when new)",
                     type=Path)
    history: Path = flag(RESULTS / "history.csv", "CSV log of the epochs, a training curve PNG drawn beside it "
                         "(with --out and no --history: history_<name>.csv beside --out)", type=Path)
    data: tuple = flag((str(DEFAULT_DATASET),), "one or more datasets, concatenated", nargs="+", type=str,
                       metavar="FILE.npz")
    images: tuple = flag((), "folders of images (searched recursively) to stream training tiles from, instead of "
                         "--data's training pairs; validation stays on --data's test split", nargs="+", type=str,
                         metavar="DIR")
    epochs: int = flag(300, "passes over the training pairs (with --images: of --steps-per-epoch)")
    steps_per_epoch: int = flag(0, "steps per epoch; 0: one pass over the .npz training pairs, "
                                f"{IMAGE_STEPS_PER_EPOCH} with --images")
    batch_size: int = flag(16, "pairs per step, all replicas")
    lr: float = flag(1e-3, "peak learning rate of Adam")
    loss: str = flag("l1", "l1 (chosen by measurement, see README), mse or charbonnier",
                     choices=["l1", "mse", "charbonnier"])
    patch: int = flag(48, "side of the random LR training patches in pixels; 0: whole tiles")
    augment: bool = flag(True, "the 8 flips/rotations of each patch", action=argparse.BooleanOptionalAction)
    schedule: str = flag("cosine", "learning rate: warm-up then cosine decay, or constant",
                         choices=["cosine", "constant"])
    patience: int = flag(40, "stop after this many epochs without a better validation PSNR")
    degradation: str = flag("none", "none: clean LR (the benchmark protocol); jpeg: LR tiles JPEG'd at a random "
                            "quality (--qualities), a share clean (--shares), for real photos and video; "
                            "compressed: as jpeg, a share H.264-encoded instead (H264_CRFS; .npz pairs only)",
                            choices=["none", "jpeg", "compressed"])
    shares: tuple = flag((CLEAN_SHARE, H264_SHARE), "with --degradation: the shares of clean and of H.264 tiles "
                         "(compressed only); JPEG the rest", nargs=2, type=float, metavar=("CLEAN", "H264"))
    qualities: tuple = flag(JPEG_QUALITIES, "with --degradation: JPEG qualities from LOW to HIGH, validated at "
                            f"those of {VALIDATION_QUALITIES[1:]} in it", nargs=2, type=int, metavar=("LOW", "HIGH"))
    precision: str = flag("bfloat16", "bfloat16: compute in mixed bfloat16 (faster on CPUs with AVX512-BF16 and "
                          "on GPUs; weights and the saved model stay float32)", choices=["bfloat16", "float32"])
    strategy: str = flag("default", "default: this process's device; mirrored: all local GPUs "
                         "(MirroredStrategy); multiworker: one process per machine, cluster from TF_CONFIG",
                         choices=["default", "mirrored", "multiworker"])
    seed: int = flag(0, "random seed")
    backup_every: int = flag(200, "save the resume state every this many steps, besides each epoch's end",
                             metavar="STEPS")


FIRST_RUN = Config(new=True)
CONTINUED = Config(epochs=50, lr=2e-4, history=RESULTS / "history_continued.csv")
SEED_RECIPE = dataclasses.replace(  # the original repo's settings, as it trained its network
    FIRST_RUN, arch="seed", loss="mse", batch_size=200, epochs=40, patch=0, augment=False, schedule="constant",
    precision="float32", out=SEED_MODEL, history=RESULTS / "history_seed.csv")


def add_arguments(parser, defaults):
    for option in dataclasses.fields(Config):
        options = {key: value for key, value in option.metadata.items() if key != "help"}
        default = getattr(defaults, option.name)
        shown = "" if option.metadata.get("action") == "store_true" else f" (default: {default})"
        if "type" not in options and "action" not in options:
            options["type"] = option.type
        parser.add_argument(f"--{option.name.replace('_', '-')}", default=default,
                            help=option.metadata["help"].replace("%", "%%") + shown, **options)


def parse_config(argv=None):
    """The run's Config from the command line; the defaults depend on --new and --arch."""
    argv = sys.argv[1:] if argv is None else list(argv)
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--new", action="store_true")
    probe.add_argument("--arch", default="residual")
    known, _ = probe.parse_known_args(argv)
    defaults = (SEED_RECIPE if known.arch == "seed" else FIRST_RUN) if known.new else CONTINUED
    parser = argparse.ArgumentParser(prog="model.py" if known.new else None, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, defaults)
    args = vars(parser.parse_args(argv))
    args.update({key: tuple(args[key]) for key in ("data", "shares", "qualities")})
    if min(args["shares"]) < 0 or sum(args["shares"]) > 1:
        parser.error(f"--shares: two shares in 0-1 that add up to at most 1, got {args['shares']}")
    if not 1 <= args["qualities"][0] <= args["qualities"][1] <= 100:
        parser.error(f"--qualities: LOW <= HIGH, both in 1-100, got {args['qualities']}")
    if args["out"] and not any(arg.startswith("--history") for arg in argv):  # a model's log goes with it
        args["history"] = args["out"].with_name(f"history_{args['out'].stem}.csv")
    return Config(**args)


# ---------------------------------------------------------------------------------------------
# Losses and the metric


@keras.saving.register_keras_serializable(package="sr")
def charbonnier(y_true, y_pred, epsilon=1e-3):
    """A differentiable L1: sqrt(d^2 + eps^2)."""
    return tf.reduce_mean(tf.sqrt(tf.square(y_true - y_pred) + epsilon**2))


@keras.saving.register_keras_serializable(package="sr")
def psnr(y_true, y_pred):
    """PSNR in dB of images in [0, 1], per image (Keras averages over the batch)."""
    return tf.image.psnr(y_true, tf.clip_by_value(y_pred, 0.0, 1.0), max_val=1.0)


LOSSES = {"l1": "mean_absolute_error", "mse": "mean_squared_error", "charbonnier": charbonnier}


# ---------------------------------------------------------------------------------------------
# Input pipeline


def dihedral(lr, hr, choice):
    """One of the 8 flips/rotations, the same for the LR and the HR image."""
    lr, hr = tf.image.rot90(lr, choice % 4), tf.image.rot90(hr, choice % 4)
    flip = choice >= 4
    return (tf.cond(flip, lambda: tf.image.flip_left_right(lr), lambda: lr),
            tf.cond(flip, lambda: tf.image.flip_left_right(hr), lambda: hr))


def compress(lr, random, h264=None, shares=(CLEAN_SHARE, H264_SHARE), qualities=JPEG_QUALITIES):
    """The training degradation on top of degrade(): a whole LR tile JPEG'd at a random quality in `qualities`
    (libjpeg through TensorFlow; with the accurate DCT a test finds it equal to jpeg_luma()'s Pillow),
    left clean, or, given the tile's `h264` versions (uint8, one per H264_CRFS), one of them: by `shares`."""
    low, high = qualities
    quality = low + random[1] % (high - low + 1)
    share = tf.cast(random[0] % 1000, tf.float32) / 1000

    def jpeg_compressed():  # as jpeg_luma(): JFIF's full-range Y, rounded here (adjust_jpeg_quality truncates)
        y = tf.round(tf.clip_by_value(luma_to_jfif(lr), 0, 1) * 255) / 255
        return jfif_to_luma(tf.image.adjust_jpeg_quality(y, quality, dct_method="INTEGER_ACCURATE"))
    if h264 is None:
        return tf.cond(share < shares[0], lambda: lr, jpeg_compressed)
    video = lambda: tf.cast(h264[random[1] % len(H264_CRFS)], tf.float32) / 255  # noqa: E731
    return tf.case([(share < shares[0], lambda: lr), (share < sum(shares), video)],
                   default=jpeg_compressed)


def h264_versions(x):
    """Each LR tile of `x` as libx264 leaves it at each of H264_CRFS: uint8 (N, len(H264_CRFS), h, w, 1)."""
    return np.stack([np.round(h264_luma(x, crf) * 255).astype(np.uint8) for crf in H264_CRFS], axis=1)


def compressed_validation(x_test, crfs=(), qualities=JPEG_QUALITIES):
    """The test split's LR as the compressed-input model is validated: the luma of a Pillow JPEG at the
    VALIDATION_QUALITIES within `qualities` in turn, some left clean, with `crfs` some H.264-encoded at those."""
    kinds = [kind for kind in VALIDATION_QUALITIES if kind is None or qualities[0] <= kind <= qualities[1]]
    kinds += [f"crf{crf}" for crf in crfs]
    chosen = [kinds[i % len(kinds)] for i in range(len(x_test))]
    lr = np.stack([lr if kind is None or isinstance(kind, str) else jpeg_luma(lr, kind)
                   for lr, kind in zip(x_test, chosen)])
    for crf in crfs:
        encoded = [i for i, kind in enumerate(chosen) if kind == f"crf{crf}"]
        lr[encoded] = h264_luma(x_test[encoded], crf)
    return lr


def array_pairs(x, y, h264=None, seed=0):
    """Endless shuffled (LR, HR) tiles from in-memory arrays (the .npz datasets), with their `h264` versions."""
    arrays = (x, y) if h264 is None else (x, y, h264)
    return tf.data.Dataset.from_tensor_slices(arrays).shuffle(len(x), seed=seed).repeat()


def image_files(folders, report=True):
    """The streamable image files below `folders`; each other file skipped with one warning (when
    `report`: the chief of a cluster reports them, once)."""
    files = [path for folder in folders for path in list_files(folder)]
    with ThreadPoolExecutor() as pool:
        problems = list(tqdm(pool.map(stream_problem, files), total=len(files), desc="checking images",
                             unit="file", disable=len(files) < 1000))
    for path, problem in zip(files, problems):
        if problem and report:
            warn(f"skipped {path}: {problem}")
    usable = [path for path, problem in zip(files, problems) if problem is None]
    if not usable:
        raise DataError(f"{', '.join(map(str, folders))}: no images to train on")
    return usable


def random_tiles(name, seed):
    """TILES_PER_IMAGE random HR tiles of one image file's luma (BT.601 Y, as to_luma(); grey as it
    is; shrunk to MAX_SIDE), in 8-bit levels like the bundled tiles; all in TensorFlow ops, so that
    decoding runs in parallel."""
    contents = tf.io.read_file(name)

    def jpeg_scaled():  # big JPEGs decoded at 1/2, 1/4 or 1/8 in the DCT (what libjpeg offers): 3-10x faster
        reduction = tf.reduce_max(tf.io.extract_jpeg_shape(contents)[:2]) // MAX_SIDE
        step = tf.reduce_sum(tf.cast(reduction >= [2, 4, 8], tf.int32))
        return tf.switch_case(step, [lambda ratio=ratio: tf.io.decode_jpeg(contents, ratio=ratio)
                                     for ratio in (1, 2, 4, 8)])

    image = tf.cond(tf.io.is_jpeg(contents), jpeg_scaled, lambda: tf.io.decode_image(
        contents, channels=0, dtype=tf.uint8, expand_animations=False))
    luma = shrink(to_luma(tf.cast(image, tf.float32) / 255))  # as data_preparation makes the bundled tiles
    luma = tf.round(luma * 255) / 255
    limits = tf.shape(luma)[:2] - HR_SIZE + 1
    corners = tf.random.stateless_uniform((TILES_PER_IMAGE, 2), seed, maxval=tf.int32.max, dtype=tf.int32) % limits
    return tf.stack([luma[corners[i, 0]:corners[i, 0] + HR_SIZE, corners[i, 1]:corners[i, 1] + HR_SIZE]
                     for i in range(TILES_PER_IMAGE)])


def image_pairs(files, seed=0):
    """Endless (LR, HR) tiles streamed from image files: decoded in parallel, random 128x128 tiles,
    LR by degrade(), shuffled in a bounded buffer. Memory does not grow with the number of files."""
    names = tf.data.Dataset.from_tensor_slices([str(path) for path in files])
    names = names.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()  # a new order each pass
    draws = tf.data.Dataset.zip(names, tf.data.Dataset.counter())  # new tiles at each visit of a file
    tiles = draws.map(lambda name, count: random_tiles(name, tf.stack([tf.constant(seed, tf.int64), count])),
                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    tiles = tiles.ignore_errors()  # a file broken past its header: skipped (its header was checked)
    tiles = tiles.unbatch().filter(lambda tile: tf.math.reduce_std(tile) >= MIN_CROP_STD)  # as the bundled tiles
    tiles = tiles.shuffle(SHUFFLE_TILES, seed=seed)

    def pair(hr):
        hr = tf.ensure_shape(hr, (HR_SIZE, HR_SIZE, 1))
        return degrade(hr), hr

    return tiles.map(pair, num_parallel_calls=tf.data.AUTOTUNE)


def make_pipeline(pairs, batch_size, patch=None, augment=True, seed=0, degradation="none",
                  shares=(CLEAN_SHARE, H264_SHARE), qualities=JPEG_QUALITIES):
    """Batches of (LR, HR) from endless `pairs` of tiles (a Dataset, or (x, y) arrays): the LR tile
    degraded further (`degradation`), random LR patches of `patch` pixels (and the HR patch under
    them), the 8 flips/rotations, prefetched."""
    if not isinstance(pairs, tf.data.Dataset):
        pairs = array_pairs(*pairs, seed=seed)
    # A second stream for the degradation, so that the clean recipe's random numbers stay as they were.
    randoms = tf.data.Dataset.zip(tf.data.Dataset.random(seed=seed).batch(3),
                                  tf.data.Dataset.random(seed=seed + 1).batch(2))

    def transform(pair, randoms):
        lr, hr = pair[:2]
        random, extra = (tf.cast(r % 65536, tf.int32) for r in randoms)
        if degradation in ("jpeg", "compressed"):
            lr = compress(lr, extra, *pair[2:], shares=shares, qualities=qualities)  # pair[2]: the H.264 tiles
        if patch is not None:
            top = random[0] % (tf.shape(lr)[0] - patch + 1)
            left = random[1] % (tf.shape(lr)[1] - patch + 1)
            lr = lr[top:top + patch, left:left + patch]
            hr = hr[SCALE * top:SCALE * (top + patch), SCALE * left:SCALE * (left + patch)]
        if augment:
            lr, hr = dihedral(lr, hr, random[2] % 8)
        return lr, hr

    batches = tf.data.Dataset.zip((pairs, randoms)).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------
# Callbacks: the best model and the resume state, both written whole or not at all


def save_model(model, path):
    """The model, in float32 to run, at `path`, replaced whole."""
    absl.logging.set_verbosity("error")  # .h5 is the format asked for: no "legacy format" warning each time
    with atomic_output(path) as temporary:
        with_precision(model, "float32").save(temporary, include_optimizer=False)


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the model with the best validation PSNR in `path`."""

    def __init__(self, path, best=-np.inf, monitor="val_psnr"):
        super().__init__()
        self.path, self.best, self.monitor = Path(path), best, monitor

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and value > self.best:
            self.best = float(value)
            save_model(self.model, self.path)


class Backup(keras.callbacks.Callback):
    """Every `every` steps and at each epoch's end: weights + optimizer state + progress, so that
    a killed run restarts where it was. Each file is replaced whole (temp file, then rename)."""

    def __init__(self, folder, every, checkpoint, state=None):
        super().__init__()
        self.folder, self.every, self.checkpoint = Path(folder), every, checkpoint
        self.state = state or {"epoch": 0, "elapsed_s": 0.0}
        self.started = time.monotonic() - self.state["elapsed_s"]

    weights_path = property(lambda self: self.folder / "latest.weights.h5")
    state_path = property(lambda self: self.folder / "state.json")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) % self.every == 0:
            self.save(self.epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["elapsed_s"] = round(time.monotonic() - self.started, 1)
        self.save(epoch + 1)

    def save(self, epoch):
        with atomic_output(self.weights_path) as temporary:
            self.model.save_weights(temporary)
        self.state = {"epoch": epoch, "elapsed_s": round(time.monotonic() - self.started, 1),
                      "best": self.checkpoint.best}
        write_bytes(self.state_path, json.dumps(self.state).encode())

    @staticmethod
    def restore(folder, model):
        """The saved progress, after loading the saved weights and optimizer into `model` (its
        optimizer built); None when there is nothing to resume."""
        if not (folder / "state.json").is_file() or not (folder / "latest.weights.h5").is_file():
            return None
        model.load_weights(folder / "latest.weights.h5")
        return json.loads((folder / "state.json").read_text())


class StopAtStep(keras.callbacks.Callback):
    """Stops when the optimizer has made `steps` updates: a resumed run ends where the
    uninterrupted one would have, however often it was killed."""

    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


# ---------------------------------------------------------------------------------------------
# A training run


def make_strategy(name):
    if name == "mirrored":
        # All local GPUs; on a machine without one, all logical CPU devices (as the tests use).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()  # the cluster comes from TF_CONFIG
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the results: always, except a non-chief worker of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def worker_scratch(out, strategy):
    """Where a non-chief worker writes what the chief writes for real: a temporary folder, the same
    one again if the worker is restarted (so that it resumes with the chief), removed at the end."""
    key = zlib.crc32(str(Path(out).resolve()).encode())
    return Path(tempfile.gettempdir()) / f"sr-worker{strategy.cluster_resolver.task_id}-{key:08x}"


def make_train_step(model, loss, strategy):
    """One optimizer step on the next distributed batch; returns the batch's loss and PSNR, averaged
    over the replicas. Each replica's loss is scaled by 1/replicas because the optimizer sums the
    replicas' gradients."""
    loss = keras.losses.get(loss)
    variables = model.trainable_variables

    def replica_step(lr, hr):
        with tf.GradientTape() as tape:
            sr = model(lr, training=True)
            value = loss(hr, sr)
            value = tf.reduce_mean(value) if value.shape.rank else value
            scaled = value / strategy.num_replicas_in_sync
        model.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return value, tf.reduce_mean(psnr(hr, sr))

    @tf.function
    def step(iterator):
        value, quality = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce("MEAN", value, axis=None), strategy.reduce("MEAN", quality, axis=None)

    return step


def validate(predict, x, y, loss, batch_size=32):
    """{"val_loss", "val_psnr"} of `predict` (the model, traced once) on the test split, the same on
    every worker (it is not split)."""
    sr = np.concatenate([predict(x[i:i + batch_size]).numpy() for i in range(0, len(x), batch_size)])
    loss = keras.losses.get(loss)
    return {"val_loss": float(tf.reduce_mean(loss(y, sr))), "val_psnr": float(np.mean(psnr(y, sr)))}


def train(model, strategy, batches, steps_per_epoch, epochs, initial_epoch, validation, callbacks, loss):
    """The training loop (Keras' fit cannot yet run under MultiWorkerMirroredStrategy): the same
    callbacks, logs and History as fit, for every strategy. validation: (x, y) test pairs."""
    predict = tf.function(lambda lr: model(lr, training=False), reduce_retracing=True)
    history = keras.callbacks.History()
    callbacks = keras.callbacks.CallbackList([*callbacks, history], model=model)
    step, iterator = make_train_step(model, loss, strategy), iter(batches)
    model.stop_training = False
    callbacks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        started, losses, qualities = time.monotonic(), [], []
        for batch in range(steps_per_epoch):
            callbacks.on_train_batch_begin(batch)
            value, quality = step(iterator)
            losses.append(float(value))
            qualities.append(float(quality))
            callbacks.on_train_batch_end(batch, {"loss": losses[-1], "psnr": qualities[-1]})
            if model.stop_training:
                break
        seconds = time.monotonic() - started
        logs = {"loss": float(np.mean(losses)), "psnr": float(np.mean(qualities)),
                **validate(predict, *validation, loss)}
        callbacks.on_epoch_end(epoch, logs)
        print(f"epoch {epoch + 1}/{epochs}: {len(losses)} steps in {seconds:.0f} s ({len(losses) / seconds:.2f} "
              "steps/s), " + ", ".join(f"{key} {value:.4g}" for key, value in logs.items()), flush=True)
        if model.stop_training:
            break
    callbacks.on_train_end(logs if epochs > initial_epoch else {})
    return history


def plot_history(csv_path, png_path):
    """Training loss and validation PSNR against epochs, from the CSV log."""
    history = np.atleast_1d(np.genfromtxt(csv_path, delimiter=",", names=True))  # one epoch: still a row
    if history.size < 1:
        return
    figure, (loss_axes, psnr_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.semilogy(history["epoch"] + 1, history["loss"], label="training loss")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="training loss")
    psnr_axes.plot(history["epoch"] + 1, history["val_psnr"], color="tab:orange")
    psnr_axes.set(xlabel="epoch", ylabel="PSNR (dB)", title="validation PSNR (bundled test split)")
    figure.tight_layout()
    with atomic_output(png_path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def run(config, build=None):
    """Train the network that `build()` returns (built inside the strategy's scope; by default a
    new one of config.arch with --new, else config.model loaded) and keep the best validation PSNR
    in config.out. Returns the Keras History of this (possibly resumed) run."""
    if build is None:
        build = (lambda: build_model(config.arch, **(dict(width=config.width, blocks=config.blocks)
                                                     if config.arch == "residual" else {}))) \
            if config.new else (lambda: grow(load_model(config.model), config.width, config.blocks))
    strategy = make_strategy(config.strategy)  # first: a cluster must be set up before TensorFlow runs anything
    out = Path(config.out or (DEFAULT_MODEL if config.new else config.model))
    history = Path(config.history)
    keras.utils.set_random_seed(config.seed)
    x_train, y_train, x_test, y_test = load_dataset(config.data)
    if not config.images and len(x_train) < config.batch_size:
        raise DataError(f"{len(x_train)} training pairs, fewer than one batch of {config.batch_size}")
    if config.degradation == "compressed" and config.images:
        raise DataError("--degradation compressed needs the .npz pairs (their H.264 versions are encoded "
                        "before training); use --degradation jpeg with --images")
    if config.degradation != "none":
        x_test = compressed_validation(x_test, VALIDATION_CRFS if config.degradation == "compressed" else (),
                                       config.qualities)
    h264 = h264_versions(x_train) if config.degradation == "compressed" else None
    steps_per_epoch = config.steps_per_epoch or (
        IMAGE_STEPS_PER_EPOCH if config.images else len(x_train) // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    chief = is_chief(strategy)
    files = image_files(config.images, report=chief) if config.images else None
    scratch = None if chief else worker_scratch(out, strategy)
    if scratch:  # a non-chief worker computes everything but writes only here
        out, history = scratch / out.name, scratch / "history.csv"
    with strategy.scope():
        model = build()
        if config.precision == "bfloat16":
            model = with_precision(model, "mixed_bfloat16")
        learning_rate = config.lr
        if config.schedule == "cosine":
            warmup = min(500, total_steps // 10)
            learning_rate = keras.optimizers.schedules.CosineDecay(
                0.0, total_steps - warmup, alpha=0.01, warmup_target=config.lr, warmup_steps=warmup)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=LOSSES[config.loss], metrics=[psnr])
        model.optimizer.build(model.trainable_variables)  # its slots made here, mirrored, not in the first step
        backup_folder = out.with_name(f".{out.name}.resume")
        state = Backup.restore(backup_folder, model)
    if state:
        best = state["best"]
    elif out.is_file():  # continuing: out is replaced only by a model better than the one we start from
        best = validate(lambda lr: model(lr, training=False), x_test, y_test, LOSSES[config.loss])["val_psnr"]
    else:
        best = -np.inf
    checkpoint = BestCheckpoint(out, best=best)
    initial_epoch = (state or {}).get("epoch", 0)
    if state:
        print(f"resuming {out} at epoch {initial_epoch + 1}, step {int(model.optimizer.iterations.numpy())}")
    callbacks = [
        Backup(backup_folder, config.backup_every, checkpoint, state), checkpoint,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping("val_psnr", mode="max", patience=config.patience, verbose=1),
        StopAtStep(total_steps),
    ]
    history.parent.mkdir(parents=True, exist_ok=True)
    callbacks.append(keras.callbacks.CSVLogger(history, append=bool(state)))

    def pipeline(context):  # one per worker: its own share of the files, or its own random draw of the pairs
        seed = config.seed + context.input_pipeline_id
        # its share of the files (all of them when there are fewer files than workers)
        share = files and (files[context.input_pipeline_id::context.num_input_pipelines] or files)
        pairs = image_pairs(share, seed) if files else \
            array_pairs(x_train, y_train, h264, seed)
        return make_pipeline(pairs, context.get_per_replica_batch_size(config.batch_size), config.patch or None,
                             config.augment, seed, config.degradation, config.shares, config.qualities)

    fit = train(model, strategy, strategy.distribute_datasets_from_function(pipeline), steps_per_epoch,
                config.epochs, initial_epoch, (x_test, y_test), callbacks, LOSSES[config.loss])
    shutil.rmtree(backup_folder, ignore_errors=True)  # the run ended by itself: nothing to resume
    weights = b"".join(np.asarray(w, np.float32).tobytes() for w in model.get_weights())
    print(f"final weights crc32 {zlib.crc32(weights):08x}")  # equal on every worker of a cluster
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
        return fit
    if history.is_file():
        plot_history(history, history.with_name(history.stem.replace("history", "training_curve") + ".png"))
    print(f"best validation PSNR {checkpoint.best:.2f} dB, saved in {out}")
    return fit


def main(argv=None):
    config = parse_config(argv)
    try:
        if not config.new and not Path(config.model).is_file():  # fail early (loading would start TensorFlow,
            load_model(config.model)  # too early for a cluster): the one-line message load_model gives
        run(config)
    except DataError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
