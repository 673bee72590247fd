"""testing_video.py: both modes on generated videos, odd sizes, sound, bad input."""
import subprocess
import sys

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import REPO, ffprobe_streams, make_video
from test_data import run_main

import data_preparation as dp
import testing_video


def frames_and_size(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return sum(1 for _ in reader), tuple(meta["size"])


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


def test_upscale_mode_keeps_size_rate_and_sound(clip_with_sound, tmp_path):
    out = tmp_path / "out"
    testing_video.main(["--video", str(clip_with_sound), "--out", str(out), "--mode", "upscale"])
    assert frames_and_size(out / "output_video.mp4") == (12, (128, 96))
    assert dp.video_info(out / "output_video.mp4")["fps"] == pytest.approx(10)
    streams = ffprobe_streams(out / "output_video.mp4")
    assert any("Audio" in line for line in streams) and any("Video" in line for line in streams)
    frame = next(dp.read_video(out / "output_video.mp4"))
    assert frame[..., 0].std() > 0.05 and np.abs(frame[..., 0] - frame[..., 2]).mean() > 0.02  # colour kept


def test_odd_sized_video_without_sound(tmp_path):
    video = make_video(tmp_path / "odd.mkv", 255, 191, frames=3, codec="ffv1")
    out = tmp_path / "out"
    testing_video.main(["--video", str(video), "--out", str(out), "--mode", "upscale"])
    assert frames_and_size(out / "output_video.mp4") == (3, (510, 382))
    assert not any("Audio" in line for line in ffprobe_streams(out / "output_video.mp4"))
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
        code, err = run_main(testing_video.main, ["--video", str(path), "--out", str(tmp_path / "out"),
                                                  "--mode", mode], capsys)
        assert code != 0 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")
        assert "bad.mp4" in err.strip().splitlines()[-1]
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def peak_rss_mb(command):
    """Peak resident memory of a command, in MB, measured in a fresh process around it."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout) / 1024


def test_memory_does_not_grow_with_the_video_length(tmp_path):
    """Streaming: a 24 s clip peaks within 30 % of a 4 s one (kept frames would add ~0.9 GB)."""
    peaks = {}
    for seconds in (4, 24):
        video = make_video(tmp_path / f"clip{seconds}.mp4", 320, 240, frames=10 * seconds)
        command = [sys.executable, str(REPO / "testing_video.py"), "--video", str(video), "--mode", "upscale",
                   "--out", str(tmp_path / f"out{seconds}")]
        peaks[seconds] = peak_rss_mb(command)
    assert frames_and_size(tmp_path / "out24" / "output_video.mp4") == (240, (640, 480))
    assert peaks[24] < 1.3 * peaks[4], peaks
