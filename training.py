"""Continue (or resume) training model.h5 on the bundled data.

    python training.py                          # continue training model.h5 where it stands
    python training.py --epochs 50 --lr 2e-4 --data data/images.npz more.npz
    python training.py --strategy mirrored      # all local GPUs
    TF_CONFIG=... python training.py --strategy multiworker   # one process per machine

A run that is killed (even with SIGKILL) resumes from its last backup, optimizer state included,
when started again with the same command; model.h5 is only ever replaced whole.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import absl.logging
import numpy as np

import keras
import matplotlib
import tensorflow as tf
from data_preparation import DEFAULT_DATASET, SCALE, DataError, atomic_write, load_dataset
from model import DEFAULT_MODEL, RESULTS, load_model, psnr, with_precision

matplotlib.use("Agg")  # figures go to files; no window may open during training
import matplotlib.pyplot as plt  # noqa: E402


@keras.saving.register_keras_serializable(package="sr")
def charbonnier(y_true, y_pred, epsilon=1e-3):
    """A differentiable L1: sqrt(d^2 + eps^2)."""
    return tf.reduce_mean(tf.sqrt(tf.square(y_true - y_pred) + epsilon**2))


LOSSES = {"l1": "mean_absolute_error", "mse": "mean_squared_error", "charbonnier": charbonnier}


# ---------------------------------------------------------------------------------------------
# Input pipeline


def dihedral(lr, hr, choice):
    """One of the 8 flips/rotations, the same for the LR and the HR image."""
    lr, hr = tf.image.rot90(lr, choice % 4), tf.image.rot90(hr, choice % 4)
    flip = choice >= 4
    return (tf.cond(flip, lambda: tf.image.flip_left_right(lr), lambda: lr),
            tf.cond(flip, lambda: tf.image.flip_left_right(hr), lambda: hr))


def make_pipeline(x, y, batch_size, patch=None, augment=True, seed=0):
    """Endless shuffled batches of (LR, HR): random LR patches of `patch` pixels (and the HR
    patch under them), the 8 flips/rotations, prefetched."""
    pairs = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).repeat()
    randoms = tf.data.Dataset.random(seed=seed).batch(3)

    def transform(pair, random):
        lr, hr = pair
        random = tf.cast(random % 65536, tf.int32)
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


def save_model_atomically(model, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.partial.h5")  # Keras picks the format from the suffix
    absl.logging.set_verbosity("error")  # .h5 is the format asked for: no "legacy format" warning each time
    with_precision(model, "float32").save(temporary, include_optimizer=False)  # full precision to run
    os.replace(temporary, path)


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the model with the best validation PSNR in `path`."""

    def __init__(self, path, best=-np.inf, monitor="val_psnr"):
        super().__init__()
        self.path, self.best, self.monitor = Path(path), best, monitor

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and value > self.best:
            self.best = float(value)
            save_model_atomically(self.model, self.path)


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
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / "partial.weights.h5"
        self.model.save_weights(temporary)
        os.replace(temporary, self.weights_path)
        self.state = {"epoch": epoch, "elapsed_s": round(time.monotonic() - self.started, 1),
                      "best": self.checkpoint.best}
        atomic_write(self.state_path, lambda file: file.write(json.dumps(self.state).encode()))

    @staticmethod
    def restore(folder, model):
        """The saved progress, after loading the saved weights and optimizer into `model`;
        None when there is nothing to resume."""
        folder = Path(folder)
        if not (folder / "state.json").is_file() or not (folder / "latest.weights.h5").is_file():
            return None
        model.optimizer.build(model.trainable_variables)
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


def plot_history(csv_path, png_path):
    """Training loss and validation PSNR against epochs, from the CSV log."""
    history = np.genfromtxt(csv_path, delimiter=",", names=True)
    if history.size < 1:
        return
    history = np.atleast_1d(history)
    figure, (loss_axes, psnr_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.semilogy(history["epoch"] + 1, history["loss"], label="training loss")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="training loss")
    psnr_axes.plot(history["epoch"] + 1, history["val_psnr"], color="tab:orange")
    psnr_axes.set(xlabel="epoch", ylabel="PSNR (dB)", title="validation PSNR (bundled test split)")
    figure.tight_layout()
    atomic_write(png_path, lambda file: figure.savefig(file, format="png", dpi=100))
    plt.close(figure)


