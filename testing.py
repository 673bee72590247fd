"""Evaluate model.h5 against scikit-image interpolation, and upscale any image.

    python testing.py                                  # metrics + figures on the bundled test split
    python testing.py --benchmark ../shared/benchmarks/Set5 ../shared/benchmarks/Set14
    python testing.py --upscale photo.jpg scan.png --out upscaled/
    python testing.py --benchmark DIR --self-ensemble  # average over the 8 flips/rotations

Metrics follow the field's protocol: PSNR and SSIM (Gaussian window, sigma 1.5) on the luma,
2 border pixels cropped, with LR images made by data_preparation.degrade().
"""
import argparse
import re
import sys
from pathlib import Path

import imageio.v3 as iio
import matplotlib
import numpy as np
import tensorflow as tf
from skimage.color import rgb2ycbcr, ycbcr2rgb
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize
from tqdm import tqdm

from data_preparation import (DEFAULT_DATASET, SCALE, DataError, atomic_write, degrade, list_files,
                              load_dataset, modcrop, read_image, to_luma, warn)
from model import DEFAULT_MODEL, RESULTS, SEED_MODEL, load_model, upscale

matplotlib.use("Agg")  # files, not windows, unless --show
import matplotlib.pyplot as plt  # noqa: E402

BORDER = 2  # pixels cropped from every side before measuring, as the field does for x2
TILE = 256  # LR pixels per tile for user images: bounded memory, identical result
SKIMAGE_ORDERS = {"skimage_nearest": 0, "skimage_bilinear": 1, "skimage_bicubic": 3}


# ---------------------------------------------------------------------------------------------
# Measuring


def interpolate(lr, method):
    """x2 upscaling of (N, H, W, C) by a fixed method: scikit-image's resize of the given order
    (the original repo's baselines) or "bicubic", the field's (MATLAB-like, tf.image.resize)."""
    lr = np.asarray(lr, np.float32)
    height, width = lr.shape[1:3]
    if method == "bicubic":
        return np.clip(tf.image.resize(lr, (SCALE * height, SCALE * width), method="bicubic").numpy(), 0, 1)
    shape = (SCALE * height, SCALE * width, lr.shape[-1])
    return np.stack([resize(image, shape, order=SKIMAGE_ORDERS[method]) for image in lr]).astype(np.float32)


def measure(hr, sr, border=BORDER):
    """(PSNR dB, SSIM) of one grey image pair in [0, 1], `border` pixels cropped on every side."""
    if border:
        hr, sr = hr[border:-border, border:-border], sr[border:-border, border:-border]
    hr, sr = np.squeeze(hr, -1).astype(np.float64), np.squeeze(sr, -1).astype(np.float64)
    psnr = peak_signal_noise_ratio(hr, sr, data_range=1.0)
    ssim = structural_similarity(hr, sr, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    return psnr, ssim


def summarise(rows, key):
    """{group: (mean PSNR, std PSNR, mean SSIM, std SSIM)} of rows grouped by `key`."""
    groups = {}
    for row in rows:
        groups.setdefault(key(row), []).append((row["psnr"], row["ssim"]))
    return {name: (*np.mean(values, 0), *np.std(values, 0)) for name, values in groups.items()}


def write_csv(path, rows, columns):
    def cell(value):
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = [",".join(columns)] + [",".join(cell(row[column]) for column in columns) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def write_text(path, text):
    atomic_write(path, lambda file: file.write(text.encode()))


def save_figure(figure, path, show):
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=110, bbox_inches="tight"))
    if show:
        plt.show()
    plt.close(figure)


# ---------------------------------------------------------------------------------------------
# The default run: the bundled test split


