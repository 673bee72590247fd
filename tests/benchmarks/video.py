"""How much does video I/O cost? Run by hand: python tests/benchmarks/video.py [--video FILE]

Upscales a video end to end (decode, upscale, encode, mux) in `--mode upscale`, then runs the
model alone on the same frames already in memory, and prints both rates and the I/O overhead.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import data_preparation  # noqa: E402
import model  # noqa: E402
import testing_video  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=data_preparation.SAMPLE_VIDEO)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    net = model.load_model(model.COMPRESSED_MODEL)  # what --mode upscale uses
    frames = np.stack(list(data_preparation.read_video(args.video)))
    model.upscale_color(net, frames[: args.batch_size])  # warm-up: tracing
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        count = testing_video.upscale_video(net, args.video, out, args.batch_size)
        end_to_end = time.perf_counter() - start
    start = time.perf_counter()
    for first in range(0, len(frames), args.batch_size):
        model.upscale_color(net, frames[first : first + args.batch_size])
    inference = time.perf_counter() - start
    print(f"{args.video.name}: {count} frames of {frames.shape[2]}x{frames.shape[1]}")
    print(f"end to end (decode + upscale + encode + mux): {count / end_to_end:.1f} frames/s")
    print(f"upscaling alone, frames in memory:            {count / inference:.1f} frames/s")
    print(f"I/O overhead: {end_to_end / inference - 1:.0%} of the upscaling time")


if __name__ == "__main__":
    main()
