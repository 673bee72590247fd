"""model.py and training.py: architectures, saving, learning, resuming, distribution.

Flags: --new, --arch, --width, --blocks: test_new_network_flags_shape_it (continued:
test_grown_model_computes_the_same_and_then_learns); --scale:
test_scales.py::test_a_tiny_network_learns_and_beats_bicubic_at_its_scale; --init:
test_scales.py::test_a_x2_model_starts_a_x4_one; --model, --history, --epochs, --lr (0: the model is kept):
test_training_cli_continues_a_model_and_keeps_the_better_one; --out, --data: test_small_model_learns; --images:
test_with_images_the_tiles_come_from_the_folder; --steps-per-epoch, --batch-size, --patch, --augment, --degradation,
--shares, --qualities, --seed, --workers: test_a_run_trains_and_validates_on_what_its_flags_say; --loss, --patience:
test_loss_and_patience_flags, test_early_stopping_waits_while_psnr_rises_and_a_nan_ends_the_epoch; --schedule, --lr,
--precision: test_schedule_lr_and_precision_flags, test_a_bfloat16_run_saves_a_float32_model; --strategy:
test_mirrored_strategy_over_two_cpus, test_two_workers_on_loopback_train_one_model_from_a_folder_and_resume;
--backup-every: test_resume_after_sigkill_ends_as_an_uninterrupted_run,
test_a_resumed_run_goes_on_from_its_step_with_its_best_so_far; --verbose:
test_testing.py::test_verbose_shows_the_backends_start_up_log; model.py --export, --model, --out:
test_onnx_export_computes_what_keras_does, test_scales.py::test_self_ensemble_and_onnx_export_at_x3.
Rows/columns of history_*.csv: epoch, elapsed_s, loss, psnr, val_loss, val_psnr (by value) and the .json's stage,
started_from, backend, config: test_a_run_trains_and_validates_on_what_its_flags_say; stage (one log, each run a
stage): test_training_cli_continues_a_model_and_keeps_the_better_one; the log closed after a failure:
test_a_failed_run_closes_its_log; epoch after a resume:
test_resume_after_sigkill_ends_as_an_uninterrupted_run; the saved model is the best val_psnr: test_small_model_learns.
"""

import collections
import concurrent.futures
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio.v3 as iio
import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, in_background, mean_psnr, natural_image, write_tiny_dataset
from test_data import run_main

import data_preparation as dp
import model
import training

TINY = dict(width=8, blocks=1)


def tiny_config(tiny_dataset, out, **settings):
    defaults = dict(
        new=True,
        epochs=3,
        batch_size=8,
        patch=24,
        lr=3e-3,
        precision="float32",
        out=out,
        history=out.with_name("history.csv"),
        data=(str(tiny_dataset),),
        **TINY,
    )
    return training.Config(**{**defaults, **settings})


def tiny_run(tiny_dataset, out, **settings):
    return training.run(tiny_config(tiny_dataset, out, **settings))


def scrambled(net, seed=0):
    """`net` with random weights in its sub-pixel convolution (zero in a new network, which is
    then bicubic): a network whose output differs from bicubic and from its flips, as a trained one's."""
    last = net.get_layer("to_subpixels")
    rng = np.random.default_rng(seed)
    last.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32) for w in last.get_weights()])
    return net


def test_residual_model_takes_any_size():
    net = model.build_model(**TINY)
    assert net.predict_on_batch(np.zeros((2, 37, 53, 1), np.float32)).shape == (2, 74, 106, 1)
    assert net.predict_on_batch(np.zeros((1, 64, 64, 1), np.float32)).shape == (1, 128, 128, 1)


def test_a_new_residual_network_is_bicubic():
    """The global skip is bicubic and a new network's sub-pixel convolution is zero: it starts as bicubic."""
    net = model.build_model(**TINY)
    lr = dp.to_luma(natural_image(40, 30))[None]
    expected = tf.image.resize(lr, (80, 60), method="bicubic").numpy()
    np.testing.assert_allclose(net.predict_on_batch(lr), expected, atol=1e-5)


def test_seed_architecture_maps_64_to_128():
    seed = model.build_model("seed")
    assert seed.input_shape == (None, 64, 64, 1) and seed.output_shape == (None, 128, 128, 1)
    assert [type(layer).__name__ for layer in seed.layers] == [
        "Conv2D",
        "Conv2D",
        "Conv2D",
        "Dropout",
        "Conv2DTranspose",
        "Conv2DTranspose",
        "Conv2DTranspose",
        "Dropout",
        "Flatten",
        "Dense",
        "Reshape",
    ]
    assert seed.count_params() > 80e6  # the Dense layer alone: 72*72 x 128*128 weights
    assert seed.predict_on_batch(np.zeros((1, 64, 64, 1), np.float32)).shape == (1, 128, 128, 1)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        model.build_model("vdsr")


def test_h5_round_trip_gives_identical_outputs(tmp_path):
    net = model.build_model(**TINY)
    net.get_layer("head").set_weights([w + 0.01 for w in net.get_layer("head").get_weights()])
    training.save_model(net, tmp_path / "m.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["m.h5"]
    loaded = keras.models.load_model(tmp_path / "m.h5", compile=False, safe_mode=True)
    x = dp.to_luma(natural_image(30, 50))[None]
    np.testing.assert_array_equal(loaded.predict_on_batch(x), net.predict_on_batch(x))


def test_grown_model_computes_the_same_and_then_learns(tiny_dataset, tmp_path):
    small = model.build_model(**TINY)
    for layer in small.layers:  # non-zero weights everywhere, so that a wrong copy shows
        layer.set_weights(
            [w + 0.01 * np.sign(w + 1) for w in layer.get_weights()] if layer.name != "bicubic" else layer.get_weights()
        )
    x = dp.to_luma(natural_image(30, 50))[None]
    blocks = TINY["blocks"]
    for width, more_blocks in ((12, blocks), (8, blocks + 2), (12, blocks + 1)):
        grown = model.grow(small, width, more_blocks)
        assert grown.get_layer("head").filters == width
        assert sum(layer.name.endswith("_add") for layer in grown.layers) == more_blocks
        np.testing.assert_allclose(grown.predict_on_batch(x), small.predict_on_batch(x), atol=1e-6)
    assert model.grow(small, 8, blocks) is small
    other = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(4, 3, padding="same")])
    assert model.grow(other, 12, blocks + 1) is other  # a continued seed network is not grown
    training.save_model(small, tmp_path / "small.h5")
    config = tiny_config(
        tiny_dataset,
        tmp_path / "grown.h5",
        new=False,
        model=tmp_path / "small.h5",
        width=12,
        blocks=blocks + 1,
        epochs=1,
    )
    training.run(config)
    grown = model.load_model(tmp_path / "grown.h5")
    assert grown.get_layer("head").filters == 12 and grown.get_layer(f"block{blocks + 1}_conv2") is not None
    # it learned: the new block's second convolution, zero at first, is no longer
    assert np.abs(grown.get_layer(f"block{blocks + 1}_conv2").get_weights()[0]).max() > 0


