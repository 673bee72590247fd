"""testing_video.py: both modes on generated videos, odd sizes, sound, bad input.

Flags: --video, --out, --mode: test_experiment_mode, test_upscale_mode_keeps_size_rate_and_sound,
test_track_rows_measure_the_decoded_files_at_its_scale_and_crf; --model: test_upscale_runs_the_model_given; --scale:
test_track_rows_..., test_scales.py::test_video_upscale_at_x4_keeps_frames_rate_and_sound,
test_an_odd_upscaled_side_loses_its_last_pixel (x3, the luma cut to even sides); --size, --width:
test_scales.py::test_video_size_and_width_give_exactly_that_size, test_width_rounds_an_odd_height_up_to_even,
test_size_resizes_the_upscale_by_antialiased_bicubic_and_keeps_square_pixels (the resize filter, sar 1:1); --crf:
test_crf_and_preset_reach_the_encoder, test_experiment_rows_and_columns_are_each_methods_output,
test_upscale_runs_the_model_given, test_track_rows_...,
test_the_track_encodes_its_upscale_near_lossless_and_its_lr_at_crf_28_by_default (track: the upscale at CRF 10, the
LR's default 28), test_an_interrupted_upscale_starts_over_when_the_crf_changes (the resume recipe); --preset:
test_crf_and_preset_reach_the_encoder; --steady / --no-steady: test_the_steady_flag_reaches_upscale_and_track,
test_steady_defaults_blend_three_tenths_below_four_grey_levels (STEADY_BLEND, STEADY_CHANGE),
test_steady_starts_afresh_at_each_segment; --frame: test_experiment_mode; --batch-size: test_upscale_streams_frames,
test_batch_size_reaches_the_experiment_and_the_track;
--precision: test_experiment_rows_..., test_upscale_runs_the_model_given, test_track_rows_...; --verbose:
test_testing.py::test_verbose_shows_the_backends_start_up_log.
Segments and joining (--mode upscale): test_an_interrupted_upscale_goes_on_from_its_last_segment,
test_more_than_ten_segments_join_in_their_order, test_segments_shorter_than_segment_frames_follow_each_other_in_time
(time stamps k / fps, the source's duration), test_sound_that_an_mp4_cannot_hold_is_reencoded_to_aac,
test_sound_an_mp4_holds_is_copied_bit_for_bit,
test_the_resume_recipe_changes_with_each_setting_the_source_and_the_weights.
Bounded memory: test_large_frames_go_through_the_network_one_at_a_time_in_tiles, test_upscale_streams_frames,
test_a_segment_holds_at_most_segment_pixels.
Rows/columns: experiment's printed PSNR / SSIM rows (skimage_bilinear, skimage_bicubic, model), output_video.mp4,
input_video.mp4 and side_by_side.mp4's columns (LR | bilinear | model | HR):
test_experiment_rows_and_columns_are_each_methods_output; upscale's output_video.mp4:
test_upscale_runs_the_model_given; the track's Y-PSNR and tOF rows (bicubic, model):
test_track_rows_measure_the_decoded_files_at_its_scale_and_crf, test_video_track_measures_the_decoded_output (the
compressed-input model beats bicubic and model.h5), test_flicker_sums_the_horizontal_and_vertical_flow_errors (tOF
in pixels, |dx| + |dy|).
"""

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
import warnings

import imageio_ffmpeg
import numpy as np
import pytest
import scipy.ndimage
from conftest import ffprobe_streams, make_video, natural_image
from PIL import Image
from test_data import run_main

import data_preparation as dp
import model
import testing
import testing_video


def frames_and_size(path):
    return sum(1 for _ in dp.raw_frames(path)), dp.video_info(path)["size"]


@pytest.fixture
def clip_with_sound(tmp_path):
    return make_video(tmp_path / "clip.mp4", 64, 48, frames=12, audio=True)


def test_experiment_mode(clip_with_sound, tmp_path, capsys):
    out = tmp_path / "out"
    testing_video.main(["--video", str(clip_with_sound), "--out", str(out), "--frame", "5", "--batch-size", "5"])
    assert frames_and_size(out / "input_video.mp4") == (12, (128, 128))
    assert frames_and_size(out / "output_video.mp4") == (12, (128, 128))
    count, (width, height) = frames_and_size(out / "side_by_side.mp4")
    assert count == 12 and width == 4 * 128 and height > 128
    assert (out / "frame.png").is_file()
    printed = capsys.readouterr().out
    assert "model" in printed and "skimage_bilinear" in printed
    assert not list(out.glob(".*"))  # no partial file left


def planes(path):
    """(luma (N, H, W, 1), chroma (N, h, w, 2)) of all of a video's frames, as read_yuv420() gives them."""
    luma, chroma = zip(*dp.read_yuv420(path))
    return np.stack(luma), np.stack(chroma)


def test_experiment_rows_and_columns_are_each_methods_output(tmp_path, capsys):
    """--crf 0 --precision float32 on real photographs: output_video.mp4 is model.h5 run directly on each
    frame's LR, input_video.mp4 the LR enlarged, side_by_side.mp4's columns LR | bilinear | model | HR,
    each within a grey level; each printed row is its method's PSNR / SSIM, and the model beats bicubic."""
    _, _, _, y_test = dp.load_dataset()
    with testing_video.VideoWriter(tmp_path / "hr.mp4", 128, 128, 10, crf=0) as writer:
        writer.write(np.repeat(y_test[20:26], 3, -1))
    testing_video.main(["--video", str(tmp_path / "hr.mp4"), "--out", str(tmp_path / "o"), "--crf", "0", "--frame",
                        "2", "--precision", "float32"])  # fmt: skip
    hr = np.stack([dp.hr_patches(dp.to_luma(frame), "resize")[0] for frame in dp.read_video(tmp_path / "hr.mp4")])
    lr = dp.degrade(hr)
    outputs = {method: model.interpolate(lr, method) for method in ("skimage_bilinear", "skimage_bicubic")}
    outputs["model"] = model.upscale(model.load_model(model.DEFAULT_MODEL), lr, precision="float32")
    printed = capsys.readouterr().out
    psnr = {}
    for method, sr in outputs.items():
        psnr[method], ssim = np.mean([testing.measure(h, s) for h, s in zip(hr, sr)], 0)
        assert f"{method:18s} {psnr[method]:6.2f} dB  {ssim:.4f}" in printed
    assert psnr["model"] > psnr["skimage_bicubic"] + 1

    def grey_frames(name):
        return np.stack([frame[..., :1] for frame in dp.read_video(tmp_path / "o" / name)])

    enlarged = lr.repeat(2, 1).repeat(2, 2)
    columns = np.concatenate([enlarged, outputs["skimage_bilinear"], outputs["model"], hr], axis=2)
    for name, expected in [("output_video.mp4", outputs["model"]), ("input_video.mp4", enlarged),
                           ("side_by_side.mp4", columns)]:  # fmt: skip
        written = grey_frames(name)[:, -128:]  # below the titles
        np.testing.assert_allclose(written, dp.to_uint8(expected) / 255, atol=1.01 / 255, err_msg=name)


