"""Every script: --help works, importing it has no side effects, one copy of the shared functions."""
import ast
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPTS = ["data_preparation.py", "model.py", "training.py", "testing.py", "testing_video.py"]


def repo_files():
    return {p for p in REPO.rglob("*") if "__pycache__" not in p.parts and ".pytest_cache" not in p.parts
            and ".git" not in p.parts}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    result = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage:") and "--" in result.stdout


def test_importing_the_scripts_does_nothing():
    before = repo_files()
    code = "import data_preparation, model, training, testing, testing_video"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and repo_files() == before


def test_one_definition_of_each_shared_function():
    definitions = {}
    for script in SCRIPTS:
        for node in ast.walk(ast.parse((REPO / script).read_text())):
            if isinstance(node, ast.FunctionDef):
                definitions.setdefault(node.name, []).append(script)
    for name in ["degrade", "load_dataset", "upscale", "to_luma", "read_video", "measure"]:
        assert len(definitions.get(name, [])) == 1, (name, definitions.get(name))
