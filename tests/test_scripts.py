"""Every script: --help works, importing it has no side effects, one copy of the shared functions,
no import circle."""

import ast
import concurrent.futures
import subprocess
import sys

import pytest
from conftest import REPO, in_background

import data_preparation
import testing
import testing_video
import training

SCRIPTS = ["data_preparation.py", "model.py", "training.py", "testing.py", "testing_video.py"]


def repo_files():
    return {
        p
        for p in REPO.rglob("*")
        if "__pycache__" not in p.parts and ".pytest_cache" not in p.parts and ".git" not in p.parts
    }


@pytest.mark.parametrize("main", [data_preparation.main, training.main, testing.main, testing_video.main])
def test_help(main, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and out.startswith("usage:") and "--" in out


def test_model_py_is_the_first_training_run(capsys):
    """model.py becomes `training.py --new` (test_model.py's resume test runs it): the help of a new
    run is model.py's, with the first run's defaults; the seed recipe keeps the flags given."""
    with pytest.raises(SystemExit):
        training.main(["--new", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: model.py") and "(default: 300)" in out and "(default: 0.001)" in out
    seed = training.parse_config(["--new", "--arch", "seed", "--patience", "3", "--strategy", "mirrored"])
    assert (seed.loss, seed.batch_size, seed.patience, seed.strategy) == ("mse", 200, 3, "mirrored")
    assert (training.parse_config([]).epochs, training.parse_config([]).lr) == (50, 2e-4)  # continuing


@pytest.mark.slow
def test_importing_the_scripts_does_nothing():
    before = repo_files()
    code = "import data_preparation, model, training, testing, testing_video"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and repo_files() == before


def imports_of(script):
    names = set()
    for node in ast.walk(ast.parse((REPO / script).read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return {f"{name}.py" for name in names} & set(SCRIPTS)


def test_no_import_circle():
    """Imports go one way: data_preparation <- model <- training, testing <- testing_video."""
    reachable = {script: imports_of(script) for script in SCRIPTS}
    for _ in SCRIPTS:  # transitive closure
        reachable = {s: deps | {d for dep in deps for d in reachable[dep]} for s, deps in reachable.items()}
    assert [script for script in SCRIPTS if script in reachable[script]] == []


def test_one_definition_of_each_shared_function():
    definitions = {}
    for script in SCRIPTS + ["data/build_bundled.py"]:
        for node in ast.walk(ast.parse((REPO / script).read_text())):
            if isinstance(node, ast.FunctionDef):
                definitions.setdefault(node.name, []).append(script)
    for name in [
        "degrade",
        "jpeg",
        "load_dataset",
        "upscale",
        "upscale_color",
        "to_luma",
        "read_video",
        "measure",
        "atomic_output",
        "markdown_table",
    ]:
        assert len(definitions.get(name, [])) == 1, (name, definitions.get(name))


@pytest.mark.slow
def test_loss_benchmark_runs_each_loss_through_training(tiny_dataset):
    """The benchmark the default loss was chosen with still runs against training.run()."""
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "benchmarks" / "loss.py"),
            *"--epochs 1 --steps 8 --width 4 --blocks 1 --data".split(),
            str(tiny_dataset),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if "best validation PSNR" in line and "saved" not in line]
    assert [line.split()[0] for line in lines] == list(training.LOSSES)
    assert result.stdout.rstrip().splitlines()[-1].split(": ")[1] in training.LOSSES


UNWRITABLE = [
    ("training.py", ["--new", "--epochs", "1"], "m.h5"),
    ("model.py", ["--epochs", "1"], "m.h5"),
    ("model.py", ["--export", "onnx"], "m.onnx"),
    ("data_preparation.py", ["--video", "data/carphone_pristine.mp4"], "d.npz"),
    ("testing.py", ["--upscale", "data/SOURCES.md"], "folder"),
    ("testing_video.py", ["--mode", "upscale"], "folder"),
]


@in_background("test_an_unwritable_out_is_one_line_and_exit_status_1")
def unwritable_runs(folder):
    """Every script with --out under a file, where a folder should be, side by side: the folder and
    the CompletedProcess of each case."""
    folder.mkdir(parents=True)
    (folder / "file").write_text("a file where a folder should be")

    def run(case):
        script, args, out = case
        command = [sys.executable, str(REPO / script), *args, "--out", str(folder / "file" / "out" / out)]
        return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        return folder, list(pool.map(run, UNWRITABLE))


@pytest.mark.slow
def test_an_unwritable_out_is_one_line_and_exit_status_1(background):
    """--out under a file, where a folder should be, for every script: one line naming the path,
    exit status 1, nothing written, before any work."""
    folder, results = background(unwritable_runs)
    for (script, args, out), result in zip(UNWRITABLE, results):
        target = folder / "file" / "out" / out
        assert (result.returncode, result.stderr.strip().splitlines()) == (
            1, [f"error: {target}: cannot write (Not a directory)"]), (script, args, result.stderr[-2000:])  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["file"]