def test_upscale_runs_the_model_given(tmp_path, capsys):
    """--mode upscale --model model.h5 (not the compressed-input model, the default) --crf 0 --no-steady
    --precision float32: the output's luma is that model run directly on the video's own Y plane."""
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=3)
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "upscale", "--model",
                        str(model.DEFAULT_MODEL), "--crf", "0", "--no-steady", "--precision", "float32"])  # fmt: skip
    assert f"model: {model.DEFAULT_MODEL}" in capsys.readouterr().out
    luma = planes(video)[0]
    expected = model.upscale(model.load_model(model.DEFAULT_MODEL), luma, precision="float32")
    written = planes(tmp_path / "o" / "output_video.mp4")[0]
    np.testing.assert_allclose(written, dp.to_uint8(expected) / 255, atol=1.01 / 255)


def test_track_rows_measure_the_decoded_files_at_its_scale_and_crf(tmp_path, monkeypatch, capsys):
    """--mode track --scale 4 --crf 40 --precision float32: the LR is encoded at CRF 40 and a x4 model
    runs in float32; each printed Y-PSNR and tOF row is its method's own, measured on the files the
    track decoded (kept here)."""
    kept, precisions, upscale = tmp_path / "track", [], testing_video.upscale
    kept.mkdir()
    monkeypatch.setattr(testing_video.tempfile, "TemporaryDirectory", lambda: contextlib.nullcontext(str(kept)))
    monkeypatch.setattr(testing_video, "upscale", lambda *args, **kw: precisions.append(kw["precision"]) or upscale(
        *args, **kw))  # fmt: skip
    video, scene = tmp_path / "pan.mp4", natural_image(48, 160, 3)
    with testing_video.VideoWriter(video, 96, 48, 10, crf=0) as writer:
        writer.write(np.stack([scene[:, 4 * k : 4 * k + 96] for k in range(4)]))  # a pan: both methods flicker
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "track", "--scale", "4",
                        "--crf", "40", "--precision", "float32"])  # fmt: skip
    assert b"crf=40.0" in (kept / "lr_crf40.mp4").read_bytes() and set(precisions) == {"float32"}
    hr = [dp.to_luma(frame) for frame in dp.read_video(video)]
    outputs = {"bicubic": [model.interpolate(lr[None], "bicubic", 4)[0] for lr in dp.read_video(kept / "lr_crf40.mp4")],
               "model": list(dp.read_video(kept / "output_video.mp4"))}  # fmt: skip
    psnr, tof = {}, {}
    for method, frames in outputs.items():
        psnr[method] = np.mean([testing.measure(y, dp.to_luma(out), 4)[0] for y, out in zip(hr, frames)])
        flicker = testing_video.Flicker(4)
        for y, out in zip(hr, frames):
            flicker.add(y, dp.to_luma(out))
        tof[method] = flicker.value()
    printed = capsys.readouterr().out
    assert f"x4, LR at CRF 40, 4 frames, Y-PSNR: bicubic {psnr['bicubic']:.2f} dB, model {psnr['model']:.2f}" in printed
    assert f"flicker (tOF, pixels): bicubic {tof['bicubic']:.3f}, model {tof['model']:.3f}" in printed


def test_upscale_mode_keeps_size_rate_and_sound(clip_with_sound, tmp_path):
    out = tmp_path / "out"
    testing_video.main(["--video", str(clip_with_sound), "--out", str(out), "--mode", "upscale"])
    assert frames_and_size(out / "output_video.mp4") == (12, (128, 96))
    assert dp.video_info(out / "output_video.mp4")["fps"] == pytest.approx(10)
    streams = ffprobe_streams(out / "output_video.mp4")
    assert any("Audio" in line for line in streams) and any("Video" in line for line in streams)
    frame = next(dp.read_video(out / "output_video.mp4"))
    assert frame[..., 0].std() > 0.05 and np.abs(frame[..., 0] - frame[..., 2]).mean() > 0.02  # colour kept