def evaluate_test_split(model, data, results, self_ensemble=False, show=False):
    _, _, x_test, y_test = load_dataset(data)
    if not len(x_test):
        raise DataError(f"{', '.join(map(str, data))}: the test split is empty")
    outputs = {method: interpolate(x_test, method) for method in SKIMAGE_ORDERS}
    outputs["model"] = upscale(model, x_test, self_ensemble=self_ensemble)
    if Path(SEED_MODEL).is_file():
        outputs["seed"] = upscale(load_model(SEED_MODEL), x_test)
    rows = [dict(image=i, method=method, psnr=p, ssim=s)
            for method, sr in outputs.items()
            for i, (p, s) in enumerate(measure(hr, out) for hr, out in zip(y_test, sr))]
    write_csv(results / "metrics.csv", rows, ["image", "method", "psnr", "ssim"])
    summary = summarise(rows, lambda row: row["method"])
    lines = [f"# Bundled test split: {len(x_test)} pairs, 64x64 -> 128x128",
             "", f"PSNR and SSIM on the grey 128x128 images, {BORDER} border pixels cropped (mean ± std).", "",
             "| method | PSNR (dB) | SSIM |", "| --- | --- | --- |"]
    lines += [f"| {name} | {psnr:.2f} ± {psnr_sd:.2f} | {ssim:.4f} ± {ssim_sd:.4f} |"
              for name, (psnr, ssim, psnr_sd, ssim_sd) in summary.items()]
    write_text(results / "metrics.md", "\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    psnr_of = {method: np.array([r["psnr"] for r in rows if r["method"] == method]) for method in outputs}
    draw_panels(x_test, y_test, outputs, results, show)
    draw_zooms(x_test, y_test, outputs, psnr_of, results, show)
    draw_scatter(psnr_of, results, show)
    return summary


def shown_images(count, total):
    return np.linspace(0, total - 1, count).round().astype(int)


def draw_panels(x_test, y_test, outputs, results, show, count=4, name="comparison.png"):
    """The original repo's figure: low-res input, high-res target, skimage rescaled, model."""
    figure, axes = plt.subplots(count, 4, figsize=(12, 3 * count), squeeze=False)
    for row, index in zip(axes, shown_images(count, len(x_test))):
        bilinear, sr = outputs["skimage_bilinear"][index], outputs["model"][index]
        panels = [("low resolution (64x64)", x_test[index]), ("high resolution (target)", y_test[index]),
                  (f"skimage bilinear\n{measure(y_test[index], bilinear)[0]:.2f} dB", bilinear),
                  (f"model\n{measure(y_test[index], sr)[0]:.2f} dB", sr)]
        for ax, (title, image) in zip(row, panels):
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    save_figure(figure, results / name, show)


def draw_zooms(x_test, y_test, outputs, psnr_of, results, show, count=3, size=32):
    """Close-ups where the model gains most over bicubic: the 32x32 window of largest change."""
    gains = psnr_of["model"] - psnr_of["skimage_bicubic"]
    chosen = np.argsort(gains)[::-1][:count]
    columns = ["skimage_nearest", "skimage_bicubic", "model"]
    figure, axes = plt.subplots(count, len(columns) + 1, figsize=(3 * (len(columns) + 1), 3 * count), squeeze=False)
    for row, index in zip(axes, chosen):
        change = np.abs(outputs["model"][index] - outputs["skimage_bicubic"][index])[..., 0]
        window = np.lib.stride_tricks.sliding_window_view(change, (size, size)).sum((-1, -2))
        top, left = np.unravel_index(np.argmax(window), window.shape)
        crop = lambda image: image[top:top + size, left:left + size, 0]
        panels = [(name.replace("_", " "), outputs[name][index]) for name in columns] + [("target", y_test[index])]
        for ax, (title, image) in zip(row, panels):
            ax.imshow(crop(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"{title} (test image {index})", fontsize=9)
            ax.axis("off")
    save_figure(figure, results / "zoom.png", show)


def draw_scatter(psnr_of, results, show):
    figure, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(psnr_of["skimage_bicubic"], psnr_of["model"], s=8, alpha=0.6)
    low, high = min(psnr_of["skimage_bicubic"].min(), psnr_of["model"].min()), psnr_of["model"].max()
    ax.plot([low, high], [low, high], color="grey", linewidth=1, label="equal")
    better = np.mean(psnr_of["model"] > psnr_of["skimage_bicubic"])
    ax.set(xlabel="skimage bicubic PSNR (dB)", ylabel="model PSNR (dB)",
           title=f"per test image: the model is better on {better:.0%}")
    ax.legend()
    save_figure(figure, results / "scatter.png", show)


# ---------------------------------------------------------------------------------------------
# The field's benchmark on folders of HR images


def benchmark_images(folder):
    """(name, HR) of the images in `folder`, HR cropped to even size; unreadable files warned."""
    images = []
    for path in list_files(folder):
        try:
            images.append((path.name, modcrop(read_image(path)[..., :3])))
        except DataError as error:
            warn(f"skipped {error}")
    if not images:
        raise DataError(f"{folder}: no image")
    return images


def benchmark(model, folders, self_ensemble=False):
    """Per-image rows (dataset, image, method, psnr, ssim) of bicubic and the model."""
    rows = []
    for folder in folders:
        dataset = Path(folder).resolve().name
        for name, hr in tqdm(benchmark_images(folder), desc=dataset, unit="image", leave=False):
            lr_y, hr_y = to_luma(degrade(hr)), to_luma(hr)
            methods = {"bicubic": interpolate(lr_y[None], "bicubic")[0],
                       "model": upscale(model, lr_y[None], tile=TILE)[0]}
            if self_ensemble:
                methods["model+"] = upscale(model, lr_y[None], self_ensemble=True, tile=TILE)[0]
            for method, sr in methods.items():
                psnr, ssim = measure(hr_y, sr)
                rows.append(dict(dataset=dataset, image=name, method=method, psnr=psnr, ssim=ssim))
    return rows


def published_numbers(folders):
    """{method: {dataset: "PSNR / SSIM"}} from the README.md beside the benchmark folders."""
    readme = Path(folders[0]).resolve().parent / "README.md"
    if not readme.is_file():
        return {}
    table = [line.strip().strip("|").split("|") for line in readme.read_text().splitlines()
             if line.startswith("|") and "---" not in line]
    if not table:
        return {}
    header = [cell.strip() for cell in table[0]]
    published = {}
    for cells in table[1:]:
        cells = [cell.strip() for cell in cells]
        numbers = {column: cell for column, cell in zip(header, cells) if re.fullmatch(r"[\d.]+ / [\d.]+", cell)}
        if numbers:
            published[cells[0]] = numbers
    return published


def write_benchmark(rows, folders, results):
    summary = summarise(rows, lambda row: (row["dataset"], row["method"]))
    table = [dict(dataset=d, method=m, psnr=float(v[0]), ssim=float(v[1])) for (d, m), v in summary.items()]
    write_csv(results / "benchmark.csv", table, ["dataset", "method", "psnr", "ssim"])
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    lines = ["# Benchmark, x2", "",
             f"PSNR (dB) / SSIM on Y (BT.601), {BORDER} border pixels cropped; LR by `degrade()`. "
             "Ours measured by `python testing.py --benchmark`, the others as published.", "",
             "| method | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    ours = {f"{m} (ours)": {d: f"**{summary[d, m][0]:.2f} / {summary[d, m][1]:.4f}**"
                            for d in datasets if (d, m) in summary}
            for m in dict.fromkeys(row["method"] for row in rows)}
    for name, numbers in {**ours, **published_numbers(folders)}.items():
        lines.append(f"| {name} | " + " | ".join(numbers.get(d, "-") for d in datasets) + " |")
    write_text(results / "benchmark.md", "\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    return summary


# ---------------------------------------------------------------------------------------------
# Users' own images


def upscale_color(model, images, self_ensemble=False, tile=TILE):
    """x2 of (N, H, W, C) images in [0, 1]: grey through the network; colour as Y through the
    network and chroma bicubic (BT.601, as MATLAB's rgb2ycbcr); alpha bicubic."""
    if images.shape[-1] == 1:
        return upscale(model, images, self_ensemble=self_ensemble, tile=tile)
    ycbcr = rgb2ycbcr(images[..., :3]).astype(np.float32) / 255
    y = upscale(model, ycbcr[..., :1], self_ensemble=self_ensemble, tile=tile)
    rest = interpolate(np.concatenate([ycbcr[..., 1:], images[..., 3:]], -1), "bicubic")
    rgb = np.clip(ycbcr2rgb(np.concatenate([y, rest[..., :2]], -1) * 255), 0, 1).astype(np.float32)
    return np.concatenate([rgb, rest[..., 2:]], -1)


def upscale_files(model, files, out, self_ensemble=False):
    """Upscale each file into out/NAME.png; returns the errors (the other files still go)."""
    out = Path(out)
    errors = []
    for path in tqdm(files, desc="images", unit="file", disable=len(files) < 2):
        try:
            image = read_image(path)
            sixteen_bit = iio.improps(path).dtype == np.uint16
            sr = upscale_color(model, image[None], self_ensemble)[0]
            scale = 65535 if sixteen_bit else 255
            pixels = np.round(sr * scale).astype(np.uint16 if sixteen_bit else np.uint8)
            pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
            target = out / f"{Path(path).stem}.png"
            atomic_write(target, lambda file: iio.imwrite(file, pixels, extension=".png"))
            tqdm.write(f"{path} -> {target} ({sr.shape[1]}x{sr.shape[0]})")
        except DataError as error:
            errors.append(str(error))
            warn(str(error))
    return errors


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the model (default: model.h5)")
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT_DATASET)], metavar="FILE.npz",
                        help="datasets whose test split is evaluated (default: data/images.npz)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where tables and figures go (default: results/)")
    parser.add_argument("--benchmark", nargs="+", metavar="DIR",
                        help="folders of HR images: the field's x2 protocol; writes benchmark.csv/.md")
    parser.add_argument("--upscale", nargs="+", metavar="FILE", help="upscale these images 2x into --out")
    parser.add_argument("--out", type=Path, default=Path("upscaled"), help="folder for --upscale (default: upscaled/)")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="average the model over the 8 flips/rotations (EDSR+): ~8x slower, a little better")
    parser.add_argument("--show", action="store_true", help="also open the figures in windows")
    args = parser.parse_args(argv)
    if args.show:
        plt.switch_backend(matplotlib.rcParamsDefault["backend"])
    try:
        model = load_model(args.model)
        if args.upscale:
            errors = upscale_files(model, args.upscale, args.out, args.self_ensemble)
            if errors:
                sys.exit(f"error: {len(errors)} of {len(args.upscale)} files failed: " + "; ".join(errors))
        elif args.benchmark:
            rows = benchmark(model, args.benchmark, args.self_ensemble)
            write_benchmark(rows, args.benchmark, args.results)
        else:
            evaluate_test_split(model, args.data, args.results, args.self_ensemble, args.show)
    except DataError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
