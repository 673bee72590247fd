"""Training: its one configuration, the losses, the loop and its callbacks, on any Keras backend.
Continues (or resumes) model.h5 by default; `python model.py ARGS` is the first run, `python
training.py --new ARGS`.

    python training.py                          # continue training model.h5 where it stands
    python training.py --epochs 50 --lr 2e-4 --data data/images.npz more.npz
    python training.py --degradation jpeg --out results/model_compressed.h5   # the compressed-input model
    python training.py --new --images ~/photos --steps-per-epoch 500   # stream tiles from a folder
    KERAS_BACKEND=jax python training.py --strategy mirrored    # all local GPUs
    TF_CONFIG=... python training.py --strategy multiworker   # the same command on every machine

The batches come from data_preparation.py's NumPy pipeline (TrainingBatches) on every backend.
Under multiworker (TensorFlow), only the chief (worker 0) writes the model, the curve and the CSV;
the others write to a temporary folder that is removed at the end. Each worker reads its share of
--images.

A run that is killed (even with SIGKILL) resumes from its last backup, optimizer state included,
when started again with the same command, mid-epoch too, on the batches it would have seen; the
model file is only ever replaced whole.
"""

import argparse
import contextlib
import dataclasses
import json
import logging
import shlex
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np

from data_preparation import (
    CLEAN_SHARE,
    DEFAULT_DATASET,
    H264_SHARE,
    JPEG_QUALITIES,
    SCALE,
    SCALES,
    VALIDATION_CRFS,
    VALIDATION_QUALITIES,
    DataError,
    TrainingBatches,
    atomic_output,
    compressed_validation,
    h264_versions,
    image_files,
    load_dataset,
    output_folder,
    write_bytes,
)
from model import (
    ARCHITECTURES,
    BLOCKS,
    CLEAN_MODELS,
    DEFAULT_MODEL,
    PRECISIONS,
    RESULTS,
    SEED_MODEL,
    WIDTH,
    backend_line,
    build_model,
    grow,
    keras,
    load_model,
    resolve_precision,
    weights_crc32,
    with_precision,
)

matplotlib.use("Agg")  # figures go to files; no window may open during training
import matplotlib.pyplot as plt  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The configuration: one dataclass; its fields are the command-line flags

IMAGE_STEPS_PER_EPOCH = 500  # an "epoch" over an endless stream of tiles: how often to validate and save