@pytest.mark.parametrize("scale, width, height", [(2, 256, 192), (2, 255, 191), (3, 255, 191), (4, 255, 191)])
def test_the_chroma_is_the_videos_own_grown_by_bicubic(tmp_path, scale, width, height):
    """--mode upscale --scale S --crf 0, no sound: the output's Cb and Cr are the source's grown xS
    by our bicubic(), also for odd sides (the half-size chroma has a row more than half the luma's)."""
    video = make_video(tmp_path / "odd.mkv", width, height, frames=2, codec="ffv1")
    out = tmp_path / "out"
    testing_video.main(["--video", str(video), "--out", str(out), "--mode", "upscale", "--scale", str(scale), "--crf",
                        "0", "--no-steady"])  # fmt: skip
    size = (scale * width - scale * width % 2, scale * height - scale * height % 2)
    assert frames_and_size(out / "output_video.mp4") == (2, size)
    assert not any("Audio" in line for line in ffprobe_streams(out / "output_video.mp4"))
    written = planes(out / "output_video.mp4")[1]
    source = planes(video)[1]
    error = 255 * np.abs(written - model.interpolate(source, "bicubic", scale)[:, : size[1] // 2, : size[0] // 2])
    assert error.mean() < 0.2, error.mean()  # a row or column off, or nearest neighbour: 1.4 or more


def test_the_experiment_takes_an_odd_sized_video(tmp_path):
    video = make_video(tmp_path / "odd.mkv", 255, 191, frames=3, codec="ffv1")
    out = tmp_path / "out"
    testing_video.main(["--video", str(video), "--out", str(out), "--frame", "0"])
    assert frames_and_size(out / "side_by_side.mp4")[0] == 3


@pytest.mark.parametrize("case", ["missing", "not a video", "no frames"])
def test_bad_videos_fail_cleanly(tmp_path, capsys, case):
    path = tmp_path / "bad.mp4"
    if case == "not a video":
        path.write_text("hello\n")
    elif case == "no frames":
        make_video(tmp_path / "bad.mp4", 64, 48, frames=0)
    for mode in ["experiment", "upscale"]:
        code, err = run_main(
            testing_video.main, ["--video", str(path), "--out", str(tmp_path / "out"), "--mode", mode], capsys
        )
        assert code != 0 and err.strip().splitlines()[-1].startswith("error: ")
        assert "bad.mp4" in err.strip().splitlines()[-1]
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_upscale_streams_frames(tmp_path, monkeypatch):
    """Frames are read, upscaled and written a batch at a time: never more than a few batches are
    held (the one being upscaled, two decoded ahead, two waiting for the encoder), so memory does
    not grow with the video's length."""
    video = make_video(tmp_path / "long.mp4", 64, 48, frames=40)
    read, written, held = [], [], []
    reader, write = testing_video.read_yuv420, testing_video.VideoWriter.write_planes

    def counting_reader(path, size=None):
        for frame in reader(path, size):
            read.append(1)
            yield frame

    def counting_write(self, luma, chroma, scale):
        held.append(len(read) - sum(written))
        written.append(len(luma))
        write(self, luma, chroma, scale)

    monkeypatch.setattr(testing_video, "read_yuv420", counting_reader)
    monkeypatch.setattr(testing_video.VideoWriter, "write_planes", counting_write)
    testing_video.main(
        ["--video", str(video), "--out", str(tmp_path / "out"), "--mode", "upscale", "--batch-size", "4"]
    )
    assert sum(written) == 40 and max(held) <= 6 * 4 and min(held) >= 4
    assert frames_and_size(tmp_path / "out" / "output_video.mp4") == (40, (128, 96))


def test_lossless_round_trip_keeps_the_luma(tmp_path):
    """A real clip through the repo's writer (CRF 0) and reader: mean luma moves <= 0.1 grey level
    (ffmpeg's default conversions would move it by ~1.2, which undoes the model's gain)."""
    frames = np.stack(list(dp.read_video(dp.SAMPLE_VIDEO))[:30])
    with testing_video.VideoWriter(tmp_path / "copy.mp4", frames.shape[2], frames.shape[1], 30, crf=0) as writer:
        writer.write(frames)
    back = np.stack(list(dp.read_video(tmp_path / "copy.mp4")))
    assert back.shape == frames.shape
    assert abs(dp.to_luma(back).mean() - dp.to_luma(frames).mean()) * 255 <= 0.1


@pytest.mark.slow
def test_h264_luma_is_libx264s_round_trip_of_the_y_plane():
    """h264_luma() puts the luma in the video's Y plane as it is: CRF 0 gives it back exactly, in
    order; CRF 28 loses detail (a real encoding) and keeps the frame count."""
    _, _, x_test, _ = dp.load_dataset()
    frames = x_test[:40]
    np.testing.assert_array_equal(dp.h264_luma(frames, 0), frames)
    lossy = dp.h264_luma(frames, 28)
    assert lossy.shape == frames.shape and lossy.dtype == np.float32
    assert 2 / 255 < np.sqrt(np.mean((lossy - frames) ** 2)) < 12 / 255


def test_the_batch_follows_the_frame_size():
    """Frames go through the network a few at a time, fewer the larger they are: one 1080p or 4K
    frame at a time, so memory is bounded whatever the resolution."""
    assert testing_video.frames_at_once(64, 48, 32) == 32
    assert testing_video.frames_at_once(960, 540, 32) == 4
    assert testing_video.frames_at_once(1920, 1080, 32) == testing_video.frames_at_once(3840, 2160, 32) == 1


@pytest.mark.slow
def spy(monkeypatch, name, note=lambda *args, **options: None):
    """testing_video.<name> as it is, each call first noted (note(args...)) in the list returned."""
    notes, real = [], getattr(testing_video, name)

    def noted(*args, **options):
        notes.append(note(*args, **options))
        return real(*args, **options)

    monkeypatch.setattr(testing_video, name, noted)
    return notes


def ctrl_c_after(monkeypatch, frames):
    """testing_video.upscale() that counts the frames it upscales (the first list returned) and acts
    Ctrl-C once `frames` are done, until the second list returned is emptied."""
    upscaled, interrupt_after, real_upscale = [], [frames], testing_video.upscale

    def upscale_then_ctrl_c(net, batch, **options):
        if interrupt_after and sum(upscaled) >= interrupt_after[0]:
            raise KeyboardInterrupt
        upscaled.append(len(batch))
        return real_upscale(net, batch, **options)

    monkeypatch.setattr(testing_video, "upscale", upscale_then_ctrl_c)
    return upscaled, interrupt_after


def test_an_interrupted_upscale_goes_on_from_its_last_segment(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the third segment: one line says how to go on, nothing is left at the output path;
    the same command again upscales only the frames after the two finished segments and ends with
    the video an uninterrupted run writes (frames, size, rate, aspect, sound)."""
    monkeypatch.setattr(testing_video, "SEGMENT_FRAMES", 10)
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=27, audio=True, sar="128/117")
    upscaled, interrupt_after = ctrl_c_after(monkeypatch, 24)
    command = ["--video", str(video), "--out", str(tmp_path / "out"), "--mode", "upscale", "--batch-size", "4"]
    code, err = run_main(testing_video.main, command, capsys)
    assert (code, err.strip().splitlines()[-1]) == (
        130,
        "interrupted; the finished segments are kept: run the same command again to go on",
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".output_video.mp4.segments"]
    upscaled.clear()
    interrupt_after.clear()
    testing_video.main(command)
    assert sum(upscaled) == 7  # frames 20-26: the two finished segments are not upscaled again
    assert "20 frames upscaled before: going on from there" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["output_video.mp4"]
    testing_video.main([*command[:3], str(tmp_path / "whole"), *command[4:]])
    resumed, whole = tmp_path / "out" / "output_video.mp4", tmp_path / "whole" / "output_video.mp4"
    assert frames_and_size(resumed) == frames_and_size(whole) == (27, (128, 96))
    assert dp.video_info(resumed)["sar"] == dp.video_info(whole)["sar"] != "1:1"
    assert dp.video_info(resumed)["fps"] == pytest.approx(10)
    assert ffprobe_streams(resumed) == ffprobe_streams(whole) and "Audio" in ffprobe_streams(resumed)[-1]
    for ours, theirs in zip(dp.read_video(resumed), dp.read_video(whole)):
        assert np.mean((ours - theirs) ** 2) <= 1e-4  # >= 40 dB: the same frames, encoded the same way


def test_upscale_keeps_the_pixel_aspect_ratio_and_uses_the_compressed_model(tmp_path, capsys):
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=4, sar="128/117")
    sar = dp.video_info(video)["sar"]  # x264 stores 128:117 as 93:85, the same shape
    assert sar != "1:1"
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "out"), "--mode", "upscale", "--crf", "18"])
    assert dp.video_info(tmp_path / "out" / "output_video.mp4")["sar"] == sar
    assert "model_compressed.h5" in capsys.readouterr().out
    code, err = run_main(testing_video.main, ["--video", str(video), "--out", str(tmp_path / "bad"), "--mode",
                                              "upscale", "--crf", "52"], capsys)  # fmt: skip
    assert (code, err.strip().splitlines()[-1]) == (1, "error: --crf must be in 0-51, got 52")


def test_video_track_measures_the_decoded_output(tmp_path, capsys):
    """The track on a real scene panning (bundled test tiles): what it scores is the model's output,
    well above bicubic of the decoded LR with the compressed-input model, and above model.h5's."""
    _, _, _, y_test = dp.load_dataset()
    scene = np.concatenate([np.concatenate(list(y_test[first : first + 3]), 1) for first in (20, 23)], 0)
    frames = np.stack([scene[32:160, 8 * k : 8 * k + 256] for k in range(8)]).repeat(3, -1)
    with testing_video.VideoWriter(tmp_path / "hr.mp4", 256, 128, 10, crf=0) as writer:
        writer.write(frames)
    measured = testing_video.video_track(model_for_track(), tmp_path / "hr.mp4", crf=28)
    means = measured["psnr"]
    assert set(means) == set(measured["tof"]) == {"bicubic", "model"} and 20 < means["bicubic"] < 50
    assert all(0 < tof < 5 for tof in measured["tof"].values()), measured["tof"]
    assert "video track x2, LR at CRF 28, 8 frames" in capsys.readouterr().out
    clean_model = testing_video.video_track(model.load_model(model.DEFAULT_MODEL), tmp_path / "hr.mp4", crf=28)["psnr"]
    assert means["model"] > means["bicubic"] + 1 and means["model"] > clean_model["model"] + 0.3  # +2.8, +0.8 here


def model_for_track():
    return model.load_model(model.COMPRESSED_MODEL)


@pytest.mark.parametrize("offset", [0, 0.05])
def test_video_track_leaves_out_frames_reproduced_exactly(tmp_path, monkeypatch, capsys, offset):
    """Black frames (a film's fade) come back exactly through bicubic: infinite PSNR, left out of the
    means instead of making them infinite; also when the model's output is off (offset) and only
    bicubic's is exact."""
    real_upscale = testing_video.upscale
    monkeypatch.setattr(testing_video, "upscale", lambda *args, **kw: np.minimum(real_upscale(*args, **kw) + offset, 1))
    photos = np.stack([natural_image(64, 96, seed) for seed in range(3)])
    frames = np.concatenate([np.zeros((2, 64, 96, 3), np.float32), photos])
    with testing_video.VideoWriter(tmp_path / "hr.mp4", 96, 64, 10, crf=0) as writer:
        writer.write(frames)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # said in the track's line, not as numpy's warning
        means = testing_video.video_track(model_for_track(), tmp_path / "hr.mp4", crf=28)["psnr"]
    assert all(np.isfinite(value) and 15 < value < 60 for value in means.values()), means
    assert "video track x2, LR at CRF 28, 3 frames (2 reproduced exactly, left out)" in capsys.readouterr().out


def test_the_pipelined_upscale_gives_the_frames_of_the_sequential_one(tmp_path):
    """Decoding ahead and encoding behind on threads changes nothing: the same frames as one thing
    at a time; and the luma is the network's on the video's own Y plane, steadied."""
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=9, audio=True)
    net = testing_video.load_model(testing_video.DEFAULT_MODEL)
    for threads in (True, False):
        testing_video.upscale_video(net, video, tmp_path / str(threads), batch_size=4, threads=threads, crf=0)
    piped, one_by_one = (planes(tmp_path / f"{threads}" / "output_video.mp4")[0] for threads in (True, False))
    assert len(piped) == len(one_by_one) == 9
    np.testing.assert_array_equal(piped, one_by_one)
    luma = planes(video)[0]
    steadied, _ = testing_video.steady(testing_video.upscale(net, luma), luma)  # one segment: steady() throughout
    np.testing.assert_allclose(piped, dp.to_uint8(steadied) / 255, atol=1.01 / 255)  # CRF 0: as written


@pytest.mark.parametrize("where", ["decoder", "encoder"])
def test_a_failing_decoder_or_encoder_thread_is_one_line_and_no_output(tmp_path, monkeypatch, capsys, where):
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=12, audio=True)
    reader, write = dp.read_yuv420, testing_video.VideoWriter.write_planes

    def failing_reader(path, size=None):
        for count, frame in enumerate(reader(path, size)):
            if count == 5:
                raise OSError("Input/output error")
            yield frame

    def failing_write(self, luma, chroma, scale):
        if self.path.name == "segment00000.ts" and chroma.shape[0] < 4:  # the last chunk of the first segment
            raise BrokenPipeError(32, "Broken pipe")
        write(self, luma, chroma, scale)

    if where == "decoder":
        monkeypatch.setattr(testing_video, "read_yuv420", failing_reader)
    else:
        monkeypatch.setattr(testing_video, "SEGMENT_FRAMES", 6)
        monkeypatch.setattr(testing_video.VideoWriter, "write_planes", failing_write)
    out = tmp_path / "out"
    command = ["--video", str(video), "--out", str(out), "--mode", "upscale", "--batch-size", "4"]
    code, err = run_main(testing_video.main, command, capsys)
    last = err.strip().splitlines()[-1]
    assert code == 1 and "Traceback" not in err
    if where == "decoder":
        assert last == f"error: {video}: decoding failed (Input/output error)"
    else:
        assert last.startswith("error: ") and last.endswith("segment00000.ts: the encoder failed (Broken pipe)")
    assert not (out / "output_video.mp4").exists()
    assert not list((out / ".output_video.mp4.segments").glob("*.ts"))  # the failed segment is not kept


def test_crf_and_preset_reach_the_encoder(tmp_path):
    """The written video's own x264 settings (which libx264 stores in the stream) are the defaults
    of --mode upscale, or what --crf and --preset say."""
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=3, audio=True)
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "a"), "--mode", "upscale"])
    default = (tmp_path / "a" / "output_video.mp4").read_bytes()
    assert b"crf=14.0" in default and b"subme=2" in default  # veryfast's subpixel search
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "b"), "--mode", "upscale", "--crf", "21",
                        "--preset", "ultrafast"])  # fmt: skip
    chosen = (tmp_path / "b" / "output_video.mp4").read_bytes()
    assert b"crf=21.0" in chosen and b"cabac=0" in chosen and b"subme=0" in chosen  # ultrafast: no CABAC
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "c"), "--frame", "1", "--preset", "fast"])
    for name in ("output_video.mp4", "input_video.mp4", "side_by_side.mp4"):  # the experiment: CRF 10, fast's subme
        experiment = (tmp_path / "c" / name).read_bytes()
        assert b"crf=10.0" in experiment and b"subme=6" in experiment, name


