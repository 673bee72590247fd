"""Upscale a video frame by frame, streaming (frames are read, upscaled and written as they go).

    python testing_video.py                         # the original experiment on data/carphone_pristine.mp4
    python testing_video.py --video clip.mp4 --out DIR                  # the same experiment on any video
    python testing_video.py --video clip.mp4 --out DIR --mode upscale   # 2x in colour, sound kept
    python testing_video.py --video clip.mp4 --mode upscale --scale 4   # 4x; or --size 1920x1080, --width W
    python testing_video.py --mode track --crf 28   # the video track: LR encoded by libx264, end to end

experiment: each frame becomes a grey 128x128 HR frame, its LR 64x64 by degrade() and the model's
reconstruction; writes input_video.mp4 (LR, enlarged by nearest neighbour), output_video.mp4,
side_by_side.mp4 (LR | skimage bilinear | model | HR) and frame.png, and prints PSNR/SSIM per method.
upscale: writes output_video.mp4 at --scale times the width and height (or resized to --size),
the luma through the network and the chroma bicubic in the video's own yuv420p planes, at the
source's frame rate and pixel aspect ratio, with the source's audio stream copied; decoding and
encoding run beside the network on threads. Real videos are compressed, so this mode uses the
compressed-input model of the scale where there is one (--model overrides).
track: the protocol's video track on the HR video at --scale: LR frames by degrade(), encoded at
--crf, then `upscale` end to end; the decoded output against the HR frames (Y-PSNR and flicker,
tOF), beside bicubic of the decoded LR.
"""

import argparse
import contextlib
import itertools
import json
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import imageio_ffmpeg
import matplotlib
import numpy as np
from skimage.registration import optical_flow_ilk
from tqdm import tqdm

from data_preparation import (
    EXACT_SCALING,
    HR_SIZE,
    SAMPLE_VIDEO,
    SCALE,
    SCALES,
    DataError,
    VideoEncoder,
    atomic_output,
    degrade,
    ffmpeg,
    hr_patches,
    output_folder,
    read_video,
    read_yuv420,
    to_luma,
    to_uint8,
    video_info,
    write_bytes,
)
from model import (
    CLEAN_MODELS,
    COMPRESSED_MODELS,
    DEFAULT_MODEL,
    RESULTS,
    TILE,
    add_compute_arguments,
    backend_line,
    interpolate,
    load_model,
    model_scale,
    upscale,
    weights_crc32,
)
from testing import draw_panels, measure, output_size, parse_size, scale_for

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = ("low resolution", "skimage bilinear", "model", "high resolution")
METHODS = ("skimage_bilinear", "skimage_bicubic", "model")
# libx264's quality (CRF: 0 lossless, 51 worst; 18 looks lossless) and speed against file size (preset)
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
DEFAULT_CRF, DEFAULT_PRESET = 10, "medium"  # near-lossless: the experiment's videos, the video track's output
UPSCALE_CRF, UPSCALE_PRESET = 14, "veryfast"  # --mode upscale: 1.5-1.7x faster, 45 % smaller (results/README.md)
TRACK_CRF = 28  # --mode track: the LR's encoding, the benchmark's video track


def batches(frames, size):
    iterator = iter(frames)
    while batch := list(itertools.islice(iterator, size)):
        yield np.stack(batch)


