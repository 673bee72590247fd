"""Which libx264 settings should `--mode upscale` write with? Run by hand:
python tests/benchmarks/encoder.py [--video FILE] [--model M.h5 | --tiny] [--crf C ...] [--preset P ...]

Upscales the video once losslessly (CRF 0), then once per CRF and preset; prints a Markdown table
of each output's time end to end (frames/s), size (kbit/s) and Y-PSNR against the lossless output
(what the encoding costs the model's result).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import data_preparation as dp  # noqa: E402
import model  # noqa: E402
import testing_video  # noqa: E402


def luma(path):
    return np.stack([y for y, _ in dp.read_yuv420(path)]).astype(np.float64)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=dp.SAMPLE_VIDEO)
    parser.add_argument("--model", type=Path, default=model.COMPRESSED_MODEL)
    parser.add_argument("--tiny", action="store_true", help="a 1-block, 8-channel network instead of --model")
    parser.add_argument("--crf", type=int, nargs="+", default=[10, 14, 18, 23])
    parser.add_argument("--preset", nargs="+", default=["medium", "fast", "veryfast"])
    args = parser.parse_args()
    net = model.build_model(width=8, blocks=1) if args.tiny else model.load_model(args.model)
    info = dp.video_info(args.video)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        reference = Path(folder) / "lossless"
        testing_video.upscale_video(net, args.video, reference, crf=0, preset="ultrafast")
        lossless = luma(reference / "output_video.mp4")
        for preset in args.preset:
            for crf in args.crf:
                out = Path(folder) / f"{preset}{crf}"
                start = time.perf_counter()
                count = testing_video.upscale_video(net, args.video, out, crf=crf, preset=preset)
                seconds = time.perf_counter() - start
                written = out / "output_video.mp4"
                kbits = written.stat().st_size * 8 / 1000 / (count / info["fps"])
                mse = np.mean((luma(written) - lossless) ** 2)
                psnr = 10 * np.log10(1 / mse) if mse else float("inf")
                rows.append([preset, crf, f"{count / seconds:.2f}", f"{kbits:.0f}", f"{psnr:.2f}"])
    name = "tiny network" if args.tiny else args.model.name
    print(f"{args.video.name} ({info['size'][0]}x{info['size'][1]}), {name}")
    print("\n".join(dp.markdown_table(["preset", "CRF", "frames/s", "kbit/s", "Y-PSNR vs lossless (dB)"], rows)))


if __name__ == "__main__":
    main()