def test_flicker_is_zero_for_the_hr_video_itself_and_grows_with_noise_that_comes_and_goes():
    _, _, _, y_test = dp.load_dataset()
    scene = np.concatenate(list(y_test[40:43]), 1)  # 128x384, panned 4 pixels a frame
    frames = [scene[:, 4 * k : 4 * k + 256] for k in range(6)]
    rng = np.random.default_rng(0)
    itself, noisy, steady = testing_video.Flicker(2), testing_video.Flicker(2), testing_video.Flicker(2)
    for frame in frames:
        itself.add(frame, frame)
        noisy.add(frame, np.clip(frame + rng.normal(0, 0.02, frame.shape).astype(np.float32), 0, 1))
        steady.add(
            frame, scipy.ndimage.gaussian_filter(frame, (1, 1, 0))
        )  # every frame blurred alike: it moves as the HR
    assert itself.value() == 0 and len(itself.errors) == 5
    assert noisy.value() > 4 * steady.value() > 0  # 0.18 against 0.02 pixels


def test_more_than_ten_segments_join_in_their_order(tmp_path, monkeypatch):
    """Thirteen one-frame segments: the output's frames are the input's, in the input's order (each
    output frame is nearest the upscaled frame of its own index, of all thirteen)."""
    monkeypatch.setattr(testing_video, "SEGMENT_FRAMES", 1)
    frames = np.stack([natural_image(24, 32, seed) for seed in range(13)])
    with testing_video.VideoWriter(tmp_path / "clip.mp4", 32, 24, 10, crf=0) as writer:
        writer.write(frames)
    testing_video.main(["--video", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "out"), "--mode", "upscale"])
    written = planes(tmp_path / "out" / "output_video.mp4")[0]
    expected = np.stack([dp.to_luma(frame).repeat(2, 0).repeat(2, 1) for frame in frames])
    distances = np.abs(written[:, None] - expected[None]).mean(axis=(2, 3, 4))
    assert len(written) == 13 and list(distances.argmin(axis=1)) == list(range(13))