def flag(default, help, **argparse_options):
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass(frozen=True)
class Config:
    new: bool = flag(
        False, "train a new network (what `python model.py` does) instead of continuing --model", action="store_true"
    )
    arch: str = flag(
        "residual",
        "with --new: residual (the default network) or seed (the original repo's "
        "network; its recipe becomes the defaults)",
        choices=list(ARCHITECTURES),
    )
    scale: int = flag(SCALE, "the upscaling factor: a model has one; a model continued must have it", choices=SCALES)
    init: Path = flag(
        None,
        "with --new: start from this trained model's weights, of any scale (its body kept, grown to "
        "--width / --blocks; the upsampling of --scale new): a x2 model starts a x3 or x4 one",
        type=Path,
    )
    width: int = flag(WIDTH, "residual: channels; a narrower model continued is widened to this (model.grow())")
    blocks: int = flag(BLOCKS, "residual: residual blocks; a shallower model continued gets more (model.grow())")
    model: Path = flag(
        DEFAULT_MODEL, "without --new: the model to continue (the committed one of --scale unless given)", type=Path
    )
    out: Path = flag(
        None,
        "where the best model goes (None: --model when continuing; when new, the committed model of --scale: "
        "model.h5 at x2, results/model_x3.h5, results/model_x4.h5)",
        type=Path,
    )
    history: Path = flag(
        None,
        "the model's CSV log, each run a stage of it, with its configuration in a .json and a training curve "
        "PNG beside it (None: results/history.csv for model.h5, else history_<name>.csv beside the model)",
        type=Path,
    )
    data: tuple = flag(
        (str(DEFAULT_DATASET),), "one or more datasets, concatenated", nargs="+", type=str, metavar="FILE.npz"
    )
    images: tuple = flag(
        (),
        "folders of images (searched recursively) to stream training tiles from, instead of "
        "--data's training pairs; validation stays on --data's test split",
        nargs="+",
        type=str,
        metavar="DIR",
    )
    epochs: int = flag(300, "passes over the training pairs (with --images: of --steps-per-epoch)")
    steps_per_epoch: int = flag(
        0, f"steps per epoch; 0: one pass over the .npz training pairs, {IMAGE_STEPS_PER_EPOCH} with --images"
    )
    batch_size: int = flag(16, "pairs per step, all replicas")
    lr: float = flag(1e-3, "peak learning rate of Adam")
    loss: str = flag(
        "l1", "l1 (chosen by measurement, see README), mse or charbonnier", choices=["l1", "mse", "charbonnier"]
    )
    patch: int = flag(48, "side of the random LR training patches in pixels; 0: whole tiles")
    augment: bool = flag(True, "the 8 flips/rotations of each patch", action=argparse.BooleanOptionalAction)
    schedule: str = flag(
        "cosine", "learning rate: warm-up then cosine decay, or constant", choices=["cosine", "constant"]
    )
    patience: int = flag(40, "stop after this many epochs without a better validation PSNR")
    degradation: str = flag(
        "none",
        "none: clean LR (the benchmark protocol); jpeg: LR tiles JPEG'd at a random "
        "quality (--qualities), a share clean (--shares), for real photos and video; "
        "compressed: as jpeg, a share H.264-encoded instead (H264_CRFS; .npz pairs only)",
        choices=["none", "jpeg", "compressed"],
    )
    shares: tuple = flag(
        (CLEAN_SHARE, H264_SHARE),
        "with --degradation: the shares of clean and of H.264 tiles (compressed only); JPEG the rest",
        nargs=2,
        type=float,
        metavar=("CLEAN", "H264"),
    )
    qualities: tuple = flag(
        JPEG_QUALITIES,
        f"with --degradation: JPEG qualities from LOW to HIGH, validated at those of {VALIDATION_QUALITIES[1:]} in it",
        nargs=2,
        type=int,
        metavar=("LOW", "HIGH"),
    )
    precision: str = flag(
        "auto",
        "compute in mixed bfloat16 or float32 (weights and the saved model stay float32); auto: bfloat16 on a "
        "GPU, or under TensorFlow on a CPU that computes it natively (1.9x faster there), else float32",
        choices=list(PRECISIONS),
    )
    strategy: str = flag(
        "default",
        "default: this process's device; mirrored: all local GPUs (JAX: "
        "keras.distribution.DataParallel; TensorFlow: MirroredStrategy); multiworker: one "
        "process per machine, cluster from TF_CONFIG (TensorFlow)",
        choices=["default", "mirrored", "multiworker"],
    )
    seed: int = flag(0, "random seed")
    backup_every: int = flag(
        200, "save the resume state every this many steps, besides each epoch's end", metavar="STEPS"
    )
    workers: int = flag(0, "threads that make the training batches (0: one per CPU core)")
    verbose: bool = flag(False, "also the backend's own start-up log", action="store_true")


FIRST_RUN = Config(new=True)
CONTINUED = Config(epochs=50, lr=2e-4)
SEED_RECIPE = dataclasses.replace(  # the original repo's settings, as it trained its network
    FIRST_RUN,
    arch="seed",
    loss="mse",
    batch_size=200,
    epochs=40,
    patch=0,
    augment=False,
    schedule="constant",
    precision="float32",
    out=SEED_MODEL,
)


def add_arguments(parser, defaults):
    for option in dataclasses.fields(Config):
        options = {key: value for key, value in option.metadata.items() if key != "help"}
        default = getattr(defaults, option.name)
        shown = "" if option.metadata.get("action") == "store_true" else f" (default: {default})"
        if "type" not in options and "action" not in options:
            options["type"] = option.type
        parser.add_argument(
            f"--{option.name.replace('_', '-')}",
            default=default,
            help=option.metadata["help"].replace("%", "%%") + shown,
            **options,
        )


