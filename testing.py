"""Evaluate the models against scikit-image interpolation, run the field's benchmark, upscale any image.

    python testing.py                                  # metrics + figures on the bundled test split
    python testing.py --benchmark ../shared/benchmarks/Set5 ../shared/benchmarks/Set14 --jpeg 50 75 90
    python testing.py --benchmark ../shared/benchmarks/Set14 --jpeg 30 40 50 60 70 80 90 100 --sweep
    python testing.py --upscale photo.jpg scans/ --out upscaled/   # files and folders (recursively)
    python testing.py --benchmark ../shared/benchmarks/Set5 --scale 4 --jpeg 50 75 90   # x3 and x4 too
    python testing.py --upscale photo.jpg --size 1920x1080        # or --width W, --scale 3|4

Metrics: the field's protocol at the scale s (PSNR, SSIM with a Gaussian window, on Y, s border
pixels cropped; HR cropped to a multiple of s, LR by degrade(hr, s), then Pillow's JPEG for the
compressed track). --upscale picks the model by file type, and by --size the scale.
"""

import argparse
import collections
import concurrent.futures
import functools
import io
import re
import sys
from pathlib import Path

import imageio.v3 as iio
import matplotlib
import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

from data_preparation import (
    DEFAULT_DATASET,
    ORIENTATION_TAG,
    SCALE,
    SCALES,
    DataError,
    atomic_output,
    degrade,
    in_worker,
    jpeg,
    jpeg_luma,
    list_files,
    load_dataset,
    markdown_table,
    modcrop,
    output_folder,
    read_image,
    resize_bicubic,
    to_luma,
    warn,
    write_bytes,
)
from model import (
    CLEAN_MODELS,
    RESULTS,
    SEED_MODEL,
    SKIMAGE_ORDERS,
    TILE,
    add_compute_arguments,
    backend_line,
    interpolate,
    load_model,
    load_models,
    model_scale,
    upscale,
    upscale_image,
)

matplotlib.use("Agg")  # files, not windows, unless --show
import matplotlib.pyplot as plt  # noqa: E402

BORDER = SCALE  # pixels cropped from every side before measuring: the scale, as the field does
LOSSY_FORMATS = {"JPEG", "MPO", "WEBP", "JPEG2000", "HEIF", "AVIF"}  # Pillow's names; MPO: phones' JPEGs


# ---------------------------------------------------------------------------------------------
# Measuring


