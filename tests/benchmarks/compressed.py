"""Each model on the bundled test split, per kind of input. Run by hand:
python tests/benchmarks/compressed.py [MODEL.h5 ...] [--scale 2|3|4]

Every one of the 308 test tiles is given clean, JPEG'd (jpeg_luma) at 30, 50, 75 and 90, and
H.264-encoded (h264_luma) at CRF 23, 28 and 33; prints a Markdown table of the mean Y-PSNR (dB,
no border cropped, as training's validation) of bicubic and of each model. At --scale 3 or 4 the
LR is degrade(HR, scale) of the same HR tiles (cropped to a multiple of the scale), as training
makes it, then compressed the same way. The test split chooses, never Set5 or Set14 (README).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

import data_preparation as dp  # noqa: E402
import model  # noqa: E402
import training  # noqa: E402

QUALITIES = (30, 50, 75, 90)
CRFS = (23, 28, 33)


def inputs(x):
    """{name: the test split's LR as that input} for each kind of input."""
    kinds = {"clean": x}
    kinds.update({f"JPEG q{q}": np.stack([dp.jpeg_luma(lr, q) for lr in x]) for q in QUALITIES})
    kinds.update({f"H.264 CRF {crf}": dp.h264_luma(x, crf) for crf in CRFS})
    return kinds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "models",
        nargs="*",
        type=Path,
        help="models to compare (default: the committed ones of --scale: model.h5 and results/model_compressed.h5 "
        "at x2)",
    )
    parser.add_argument("--scale", type=int, choices=dp.SCALES, default=dp.SCALE, help="the factor (default: 2)")
    args = parser.parse_args()
    committed = [model.CLEAN_MODELS[args.scale], model.COMPRESSED_MODELS.get(args.scale)]
    args.models = args.models or [path for path in committed if path and path.is_file()]
    _, _, x_test, y_test = dp.load_dataset(dp.DEFAULT_DATASET, args.scale)
    kinds = inputs(x_test)
    rows = {
        "bicubic": {
            name: np.mean(
                model.keras.ops.convert_to_numpy(training.psnr(y_test, model.interpolate(lr, "bicubic", args.scale)))
            )
            for name, lr in kinds.items()
        }
    }
    for path in args.models:
        net = model.load_model(path, args.scale)
        rows[str(path)] = {
            name: np.mean(
                model.keras.ops.convert_to_numpy(training.psnr(y_test, model.upscale(net, lr, precision="float32")))
            )
            for name, lr in kinds.items()
        }
    print(
        "\n".join(
            dp.markdown_table(
                ["method", *kinds], [[name, *(f"{v:.2f}" for v in row.values())] for name, row in rows.items()]
            )
        )
    )


if __name__ == "__main__":
    main()