def test_steady_leans_on_the_frame_before_where_the_scene_stands_still():
    rng = np.random.default_rng(1)
    lr = np.repeat(rng.random((1, 6, 8, 1)).astype(np.float32), 3, 0)
    lr[2, :3] += 0.5  # the top half of the third frame changes
    sr = rng.random((3, 12, 16, 1)).astype(np.float32)  # outputs that differ from frame to frame
    out, (last_lr, last_out) = testing_video.steady(sr, lr, blend=0.3)
    np.testing.assert_array_equal(out[0], sr[0])  # nothing before the first
    np.testing.assert_allclose(out[1], 0.7 * sr[1] + 0.3 * out[0], atol=1e-6)
    np.testing.assert_array_equal(out[2, :6], sr[2, :6])  # moved: its own output
    np.testing.assert_allclose(out[2, 6:], 0.7 * sr[2, 6:] + 0.3 * out[1, 6:], atol=1e-6)
    np.testing.assert_array_equal(last_lr, lr[2])
    np.testing.assert_array_equal(last_out, out[2])
    again, _ = testing_video.steady(sr[:1], lr[:1], before=(lr[0], out[0] + 0.1), blend=0.5)
    np.testing.assert_allclose(again[0], 0.5 * sr[0] + 0.5 * (out[0] + 0.1), atol=1e-6)  # across chunks


@pytest.mark.parametrize("flag", [None, "--no-steady"])
def test_the_steady_flag_reaches_upscale_and_track(tmp_path, monkeypatch, flag):
    calls = spy(monkeypatch, "steady")
    video = make_video(tmp_path / "clip.mp4", 32, 24, frames=4)
    command = ["--video", str(video), "--out", str(tmp_path / "o"), *([flag] if flag else [])]
    testing_video.main([*command, "--mode", "upscale"])
    testing_video.main([*command, "--mode", "track", "--scale", "2"])
    assert len(calls) == (0 if flag else 2)


