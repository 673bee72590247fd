"""Does a model fit the crops it was trained on better than unseen ones? Run by hand:
python tests/benchmarks/fit.py DATA.npz [DATA.npz ...] [--model MODEL.h5] [--scale 2|3|4]

For each file: the model's and bicubic's mean Y-PSNR (dB, `scale` border pixels cropped) on its test
crops and on as many of its training crops drawn at random, and the model's gain over bicubic on
each. A gain larger on the training crops than on the test crops is memorisation (more photographs
of the same kinds would help); a gain no larger shows none. The test photographs are others than
the training ones (some easier), so only the direction of the difference is read.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import data_preparation as dp  # noqa: E402
import model  # noqa: E402
from testing import measure  # noqa: E402


def mean_psnr(hr, sr, scale):
    return float(np.mean([measure(a, b, scale)[0] for a, b in zip(hr, sr)]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="+", metavar="DATA.npz")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=4)
    parser.add_argument("--model", help="default: the committed clean model of --scale")
    args = parser.parse_args()
    net = model.load_model(args.model or model.CLEAN_MODELS[args.scale], args.scale)
    print("| file | crops | n | bicubic | model | gain |\n| --- | --- | --- | --- | --- | --- |")
    for path in args.data:
        x_train, y_train, x_test, y_test = dp.load_dataset(path, scale=args.scale)
        drawn = np.sort(np.random.default_rng(0).choice(len(x_train), min(len(x_test), len(x_train)), replace=False))
        for crops, x, y in (("training", x_train[drawn], y_train[drawn]), ("test", x_test, y_test)):
            sr = mean_psnr(y, model.upscale(net, x, precision="float32"), args.scale)
            bicubic = mean_psnr(y, model.interpolate(x, "bicubic", args.scale), args.scale)
            print(f"| {Path(path).name} | {crops} | {len(x)} | {bicubic:.2f} | {sr:.2f} | {sr - bicubic:+.2f} |")


if __name__ == "__main__":
    main()