def measure(hr, sr, border=BORDER):
    """(PSNR dB, SSIM) of one grey image pair in [0, 1], `border` pixels cropped on every side."""
    if border:
        hr, sr = hr[border:-border, border:-border], sr[border:-border, border:-border]
    hr, sr = np.squeeze(hr, -1).astype(np.float64), np.squeeze(sr, -1).astype(np.float64)
    psnr = peak_signal_noise_ratio(hr, sr, data_range=1.0)
    ssim = structural_similarity(hr, sr, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return psnr, ssim


def write_csv(path, rows, columns):
    def cell(value):
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = [",".join(columns)] + [",".join(cell(row[column]) for column in columns) for row in rows]
    write_bytes(path, ("\n".join(lines) + "\n").encode())


def save_figure(figure, path, show):
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    if show:
        plt.show()
    plt.close(figure)


# ---------------------------------------------------------------------------------------------
# The default run: the bundled test split


def evaluate_test_split(
    models, data, results, self_ensemble=False, show=False, precision="auto", seed=True, scale=SCALE
):
    """metrics.csv/.md and the figures on the test split; at x3 and x4 (the LR made from the HR by
    degrade()) metrics_x<scale>.csv/.md and comparison_x<scale>.png."""
    _, _, x_test, y_test = load_dataset(data, scale)
    if not len(x_test):
        raise DataError(f"{', '.join(map(str, data))}: the test split is empty")
    suffix = "" if scale == SCALE else f"_x{scale}"
    outputs = {method: interpolate(x_test, method, scale) for method in SKIMAGE_ORDERS}
    outputs.update(
        {name: upscale(net, x_test, self_ensemble=self_ensemble, precision=precision) for name, net in models.items()}
    )
    if seed and scale == SCALE and SEED_MODEL.is_file():  # the original repo's network, when its weights are here
        outputs["seed"] = upscale(load_model(SEED_MODEL), x_test, precision="float32")
    scores = {
        method: np.array([measure(hr, out, scale) for hr, out in zip(y_test, sr)]) for method, sr in outputs.items()
    }
    write_csv(
        results / f"metrics{suffix}.csv",
        [
            dict(image=i, method=method, psnr=p, ssim=q)
            for method, values in scores.items()
            for i, (p, q) in enumerate(values)
        ],
        ["image", "method", "psnr", "ssim"],
    )
    table = markdown_table(
        ["method", "PSNR (dB)", "SSIM"],
        [
            [name, f"{v[:, 0].mean():.2f} ± {v[:, 0].std():.2f}", f"{v[:, 1].mean():.4f} ± {v[:, 1].std():.4f}"]
            for name, v in scores.items()
        ],
    )
    psnr_of = {method: values[:, 0] for method, values in scores.items()}
    (low, high) = x_test.shape[1], y_test.shape[1]
    lines = [
        f"# Bundled test split: {len(x_test)} pairs, {low}x{low} -> {high}x{high} (x{scale})",
        "",
        f"PSNR and SSIM on the grey {high}x{high} images, {scale} border pixels cropped (mean ± std).",
        "",
    ] + table
    write_bytes(results / f"metrics{suffix}.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(table))
    # The figures show where the methods differ: the test images that bicubic gets most wrong.
    hardest = np.argsort(psnr_of["skimage_bicubic"])
    draw_panels(x_test, y_test, outputs, results, show, indices=hardest[:4], name=f"comparison{suffix}.png")
    if scale != SCALE:  # the close-ups, the scatter and the JPEG figure are x2's
        return {name: tuple(values.mean(0)) for name, values in scores.items()}
    draw_zooms(x_test, y_test, outputs, results, show, indices=hardest[:3])
    draw_scatter(psnr_of, results, show)
    if "model_compressed" in models:
        draw_compressed(x_test, y_test, models, results, show, hardest[0], precision)
    return {name: tuple(values.mean(0)) for name, values in scores.items()}


def draw_grid(rows, path, show):
    """A figure of grey image panels: rows of (title, (H, W, 1) image)."""
    figure, axes = plt.subplots(len(rows), len(rows[0]), figsize=(3 * len(rows[0]), 3.2 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        for ax, (title, image) in zip(ax_row, row):
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    save_figure(figure, path, show)


def scored(title, hr, sr, scale=SCALE):
    return f"{title}\n{measure(hr, sr, scale)[0]:.2f} dB", sr


def draw_panels(x_test, y_test, outputs, results, show, indices, name="comparison.png"):
    """The original repo's figure: low-res input, high-res target, skimage rescaled, model."""
    draw_grid(
        [
            [
                (f"low resolution ({x_test.shape[2]}x{x_test.shape[1]})", x_test[i]),
                ("high resolution (target)", y_test[i]),
                scored(
                    "skimage bilinear", y_test[i], outputs["skimage_bilinear"][i], y_test.shape[1] // x_test.shape[1]
                ),
                scored("model", y_test[i], outputs["model"][i], y_test.shape[1] // x_test.shape[1]),
            ]
            for i in indices
        ],
        results / name,
        show,
    )


def worst_window(hr, sr, size):
    """(top, left) of the size x size window where sr is furthest from hr."""
    window = np.lib.stride_tricks.sliding_window_view(np.abs(hr - sr)[..., 0], (size, size)).sum((-1, -2))
    return np.unravel_index(np.argmax(window), window.shape)


def draw_zooms(x_test, y_test, outputs, results, show, indices, size=32):
    """Close-ups of the 32x32 windows where bicubic errs most: where an upscaler has work to do."""
    rows = []
    for i in indices:
        top, left = worst_window(y_test[i], outputs["skimage_bicubic"][i], size)
        crop = lambda image: image[top : top + size, left : left + size]  # noqa: E731
        rows.append(
            [
                (
                    f"{name.replace('_', ' ')} (test image {i})\n{measure(y_test[i], outputs[name][i])[0]:.2f} dB",
                    crop(outputs[name][i]),
                )
                for name in ("skimage_nearest", "skimage_bicubic", "model")
            ]
            + [("target", crop(y_test[i]))]
        )
    draw_grid(rows, results / "zoom.png", show)


def draw_scatter(psnr_of, results, show):
    figure, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(psnr_of["skimage_bicubic"], psnr_of["model"], s=8, alpha=0.6)
    low, high = min(psnr_of["skimage_bicubic"].min(), psnr_of["model"].min()), psnr_of["model"].max()
    ax.plot([low, high], [low, high], color="grey", linewidth=1, label="equal")
    better = np.mean(psnr_of["model"] > psnr_of["skimage_bicubic"])
    ax.set(
        xlabel="skimage bicubic PSNR (dB)",
        ylabel="model PSNR (dB)",
        title=f"per test image: the model is better on {better:.0%}",
    )
    ax.legend()
    save_figure(figure, results / "scatter.png", show)


def draw_compressed(x_test, y_test, models, results, show, index, precision, size=48):
    """JPEG q50 and q75 LR inputs: input, bicubic, model.h5, the compressed-input model, HR."""
    top, left = worst_window(hr := y_test[index], interpolate(x_test[index : index + 1], "bicubic")[0], size)
    crop = lambda title, image: (title, image[top : top + size, left : left + size])  # noqa: E731
    rows = []
    for quality in (50, 75):
        lr = jpeg_luma(x_test[index], quality)[None]
        sr = {name: upscale(net, lr, precision=precision)[0] for name, net in models.items()}
        outputs = [
            ("bicubic", interpolate(lr, "bicubic")[0]),
            ("model.h5", sr["model"]),
            ("compressed-input model", sr["model_compressed"]),
        ]
        rows.append(
            [crop(f"input, JPEG q{quality}", lr[0].repeat(SCALE, 0).repeat(SCALE, 1))]
            + [crop(*scored(title, hr, sr)) for title, sr in outputs]
            + [crop("HR", hr)]
        )
    draw_grid(rows, results / "compressed.png", show)


# ---------------------------------------------------------------------------------------------
# The field's benchmark on folders of HR images, clean and JPEG-compressed


def benchmark_images(folder, scale=SCALE):
    """(name, HR RGB) of the images in `folder`, HR cropped to a multiple of `scale`; unreadable files warned.
    A grey image is R = G = B, as the protocol's Y formula reads it (Set14's bridge: Y in 16-235,
    as the peers were measured), not grey passed through as Y."""
    images = []
    for path in list_files(folder):
        try:
            image = read_image(path)[..., :3]
            images.append((path.name, modcrop(np.repeat(image, 3, -1) if image.shape[-1] == 1 else image, scale)))
        except DataError as error:
            warn(f"skipped {error}")
    if not images:
        raise DataError(f"{folder}: no image")
    return images


def benchmark(models, folders, qualities=(), self_ensemble=False, precision="auto", scale=SCALE):
    """Per-image rows (input, dataset, image, method, psnr, ssim) at `scale` (the models' own):
    bicubic and each model, on the clean LR and on the LR JPEG'd by Pillow at each quality (the
    compressed track); `scale` border pixels cropped."""
    rows = []
    for folder in folders:
        dataset = Path(folder).resolve().name
        for name, hr in tqdm(benchmark_images(folder, scale), desc=dataset, unit="image", leave=False):
            hr_y, lr = to_luma(hr), degrade(hr, scale)
            for quality in (None, *qualities):
                lr_y = to_luma(lr if quality is None else jpeg(lr, quality))[None]
                methods = {"bicubic": interpolate(lr_y, "bicubic", scale)[0]}
                methods.update(
                    {method: upscale(net, lr_y, tile=TILE, precision=precision)[0] for method, net in models.items()}
                )
                if self_ensemble and quality is None:
                    methods.update(
                        {
                            f"{method}+": upscale(net, lr_y, self_ensemble=True, tile=TILE, precision=precision)[0]
                            for method, net in models.items()
                        }
                    )
                for method, sr in methods.items():
                    psnr, ssim = measure(hr_y, sr, scale)
                    rows.append(
                        dict(
                            input="clean" if quality is None else f"jpeg{quality}",
                            dataset=dataset,
                            image=name,
                            method=method,
                            psnr=psnr,
                            ssim=ssim,
                        )
                    )
    return rows


def published_numbers(folders, scale=SCALE):
    """{method: {dataset: "PSNR / SSIM"}} at `scale` from the README.md beside the benchmark folders:
    x2 from its first table of such numbers, x3 and x4 from the table whose columns are "x<scale> <dataset>"."""
    readme = Path(folders[0]).resolve().parent / "README.md"
    tables, table = [], []
    for line in (readme.read_text().splitlines() if readme.is_file() else []) + [""]:
        if line.startswith("|"):
            table += [] if "---" in line else [[cell.strip() for cell in line.strip().strip("|").split("|")]]
        elif table:
            tables.append(table)
            table = []
    prefix = "" if scale == SCALE else f"x{scale} "
    for header, *rows in tables:
        columns = {i: name[len(prefix) :] for i, name in enumerate(header) if name.startswith(prefix)}
        if scale == SCALE and any(re.match(r"x\d ", name) for name in header):
            continue
        found = {
            cells[0]: {columns[i]: cell for i, cell in enumerate(cells) if i in columns and NUMBERS.fullmatch(cell)}
            for cells in rows
        }
        found = {method: numbers for method, numbers in found.items() if numbers}
        if found:
            return found
    return {}


NUMBERS = re.compile(r"[\d.]+ / [\d.]+")  # "PSNR / SSIM", as published tables give them


def write_benchmark(rows, folders, results, name="benchmark", scale=SCALE):
    groups = {}
    for row in rows:
        groups.setdefault((row["input"], row["dataset"], row["method"]), []).append((row["psnr"], row["ssim"]))
    summary = {key: tuple(np.mean(values, 0)) for key, values in groups.items()}
    table = [dict(input=i, dataset=d, method=m, psnr=float(v[0]), ssim=float(v[1])) for (i, d, m), v in summary.items()]
    write_csv(results / f"{name}.csv", table, ["input", "dataset", "method", "psnr", "ssim"])
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    lines = [
        f"# Benchmark, x{scale}",
        "",
        f"PSNR (dB) / SSIM on Y (BT.601), {scale} border pixels cropped; HR cropped to a multiple of {scale}, "
        f"LR by `degrade(hr, {scale})`, for the compressed track then JPEG'd by Pillow at quality q. Ours "
        f"measured by `python testing.py --benchmark --scale {scale}`, the others as published.",
    ]
    for source in dict.fromkeys(row["input"] for row in rows):
        ours = {
            f"{m} (ours)": {
                d: f"**{summary[source, d, m][0]:.2f} / {summary[source, d, m][1]:.4f}**"
                for d in datasets
                if (source, d, m) in summary
            }
            for m in dict.fromkeys(row["method"] for row in rows if row["input"] == source)
        }
        published = published_numbers(folders, scale) if source == "clean" else {}
        lines += ["", f"## Input: {source}", ""] + markdown_table(
            ["method", *datasets],
            [[method, *(numbers.get(d, "-") for d in datasets)] for method, numbers in {**ours, **published}.items()],
        )
    write_bytes(results / f"{name}.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines[3:]))
    return summary


def draw_robustness(summary, results, show, scale=SCALE):
    """Y-PSNR against JPEG quality (and clean) for each method, one panel per dataset."""
    datasets = list(dict.fromkeys(d for _, d, _ in summary))
    figure, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for method in dict.fromkeys(m for _, d, m in summary if d == dataset and not m.endswith("+")):
            points = sorted(
                (int(i[4:]), v[0]) for (i, d, m), v in summary.items() if d == dataset and m == method and i != "clean"
            )
            (line,) = ax.plot(*zip(*points), marker="o", label=method)
            if ("clean", dataset, method) in summary:
                ax.axhline(summary["clean", dataset, method][0], color=line.get_color(), linestyle=":", linewidth=1)
        ax.set(
            xlabel="JPEG quality of the LR input",
            ylabel="Y-PSNR (dB)",
            title=f"{dataset}, x{scale} (dotted: clean input)",
        )
        ax.legend()
    save_figure(figure, results / "robustness.png", show)


# ---------------------------------------------------------------------------------------------
# Users' own images: the model for each file, colour, metadata kept


@functools.cache
def reference_tables():
    """{quality: Pillow's luma quantization table at that quality}, to match a JPEG's own against."""

    def table(quality):
        Image.new("L", (8, 8)).save(buffer := io.BytesIO(), "JPEG", quality=quality)
        return np.array(Image.open(buffer).quantization[0])

    return {quality: table(quality) for quality in range(1, 101)}


def describe(path):
    """(format, JPEG quality estimate or None, ICC profile, EXIF bytes without the orientation)."""
    try:
        with Image.open(path) as image:
            exif, quality = image.getexif(), None
            exif.pop(ORIENTATION_TAG, None)  # the pixels are turned upright when read
            if image.format in ("JPEG", "MPO") and getattr(image, "quantization", None):
                own = np.array(image.quantization[0])
                quality = min(reference_tables(), key=lambda q: np.abs(reference_tables()[q] - own).sum())
            return image.format, quality, image.info.get("icc_profile"), exif.tobytes() if len(exif) else None
    except Exception:  # not Pillow's format: read_image() will say what is wrong, or read it
        return None, None, None, None


def choose_model(path, models, override=None, described=None, scale=SCALE):
    """(model, line saying why) for one file: lossy formats get the compressed-input model of the
    scale, where it has one."""
    image_format, quality, _, _ = described or describe(path)
    said = f"{path}: {image_format or 'image'}" + (f", quality ~{quality}" if quality else "")
    if override is not None:
        return models["override"], f"{said} -> {override}"
    if image_format in LOSSY_FORMATS and "model_compressed" in models:
        return models["model_compressed"], f"{said} -> compressed-input model"
    return models["model"], f"{said} -> {CLEAN_MODELS[scale].name} (clean input)"


def output_size(height, width, size=None, width_only=None):
    """The (width, height) asked of an image of `width` x `height`: `size` (W, H) itself, or
    `width_only` with the aspect ratio kept; None when neither is asked."""
    if size:
        return tuple(size)
    if width_only:
        return width_only, max(1, round(width_only * height / width))
    return None


def scale_for(height, width, wanted, scales):
    """The smallest of `scales` whose output reaches `wanted` (W, H); the smallest when none is asked;
    a DataError when even the largest falls short."""
    if wanted is None:
        return min(scales)
    for scale in sorted(scales):
        if scale * width >= wanted[0] and scale * height >= wanted[1]:
            return scale
    raise DataError(f"{wanted[0]}x{wanted[1]} is more than x{max(scales)} of {width}x{height}")


def fit(pixels, width, height):
    """Integer pixels (H, W, C) resized to exactly `width` x `height`: antialiased bicubic (Pillow's,
    whose kernel widens when it shrinks), rounded back to the same integers."""
    if pixels.shape[:2] == (height, width):
        return pixels
    resized = resize_bicubic(pixels.astype(np.float32), height, width)
    return np.clip(np.round(resized), 0, np.iinfo(pixels.dtype).max).astype(pixels.dtype)


def upscale_files(models_at, inputs, out, self_ensemble=False, precision="auto", override=None, scales=(SCALE,),
                  size=None, width=None):  # fmt: skip
    """Upscale files, and folders recursively (their tree mirrored), into `out` as PNG; returns
    (errors, number of files); the other files still go. `models_at(scale)` gives the models of a
    scale; each file goes by the smallest of `scales` that reaches `size` (W, H) or `width`, then is
    resized to exactly that; without either, by scales[0]. A file whose output exists is skipped, so a
    rerun after an interruption continues. Reading ahead and writing overlap with the network."""
    jobs = [
        (path, out / path.relative_to(given).with_suffix(".png"))
        for given in map(Path, inputs)
        if given.is_dir()
        for path in list_files(given)
    ] + [(given, out / f"{given.stem}.png") for given in map(Path, inputs) if not given.is_dir()]
    todo = [(source, target) for source, target in jobs if not target.is_file()]
    if len(todo) < len(jobs):
        print(f"{len(jobs) - len(todo)} of {len(jobs)} files already upscaled in {out}: skipped")
    errors, writes = [], collections.deque()

    def settle(future):  # workers only read and write files (in_worker): the main thread prints
        value, error, warnings = future.result()
        for message in warnings:
            warn(message)
        if error is not None:
            errors.append(error)
            warn(error)
        return value

    def written(write):
        if said := settle(write):
            tqdm.write(said)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        reads = collections.deque(pool.submit(in_worker, read_image, source) for source, _ in todo[:2])
        for i, (source, target) in enumerate(tqdm(todo, desc="images", unit="file", disable=len(todo) < 2)):
            image = settle(reads.popleft())
            if i + 2 < len(todo):
                reads.append(pool.submit(in_worker, read_image, todo[i + 2][0]))
            if image is None:
                continue
            wanted = output_size(*image.shape[:2], size, width)
            try:
                scale = scale_for(*image.shape[:2], wanted, scales) if wanted else scales[0]
            except DataError as error:
                errors.append(f"{source}: {error}")
                warn(errors[-1])
                continue
            net, why = choose_model(source, models_at(scale), override, described := describe(source), scale)
            tqdm.write(f"{why}, x{scale}" + (f" then resized to {wanted[0]}x{wanted[1]}" if wanted else ""))
            dtype = np.uint16 if iio.improps(source).dtype == np.uint16 else np.uint8  # 16-bit stays 16-bit
            pixels = upscale_image(net, image, dtype, self_ensemble, precision=precision)
            if wanted:
                pixels = fit(pixels, *wanted)
            writes.append(pool.submit(in_worker, write_png, source, target, pixels, described))
            while writes and writes[0].done():
                written(writes.popleft())
        while writes:
            written(writes.popleft())
    return errors, len(jobs)


def write_png(source, target, pixels, described):
    """Integer `pixels` (H, W, C) as a PNG at `target`, with the source's ICC profile and EXIF;
    returns the line that says so."""
    _, _, icc, exif = described
    metadata = {key: value for key, value in (("icc_profile", icc), ("exif", exif)) if value}
    with atomic_output(target) as temporary:
        iio.imwrite(temporary, pixels[..., 0] if pixels.shape[-1] == 1 else pixels, extension=".png", **metadata)
    return f"{source} -> {target} ({pixels.shape[1]}x{pixels.shape[0]})"


# ---------------------------------------------------------------------------------------------


def parse_size(text):
    """ "WxH" -> (W, H), for argparse."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match or min(map(int, match.groups())) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def upscale_models(args):
    """(models_at(scale) -> {name: model}, the scales to choose from) for --upscale: --model's own
    scale, --scale's committed models, or with --size / --width every committed scale."""
    if args.model:
        model = load_model(args.model, args.scale)
        return (lambda scale: {"override": model}), (model_scale(model),)
    if args.scale or not (args.size or args.width):
        scale = args.scale or SCALE
        models = load_models(None, scale)
        return (lambda _: models), (scale,)
    scales = tuple(scale for scale, path in CLEAN_MODELS.items() if path.is_file())
    return functools.cache(lambda scale: load_models(None, scale)), scales


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    task = parser.add_mutually_exclusive_group()
    task.add_argument(
        "--benchmark",
        nargs="+",
        metavar="DIR",
        help="folders of HR images: the field's protocol at --scale; writes benchmark.csv/.md (x2), "
        "benchmark_x3.* / benchmark_x4.*",
    )
    task.add_argument(
        "--upscale",
        nargs="+",
        metavar="FILE_OR_DIR",
        help="upscale these images (folders recursively) by --scale, or to --size / --width, into --out, as PNG",
    )
    parser.add_argument(
        "--scale",
        type=int,
        choices=SCALES,
        default=None,
        help=f"the factor, and so the committed models of it (default: {SCALE}; the --model's own when given)",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        metavar="WxH",
        help="--upscale: exactly this output size: the smallest committed scale that reaches it, then an "
        "antialiased resize (more than x4 is an error)",
    )
    parser.add_argument(
        "--width", type=int, metavar="W", help="--upscale: as --size, the height keeping the aspect ratio"
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="the model to use (default: the committed ones of --scale, model.h5 and "
        "results/model_compressed.h5 at x2; for --upscale the one that fits each file)",
    )
    parser.add_argument(
        "--jpeg",
        nargs="+",
        type=int,
        default=[],
        metavar="Q",
        help="--benchmark: also the compressed track, LR JPEG'd by Pillow at these qualities (1-100)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="--benchmark --jpeg: write robustness.csv/.md and "
        "robustness.png (PSNR against quality) instead of benchmark.*",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=[str(DEFAULT_DATASET)],
        metavar="FILE.npz",
        help="datasets whose test split is evaluated (default: data/images.npz)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where tables and figures go (default: results/)")
    parser.add_argument("--out", type=Path, default=Path("upscaled"), help="folder for --upscale (default: upscaled/)")
    parser.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average the model over the 8 flips/rotations (EDSR+): ~8x slower, a little better",
    )
    parser.add_argument("--show", action="store_true", help="also open the figures in windows")
    add_compute_arguments(parser)
    args = parser.parse_args(argv)
    if (args.size or args.width) and not args.upscale:
        parser.error("--size and --width go with --upscale")
    if args.width is not None and args.width < 1:
        parser.error(f"--width must be at least 1, got {args.width}")
    return args


def run(args):
    """Upscale the files, run the benchmark, or evaluate the test split, as the arguments say."""
    if any(not 1 <= quality <= 100 for quality in args.jpeg):
        raise DataError(f"--jpeg: qualities must be in 1-100, got {' '.join(map(str, args.jpeg))}")
    missing = [folder for folder in args.benchmark or [] if not Path(folder).is_dir()]
    if missing:
        raise DataError(f"{missing[0]}: no such folder")
    if args.upscale:
        models_at, scales = upscale_models(args)
        output_folder(args.out, args.out)
        errors, files = upscale_files(models_at, args.upscale, args.out, args.self_ensemble, args.precision,
                                      args.model, scales, args.size, args.width)  # fmt: skip
        if errors:
            sys.exit(f"error: {len(errors)} of {files} files failed: " + "; ".join(errors))
        return
    models = load_models(args.model, args.scale)
    scale = model_scale(models["model"])
    output_folder(args.results, args.results)
    if args.benchmark:
        rows = benchmark(models, args.benchmark, args.jpeg, args.self_ensemble, args.precision, scale)
        name = ("robustness" if args.sweep else "benchmark") + ("" if scale == SCALE else f"_x{scale}")
        summary = write_benchmark(rows, args.benchmark, args.results, name, scale)
        if args.sweep:
            draw_robustness(summary, args.results, args.show, scale)
    else:
        evaluate_test_split(models, args.data, args.results, args.self_ensemble, args.show, args.precision,
                            seed=args.model is None, scale=scale)  # fmt: skip


def main(argv=None):
    args = parse_arguments(argv)
    print(backend_line(args.precision))
    if args.show:
        plt.switch_backend(matplotlib.rcParamsDefault["backend"])
    try:
        run(args)
    except DataError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        kept = "; the files written are kept: the same command again goes on with the rest" if args.upscale else ""
        print(f"\ninterrupted{kept}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