def test_steady_defaults_blend_three_tenths_below_four_grey_levels():
    """steady() with its defaults (STEADY_BLEND 0.3, STEADY_CHANGE 4/255) on a still LR scene: where the
    LR moved by 3/255 the output is 0.7 of its own and 0.3 of the output before; where it moved by
    5/255, up or down, its own output."""
    rng = np.random.default_rng(2)
    lr = np.repeat(rng.uniform(0.2, 0.8, (1, 6, 8, 1)).astype(np.float32), 2, 0)
    lr[1, :2] += 5 / 255  # changed: its own output
    lr[1, 2:4] -= 5 / 255  # darker: changed too
    lr[1, 4:] -= 3 / 255  # still, below the threshold
    sr = rng.random((2, 12, 16, 1)).astype(np.float32)
    out, _ = testing_video.steady(sr, lr)
    np.testing.assert_array_equal(out[1, :8], sr[1, :8])
    np.testing.assert_allclose(out[1, 8:], 0.7 * sr[1, 8:] + 0.3 * sr[0, 8:], atol=1e-6)


def write_luma_video(path, luma, fps=10):
    """A lossless yuv420p video whose Y planes are exactly `luma` (N, H, W) uint8, the chroma neutral."""
    count, height, width = luma.shape
    grey = np.full(2 * (-(-height // 2)) * (-(-width // 2)), 128, np.uint8).tobytes()
    with testing_video.VideoWriter(path, width, height, fps, crf=0, pix_fmt="yuv420p") as writer:
        for y in luma:
            writer.encoder.write(np.ascontiguousarray(y).tobytes() + grey)
    return path


def test_steady_starts_afresh_at_each_segment(tmp_path, monkeypatch):
    """Segments of 2 frames on a still 4-frame clip whose Y steps by 3 grey levels a frame (below
    STEADY_CHANGE: still everywhere), --crf 0, model.h5 in float32: the luma is steady() run on each
    segment apart, so the third frame is the network's own output, not leaning on the second."""
    monkeypatch.setattr(testing_video, "SEGMENT_FRAMES", 2)
    base = np.round(dp.to_luma(natural_image(48, 64, 3))[..., 0] * 150 + 50)
    luma = np.stack([base + 3 * k for k in range(4)]).astype(np.uint8)
    video = write_luma_video(tmp_path / "still.mp4", luma)
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "upscale", "--model",
                        str(model.DEFAULT_MODEL), "--crf", "0", "--precision", "float32"])  # fmt: skip
    lr = planes(video)[0]
    np.testing.assert_array_equal(lr[..., 0], luma / np.float32(255))
    sr = model.upscale(model.load_model(model.DEFAULT_MODEL), lr, precision="float32")
    expected = np.concatenate([testing_video.steady(sr[:2], lr[:2])[0], testing_video.steady(sr[2:], lr[2:])[0]])
    written = planes(tmp_path / "o" / "output_video.mp4")[0]
    error = 255 * np.abs(written - dp.to_uint8(expected) / 255)
    assert error.max() <= 1.01 and error[2].mean() < 0.1, error[2].mean()  # blended across: ~1 grey level


def test_flicker_sums_the_horizontal_and_vertical_flow_errors():
    """An HR scene moved 2 pixels right and 1 down against outputs that stand still: the tOF is the
    flow missed, |dx| + |dy| = 3 pixels (both components summed, not their mean, 1.5)."""
    scene = scipy.ndimage.gaussian_filter(dp.to_luma(natural_image(96, 96, 4)), (1.5, 1.5, 0))
    flicker = testing_video.Flicker(12)
    flicker.add(scene, scene)
    flicker.add(np.roll(scene, (1, 2), (0, 1)), scene)
    assert flicker.value() == pytest.approx(3, abs=0.3)


def frame_times(path):
    """Each frame's presentation time (s), as ffmpeg's showinfo filter reports them, in order."""
    command = dp.ffmpeg("-i", path, "-vf", "showinfo", "-f", "null", "-")
    printed = subprocess.run(command, capture_output=True, text=True, timeout=600).stderr
    return [float(time) for time in re.findall(r"pts_time:\s*([\d.]+)", printed)]


def test_segments_shorter_than_segment_frames_follow_each_other_in_time(tmp_path, monkeypatch):
    """Segments of 3 frames (SEGMENT_PIXELS of 3 frames, under SEGMENT_FRAMES) on a 7-frame 10 fps
    clip: the output has its 7 frames at k / 10 s and the source's duration, without gaps."""
    monkeypatch.setattr(testing_video, "SEGMENT_PIXELS", 3 * 64 * 48)
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=7)
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "upscale"])
    written = tmp_path / "o" / "output_video.mp4"
    assert frame_times(written) == pytest.approx([k / 10 for k in range(7)], abs=1e-3)
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(written))
    assert frames == 7 and seconds == pytest.approx(imageio_ffmpeg.count_frames_and_secs(str(video))[1], abs=0.01)


def test_width_rounds_an_odd_height_up_to_even(tmp_path):
    """--width 100 on a 64x35 clip: the height keeping the aspect ratio, 54.7, rounds to 55, and up
    to the even 56 that yuv420p needs (not down to 54)."""
    clip = make_video(tmp_path / "clip.mkv", 64, 35, frames=2, codec="ffv1")
    testing_video.main(["--video", str(clip), "--out", str(tmp_path / "o"), "--mode", "upscale", "--width", "100"])
    assert frames_and_size(tmp_path / "o" / "output_video.mp4") == (2, (100, 56))
    assert testing_video.even_size(35, 64, width_only=100) == (100, 56)