def run(build, out, data=(DEFAULT_DATASET,), epochs=300, batch_size=16, lr=1e-3, loss="l1",
        patch=48, augment=True, schedule="cosine", seed=0, strategy="default", patience=40,
        precision="bfloat16", history=None, backup_every=200, verbose="auto"):
    """Train the model that `build()` returns (built inside the strategy's scope) and keep the
    best validation PSNR in `out`. Returns the Keras History of this (possibly resumed) run."""
    out = Path(out)
    keras.utils.set_random_seed(seed)
    x_train, y_train, x_test, y_test = load_dataset(data)
    if len(x_train) < batch_size:
        raise DataError(f"{len(x_train)} training pairs, fewer than one batch of {batch_size}")
    steps_per_epoch = len(x_train) // batch_size
    total_steps = epochs * steps_per_epoch
    with make_strategy(strategy).scope():
        model = build()
        if precision == "bfloat16":
            model = with_precision(model, "mixed_bfloat16")
        if schedule == "cosine":
            warmup = min(500, total_steps // 10)
            learning_rate = keras.optimizers.schedules.CosineDecay(
                0.0, total_steps - warmup, alpha=0.01, warmup_target=lr, warmup_steps=warmup)
        else:
            learning_rate = lr
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=LOSSES[loss], metrics=[psnr])
        backup_folder = out.with_name(f".{out.name}.resume")
        state = Backup.restore(backup_folder, model)
    if state:
        best = state["best"]
    elif out.is_file():  # continuing: out is replaced only by a model better than the one we start from
        best = float(model.evaluate(x_test, y_test, batch_size=32, verbose=0, return_dict=True)["psnr"])
    else:
        best = -np.inf
    checkpoint = BestCheckpoint(out, best=best)
    initial_epoch = (state or {}).get("epoch", 0)
    if state:
        print(f"resuming {out} at epoch {initial_epoch + 1}, step {int(model.optimizer.iterations.numpy())}")
    callbacks = [
        Backup(backup_folder, backup_every, checkpoint, state),
        checkpoint,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping("val_psnr", mode="max", patience=patience, verbose=1),
        StopAtStep(total_steps),
    ]
    if history:
        Path(history).parent.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.CSVLogger(history, append=bool(state)))
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    fit = model.fit(make_pipeline(x_train, y_train, batch_size, patch, augment, seed),
                    steps_per_epoch=steps_per_epoch, epochs=epochs, initial_epoch=initial_epoch,
                    validation_data=(x_test, y_test), validation_batch_size=32,
                    callbacks=callbacks, verbose=verbose)
    shutil.rmtree(backup_folder, ignore_errors=True)  # the run ended by itself: nothing to resume
    if history and Path(history).is_file():
        plot_history(history, Path(history).with_name(Path(history).stem.replace("history", "training_curve")
                                                      + ".png"))
    print(f"best validation PSNR {checkpoint.best:.2f} dB, saved in {out}")
    return fit


# ---------------------------------------------------------------------------------------------
# Command line (model.py shares these flags)


def add_training_arguments(parser, epochs=300, lr=1e-3):
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"passes over the training pairs (default: {epochs})")
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per step, all replicas (default: 16)")
    parser.add_argument("--lr", type=float, default=lr, help=f"peak learning rate of Adam (default: {lr:g})")
    parser.add_argument("--loss", choices=list(LOSSES), default="l1",
                        help="l1 (chosen by measurement, see README), mse or charbonnier (default: l1)")
    parser.add_argument("--patch", type=int, default=48,
                        help="side of the random LR training patches, in pixels (default: 48)")
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                        help="learning-rate schedule: warm-up then cosine decay, or constant (default: cosine)")
    parser.add_argument("--patience", type=int, default=40,
                        help="stop after this many epochs without a better validation PSNR (default: 40)")
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT_DATASET)], metavar="FILE.npz",
                        help="one or more datasets, concatenated (default: data/images.npz)")
    parser.add_argument("--out", type=Path, default=None, help="where the best model goes")
    parser.add_argument("--history", type=Path, default=None,
                        help="CSV log of the epochs; a training curve PNG is drawn beside it")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--backup-every", type=int, default=200, metavar="STEPS",
                        help="save the resume state every STEPS steps, besides each epoch's end (default: 200)")
    parser.add_argument("--precision", choices=["bfloat16", "float32"], default="bfloat16",
                        help="bfloat16: compute in mixed bfloat16 (~1.7x faster on CPUs with AVX512-BF16 "
                             "and on GPUs; weights and the saved model stay float32) (default: bfloat16)")
    parser.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default",
                        help="default: this process's device; mirrored: all local GPUs "
                             "(tf.distribute.MirroredStrategy); multiworker: one process per machine, "
                             "cluster from TF_CONFIG (MultiWorkerMirroredStrategy)")


def settings_from(args):
    return dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, loss=args.loss,
                patch=args.patch, schedule=args.schedule, patience=args.patience, strategy=args.strategy,
                precision=args.precision, backup_every=args.backup_every)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model to continue (default: model.h5)")
    add_training_arguments(parser, epochs=50, lr=2e-4)
    args = parser.parse_args(argv)
    out = args.out or args.model
    try:
        load_model(args.model)  # fail early, with a clear message, on a missing or broken file
        run(lambda: load_model(args.model), out=out, data=args.data, seed=args.seed,
            history=args.history or RESULTS / "history_continued.csv", **settings_from(args))
    except DataError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