class VideoWriter:
    """Frames in [0, 1], (N, H, W, 1 or 3), into an H.264 .mp4 (yuv420p, exact colour conversion).
    The file appears only when the writer closes without error (atomic_output); `sar` keeps a
    non-square pixel shape ("128:117")."""

    def __init__(self, path, width, height, fps, grey=False, crf=DEFAULT_CRF, sar="1:1", options=(), filters=(),
                 pix_fmt=None, preset=DEFAULT_PRESET):  # fmt: skip
        self.path, self.size = Path(path), (width, height)
        self.output = atomic_output(self.path)
        self.partial = self.output.__enter__()
        chain = ",".join([*filters, f"setsar={sar.replace(':', '/')}"])
        options = ["-crf", crf, "-preset", preset, "-vf", chain, *EXACT_SCALING, *options]
        pix_fmt = pix_fmt or ("gray" if grey else "rgb24")
        try:
            self.encoder = VideoEncoder(self.partial, width, height, fps, pix_fmt, options)
        except OSError as error:
            self.output.__exit__(type(error), error, error.__traceback__)
            raise DataError(f"{self.path}: cannot write ({error})") from None

    def write(self, frames):
        for frame in to_uint8(frames):
            self.encoder.write(np.ascontiguousarray(frame).tobytes())

    def write_planes(self, luma, chroma, scale):
        """Frames given as their yuv420p planes: the luma (N, H, W, 1) as it is, the chroma (N, h, w,
        2) of the frames before upscaling, resized x `scale` by bicubic (as in upscale_color), both
        in [0, 1], cut to the writer's size. The scale is given, not derived from the planes' sizes:
        for an odd height the half-size chroma has a row more than half the luma's."""
        width, height = self.size
        chroma = interpolate(chroma, "bicubic", scale)[:, : -(-height // 2), : -(-width // 2)]
        for y, cbcr in zip(to_uint8(luma[:, :height, :width]), to_uint8(chroma)):
            self.encoder.write(y.tobytes() + cbcr.transpose(2, 0, 1).tobytes())

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        try:
            self.encoder.__exit__(error_type, error, traceback)
        except BaseException as failure:  # the partial file goes, the failure is reported in one line
            self.output.__exit__(type(failure), failure, failure.__traceback__)
            if isinstance(failure, RuntimeError):
                raise DataError(f"{self.path}: {failure}") from None
            raise
        return self.output.__exit__(error_type, error, traceback)


def join(segments, audio_from, target):
    """The segments (MPEG-TS, each stamped with its own start time, so that one after the other
    they are one stream) copied, not re-encoded, into `target`, with the audio stream of
    `audio_from` if it has one (`1:a?`): copied, or re-encoded to AAC only where the .mp4
    container cannot hold its codec. Written whole or not at all."""
    whole = target.with_name(f".{target.name}.ts")
    with open(whole, "wb") as joined:
        for segment in segments:
            with open(segment, "rb") as part:
                shutil.copyfileobj(part, joined)
    try:
        with atomic_output(target) as temporary:
            for audio in ("copy", "aac"):
                command = ffmpeg("-y", "-loglevel", "error", "-i", whole, "-i", audio_from, "-map", "0:v:0",
                                 "-map", "1:a:0?", "-c:v", "copy", "-c:a", audio, temporary)  # fmt: skip
                if subprocess.run(command, capture_output=True).returncode == 0:
                    return
            raise DataError(f"{audio_from}: its audio could not be copied")
    finally:
        whole.unlink(missing_ok=True)


def label_band(width, height=32):
    """A strip with the column titles, drawn once by matplotlib."""
    figure = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    figure.patch.set_facecolor("black")
    for i, title in enumerate(COLUMNS):
        figure.text((i + 0.5) / len(COLUMNS), 0.5, title, color="white", ha="center", va="center", fontsize=8)
    figure.canvas.draw()
    band = np.asarray(figure.canvas.buffer_rgba())[..., :1].astype(np.float32) / 255
    plt.close(figure)
    return band


def experiment(model, video, out, frame_number=60, batch_size=32, crf=DEFAULT_CRF, precision="auto",
               preset=DEFAULT_PRESET):  # fmt: skip
    """The original repo's experiment on any video; returns {method: (mean PSNR, mean SSIM)}."""
    fps = video_info(video)["fps"]
    band = label_band(len(COLUMNS) * HR_SIZE)
    scores = {method: [] for method in METHODS}
    shown = None
    out = Path(out)
    with (
        VideoWriter(out / "input_video.mp4", HR_SIZE, HR_SIZE, fps, grey=True, crf=crf, preset=preset) as inputs,
        VideoWriter(out / "output_video.mp4", HR_SIZE, HR_SIZE, fps, grey=True, crf=crf, preset=preset) as outputs,
        VideoWriter(
            out / "side_by_side.mp4",
            len(COLUMNS) * HR_SIZE,
            HR_SIZE + len(band),
            fps,
            grey=True,
            crf=crf,
            preset=preset,
        ) as side_by_side,
        tqdm(desc=Path(video).name, unit="frame") as progress,
    ):
        first = 0
        for frames in batches(read_video(video), batch_size):
            hr = np.stack([hr_patches(to_luma(frame), "resize")[0] for frame in frames]).astype(np.float32)
            lr = degrade(hr)
            results = {method: interpolate(lr, method) for method in METHODS[:-1]}
            results["model"] = upscale(model, lr, batch_size, precision=precision)
            enlarged = lr.repeat(2, axis=1).repeat(2, axis=2)  # nearest neighbour, to be seen
            inputs.write(enlarged)
            outputs.write(results["model"])
            row = np.concatenate([enlarged, results["skimage_bilinear"], results["model"], hr], axis=2)
            side_by_side.write(np.concatenate([np.broadcast_to(band, (len(row), *band.shape)), row], axis=1))
            for method, sr in results.items():
                scores[method] += [measure(target, image) for target, image in zip(hr, sr)]
            if first <= frame_number < first + len(frames):
                i = frame_number - first
                shown = lr[i : i + 1], hr[i : i + 1], {m: sr[i : i + 1] for m, sr in results.items()}
            first += len(frames)
            progress.update(len(frames))
        if first == 0:
            raise DataError(f"{video}: the video has no frames")
    if shown is None:
        raise DataError(f"--frame {frame_number}: the video has only {first} frames")
    draw_panels(*shown, out, show=False, indices=[0], name="frame.png")
    means = {method: tuple(np.mean(values, 0)) for method, values in scores.items()}
    print(f"{first} frames, PSNR / SSIM on the grey 128x128 frames:")
    for method, (psnr, ssim) in means.items():
        print(f"  {method:18s} {psnr:6.2f} dB  {ssim:.4f}")
    return means


FRAME_PIXELS = 2_100_000  # input pixels upscaled at once (one 1080p frame): memory follows, not the frame count
SEGMENT_FRAMES, SEGMENT_PIXELS = 50, 20_000_000  # a resumable piece of --mode upscale: frames, input pixels


def frames_at_once(width, height, limit):
    """How many frames of this size go through the network together: at most `limit`, fewer the
    larger they are (one 4K frame alone), so that memory is bounded whatever the resolution."""
    return max(1, min(limit, FRAME_PIXELS // (width * height)))


class Segments:
    """The finished segments of one --mode upscale run, in a folder beside the output: a run that
    is stopped keeps them, and the same command started again goes on after the last one. They
    belong to one `recipe` (the source file, the model's weights, the settings); another starts over."""

    def __init__(self, target, recipe):
        self.folder = target.with_name(f".{target.name}.segments")
        manifest = self.folder / "recipe.json"
        if manifest.is_file() and json.loads(manifest.read_text()) != recipe:
            shutil.rmtree(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"{target}: cannot write ({error.strerror})") from None
        write_bytes(manifest, json.dumps(recipe).encode())

    def done(self):
        return sorted(self.folder.glob("segment*.ts"))

    def path(self, index):
        return self.folder / f"segment{index:05d}.ts"

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def recipe(model, video, crf, precision, length, size, preset=DEFAULT_PRESET, steadier=True):
    """What makes a run's output: the source file (path, size, time), the model's weights, the
    settings, the output size and the segments' length."""
    stat = Path(video).stat()
    weights = weights_crc32(model)
    return {"video": str(Path(video).resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "weights_crc32": weights, "crf": crf, "precision": precision, "segment_frames": length,
            "size": list(size), "preset": preset, "steadier": steadier}  # fmt: skip


def upscale_video(model, video, out, batch_size=32, crf=UPSCALE_CRF, precision="auto", size=None,
                  preset=UPSCALE_PRESET, threads=True, steadier=True):  # fmt: skip
    """The video as it is upscaled by the model's scale, in colour, at its frame rate and pixel
    aspect ratio, with its audio; resized then (antialiased bicubic, by ffmpeg) to `size` (W, H,
    even) when given. The luma goes through the network, Cb and Cr bicubic, in the video's own
    planes (yuv420p in and out: no colour conversion); a side that the scale makes odd loses its
    last pixel (yuv420p needs even sides). Decoding runs ahead of the network and the chroma and
    encoding behind it, on threads (`threads`; the same frames either way), with bounded queues.
    `steadier`: less flicker (steady()). In segments of at most SEGMENT_FRAMES frames and
    SEGMENT_PIXELS pixels (9 frames of 1080p), so that a stopped run continues where it was and
    loses at most a segment's work."""
    info = video_info(video)
    width, height = info["size"]
    scale = model_scale(model)
    upscaled = (scale * width - scale * width % 2, scale * height - scale * height % 2)
    size = tuple(size or upscaled)
    target = Path(out) / "output_video.mp4"
    length = max(1, min(SEGMENT_FRAMES, SEGMENT_PIXELS // (width * height)))  # frames a segment
    segments = Segments(target, recipe(model, video, crf, precision, length, size, preset, steadier))
    resize = [] if size == upscaled else [f"scale={size[0]}:{size[1]}:flags=bicubic+accurate_rnd+full_chroma_int"]
    done, total = len(segments.done()), imageio_ffmpeg.count_frames_and_secs(str(video))[0]
    chunks = planes_by_segment(video, info["size"], done * length, length, frames_at_once(width, height, batch_size))
    tile = TILE if width * height > FRAME_PIXELS else None  # a frame is tiled only when larger than 1080p

    def open_segment(index):  # each segment's time stamps go on from the last one's (no B-frame before its start)
        starts_at = ["-bf", 0, "-output_ts_offset", index * length / info["fps"], "-muxdelay", 0, "-muxpreload", 0]
        return VideoWriter(segments.path(index), *upscaled, info["fps"], crf=crf, sar=info["sar"], preset=preset,
                           options=starts_at, filters=resize, pix_fmt="yuv420p")  # fmt: skip

    writer = SegmentWriter(open_segment, scale)
    with (
        tqdm(total=total, initial=min(total, done * length), desc=Path(video).name, unit="frame") as bar,
        contextlib.closing(ahead(chunks) if threads else chunks) as decoded,  # its thread and ffmpeg end with it
    ):
        if done:
            tqdm.write(f"{done * length} frames upscaled before: going on from there")
        try:
            with Behind(writer, threads) as encoding:
                before = None  # (segment, the last frame's LR luma and output): steady() within a segment
                for index, luma, chroma in decoded:
                    sr = upscale(model, luma, tile=tile, precision=precision)
                    if steadier:
                        sr, last = steady(sr, luma, before[1] if before and before[0] == index else None)
                        before = index, last
                    encoding.put((index, sr, chroma))
                    bar.update(len(luma))
        except BaseException as error:  # the segment being written is not kept
            writer.close(error)
            raise
        writer.close()
    if not segments.done():
        segments.remove()
        raise DataError(f"{video}: the video has no frames")
    join(segments.done(), video, target)
    count = bar.n
    segments.remove()
    print(f"{target}: {count} frames at {size[0]}x{size[1]} (x{scale} of {width}x{height}), {info['fps']} fps")
    return count


STEADY_BLEND, STEADY_CHANGE = 0.3, 4 / 255  # chosen on the sample's video track (results/README.md)


def steady(sr, lr, before=None, blend=STEADY_BLEND, change=STEADY_CHANGE):
    """Less flicker, cheaply: where a frame's LR luma differs from the frame before's by less than
    `change`, its output moves `blend` of the way to the output before (as it was given out), so
    that detail the network draws afresh on a still scene does not come and go. Returns (the
    outputs, (the last LR, its output): `before` for the next call)."""
    scale, out = sr.shape[1] // lr.shape[1], sr.copy()
    height, width = lr.shape[1:3]
    for t in range(len(out)):
        if before is not None:  # the weight at LR size, spread over each pixel's scale x scale outputs by broadcasting
            weight = np.where(np.abs(lr[t] - before[0]) < change, np.float32(blend), np.float32(0))
            pixels = out[t].reshape(height, scale, width, scale)
            pixels += weight.reshape(height, 1, width, 1) * (before[1].reshape(pixels.shape) - pixels)
        before = lr[t], out[t]
    return out, before


def planes_by_segment(video, size, start, length, at_once):
    """(segment index, luma (n, H, W, 1), chroma (n, H/2, W/2, 2)) of at most `at_once` frames at a
    time, from frame `start` on, each segment of `length` frames in its own chunks. A failure to
    read is a DataError naming the video."""
    frames = itertools.islice(read_yuv420(video, size), start, None)
    try:
        for index in itertools.count(start // length):
            for first in range(0, length, at_once):
                chunk = list(itertools.islice(frames, min(at_once, length - first)))
                if not chunk:
                    return
                luma, chroma = zip(*chunk)
                yield index, np.stack(luma), np.stack(chroma)
    except (OSError, ValueError) as error:
        raise DataError(f"{video}: decoding failed ({error})") from None


class SegmentWriter:
    """The encoding side of upscale_video(): each (segment index, luma, chroma) into its segment's
    file, a segment closed (its encoder waited for) as the next begins, on the thread that calls it,
    so the network goes on meanwhile; close() ends the last one, or drops it after `error`. A
    failure of the encoder is a DataError naming the output."""

    def __init__(self, open_segment, scale):
        self.open_segment, self.scale, self.writer, self.index = open_segment, scale, None, None

    def __call__(self, item):
        index, luma, chroma = item
        if index != self.index:
            self.close()
            self.writer, self.index = self.open_segment(index), index
        try:
            self.writer.write_planes(luma, chroma, self.scale)
        except OSError as error:
            raise DataError(f"{self.writer.path}: the encoder failed ({error.strerror or error})") from None

    def close(self, error=None):
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.__exit__(type(error) if error else None, error, None)


def ahead(iterable, depth=2):
    """The items of `iterable`, made on a thread up to `depth` ahead of the caller (bounded memory);
    what the thread raises is raised here, and the thread is stopped when the caller stops."""
    items, stop, end = queue.Queue(depth), threading.Event(), object()

    def hand_over(item):
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                return items.put(item, timeout=0.1)

    def produce():
        try:
            for item in iterable:
                if stop.is_set():
                    return
                hand_over((item, None))
            hand_over((end, None))
        except BaseException as error:  # the caller raises it
            hand_over((end, error))
        finally:
            if hasattr(iterable, "close"):
                iterable.close()  # its ffmpeg stopped on this thread, where the generator runs

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (got := items.get())[0] is not end:
            yield got[0]
        if got[1] is not None:
            raise got[1]
    finally:
        stop.set()
        thread.join()


class Behind:
    """A context manager that calls `work(item)` for each item put, in order, on a thread (or at
    once, without `threaded`), at most two waiting; the block ends when the last is done. What the
    thread raises is raised by the next put() or at the block's end."""

    def __init__(self, work, threaded=True):
        self.work, self.error, self.items = work, None, queue.Queue(2)
        self.thread = threading.Thread(target=self.run, daemon=True) if threaded else None

    def run(self):
        while (item := self.items.get()) is not None:
            if self.error is None:  # after a failure the items are only taken, so put() never waits forever
                try:
                    self.work(item)
                except BaseException as error:
                    self.error = error

    def put(self, item):
        if self.thread is None:
            return self.work(item)
        if self.error is not None:
            raise self.error
        self.items.put(item)

    def __enter__(self):
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, error_type, error, traceback):
        if self.thread is not None:
            self.items.put(None)
            self.thread.join()
        if self.error is not None and error_type is None:
            raise self.error


def video_track(model, video, crf, batch_size=8, precision="auto", steadier=True):
    """The protocol's video track at the model's scale: {"psnr" | "tof": {"bicubic" | "model": ...}},
    the mean Y-PSNR (dB) of the decoded outputs against the HR frames (cropped so that the LR has
    even sides, as yuv420p needs) and their flicker (Flicker: tOF, pixels), the LR being degrade()
    of each frame encoded by libx264 at `crf`; `scale` border pixels cropped."""
    info = video_info(video)
    scale = model_scale(model)
    width, height = (side - side % (2 * scale) for side in info["size"])

    def hr_frames():  # decoded twice (to encode the LR, to compare), never all held in memory
        return (frame[:height, :width] for frame in read_video(video))

    with tempfile.TemporaryDirectory() as folder:
        lr_video = Path(folder) / f"lr_crf{crf}.mp4"
        with VideoWriter(lr_video, width // scale, height // scale, info["fps"], crf=crf) as writer:
            for frames in batches(hr_frames(), batch_size):
                writer.write(degrade(frames, scale))
        upscale_video(model, lr_video, folder, batch_size, DEFAULT_CRF, precision, preset=DEFAULT_PRESET,
                      steadier=steadier)  # fmt: skip
        scores, flicker = {"bicubic": [], "model": []}, {"bicubic": Flicker(scale), "model": Flicker(scale)}
        frames = zip(hr_frames(), read_video(lr_video), read_video(Path(folder) / "output_video.mp4"))
        with np.errstate(divide="ignore"):  # a frame reproduced exactly: infinite PSNR, left out below
            for hr, lr, sr in frames:
                hr_y, outputs = to_luma(hr), {"bicubic": interpolate(lr[None], "bicubic", scale)[0], "model": sr}
                for method, output in outputs.items():
                    scores[method].append(measure(hr_y, to_luma(output), scale)[0])
                    flicker[method].add(hr_y, to_luma(output))
    # A frame both reproduce exactly (black, say) has no PSNR (infinite): left out of every mean.
    finite = np.isfinite(scores["bicubic"]) & np.isfinite(scores["model"])
    means = {method: float(np.mean(np.array(values)[finite])) for method, values in scores.items()}
    tof = {method: measured.value() for method, measured in flicker.items()}
    left_out = f" ({np.sum(~finite)} reproduced exactly, left out)" if not finite.all() else ""
    print(
        f"video track x{scale}, LR at CRF {crf}, {np.sum(finite)} frames{left_out}, Y-PSNR: "
        f"bicubic {means['bicubic']:.2f} dB, model {means['model']:.2f} dB ({means['model'] - means['bicubic']:+.2f}); "
        f"flicker (tOF, pixels): bicubic {tof['bicubic']:.3f}, model {tof['model']:.3f}"
    )
    return {"psnr": means, "tof": tof}


class Flicker:
    """tOF, how faithfully an output moves from frame to frame: over each pair of consecutive frames,
    the optical flow of the output (scikit-image's optical_flow_ilk on Y) against the HR video's own
    flow, the mean absolute difference of the two (pixels, horizontal + vertical), `border` pixels
    cropped. 0 for the HR video itself; detail that comes and goes raises it."""

    def __init__(self, border=0):
        self.border, self.before, self.errors = border, None, []

    def add(self, reference, output):
        """The next frame: the HR frame's Y and the output's Y, (H, W, 1) in [0, 1]."""
        inner = (slice(None),) + (slice(self.border, -self.border or None),) * 2
        if self.before is not None:
            moved = optical_flow_ilk(self.before[1][..., 0], output[..., 0])
            truth = optical_flow_ilk(self.before[0][..., 0], reference[..., 0])
            self.errors.append(float(np.abs(moved - truth)[inner].sum(0).mean()))
        self.before = reference, output

    def value(self):
        return float(np.mean(self.errors)) if self.errors else float("nan")


def even_size(height, width, size=None, width_only=None):
    """The output (W, H) asked by --size / --width, or None; yuv420p needs even sides."""
    wanted = output_size(height, width, size, width_only)
    if wanted and width_only:
        wanted = tuple(side + side % 2 for side in wanted)
    if wanted and (wanted[0] % 2 or wanted[1] % 2):
        raise DataError(f"--size {wanted[0]}x{wanted[1]}: a video's width and height must be even")
    return wanted


def default_model(mode, scale, source_size, size):
    """The committed model for the mode: model.h5 for the experiment; otherwise, at --scale (or the
    smallest committed scale that reaches `size`), the compressed-input model, else the clean one."""
    if mode == "experiment":
        return DEFAULT_MODEL
    if scale is None:
        scales = [s for s, path in CLEAN_MODELS.items() if path.is_file() or COMPRESSED_MODELS.get(s, path).is_file()]
        scale = scale_for(*source_size[::-1], size, scales) if size else SCALE
    compressed = COMPRESSED_MODELS.get(scale)
    return compressed if compressed and compressed.is_file() else CLEAN_MODELS[scale]


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=SAMPLE_VIDEO, help="input video (default: the bundled sample)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder (default: results/)")
    parser.add_argument(
        "--mode",
        choices=["experiment", "upscale", "track"],
        default="experiment",
        help="experiment: grey 128x128 frames, LR by degrade(), comparison videos; "
        "upscale: the video as it is, 2x, in colour, with sound; track: the video track "
        "of the benchmark protocol (default: experiment)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="the model (default: model.h5 for experiment; otherwise the compressed-input model of --scale, "
        "results/model_compressed.h5 at x2, or its clean-input model where it has none)",
    )
    parser.add_argument("--scale", type=int, choices=SCALES, default=None,
                        help=f"upscale / track: the factor (default: {SCALE}, or the --model's own)")  # fmt: skip
    parser.add_argument("--size", type=parse_size, metavar="WxH", help="upscale: exactly this output size (even "
                        "sides): the smallest committed scale that reaches it, then an antialiased resize")  # fmt: skip
    parser.add_argument("--width", type=int, metavar="W", help="upscale: as --size, the height keeping the "
                        "aspect ratio (rounded to even)")  # fmt: skip
    parser.add_argument(
        "--crf",
        type=int,
        default=None,
        help=f"libx264 CRF of the written videos (default: {UPSCALE_CRF} for upscale, {DEFAULT_CRF} for experiment); "
        f"track: of the LR (default: {TRACK_CRF})",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help=f"libx264 preset of the written videos: faster or smaller (default: {UPSCALE_PRESET} for upscale, "
        f"{DEFAULT_PRESET} for experiment)",
    )
    parser.add_argument(
        "--steady",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="upscale / track: less flicker, where the scene stands still the output leans on the frame before",
    )
    parser.add_argument("--frame", type=int, default=60, help="experiment: the frame shown in frame.png (default: 60)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="frames upscaled at once, at most: fewer when they are large (default: 32)",
    )
    add_compute_arguments(parser)
    args = parser.parse_args(argv)
    if (args.size or args.width) and args.mode != "upscale":
        parser.error("--size and --width go with --mode upscale")
    if args.mode == "experiment" and args.scale not in (None, SCALE):
        parser.error(f"--mode experiment is the original x{SCALE} experiment: --scale goes with upscale and track")
    return args


def run(args):
    """Run the --mode asked for on --video, each with its own defaults of CRF and preset."""
    if args.crf is not None and not 0 <= args.crf <= 51:
        raise DataError(f"--crf must be in 0-51, got {args.crf}")
    info = video_info(args.video)  # a one-line error for a file that is not a video, before any writing
    output_folder(args.out, args.out)
    size = even_size(*info["size"][::-1], args.size, args.width) if args.mode == "upscale" else None
    model_path = args.model or default_model(args.mode, args.scale, info["size"], size)
    model = load_model(model_path, args.scale)
    print(f"model: {model_path}")
    if args.mode == "experiment":
        crf = DEFAULT_CRF if args.crf is None else args.crf
        preset = args.preset or DEFAULT_PRESET
        experiment(model, args.video, args.out, args.frame, args.batch_size, crf, args.precision, preset)
    elif args.mode == "upscale":
        crf = UPSCALE_CRF if args.crf is None else args.crf
        preset = args.preset or UPSCALE_PRESET
        upscale_video(model, args.video, args.out, args.batch_size, crf, args.precision, size, preset,
                      steadier=args.steady)  # fmt: skip
    else:
        crf = TRACK_CRF if args.crf is None else args.crf
        video_track(model, args.video, crf, args.batch_size, args.precision, args.steady)


def main(argv=None):
    args = parse_arguments(argv)
    print(backend_line(args.precision))
    try:
        run(args)
    except DataError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        kept = "; the finished segments are kept: run the same command again to go on" if args.mode == "upscale" else ""
        print(f"\ninterrupted{kept}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