def test_an_interrupted_upscale_starts_over_when_the_crf_changes(tmp_path, monkeypatch, capsys):
    """Ctrl-C after a finished segment at --crf 18, then the same command at --crf 24: the kept
    segment belongs to another recipe, so every frame is upscaled and encoded again, at CRF 24 only."""
    monkeypatch.setattr(testing_video, "SEGMENT_FRAMES", 4)
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=10)
    upscaled, interrupt_after = ctrl_c_after(monkeypatch, 8)
    command = ["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "upscale", "--batch-size", "4"]
    assert run_main(testing_video.main, [*command, "--crf", "18"], capsys)[0] == 130
    assert [p.name for p in (tmp_path / "o" / ".output_video.mp4.segments").glob("*.ts")] == ["segment00000.ts"]
    upscaled.clear()
    interrupt_after.clear()
    testing_video.main([*command, "--crf", "24"])
    assert sum(upscaled) == 10 and "going on from there" not in capsys.readouterr().out
    written = (tmp_path / "o" / "output_video.mp4").read_bytes()
    assert b"crf=24.0" in written and b"crf=18.0" not in written
    assert frames_and_size(tmp_path / "o" / "output_video.mp4") == (10, (128, 96))


def test_an_odd_upscaled_side_loses_its_last_pixel(tmp_path):
    """--scale 3 --model results/model_x3.h5 --crf 0 --no-steady --precision float32 on a 255x191 clip:
    the x3 luma is 765x573 and the output 764x572, the network's output on the source's Y without its
    last column and row (not its first)."""
    video = make_video(tmp_path / "odd.mkv", 255, 191, frames=2, codec="ffv1")
    x3 = model.CLEAN_MODELS[3]
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "upscale", "--scale", "3",
                        "--model", str(x3), "--crf", "0", "--no-steady", "--precision", "float32"])  # fmt: skip
    luma = planes(video)[0]
    expected = model.upscale(model.load_model(x3, 3), luma, precision="float32")[:, :572, :764]
    written = planes(tmp_path / "o" / "output_video.mp4")[0]
    np.testing.assert_allclose(written, dp.to_uint8(expected) / 255, atol=1.01 / 255)


def test_the_track_encodes_its_upscale_near_lossless_and_its_lr_at_crf_28_by_default(tmp_path, monkeypatch):
    """--mode track: its upscale of the LR is written at DEFAULT_CRF (10) whatever --crf (here 40);
    without --crf the LR is encoded at CRF 28 (lr_crf28.mp4). The track's folders are kept here."""
    folders = iter([tmp_path / "given", tmp_path / "default"])

    def kept_folder():
        folder = next(folders)
        folder.mkdir()
        return contextlib.nullcontext(str(folder))

    monkeypatch.setattr(testing_video.tempfile, "TemporaryDirectory", kept_folder)
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=3)
    command = ["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "track", "--scale", "2"]
    testing_video.main([*command, "--crf", "40"])
    assert b"crf=40.0" in (tmp_path / "given" / "lr_crf40.mp4").read_bytes()
    assert b"crf=10.0" in (tmp_path / "given" / "output_video.mp4").read_bytes()
    testing_video.main(command)
    assert sorted(p.name for p in (tmp_path / "default").glob("*.mp4")) == ["lr_crf28.mp4", "output_video.mp4"]
    assert b"crf=28.0" in (tmp_path / "default" / "lr_crf28.mp4").read_bytes()
    assert b"crf=10.0" in (tmp_path / "default" / "output_video.mp4").read_bytes()


def test_sound_that_an_mp4_cannot_hold_is_reencoded_to_aac(tmp_path):
    """A .mkv whose sound is mu-law PCM, which .mp4 cannot hold: --mode upscale re-encodes it to AAC
    (stream copy failing), and the output has its frames and that sound."""
    video = make_video(tmp_path / "clip.mkv", 64, 48, frames=3, audio=True, audio_codec="pcm_mulaw")
    assert any("Audio: pcm_mulaw" in line for line in ffprobe_streams(video))
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "upscale"])
    written = tmp_path / "o" / "output_video.mp4"
    assert any("Audio: aac" in line for line in ffprobe_streams(written))
    assert frames_and_size(written) == (3, (128, 96))


def test_size_resizes_the_upscale_by_antialiased_bicubic_and_keeps_square_pixels(tmp_path):
    """--size 100x56 --crf 0 --no-steady on a 64x36 clip of square pixels: the output's Y is the x2
    output's resized by an antialiased bicubic (testing.fit(), as for photos), within a fifth of a
    grey level on average (0.07; 2 at most where rounding differs; bilinear: 0.56 on average), and
    its pixels stay square (sar 1:1)."""
    with testing_video.VideoWriter(tmp_path / "clip.mp4", 64, 36, 10, crf=0) as writer:
        writer.write(np.stack([natural_image(36, 64, seed) for seed in range(2)]))
    command = ["--video", str(tmp_path / "clip.mp4"), "--mode", "upscale", "--crf", "0", "--no-steady"]
    testing_video.main([*command, "--out", str(tmp_path / "x2")])
    testing_video.main([*command, "--out", str(tmp_path / "sized"), "--size", "100x56"])
    sized = tmp_path / "sized" / "output_video.mp4"
    assert dp.video_info(sized)["size"] == (100, 56) and dp.video_info(sized)["sar"] == "1:1"
    upscaled = dp.to_uint8(planes(tmp_path / "x2" / "output_video.mp4")[0])
    written = planes(sized)[0] * 255
    bicubic = np.stack([testing.fit(y, 100, 56) for y in upscaled])
    bilinear = np.stack([np.asarray(Image.fromarray(y[..., 0]).resize((100, 56), Image.Resampling.BILINEAR))
                         for y in upscaled])[..., None]  # fmt: skip
    error = np.abs(written - bicubic)
    assert error.max() <= 3 and error.mean() < 0.2 < np.abs(written - bilinear).mean(), error.mean()