def test_mixed_precision_copy_keeps_the_weights():
    net = model.build_model(**TINY)
    mixed = model.with_precision(net, "mixed_bfloat16")
    assert mixed.get_layer("head").dtype_policy.name == "mixed_bfloat16"
    assert mixed.get_layer("sr").dtype_policy.name == "float32"  # the output stays full precision
    back = model.with_precision(mixed, "float32")
    x = dp.to_luma(natural_image(24, 24))[None]
    np.testing.assert_array_equal(back.predict_on_batch(x), net.predict_on_batch(x))
    np.testing.assert_allclose(mixed.predict_on_batch(x), net.predict_on_batch(x), atol=0.02)


def test_bad_model_files_give_a_clear_error(tmp_path):
    with pytest.raises(dp.DataError, match="python model.py"):
        model.load_model(tmp_path / "absent.h5")
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(dp.DataError, match="python model.py"):
        model.load_model(tmp_path / "broken.h5")


def test_small_model_learns(tiny_dataset, tmp_path):
    fit = tiny_run(tiny_dataset, tmp_path / "m.h5", epochs=6)
    losses = fit.history["loss"]  # a new network starts as bicubic (its sub-pixel convolution zero): lower from there
    assert losses[-1] < 0.9 * losses[0]
    assert fit.history["val_psnr"][-1] > fit.history["val_psnr"][0]
    assert (tmp_path / "m.h5").is_file() and (tmp_path / "training_curve.png").is_file()
    assert not (tmp_path / ".m.h5.resume").exists()  # a finished run leaves nothing to resume
    # The checkpoint holds the best epoch, and loads in safe mode.
    loaded = model.load_model(tmp_path / "m.h5")
    _, _, x_test, y_test = dp.load_dataset(tiny_dataset)
    psnr = mean_psnr(y_test, model.upscale(loaded, x_test, precision="float32"))
    assert psnr == pytest.approx(max(fit.history["val_psnr"]), abs=0.05)


def test_new_network_flags_shape_it():
    """--new builds the network --arch, --width and --blocks say, instead of loading --model."""
    net = training.builder(training.parse_config(["--new", "--width", "12", "--blocks", "3"]))()
    assert net.get_layer("head").filters == 12 and sum(layer.name.endswith("_add") for layer in net.layers) == 3
    seed = training.builder(training.parse_config(["--new", "--arch", "seed"]))()
    assert "Dense" in [type(layer).__name__ for layer in seed.layers]


@pytest.fixture
def recorded_batches(monkeypatch):
    """{step: (LR, HR)} of every batch a run's pipeline makes, and "workers": its number of threads."""
    made = {}

    class Recorded(dp.TrainingBatches):
        def batch(self, step):
            made[step], made["workers"] = super().batch(step), self.workers
            return made[step]

    monkeypatch.setattr(training, "TrainingBatches", Recorded)
    return made


def test_a_run_trains_and_validates_on_what_its_flags_say(tiny_dataset, tmp_path, recorded_batches, capsys):
    """The batches trained on are the pipeline's for --batch-size, --patch, --no-augment, --degradation,
    --shares, --qualities and --seed, on --workers threads, --steps-per-epoch of them; validation is on
    the test split JPEG'd at --qualities. At lr 0 the new network stays bicubic, so each column of the
    history CSV is bicubic's loss and PSNR on those batches and that validation."""
    recipe = dict(patch=16, augment=False, degradation="jpeg", shares=(0.5, 0.0), qualities=(40, 60))
    tiny_run(tiny_dataset, tmp_path / "m.h5", epochs=1, steps_per_epoch=2, batch_size=4, seed=7, workers=1,
             lr=0.0, **recipe)  # fmt: skip
    x_train, y_train, x_test, y_test = dp.load_dataset(tiny_dataset)
    expected = dp.TrainingBatches(4, x_train, y_train, seed=7, **recipe)
    for step in (0, 1):
        for made, wanted in zip(recorded_batches[step], expected.batch(step)):
            np.testing.assert_array_equal(made, wanted)
    assert recorded_batches["workers"] == 1 and "epoch 1/1: 2 steps in" in capsys.readouterr().out
    batches = [recorded_batches[step] for step in (0, 1)]
    validation = model.interpolate(dp.compressed_validation(x_test, qualities=(40, 60)), "bicubic")
    (row,) = training.read_history(tmp_path / "history.csv")
    assert (row["epoch"], row["stage"]) == (0, 1) and row["elapsed_s"] > 0
    assert row["loss"] == pytest.approx(np.mean([np.abs(model.interpolate(lr, "bicubic") - hr).mean()
                                                 for lr, hr in batches]), rel=1e-4)  # fmt: skip
    assert row["psnr"] == pytest.approx(np.mean([mean_psnr(hr, model.interpolate(lr, "bicubic"))
                                                 for lr, hr in batches]), abs=1e-3)  # fmt: skip
    assert row["val_loss"] == pytest.approx(np.abs(validation - y_test).mean(), rel=1e-4)
    assert row["val_psnr"] == pytest.approx(mean_psnr(y_test, validation), abs=1e-3)
    (record,) = json.loads((tmp_path / "history.json").read_text())
    assert (record["stage"], record["started_from"], record["backend"]) == (1, "a new network", keras.backend.backend())
    assert record["config"]["qualities"] == [40, 60] and record["config"]["out"] == str(tmp_path / "m.h5")