def parse_config(argv=None):
    """The run's Config from the command line; the defaults depend on --new and --arch."""
    argv = sys.argv[1:] if argv is None else list(argv)
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--new", action="store_true")
    probe.add_argument("--arch", default="residual")
    probe.add_argument("--scale", type=int, default=SCALE)
    known, _ = probe.parse_known_args(argv)
    defaults = (SEED_RECIPE if known.arch == "seed" else FIRST_RUN) if known.new else CONTINUED
    if known.scale in CLEAN_MODELS:  # each scale continues its own committed model
        defaults = dataclasses.replace(defaults, model=CLEAN_MODELS[known.scale])
    parser = argparse.ArgumentParser(
        prog="model.py" if known.new else None,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser, defaults)
    args = vars(parser.parse_args(argv))
    args.update({key: tuple(args[key]) for key in ("data", "shares", "qualities")})
    if min(args["shares"]) < 0 or sum(args["shares"]) > 1:
        parser.error(f"--shares: two shares in 0-1 that add up to at most 1, got {args['shares']}")
    if not 1 <= args["qualities"][0] <= args["qualities"][1] <= 100:
        parser.error(f"--qualities: LOW <= HIGH, both in 1-100, got {args['qualities']}")
    if args["init"] and not args["new"]:
        parser.error("--init starts a new network: use it with --new (python model.py --init ...)")
    return Config(**args)


def model_paths(config):
    """(the model file written, its history CSV): a model's log goes with it."""
    out = Path(config.out or (CLEAN_MODELS[config.scale] if config.new else config.model))
    if config.history:
        return out, Path(config.history)
    default = out.resolve() == DEFAULT_MODEL.resolve()
    return out, RESULTS / "history.csv" if default else out.with_name(f"history_{out.stem}.csv")


# ---------------------------------------------------------------------------------------------
# Losses and the metric, in keras.ops: the same on every backend


@keras.saving.register_keras_serializable(package="sr")
def charbonnier(y_true, y_pred, epsilon=1e-3):
    """A differentiable L1: sqrt(d^2 + eps^2)."""
    return keras.ops.mean(keras.ops.sqrt(keras.ops.square(y_true - y_pred) + epsilon**2))


@keras.saving.register_keras_serializable(package="sr")
def psnr(y_true, y_pred):
    """PSNR in dB of images in [0, 1], per image (Keras averages over the batch)."""
    y_true = keras.ops.cast(y_true, "float32")
    y_pred = keras.ops.clip(keras.ops.cast(y_pred, "float32"), 0.0, 1.0)
    mse = keras.ops.mean(keras.ops.square(y_true - y_pred), axis=(1, 2, 3))
    return -10.0 * keras.ops.log10(keras.ops.maximum(mse, 1e-10))


LOSSES = {"l1": "mean_absolute_error", "mse": "mean_squared_error", "charbonnier": charbonnier}