def test_the_resume_recipe_changes_with_each_setting_the_source_and_the_weights(tmp_path):
    """Kept segments are joined only to a run of the same recipe: any setting, the source file (its
    path or its time) or the model's weights changing makes another one."""
    video = make_video(tmp_path / "clip.mp4", 32, 24, frames=2)
    net = model.build_model(width=8, blocks=1)
    settings = dict(crf=14, precision="auto", length=50, size=(64, 48), preset="veryfast", steadier=True)
    first = testing_video.recipe(net, video, **settings)
    assert testing_video.recipe(net, video, **settings) == first
    changes = dict(crf=15, precision="float32", length=9, size=(60, 44), preset="slow", steadier=False)
    for key, value in changes.items():
        assert testing_video.recipe(net, video, **{**settings, key: value}) != first, key
    shutil.copy2(video, tmp_path / "copy.mp4")
    assert testing_video.recipe(net, tmp_path / "copy.mp4", **settings) != first
    os.utime(video, ns=(0, 0))
    assert testing_video.recipe(net, video, **settings) != first
    os.utime(video, ns=(10**18, 10**18))
    touched = testing_video.recipe(net, video, **settings)
    net.set_weights([w + 0.5 for w in net.get_weights()])
    assert testing_video.recipe(net, video, **settings) != touched


def test_behind_reports_a_failure_at_the_next_put_or_at_the_end_and_does_no_more_work():
    done = []

    def work(item):
        if item == "bad":
            raise OSError("disk full")
        done.append(item)

    with pytest.raises(OSError, match="disk full"):  # the last item failing: raised as the block ends
        with testing_video.Behind(work) as behind:
            behind.put("good")
            behind.put("bad")
    assert done == ["good"]
    done.clear()
    put = []
    with pytest.raises(OSError, match="disk full"):
        with testing_video.Behind(work) as behind:
            for item in ["bad", *range(1000)]:
                behind.put(item)
                put.append(item)
    assert len(put) < 10 and done == []  # an earlier failure: raised by a put() soon after, nothing more worked on


def settled(count, at_least):
    """len(count) once it has reached `at_least` and then not moved for a fifth of a second."""
    while len(count) < at_least:
        time.sleep(0.01)
    time.sleep(0.2)
    return len(count)


def test_behind_holds_at_most_two_items_waiting():
    """put() waits while two items wait behind the one being worked on: bounded memory."""
    release, put = threading.Event(), []

    def feed():
        with testing_video.Behind(lambda item: release.wait()) as behind:
            for item in range(10):
                behind.put(item)
                put.append(item)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert settled(put, 3) == 3  # one being worked on, two waiting
    finally:
        release.set()
        feeder.join()
    assert put == list(range(10))


def test_ahead_makes_at_most_depth_items_ahead_and_closes_its_source_on_its_thread():
    made, closed_on = [], []

    def source():
        try:
            for number in range(100):
                made.append(number)
                yield number
        finally:
            closed_on.append(threading.current_thread())

    numbers = source()  # held here, so only ahead() can close it
    items = testing_video.ahead(numbers, depth=2)
    assert next(items) == 0
    assert settled(made, 4) == 4  # one taken, two queued, one waiting to be queued
    items.close()
    assert len(closed_on) == 1 and closed_on[0] is not threading.main_thread()


def test_large_frames_go_through_the_network_one_at_a_time_in_tiles(tmp_path, monkeypatch):
    """Memory follows the pixels, not --batch-size: frames larger than FRAME_PIXELS go one by one and
    tiled; smaller ones up to --batch-size at a time, whole."""
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=5)
    calls = spy(monkeypatch, "upscale", lambda net, lr, **options: (len(lr), options["tile"]))
    command = ["--video", str(video), "--mode", "upscale", "--batch-size", "4", "--no-steady"]
    testing_video.main([*command, "--out", str(tmp_path / "a")])
    assert calls == [(4, None), (1, None)]
    calls.clear()
    monkeypatch.setattr(testing_video, "FRAME_PIXELS", 64 * 48 - 1)
    testing_video.main([*command, "--out", str(tmp_path / "b")])
    assert calls == [(1, model.TILE)] * 5


def test_sound_an_mp4_holds_is_copied_bit_for_bit(clip_with_sound, tmp_path):
    testing_video.main(["--video", str(clip_with_sound), "--out", str(tmp_path / "o"), "--mode", "upscale"])

    def audio_md5(path):
        command = dp.ffmpeg("-loglevel", "error", "-i", path, "-map", "0:a", "-c", "copy", "-f", "md5", "-")
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    assert audio_md5(tmp_path / "o" / "output_video.mp4") == audio_md5(clip_with_sound)


def test_flicker_leaves_out_its_border():
    """Outputs that flicker only within `border` pixels of the edges: 0 with that border, more without."""
    scene = scipy.ndimage.gaussian_filter(dp.to_luma(natural_image(64, 64, 5)), (1.5, 1.5, 0))
    noisy = scene.copy()
    noisy[:6] += np.random.default_rng(0).normal(0, 0.1, noisy[:6].shape).astype(np.float32)
    flicker, bordered = testing_video.Flicker(0), testing_video.Flicker(16)
    for output in (scene, noisy, scene):
        flicker.add(scene, output)
        bordered.add(scene, output)
    assert bordered.value() < flicker.value() / 20  # the flow's window carries a trace past the border


def test_a_segment_holds_at_most_segment_pixels(tmp_path, monkeypatch):
    """SEGMENT_PIXELS bounds a segment as well as SEGMENT_FRAMES: 3 frames' worth, 7 frames: 3 segments."""
    monkeypatch.setattr(testing_video, "SEGMENT_PIXELS", 3 * 64 * 48)
    joined = spy(monkeypatch, "join", lambda segments, *rest: len(segments))
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=7)
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "o"), "--mode", "upscale"])
    assert joined == [3] and frames_and_size(tmp_path / "o" / "output_video.mp4") == (7, (128, 96))


@pytest.mark.parametrize("mode", ["experiment", "track"])
def test_batch_size_reaches_the_experiment_and_the_track(tmp_path, monkeypatch, mode):
    calls = spy(monkeypatch, "upscale", lambda net, lr, *args, **options: len(lr))
    video = make_video(tmp_path / "clip.mp4", 64, 48, frames=5)
    testing_video.main(["--video", str(video), "--out", str(tmp_path / "o"), "--mode", mode, "--batch-size", "2",
                        "--frame", "0"])  # fmt: skip
    assert calls == [2, 2, 1]