def test_with_images_the_tiles_come_from_the_folder(tiny_dataset, tmp_path, recorded_batches):
    """--images: the HR patches are cut from the folder's images (black and white noise here), not
    from --data's training pairs."""
    (tmp_path / "photos").mkdir()
    for seed in range(2):
        noise = np.random.default_rng(seed).integers(0, 2, (160, 170), np.uint8) * 255
        iio.imwrite(tmp_path / "photos" / f"{seed}.png", noise)
    tiny_run(tiny_dataset, tmp_path / "m.h5", epochs=1, steps_per_epoch=1, images=(str(tmp_path / "photos"),))
    assert set(np.unique(recorded_batches[0][1])) == {0.0, 1.0}


def test_loss_and_patience_flags(tiny_dataset, tmp_path):
    """At lr 0 (the new network stays bicubic, nothing improves) on the same batches: MSE is under a
    fifth of L1, Charbonnier a little over it, in training and validation; --patience 1 stops each run
    after its second epoch."""
    fits = {loss: tiny_run(tiny_dataset, tmp_path / f"{loss}.h5", loss=loss, lr=0.0, epochs=4, steps_per_epoch=2,
                           patience=1) for loss in ("l1", "mse", "charbonnier")}  # fmt: skip
    for key in ("loss", "val_loss"):
        l1, mse, charbonnier = (fits[loss].history[key][0] for loss in ("l1", "mse", "charbonnier"))
        assert mse < l1 / 5 and l1 < charbonnier < l1 + 1e-3, (key, l1, mse, charbonnier)
    assert [len(fit.history["loss"]) for fit in fits.values()] == [2, 2, 2]


def test_schedule_lr_and_precision_flags(tiny_dataset, tmp_path):
    """--schedule constant keeps the learning rate at --lr, cosine ends at 1 % of it; --precision
    bfloat16 computes in bfloat16, float32 in float32."""
    cosine = tiny_run(tiny_dataset, tmp_path / "cosine.h5", epochs=1, steps_per_epoch=2, lr=2e-3)
    constant = tiny_run(tiny_dataset, tmp_path / "constant.h5", epochs=1, steps_per_epoch=2, lr=2e-3,
                        schedule="constant", precision="bfloat16")  # fmt: skip
    learning_rate = lambda fit: float(keras.ops.convert_to_numpy(fit.model.optimizer.learning_rate))  # noqa: E731
    assert learning_rate(constant) == pytest.approx(2e-3) and learning_rate(cosine) == pytest.approx(2e-5)
    assert [fit.model.get_layer("head").compute_dtype for fit in (constant, cosine)] == ["bfloat16", "float32"]


def step_fails_at(monkeypatch, call, failure):
    """training's optimizer steps as they are, except that step number `call` returns (or raises)
    what `failure()` does. Returns the list of the steps called."""
    calls, real_step = [], training.keras_step

    def failing_step(net, batches):
        step = real_step(net, batches)

        def counted():
            calls.append(1)
            return failure() if len(calls) == call else step()

        return counted

    monkeypatch.setattr(training, "keras_step", failing_step)
    return calls


def ctrl_c():
    raise KeyboardInterrupt


