"""How much does video I/O cost? Run by hand:
python tests/benchmarks/video.py [--video FILE] [--model M.h5 | --tiny] [--crf C] [--preset P] [--sequential]
    [--precision float32]

In one run, on the same frames: `--mode upscale` end to end (decode, upscale, encode, mux); the
network alone on the luma already in memory; and ffmpeg alone decoding, resizing by the model's
scale (bicubic) and encoding the same clip, with the same encoder settings and with libx264's
defaults. Prints frames/s of each and the ratios. --tiny: a 1-block, 8-channel network (too small
to matter: what a GPU makes of any network), so that the rest shows. An AVX2-only CPU, roughly,
on one with AVX-512: ONEDNN_MAX_CPU_ISA=AVX2 and --precision float32.
"""

import argparse
import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import data_preparation as dp  # noqa: E402
import model  # noqa: E402
import testing_video  # noqa: E402


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=dp.SAMPLE_VIDEO)
    parser.add_argument("--model", type=Path, default=model.COMPRESSED_MODEL, help="(default: what upscale uses at x2)")
    parser.add_argument("--tiny", action="store_true", help="a 1-block, 8-channel network instead of --model")
    parser.add_argument("--crf", type=int, default=testing_video.UPSCALE_CRF)
    parser.add_argument("--preset", default=testing_video.UPSCALE_PRESET)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequential", action="store_true", help="one thing at a time (no decoding/encoding threads)")
    parser.add_argument("--precision", choices=model.PRECISIONS, default="auto")
    args = parser.parse_args()
    net = model.build_model(width=8, blocks=1) if args.tiny else model.load_model(args.model)
    scale = model.model_scale(net)
    width, height = dp.video_info(args.video)["size"]
    luma = np.stack([y for y, _ in dp.read_yuv420(args.video)])
    at_once = testing_video.frames_at_once(width, height, args.batch_size)
    upscale = functools.partial(model.upscale, net, precision=args.precision)
    upscale(luma[:at_once])  # warm-up: tracing
    with tempfile.TemporaryDirectory() as out:
        options = dict(crf=args.crf, preset=args.preset, threads=not args.sequential, precision=args.precision)
        count, end_to_end = timed(lambda: testing_video.upscale_video(net, args.video, out, args.batch_size, **options))

        def ffmpeg_alone(crf, preset):  # decode, resize by the scale (bicubic), encode, copy the sound
            command = dp.ffmpeg("-y", "-loglevel", "error", "-i", args.video, "-vf",
                                f"scale={scale * width}:{scale * height}:flags=bicubic", "-c:v", "libx264", "-crf",
                                crf, "-preset", preset, "-pix_fmt", "yuv420p", "-c:a", "copy",
                                Path(out) / "ffmpeg.mp4")  # fmt: skip
            return timed(lambda: subprocess.run(command, check=True))[1]

        same, defaults = ffmpeg_alone(args.crf, args.preset), ffmpeg_alone(23, "medium")
    _, network = timed(lambda: [upscale(luma[i : i + at_once]) for i in range(0, len(luma), at_once)])
    name = "tiny network" if args.tiny else args.model.name
    print(f"{args.video.name}: {count} frames of {width}x{height} -> x{scale}, {name}, CRF {args.crf} {args.preset}")
    print(f"end to end ({'sequential' if args.sequential else 'pipelined'}): {count / end_to_end:6.2f} frames/s")
    print(f"the network alone on the luma:    {count / network:6.2f} frames/s ({network / end_to_end:.0%} of it)")
    for what, seconds in (("the same settings", same), ("its defaults, CRF 23 medium", defaults)):
        print(f"ffmpeg alone (decode, resize, encode), {what}: {count / seconds:6.2f} frames/s "
              f"(ratio ffmpeg time / ours {seconds / end_to_end:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
