"""Which loss trains best? Run by hand: python tests/benchmarks/loss.py [--epochs N] [--threads T]

Trains the same small residual network (same seed, data, schedule and number of steps) with each
loss and prints the best validation PSNR on the bundled test split. The default loss of
training.py was chosen with it (README, "Choices measured").
"""

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import tensorflow as tf  # noqa: E402

import training  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per loss (default: 10)")
    parser.add_argument("--width", type=int, default=16, help="channels of the proxy network (default: 16)")
    parser.add_argument("--blocks", type=int, default=4, help="residual blocks of the proxy (default: 4)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads, 0 for all (default: 0)")
    parser.add_argument("--steps", type=int, default=0, help="steps per epoch, 0 for one pass (default: 0)")
    parser.add_argument("--data", default=str(training.DEFAULT_DATASET), help="the dataset (default: the bundled one)")
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    results = {}
    for loss in training.LOSSES:
        with tempfile.TemporaryDirectory() as folder:
            fit = training.run(
                dataclasses.replace(
                    training.FIRST_RUN,
                    width=args.width,
                    blocks=args.blocks,
                    epochs=args.epochs,
                    steps_per_epoch=args.steps,
                    data=(args.data,),
                    patience=args.epochs,
                    loss=loss,
                    seed=0,
                    out=Path(folder) / "m.h5",
                    history=Path(folder) / "history.csv",
                )
            )
        results[loss] = max(fit.history["val_psnr"])
        print(f"{loss:12s} best validation PSNR {results[loss]:.3f} dB", flush=True)
    print(f"best loss: {max(results, key=results.get)}")


if __name__ == "__main__":
    main()