def test_a_failed_run_closes_its_log(tiny_dataset, tmp_path, monkeypatch):
    """A run that fails in its third step (a crash, Ctrl-C) has written its log's header and closed
    the file, not left it open for the garbage collector to warn about in whatever runs next."""
    loggers = []

    class RecordedLogger(keras.callbacks.CSVLogger):
        def on_train_begin(self, logs=None):
            loggers.append(self)
            super().on_train_begin(logs)

    monkeypatch.setattr(training.keras.callbacks, "CSVLogger", RecordedLogger)
    steps = step_fails_at(monkeypatch, 3, ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        tiny_run(tiny_dataset, tmp_path / "failed.h5", epochs=2, steps_per_epoch=2)
    assert len(steps) == 3 and len(loggers) == 1 and loggers[0].csv_file.closed


def test_the_checkpoint_keeps_only_a_better_model(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(training, "save_model", lambda net, path: saved.append(path))
    checkpoint = training.BestCheckpoint(tmp_path / "m.h5", best=29.0)
    for value in (28.0, 30.0, 29.5, float("nan"), 31.0, 30.5):
        checkpoint.on_epoch_end(0, {"val_psnr": value})
    assert len(saved) == 2 and checkpoint.best == 31.0


def scripted_validation(monkeypatch, values):
    """training.validate() giving these val_psnr values, one per call, in turn."""
    values = iter(values)
    monkeypatch.setattr(training, "validate", lambda *args, **kw: {"val_loss": 0.01, "val_psnr": next(values)})


def test_early_stopping_waits_while_psnr_rises_and_a_nan_ends_the_epoch(tiny_dataset, tmp_path, monkeypatch, capsys):
    """--patience 1: a rising validation PSNR never stops the run, a falling one stops it after its
    second epoch; a NaN loss stops it within the epoch, after that step."""
    scripted_validation(monkeypatch, [20.0, 21.0, 22.0])
    assert len(tiny_run(tiny_dataset, tmp_path / "up.h5", epochs=3, steps_per_epoch=1, patience=1).history["loss"]) == 3
    scripted_validation(monkeypatch, [22.0, 21.0, 20.0])
    assert len(tiny_run(tiny_dataset, tmp_path / "dn.h5", epochs=3, steps_per_epoch=1, patience=1).history["loss"]) == 2
    calls = step_fails_at(monkeypatch, 2, lambda: (float("nan"), float("nan")))
    scripted_validation(monkeypatch, [20.0])
    capsys.readouterr()
    fit = tiny_run(tiny_dataset, tmp_path / "nan.h5", epochs=2, steps_per_epoch=5)
    assert len(calls) == 2 and len(fit.history["loss"]) == 1 and "epoch 1/2: 2 steps" in capsys.readouterr().out


@pytest.mark.parametrize("backup_every, interrupted_at, steps_left", [(2, 6, 2), (200, 5, 3)])
def test_a_resumed_run_goes_on_from_its_step_with_its_best_so_far(
    tiny_dataset, tmp_path, monkeypatch, capsys, backup_every, interrupted_at, steps_left
):
    """Stopped in its second epoch (3 steps each) after a first epoch of val_psnr 30: the same
    command goes on from the last backup (mid-epoch, or the epoch's end), runs only the steps
    left, and keeps the saved model when its epoch scores 25, under the best so far."""
    settings = dict(epochs=2, steps_per_epoch=3, backup_every=backup_every)
    out = tmp_path / "m.h5"
    step_fails_at(monkeypatch, interrupted_at, ctrl_c)
    scripted_validation(monkeypatch, [30.0, 25.0])
    with pytest.raises(KeyboardInterrupt):
        tiny_run(tiny_dataset, out, **settings)
    saved = out.read_bytes()
    capsys.readouterr()
    fit = tiny_run(tiny_dataset, out, **settings)
    assert f"epoch 2/2: {steps_left} steps" in capsys.readouterr().out
    assert int(keras.ops.convert_to_numpy(fit.model.optimizer.iterations)) == 6 and out.read_bytes() == saved


def test_a_bfloat16_run_saves_a_float32_model(tiny_dataset, tmp_path):
    tiny_run(tiny_dataset, tmp_path / "m.h5", epochs=1, steps_per_epoch=1, precision="bfloat16")
    assert {layer.compute_dtype for layer in model.load_model(tmp_path / "m.h5").layers} == {"float32"}


def test_pipeline_pairs_patches_and_augments_consistently():
    hr = np.stack([dp.to_luma(natural_image(128, 128, s)) for s in range(4)])
    lr = dp.degrade(hr)
    batches = dp.TrainingBatches(4, lr, hr, patch=16, seed=3)
    batch_lr, batch_hr = batches.batch(0)
    assert batch_lr.shape == (4, 16, 16, 1) and batch_hr.shape == (4, 32, 32, 1)
    assert batch_lr.dtype == batch_hr.dtype == np.float32
    # Whatever crop and flip/rotation was drawn, the HR patch still degrades to the LR patch.
    np.testing.assert_allclose(dp.degrade(batch_hr), batch_lr, atol=0.03)
    # A batch is a function of (seed, step): the threads that make them ahead give the same ones.
    ahead = batches(start=5)
    for step in range(5, 8):
        np.testing.assert_array_equal(next(ahead)[0], batches.batch(step)[0])
    ahead.close()
    assert not np.array_equal(batches.batch(1)[0], batch_lr)


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpus(tiny_dataset, tmp_path, capsys):
    fit = tiny_run(tiny_dataset, tmp_path / "m.h5", epochs=2, strategy="mirrored")
    assert fit.replicas == 2 and "training on 2 replicas" in capsys.readouterr().out  # read from the run
    assert np.isfinite(fit.history["loss"]).all() and (tmp_path / "m.h5").is_file()
    assert tiny_run(tiny_dataset, tmp_path / "one.h5", epochs=1).replicas == 1


def free_ports(count):
    """`count` distinct free ports: all held open while they are chosen."""
    probes = [socket.socket() for _ in range(count)]
    for probe in probes:
        probe.bind(("localhost", 0))
    ports = [probe.getsockname()[1] for probe in probes]
    for probe in probes:
        probe.close()
    return ports


@in_background("test_two_workers_on_loopback_train_one_model_from_a_folder_and_resume")
def two_workers_killed_then_resumed(folder):
    """Two processes, the same command but TF_CONFIG, train from a folder of images, validated on the
    bundled test split; both SIGKILL themselves at step 10, then start again. Returns ([(code,
    stdout, stderr)] killed, the same finished)."""
    photos = folder / "photos" / "nested"
    photos.mkdir(parents=True)
    for seed in range(4):
        iio.imwrite(photos / f"{seed}.png", dp.to_uint8(natural_image(150, 170, seed)))
    (photos / "notes.txt").write_text("not an image")
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    args = [*"--new --width 8 --blocks 1 --strategy multiworker --images".split(), str(folder / "photos"),
            *"--epochs 3 --steps-per-epoch 4 --backup-every 3 --batch-size 8 --patch 24 --precision float32".split(),
            "--out", str(folder / "out" / "m.h5"), "--data", str(dp.DEFAULT_DATASET)]  # fmt: skip

    def run_workers(command):
        workers = []
        for index in range(2):
            (folder / f"tmp{index}").mkdir(exist_ok=True)
            task = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            env = {**os.environ, "TF_CONFIG": task, "TMPDIR": str(folder / f"tmp{index}"), "KILL_AT_STEP": "10"}
            workers.append(subprocess.Popen(command, env=env, cwd=folder, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True))  # fmt: skip
        return [(worker.wait(timeout=600), *worker.communicate()) for worker in workers]

    killed = run_workers([sys.executable, "-c", KILLED_CHILD, str(REPO), "|".join(args)])
    backups = (folder / "out" / ".m.h5.resume").is_dir(), list((folder / "tmp1").glob("sr-worker1-*/.m.h5.resume"))
    return killed, backups, run_workers([sys.executable, str(REPO / "training.py"), *args])


@pytest.mark.slow
def test_two_workers_on_loopback_train_one_model_from_a_folder_and_resume(background):
    """Killed together at step 10 and started again, two workers resume from step 9 and end with
    equal weights, one model at --out and nothing else written by the non-chief."""
    killed, (chief_backup, worker_backup), finished = background(two_workers_killed_then_resumed)
    # Each SIGKILLs itself after step 10, unless it first sees its peer gone and stops with an error.
    codes = [code for code, _, _ in killed]
    assert -signal.SIGKILL in codes and 0 not in codes, [err[-1500:] for _, _, err in killed]
    assert chief_backup and worker_backup
    assert [code for code, _, _ in finished] == [0, 0], [err[-1500:] for _, _, err in finished]
    for _, stdout, _ in finished:
        assert "at epoch 3, step 9" in stdout
    fingerprints = [re.findall(r"final weights crc32 (\w+)", stdout) for _, stdout, _ in finished]
    assert len(fingerprints[0]) == 1 and fingerprints[0] == fingerprints[1]
    folder = next(iter(re.findall(r"saved in (\S+)/m.h5", finished[0][1])))
    out = Path(folder)
    # The CSV log and the curve go beside --out when --history is not given.
    assert sorted(p.name for p in out.iterdir()) == ["history_m.csv", "history_m.json", "m.h5", "training_curve_m.png"]
    assert len((out / "history_m.csv").read_text().splitlines()) == 1 + 3  # each epoch logged once
    # validated on the bundled test split (308 pairs, as users have: more than one batch), on one worker's outputs
    history = training.read_history(out / "history_m.csv")
    _, _, x_test, y_test = dp.load_dataset()
    bicubic = mean_psnr(y_test, model.interpolate(x_test, "bicubic"))
    assert np.all(np.abs(history["val_psnr"] - bicubic) < 3)
    model.load_model(out / "m.h5")
    root = out.parent
    assert list((root / "tmp1").glob("sr-worker*")) == []  # the other worker's scratch folder is gone
    assert sorted(p.name for p in root.iterdir()) == ["out", "photos", "tmp0", "tmp1"]
    # The text file is skipped, and the chief says so, once a run.
    assert [stderr.count("notes.txt: not a readable image") for _, _, stderr in finished] == [1, 0]


STREAM_RSS = """
import resource, sys
import data_preparation as dp
batches = dp.TrainingBatches(16, files=dp.image_files([sys.argv[1]]), patch=48)(0)
for _ in range(60):
    next(batches)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_streamed_tiles_take_the_same_memory_from_ten_times_the_files(tmp_path):
    image = dp.to_uint8(natural_image(300, 400))
    for count in (4, 40):
        (tmp_path / str(count)).mkdir()
        for index in range(count):
            iio.imwrite(tmp_path / str(count) / f"{index}.png", np.roll(image, 7 * index, axis=1))
    peaks = [
        int(
            subprocess.run(
                [sys.executable, "-c", STREAM_RSS, str(tmp_path / str(count))],
                cwd=REPO,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
        )
        for count in (4, 40)
    ]
    assert peaks[1] <= 1.3 * peaks[0], peaks


def test_the_stream_of_tiles_holds_a_bounded_buffer_whatever_the_number_of_files(tmp_path):
    """TileStream keeps at most SHUFFLE_TILES tiles (plus one image's) however many files there are;
    each tile is a 128x128 crop of one of the images."""
    image = dp.to_uint8(natural_image(300, 400))
    for index in range(40):
        iio.imwrite(tmp_path / f"{index}.png", np.roll(image, 7 * index, axis=1))
    stream = dp.TileStream(dp.image_files([tmp_path]), seed=0, workers=2)
    sizes = []
    for _ in range(60):
        tiles = stream.take(16)
        sizes.append(len(stream.buffer))
    assert len(stream.take(300)) == 300  # as many as asked for, each drawn once
    stream.close()
    assert tiles.shape == (16, 128, 128, 1) and tiles.dtype == np.uint8
    assert max(sizes) <= dp.SHUFFLE_TILES + dp.TILES_PER_IMAGE and min(sizes) >= dp.SHUFFLE_TILES - 16


@pytest.mark.slow
def test_training_cli_continues_a_model_and_keeps_the_better_one(tiny_dataset, tmp_path, capsys):
    net = scrambled(model.build_model(**TINY))
    training.save_model(net, tmp_path / "m.h5")
    before = (tmp_path / "m.h5").stat().st_mtime_ns
    common = ["--model", str(tmp_path / "m.h5"), "--data", str(tiny_dataset), "--history", str(tmp_path / "h.csv")]
    training.main([*common, *"--epochs 2 --batch-size 8 --patch 24 --precision float32".split()])
    best = re.search(r"best validation PSNR (\S+) dB", capsys.readouterr().out)[1]
    assert (tmp_path / "m.h5").stat().st_mtime_ns != before  # better than the untrained start, so replaced
    assert len((tmp_path / "h.csv").read_text().splitlines()) == 3
    # Continuing never replaces a model by a worse one: with a learning rate of zero no epoch can
    # beat the starting point, so the file stays as it was.
    before = (tmp_path / "m.h5").stat()
    training.main([*common, *"--epochs 1 --lr 0 --batch-size 8 --patch 24 --precision float32".split()])
    after = (tmp_path / "m.h5").stat()  # not even rewritten: each write is a new file renamed into place
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert f"{tmp_path / 'm.h5'} before this run: val_psnr {best}" in capsys.readouterr().out  # the saved best
    # One log for the model: each run a stage of it, its configuration recorded beside it.
    assert [line.split(",")[4] for line in (tmp_path / "h.csv").read_text().splitlines()] == ["stage", "1", "1", "2"]
    stages = json.loads((tmp_path / "h.json").read_text())
    assert [(record["stage"], record["config"]["lr"]) for record in stages] == [(1, 2e-4), (2, 0.0)]
    assert stages[1]["started_from"] == str(tmp_path / "m.h5") and (tmp_path / "h.png").is_file()


KILLED_CHILD = """
import os, signal, sys
if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    sys.modules["tensorflow"] = None  # JAX and PyTorch need none of it
sys.path.insert(0, sys.argv[1])
import training

class KilledAtStep(training.Backup):  # SIGKILL at a known step, after its backup: no chance to clean up
    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if self.step() == int(os.environ.get("KILL_AT_STEP", -1)):
            os.kill(os.getpid(), signal.SIGKILL)

training.Backup = KilledAtStep
for argv in sys.argv[2:]:  # each a run, one after the other
    training.main(argv.split("|"))
"""


def kill_resume_and_run_whole(backend, tiny_dataset, folder):
    """On `backend`: a run SIGKILLed at step 17 (6 steps an epoch: its last backup, of step 16, is
    in the middle of the third), then, in a second process, the same command again and an
    uninterrupted run of it. Returns (the state saved at the kill, the second process); the model
    file as the kill left it is kept as at_kill.h5."""
    args = [*"--new --width 8 --blocks 1 --epochs 4 --batch-size 8 --patch 24 --backup-every 4".split(),
            "--precision", "float32", "--data", str(tiny_dataset)]  # fmt: skip

    def runs(*outs, kill_at_step=-1):
        env = {**os.environ, "KERAS_BACKEND": backend, "KILL_AT_STEP": str(kill_at_step)}
        argvs = ["|".join([*args, "--out", str(folder / out)]) for out in outs]
        return subprocess.run([sys.executable, "-c", KILLED_CHILD, str(REPO), *argvs], capture_output=True,
                              text=True, env=env, timeout=600)  # fmt: skip

    folder.mkdir(parents=True)
    killed = runs("m.h5", kill_at_step=17)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    state = json.loads((folder / ".m.h5.resume" / "state.json").read_text())
    shutil.copy(folder / "m.h5", folder / "at_kill.h5")
    return state, runs("m.h5", "whole.h5")


BACKENDS = ["tensorflow", "jax"] + (["torch"] if importlib.util.find_spec("torch") else [])  # PyTorch: where installed


@in_background("test_resume_after_sigkill_ends_as_an_uninterrupted_run")
def resumed_on_every_backend(folder):
    """kill_resume_and_run_whole() on each backend installed (TensorFlow, JAX; PyTorch where it is),
    side by side: {backend: (folder, its result)}."""
    tiny = write_tiny_dataset(Path(tempfile.mkdtemp()) / "tiny.npz")
    with concurrent.futures.ThreadPoolExecutor(len(BACKENDS)) as pool:
        runs = {
            backend: pool.submit(kill_resume_and_run_whole, backend, tiny, folder / backend) for backend in BACKENDS
        }
        return {backend: (folder / backend, *run.result()) for backend, run in runs.items()}


@pytest.mark.slow
def test_resume_after_sigkill_ends_as_an_uninterrupted_run(background):
    """On TensorFlow and JAX, and PyTorch where it is installed (test_backends.py's PyTorch tests say
    in the summary when it is not): killed with SIGKILL mid-epoch and started again with the same command,
    training goes on from its last backup (weights, optimizer, step 16) on the batches it would
    have seen, and ends with the model an uninterrupted run makes."""
    for backend, (folder, state, second) in background(resumed_on_every_backend).items():
        assert state["step"] == 16, backend
        assert model.load_model(folder / "at_kill.h5")  # the best model on disk is whole, whenever the kill came
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.startswith(f"Keras {keras.__version__}, {backend} backend, computing on the cpu")
        assert f"resuming {folder / 'm.h5'} at epoch 3, step 16" in second.stdout
        epochs = [int(line.split(",")[0]) for line in (folder / "history_m.csv").read_text().splitlines()[1:]]
        assert epochs == list(range(4))  # the log goes on where it stopped, not from scratch
        assert not (folder / ".m.h5.resume").exists()
        lr = dp.to_luma(natural_image(40, 40))[None]
        resumed, whole = (model.upscale(model.load_model(folder / name), lr, precision="float32")
                          for name in ("m.h5", "whole.h5"))  # fmt: skip
        np.testing.assert_allclose(resumed, whole, atol=2e-4, err_msg=backend)


@pytest.mark.parametrize("path", [model.DEFAULT_MODEL, model.COMPRESSED_MODEL], ids=lambda path: path.name)
def test_committed_model_loads_in_safe_mode_and_keeps_its_contract(path):
    assert path.stat().st_size <= 8e6  # committed models stay small: 8 MB each at most
    net = keras.models.load_model(path, compile=False, safe_mode=True)
    for shape in [(1, 64, 64, 1), (2, 37, 53, 1)]:
        out = net.predict_on_batch(np.random.default_rng(0).random(shape).astype(np.float32))
        assert out.shape == (shape[0], 2 * shape[1], 2 * shape[2], 1)
    lr = dp.to_luma(natural_image(64, 64))[None]
    raw = net.predict_on_batch(lr)  # unclipped: a trained model stays close to the range by itself
    assert raw.dtype == np.float32 and -0.05 <= raw.min() and raw.max() <= 1.05
    assert all(layer.dtype_policy.name == "float32" for layer in net.layers)


def test_tiled_upscale_equals_untiled():
    net = model.load_model(REPO / "model.h5")
    lr = dp.to_luma(natural_image(150, 230, 5))[None]
    whole = model.upscale(net, lr)
    for tile in (40, 100):  # many tiles each way; one window high and three wide
        tiled = model.upscale(net, lr, tile=tile)
        assert tiled.shape == whole.shape == (1, 300, 460, 1)
        np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert model.tiling(540, 512) == (540, 540) and model.tiling(960, 512) == (480, 544)


def test_tiled_self_ensemble_equals_the_untiled_one():
    """--self-ensemble on an image large enough for tiles: each tile is the mean over the 8 views too."""
    net = scrambled(model.build_model(**TINY))
    lr = dp.to_luma(natural_image(150, 230, 5))[None]
    ensemble = model.upscale(net, lr, self_ensemble=True, precision="float32")
    tiled = model.upscale(net, lr, self_ensemble=True, tile=40, precision="float32")
    np.testing.assert_allclose(tiled, ensemble, atol=1e-5)
    assert np.abs(model.upscale(net, lr, tile=40, precision="float32") - ensemble).mean() > 1e-3


def test_the_bfloat16_copy_follows_the_weights_and_auto_follows_the_cpu(monkeypatch):
    """upscale() in bfloat16 runs a copy of the model: after the model's weights change (training
    goes on), the copy is remade. "auto" is the model itself, float32, where the CPU has no
    bfloat16 arithmetic, and the copy where it has."""
    net = scrambled(model.build_model(**TINY))
    lr = dp.to_luma(natural_image(24, 20))[None]
    before = model.upscale(net, lr, precision="bfloat16")
    scrambled(net, seed=1)
    exact = model.upscale(net, lr, precision="float32")
    after = model.upscale(net, lr, precision="bfloat16")
    assert np.abs(after - exact).mean() < np.abs(before - exact).mean() / 5
    monkeypatch.setattr(model, "compute_device", lambda: "cpu")
    for has_bfloat16 in (False, True):
        monkeypatch.setattr(model, "cpu_computes_bfloat16", lambda: has_bfloat16)
        assert (model.compute_in(net, "auto") is net) == (not has_bfloat16)


def test_self_ensemble_is_the_mean_over_flips():
    net = scrambled(model.build_model(**TINY))
    lr = dp.to_luma(natural_image(20, 28))[None]
    ensemble = model.upscale(net, lr, self_ensemble=True, precision="float32")
    assert ensemble.shape == (1, 40, 56, 1)
    views = []  # by hand: each flip/rotation through the network, turned back
    for turns in range(4):
        for mirror in (False, True):
            x = np.rot90(lr, turns, axes=(1, 2))
            x = x[:, :, ::-1] if mirror else x
            y = net.predict_on_batch(np.ascontiguousarray(x))
            views.append(np.rot90(y[:, :, ::-1] if mirror else y, -turns, axes=(1, 2)))
    np.testing.assert_allclose(ensemble, np.clip(np.mean(views, axis=0), 0, 1), atol=1e-6)
    assert not np.allclose(ensemble, model.upscale(net, lr, precision="float32"), atol=1e-4)  # views differ


@pytest.mark.slow
def test_bfloat16_upscale_loses_at_most_002_db():
    """upscale() in bfloat16 really computes in bfloat16 (the fixed bicubic skip and the output stay
    float32), and on the bundled test split that costs <= 0.02 dB against float32."""
    net = model.load_model(REPO / "model.h5")
    _, _, x_test, y_test = (array[::4] for array in dp.load_dataset())  # every fourth test pair: 77
    outputs = {precision: model.upscale(net, x_test, precision=precision) for precision in ("float32", "bfloat16")}
    psnr = {precision: mean_psnr(y_test, sr) for precision, sr in outputs.items()}
    assert abs(psnr["bfloat16"] - psnr["float32"]) <= 0.02, psnr
    assert not np.array_equal(outputs["bfloat16"], outputs["float32"])  # it did run in another precision
    twin = model.compute_in(net, "bfloat16")
    assert twin is model.compute_in(net, "bfloat16")  # one copy, made once
    assert twin.get_layer("head").compute_dtype == "bfloat16" and twin.get_layer("sr").compute_dtype == "float32"
    assert model.compute_in(net, "float32") is net
    assert model.resolve_precision("auto") == ("bfloat16" if model.cpu_computes_bfloat16() else "float32")


@pytest.mark.slow
def test_training_on_compressed_pairs_helps_on_compressed_input():
    """The same small network, seed and steps, trained on the pipeline's JPEG'd LR
    (degradation="jpeg") and on clean LR (96 bundled photo tiles): on JPEG q30 input the first wins
    (by 0.36-0.55 dB with seeds 0-2 after 400 steps; 0.22-0.45 after 300)."""
    x_train, y_train, x_test, y_test = dp.load_dataset()
    x_train, y_train, x_test, y_test = x_train[:96], y_train[:96], x_test[::10], y_test[::10]
    compressed_input = np.stack([dp.jpeg_luma(lr, 30) for lr in x_test])
    psnr = {}
    for degradation in ("none", "jpeg"):
        keras.utils.set_random_seed(0)
        net = model.build_residual(16, 2)
        net.compile(optimizer=keras.optimizers.Adam(5e-3), loss="mean_absolute_error")
        batches = dp.TrainingBatches(8, x_train, y_train, seed=0, patch=24, degradation=degradation)(0)
        net.fit(batches, steps_per_epoch=400, epochs=1, verbose=0, shuffle=False)  # a generator: in its order
        batches.close()
        psnr[degradation] = mean_psnr(y_test, model.upscale(net, compressed_input, precision="float32"))
    assert psnr["jpeg"] > psnr["none"] + 0.2, psnr


@pytest.mark.slow
def test_compress_draws_clean_h264_and_pillow_jpeg_by_the_shares():
    """compress() over many draws: clean, H.264 and JPEG tiles in the --shares, JPEG qualities over
    the whole --qualities range, each JPEG tile Pillow's JPEG of the luma at its quality."""
    _, _, x_test, _ = dp.load_dataset()
    lr = x_test[3]
    versions = np.stack([np.full_like(lr, k / 255) for k in range(len(dp.H264_CRFS))]).astype(np.uint8)
    versions = np.round(versions * 255 + np.arange(4)[:, None, None, None]).astype(np.uint8)  # told apart
    jpegs = {quality: dp.jpeg_luma(lr, quality) for quality in range(30, 96)}
    rng, kinds = np.random.default_rng(0), collections.Counter()
    for _ in range(2000):
        out = dp.compress(lr, rng, versions)
        if np.array_equal(out, lr):
            kinds["clean"] += 1
        elif any(np.array_equal(out, v / np.float32(255)) for v in versions):
            kinds["h264"] += 1
        else:
            kinds[next(q for q, jpeg in jpegs.items() if np.array_equal(out, jpeg))] += 1
    assert abs(kinds.pop("clean") / 2000 - dp.CLEAN_SHARE) < 0.03
    assert abs(kinds.pop("h264") / 2000 - dp.H264_SHARE) < 0.03
    assert min(kinds) <= 32 and max(kinds) >= 93 and sum(kinds.values()) > 900  # JPEG, every quality drawn
    # --qualities Q Q: every JPEG at Q; without H.264 versions their share is JPEG too
    only = [dp.compress(lr, rng, shares=(0, 0.5), qualities=(75, 75)) for _ in range(20)]
    assert all(np.array_equal(out, jpegs[75]) for out in only)


def test_qualities_flag_sets_the_training_and_validation_range(capsys):
    assert training.parse_config([]).qualities == dp.JPEG_QUALITIES
    assert training.parse_config(["--qualities", "50", "95"]).qualities == (50, 95)
    for bad in (["90", "50"], ["0", "95"], ["50", "101"]):
        with pytest.raises(SystemExit) as exit_info:
            training.parse_config(["--qualities", *bad])
        assert exit_info.value.code == 2
        assert f"error: --qualities: LOW <= HIGH, both in 1-100, got ({bad[0]}, {bad[1]})" in capsys.readouterr().err
    _, _, x_test, _ = dp.load_dataset()
    tiles = x_test[: len(dp.VALIDATION_QUALITIES)]
    kinds = [None, 50, 60, 75, 90]  # of VALIDATION_QUALITIES, those in 50-95, in turn
    validation = dp.compressed_validation(tiles, qualities=(50, 95))
    for tile, lr, kind in zip(tiles, validation, kinds * 2):
        np.testing.assert_array_equal(lr, tile if kind is None else dp.jpeg_luma(tile, kind))


@pytest.mark.slow
def test_compressed_degradation_mixes_clean_jpeg_and_h264_tiles(tmp_path, capsys):
    """With "compressed" the tile is clean, one of its libx264 versions or JPEG'd, by the random share;
    every H.264 version is a real encoding (CRF 0 would be exact: see the round-trip test)."""
    _, _, x_test, _ = dp.load_dataset()
    tiles = x_test[:8]
    versions = dp.h264_versions(tiles)
    assert versions.shape == (8, len(dp.H264_CRFS), 64, 64, 1) and versions.dtype == np.uint8
    errors = [np.sqrt(np.mean((versions[:, k] / 255 - tiles) ** 2)) for k in range(len(dp.H264_CRFS))]
    assert 0 < errors[0] < errors[-1]  # higher CRF, more loss
    # --shares 0.1 0.1: 10 % clean, 10 % H.264
    rng = np.random.default_rng(1)
    draws = [dp.compress(tiles[3], rng, versions[3], shares=(0.1, 0.1)) for _ in range(500)]
    video = sum(any(np.array_equal(out, v / np.float32(255)) for v in versions[3]) for out in draws)
    assert 25 <= video <= 75
    assert training.parse_config(["--shares", "0.1", "0.1"]).shares == (0.1, 0.1)
    with pytest.raises(SystemExit) as exit_info:
        training.parse_config(["--shares", "0.6", "0.5"])
    assert exit_info.value.code == 2
    code, err = run_main(training.main, ["--images", str(tmp_path), "--degradation", "compressed"], capsys)
    assert (code, err.strip().splitlines()[-1]) == (
        1,
        "error: --degradation compressed needs the .npz pairs (their H.264 versions are "
        "encoded before training); use --degradation jpeg with --images",
    )


@pytest.mark.slow
def test_onnx_export_computes_what_keras_does(tmp_path):
    import onnxruntime

    net = model.load_model(model.DEFAULT_MODEL)
    model.main(["--export", "onnx", "--out", str(tmp_path / "model.onnx")])
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    session = onnxruntime.InferenceSession(tmp_path / "model.onnx", providers=["CPUExecutionProvider"])
    for x in (dp.to_luma(natural_image(30, 50))[None], np.random.default_rng(0).random((3, 17, 9, 1), np.float32)):
        out = session.run(None, {"lr": x})[0]
        assert out.shape == (len(x), 2 * x.shape[1], 2 * x.shape[2], 1)
        np.testing.assert_allclose(out, net.predict_on_batch(x), atol=1e-3)


def test_upscale_clips_what_the_network_gives_to_the_unit_range():
    net = model.build_model(width=8, blocks=1)
    layer = net.get_layer("to_subpixels")
    kernel, bias = layer.get_weights()
    lr = dp.to_luma(natural_image(12, 16, 1))[None]
    for shift, bound in ((3, 1), (-3, 0)):  # every output past 1, then below 0
        layer.set_weights([kernel, bias + shift])
        assert np.all(net.predict_on_batch(lr) > 1) if shift > 0 else np.all(net.predict_on_batch(lr) < 0)
        np.testing.assert_array_equal(model.upscale(net, lr, precision="float32"), np.full((1, 24, 32, 1), bound))


def test_shares_may_add_up_to_one_and_never_go_below_zero(capsys):
    for good in (["1", "0"], ["0.5", "0.5"], ["0", "0"]):
        assert training.parse_config(["--shares", *good]).shares == tuple(map(float, good))
    for bad in (["-0.5", "0.2"], ["0.7", "0.5"]):
        with pytest.raises(SystemExit) as exit_info:
            training.parse_config(["--shares", *bad])
        assert exit_info.value.code == 2
        expected = f"error: --shares: two shares in 0-1 that add up to at most 1, got ({bad[0]}, {bad[1]})"
        assert expected in capsys.readouterr().err


def test_charbonnier_and_psnr_by_value():
    """Charbonnier's epsilon is 1e-3 (the loss of a perfect output); PSNR is of the output clipped to
    [0, 1], as the image written would be, and per image before Keras averages."""
    zeros = np.zeros((2, 4, 4, 1), np.float32)
    assert float(training.charbonnier(zeros, zeros)) == pytest.approx(1e-3, rel=1e-4)
    assert float(training.charbonnier(zeros, zeros + 0.5)) == pytest.approx(np.sqrt(0.25 + 1e-6), rel=1e-5)
    overshoot = np.stack([np.full((4, 4, 1), 1.5, np.float32), np.full((4, 4, 1), 0.9, np.float32)])
    values = keras.ops.convert_to_numpy(training.psnr(np.ones_like(overshoot), overshoot))
    np.testing.assert_allclose(values, [100, 20], rtol=1e-5)  # 1.5 clipped to 1: exact (floor 1e-10)


@pytest.mark.parametrize("total, warmup", [(1000, 100), (20000, 500)])
def test_the_cosine_schedule_warms_up_then_decays_to_a_hundredth(total, warmup):
    """--schedule cosine: the rate rises linearly over a tenth of the steps (at most 500) to --lr,
    then falls along a cosine to 1 % of it at the last step."""
    config = training.parse_config(["--new", "--lr", "1e-3", "--precision", "float32"])
    net = training.compiled(lambda: model.build_model(**TINY), config, total)
    schedule = keras.optimizers.schedules.deserialize(net.optimizer.get_config()["learning_rate"])
    rate = {step: float(schedule(step)) for step in (0, warmup // 2, warmup, (total + warmup) // 2, total)}
    expected = {0: 0, warmup // 2: 5e-4, warmup: 1e-3, (total + warmup) // 2: 1e-3 * (0.01 + 0.99 / 2), total: 1e-5}
    assert rate == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_compressed_validation_holds_h264_tiles_and_jpeg_validation_none(monkeypatch):
    asked = []
    monkeypatch.setattr(training, "compressed_validation", lambda x, crfs, qualities: asked.append(crfs) or x)
    monkeypatch.setattr(training, "h264_versions", lambda x: None)
    for degradation in ("compressed", "jpeg"):
        training.training_data(training.parse_config(["--degradation", degradation]))
    assert asked == [dp.VALIDATION_CRFS, ()]


def test_a_failed_save_leaves_the_model_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "m.h5"
    net = model.build_model(**TINY)
    training.save_model(net, path)
    before = path.read_bytes()

    def save_half(self, filepath, **options):
        Path(filepath).write_bytes(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", save_half)
    with pytest.raises(dp.DataError, match="m.h5: cannot write \\(disk full\\)"):
        training.save_model(scrambled(net), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.h5"]


def test_ctrl_c_says_how_to_resume_and_exits_130(monkeypatch, capsys):
    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "run", interrupted)
    code, err = run_main(training.main, [], capsys)
    assert code == 130
    assert err.strip().splitlines()[-1] == "interrupted: run the same command again to resume from the last backup"