def validate(network, x, y, loss, batch_size=32):
    """{"val_loss", "val_psnr"} of `network` on the test pairs, the same on every worker (not split).
    The network is called on each batch here: under a cluster's strategy predict_on_batch returns
    every worker's outputs of the batch, one after the other (two workers: twice the rows)."""
    sr = np.concatenate(
        [
            keras.ops.convert_to_numpy(network(x[i : i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ]
    )
    value = keras.ops.convert_to_numpy(keras.losses.get(loss)(y, sr))
    return {"val_loss": float(np.mean(value)), "val_psnr": float(np.mean(keras.ops.convert_to_numpy(psnr(y, sr))))}


# ---------------------------------------------------------------------------------------------
# The loop. Keras' fit cannot start in the middle of an epoch (a resumed run does) nor run under
# TensorFlow's MultiWorkerMirroredStrategy; this loop calls the same callbacks with the same logs.


def train(model, step, steps_per_epoch, epochs, validation, callbacks, loss):
    """Optimizer steps from the model's own step count (0, or where a resumed run was) to
    epochs x steps_per_epoch; `step()` makes one and returns (loss, PSNR) of its batch. Returns the
    Keras History of the epochs run here."""
    history = keras.callbacks.History()
    callbacks = keras.callbacks.CallbackList([*callbacks, history], model=model)
    done = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    model.stop_training = False
    callbacks.on_train_begin()
    try:
        logs = run_epochs(model, step, steps_per_epoch, epochs, validation, callbacks, loss, done)
    except BaseException:  # a failed or stopped run leaves no log file open (CSVLogger closes it at the end)
        for callback in callbacks.callbacks:
            if isinstance(callback, keras.callbacks.CSVLogger):
                callback.on_train_end()
        raise
    callbacks.on_train_end(logs)
    return history


def run_epochs(model, step, steps_per_epoch, epochs, validation, callbacks, loss, done):
    """train()'s loop: the epochs from the one step `done` is in, each ended by its validation.
    Returns the last epoch's logs."""
    logs = {}
    for epoch in range(done // steps_per_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        started, losses, qualities = time.monotonic(), [], []
        for batch in range(done % steps_per_epoch if epoch == done // steps_per_epoch else 0, steps_per_epoch):
            callbacks.on_train_batch_begin(batch)
            value, quality = step()
            losses.append(float(value))
            qualities.append(float(quality))
            callbacks.on_train_batch_end(batch, {"loss": losses[-1], "psnr": qualities[-1]})
            if model.stop_training:
                break
        seconds = time.monotonic() - started
        logs = {"loss": float(np.mean(losses)), "psnr": float(np.mean(qualities)), **validate(model, *validation, loss)}
        callbacks.on_epoch_end(epoch, logs)
        print(
            f"epoch {epoch + 1}/{epochs}: {len(losses)} steps in {seconds:.0f} s ({len(losses) / seconds:.2f} "
            "steps/s), " + ", ".join(f"{key} {value:.4g}" for key, value in logs.items()),
            flush=True,
        )
        if model.stop_training:
            break
    return logs


def keras_step(model, batches):
    """One optimizer step by Keras' own train_on_batch (every backend; JAX spreads the batch over
    the devices of the distribution set), on the next of `batches`."""

    def step():
        logs = model.train_on_batch(*next(batches), return_dict=True)
        return logs["loss"], logs["psnr"]

    return step


# ---------------------------------------------------------------------------------------------
# Devices: one, all local GPUs, or (TensorFlow) a cluster


class Devices:
    """Where a run computes: `replicas` copies of the model, `chief` when this process writes the
    results, and (TensorFlow's tf.distribute only) its `strategy`."""

    def __init__(self, name):
        backend = keras.backend.backend()
        self.name, self.strategy, self.replicas, self.chief, self.worker = name, None, 1, True, 0
        if name == "multiworker" and backend != "tensorflow":
            raise DataError(f"--strategy multiworker needs the TensorFlow backend (this is {backend})")
        if name == "mirrored" and backend == "jax":
            devices = keras.distribution.list_devices()
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            self.replicas = len(devices)
        elif name == "mirrored" and backend != "tensorflow":
            raise DataError(f"--strategy mirrored needs the JAX or TensorFlow backend (this is {backend})")
        elif name != "default":
            self.strategy = tf_strategy(name)  # first: a cluster is set up before TensorFlow runs anything
            self.replicas = self.strategy.num_replicas_in_sync
            self.chief, self.worker = tf_chief(self.strategy)

    def scope(self):
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()


def tf_strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        # All local GPUs; on a machine without one, all logical CPU devices (as the tests use).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.MultiWorkerMirroredStrategy()  # the cluster comes from TF_CONFIG


def tf_chief(strategy):
    """(whether this process writes the results, its worker index): a cluster's chief writes, or
    its worker 0 when it names no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True, 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0
    )
    return chief, resolver.task_id


def tf_distributed_step(model, loss, strategy, make_batches, batch_size, start):
    """One step under a tf.distribute strategy: each replica its own batch of the NumPy pipeline, the
    gradients summed; returns the loss and PSNR averaged over the replicas."""
    import tensorflow as tf

    loss, variables = keras.losses.get(loss), model.trainable_variables

    def dataset(context):  # one NumPy pipeline per worker, its own seed; per-replica batches
        batches = make_batches(
            context.get_per_replica_batch_size(batch_size), context.input_pipeline_id, context.num_input_pipelines
        )
        replicas_here = context.num_replicas_in_sync // context.num_input_pipelines
        generator = lambda: batches(start * replicas_here)  # noqa: E731
        spec = tf.TensorSpec((None, None, None, 1), tf.float32)
        return tf.data.Dataset.from_generator(generator, output_signature=(spec, spec))

    def replica_step(lr, hr):
        with tf.GradientTape() as tape:
            sr = model(lr, training=True)
            value = tf.reduce_mean(loss(hr, sr))
            scaled = value / strategy.num_replicas_in_sync  # the optimizer sums the replicas' gradients
        model.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return value, tf.reduce_mean(psnr(hr, sr))

    @tf.function
    def step(iterator):
        value, quality = strategy.run(replica_step, args=next(iterator))
        return strategy.reduce("MEAN", value, axis=None), strategy.reduce("MEAN", quality, axis=None)

    iterator = iter(strategy.distribute_datasets_from_function(dataset))
    return lambda: step(iterator)


def worker_scratch(out, worker):
    """Where a non-chief worker writes what the chief writes for real: a temporary folder, the same
    one again if the worker is restarted (so that it resumes with the chief), removed at the end."""
    key = zlib.crc32(str(Path(out).resolve()).encode())
    return Path(tempfile.gettempdir()) / f"sr-worker{worker}-{key:08x}"


# ---------------------------------------------------------------------------------------------
# Callbacks: the best model and the resume state, both written whole or not at all


def save_model(model, path):
    """The model, in float32 to run, at `path`, replaced whole."""
    logging.getLogger("absl").setLevel(logging.ERROR)  # .h5 is the format asked for: no "legacy" warning
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
    """Every `every` steps and at each epoch's end: weights + optimizer state (its step count
    included) + the best PSNR so far, so that a killed run restarts where it was. Each file is
    replaced whole (temp file, then rename)."""

    def __init__(self, folder, every, checkpoint, state=None, stage=1):
        super().__init__()
        self.folder, self.every, self.checkpoint, self.stage = Path(folder), every, checkpoint, stage
        self.started = time.monotonic() - (state or {}).get("elapsed_s", 0.0)

    weights_path = property(lambda self: self.folder / "latest.weights.h5")
    state_path = property(lambda self: self.folder / "state.json")

    def on_train_batch_end(self, batch, logs=None):
        if self.step() % self.every == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["elapsed_s"] = round(time.monotonic() - self.started, 1)
        self.save()

    def step(self):
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def save(self):
        with atomic_output(self.weights_path) as temporary:
            self.model.save_weights(temporary)
        state = {
            "step": self.step(),
            "elapsed_s": round(time.monotonic() - self.started, 1),
            "best": self.checkpoint.best,
            "stage": self.stage,
        }
        write_bytes(self.state_path, json.dumps(state).encode())

    @staticmethod
    def restore(folder, model):
        """The saved progress, after loading the saved weights and optimizer into `model` (its
        optimizer built); None when there is nothing to resume."""
        if not (folder / "state.json").is_file() or not (folder / "latest.weights.h5").is_file():
            return None
        model.load_weights(folder / "latest.weights.h5")
        return json.loads((folder / "state.json").read_text())


class Stage(keras.callbacks.Callback):
    """Each epoch's logs carry the run's stage: a model's one history CSV holds all the runs that
    made it, in order."""

    def __init__(self, stage):
        super().__init__()
        self.stage = stage

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["stage"] = self.stage


def read_history(csv_path):
    """The CSV log as a structured array (one epoch: still a row); empty when there is none."""
    if not Path(csv_path).is_file() or Path(csv_path).stat().st_size == 0:
        return np.zeros(0, [("stage", int)])
    return np.atleast_1d(np.genfromtxt(csv_path, delimiter=",", names=True))


def next_stage(csv_path, new):
    """This run's stage: 1 for a new network, else one more than the last in the model's log."""
    history = read_history(csv_path)
    if new or not history.size or "stage" not in history.dtype.names:
        return 1
    return int(history["stage"].max()) + 1


def started_from(config):
    if not config.new:
        return str(config.model)
    return f"{config.init}'s weights" if config.init else "a new network"


def record_stage(csv_path, config, stage):
    """The run's configuration, what it started from and the backend, as stage `stage` of the JSON
    beside the model's history CSV (a stage run again replaces its record and the later ones)."""
    path = Path(csv_path).with_suffix(".json")
    stages = json.loads(path.read_text()) if stage > 1 and path.is_file() else []
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(config).items()}
    stages = [record for record in stages if record["stage"] < stage] + [{
        "stage": stage,
        "command": shlex.join(["python", Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started_from": started_from(config),
        "backend": keras.backend.backend(),
        "config": settings,
    }]  # fmt: skip
    write_bytes(path, json.dumps(stages, indent=1).encode())


def plot_history(csv_path, png_path):
    """Training loss and validation PSNR against epochs, from the CSV log; each stage (a run that
    continued the model) begins at a dashed line."""
    history = read_history(csv_path)
    if history.size < 1:
        return
    epochs = np.arange(1, len(history) + 1)
    figure, (loss_axes, psnr_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.semilogy(epochs, history["loss"], label="training loss")
    loss_axes.set(xlabel="epoch (all stages)", ylabel="loss", title="training loss")
    psnr_axes.plot(epochs, history["val_psnr"], color="tab:orange")
    psnr_axes.set(xlabel="epoch (all stages)", ylabel="PSNR (dB)", title="validation PSNR (bundled test split)")
    stages = history["stage"] if "stage" in history.dtype.names else np.ones(len(history))
    for start in np.flatnonzero(np.diff(stages)) + 1:
        for axes in (loss_axes, psnr_axes):
            axes.axvline(start + 0.5, color="grey", linestyle="--", linewidth=0.8)
        psnr_axes.annotate(f"stage {int(stages[start])}", (start + 1, 1), xycoords=("data", "axes fraction"),
                           va="top", fontsize=7, color="grey")  # fmt: skip
    figure.tight_layout()
    with atomic_output(png_path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------
# A training run, in parts


def builder(config):
    """The function that makes the network to train: a new one of config.arch with --new, else
    config.model loaded and grown to --width / --blocks."""
    if config.new and config.init:
        return lambda: grow(load_model(config.init), config.width, config.blocks, config.scale)
    if config.new:
        sizes = dict(width=config.width, blocks=config.blocks) if config.arch == "residual" else {}
        return lambda: build_model(config.arch, scale=config.scale, **sizes)
    return lambda: grow(load_model(config.model, config.scale), config.width, config.blocks)


def training_data(config):
    """(x_train, y_train, their H.264 versions or None, (x_test, y_test) as validated)."""
    x_train, y_train, x_test, y_test = load_dataset(config.data, config.scale)
    if not config.images and len(x_train) < config.batch_size:
        raise DataError(f"{len(x_train)} training pairs, fewer than one batch of {config.batch_size}")
    if config.degradation == "compressed" and config.images:
        raise DataError(
            "--degradation compressed needs the .npz pairs (their H.264 versions are encoded "
            "before training); use --degradation jpeg with --images"
        )
    if config.degradation != "none":
        crfs = VALIDATION_CRFS if config.degradation == "compressed" else ()
        x_test = compressed_validation(x_test, crfs, config.qualities)
    h264 = h264_versions(x_train) if config.degradation == "compressed" else None
    return x_train, y_train, h264, (x_test, y_test)


def compiled(build, config, total_steps):
    """The network from `build()`, in the configured precision, compiled with Adam and its schedule."""
    model = build()
    if resolve_precision(config.precision) == "bfloat16":
        model = with_precision(model, "mixed_bfloat16")
    learning_rate = config.lr
    if config.schedule == "cosine":
        warmup = min(500, total_steps // 10)
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0, total_steps - warmup, alpha=0.01, warmup_target=config.lr, warmup_steps=warmup
        )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=LOSSES[config.loss], metrics=[psnr])
    model.optimizer.build(model.trainable_variables)  # its slots made now (mirrored), not in the first step
    return model


def batch_maker(config, x_train, y_train, h264, files):
    """make(batch_size, pipeline, pipelines) -> the TrainingBatches of one input pipeline (one per
    worker of a cluster): its own seed and share of --images."""
    recipe = dict(
        patch=config.patch or None,
        augment=config.augment,
        degradation=config.degradation,
        shares=config.shares,
        qualities=config.qualities,
        scale=config.scale,
    )

    def make(batch_size, pipeline=0, pipelines=1):
        share = files and (files[pipeline::pipelines] or files)  # all of them when fewer files than workers
        return TrainingBatches(
            batch_size,
            x_train,
            y_train,
            h264,
            share,
            seed=config.seed + pipeline,
            workers=config.workers or None,
            **recipe,
        )

    return make


def run(config, build=None):
    """Train the network that `build()` returns (by default builder(config)) and keep the best
    validation PSNR in config.out. Returns the Keras History of this (possibly resumed) run, with
    the number of replicas it trained on as `.replicas`."""
    devices = Devices(config.strategy)
    out, history = model_paths(config)
    if devices.chief:  # before any work: a path that cannot be written is a one-line error
        output_folder(out)
        output_folder(history)
    keras.utils.set_random_seed(config.seed)
    x_train, y_train, h264, validation = training_data(config)
    steps_per_epoch = config.steps_per_epoch or (
        IMAGE_STEPS_PER_EPOCH if config.images else len(x_train) // config.batch_size
    )
    total_steps = config.epochs * steps_per_epoch
    files = image_files(config.images, report=devices.chief) if config.images else None
    if not devices.chief:  # a non-chief worker computes everything but writes only to its scratch folder
        scratch = worker_scratch(out, devices.worker)
        out, history = scratch / out.name, scratch / "history.csv"
        output_folder(out)
    backup_folder = out.with_name(f".{out.name}.resume")
    with devices.scope():
        model = compiled(build or builder(config), config, total_steps)
        state = Backup.restore(backup_folder, model)
    stage = (state or {}).get("stage") or next_stage(history, config.new)
    if not state and devices.chief:
        record_stage(history, config, stage)
    start = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    print(
        f"training on {devices.replicas} replica{'s' * (devices.replicas > 1)}, {steps_per_epoch} steps an epoch"
        + (f"; resuming {out} at epoch {start // steps_per_epoch + 1}, step {start}" if state else ""),
        flush=True,
    )
    if state:
        best = state["best"]
    elif out.is_file():  # continuing: out is replaced only by a model better than the one we start from
        best = validate(model, *validation, LOSSES[config.loss])["val_psnr"]
        print(f"{out} before this run: val_psnr {best:.2f}", flush=True)
    else:
        best = -np.inf
    checkpoint = BestCheckpoint(out, best=best)
    callbacks = [
        Stage(stage),
        checkpoint,  # before Backup, so that an epoch's backup holds the best that epoch may have set
        Backup(backup_folder, config.backup_every, checkpoint, state, stage),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping("val_psnr", mode="max", patience=config.patience, verbose=1),
        keras.callbacks.CSVLogger(history, append=bool(state) or stage > 1),
    ]
    make_batches = batch_maker(config, x_train, y_train, h264, files)
    if devices.strategy:
        step = tf_distributed_step(model, LOSSES[config.loss], devices.strategy, make_batches, config.batch_size, start)
    else:
        step = keras_step(model, make_batches(config.batch_size)(start))
    fit = train(model, step, steps_per_epoch, config.epochs, validation, callbacks, LOSSES[config.loss])
    fit.replicas = devices.replicas
    finish(config, model, devices, out, history, backup_folder, checkpoint)
    return fit


def finish(config, model, devices, out, history, backup_folder, checkpoint):
    """After a run that ended by itself: nothing left to resume, a fingerprint of the weights (equal
    on every worker of a cluster), the curve; a non-chief's scratch folder removed."""
    shutil.rmtree(backup_folder, ignore_errors=True)
    print(f"final weights crc32 {weights_crc32(model):08x}")
    if not devices.chief:
        shutil.rmtree(out.parent, ignore_errors=True)
        return
    if history.is_file():
        plot_history(history, history.with_name(history.stem.replace("history", "training_curve") + ".png"))
    print(f"best validation PSNR {checkpoint.best:.2f} dB, saved in {out}")


def main(argv=None):
    config = parse_config(argv)
    print(backend_line(config.precision))
    try:
        for path in [config.init] if config.new else [config.model]:  # fail early (loading would start
            if path and not Path(path).is_file():  # TensorFlow, too early for a cluster): load_model's one line
                load_model(path, None if config.new else config.scale)
        run(config)
    except DataError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume from the last backup", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
