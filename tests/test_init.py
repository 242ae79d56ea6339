"""The package itself (impasto/__init__.py): public names and submodules load on first use."""

import shutil
import subprocess
import sys
import typing
import zipfile
from pathlib import Path

import pytest

import impasto


def test_importing_impasto_loads_torch_only_when_needed():
    code = ("import sys, impasto; print('torch' in sys.modules); impasto.Config; print('torch' in sys.modules); "
            "impasto.Config(); print('torch' in sys.modules); from impasto import stylize; print(stylize.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True", "impasto.api"]  # a Config's layers are checked against VGG-19's


def test_public_names():
    # __all__ is written out for type checkers; it must name what loads on first use, no more, no less.
    assert set(impasto.__all__) == set(impasto._PUBLIC) | {"__version__"}
    assert all(getattr(impasto, name) is not None for name in impasto.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        impasto.nope
    assert impasto.api.stylize is impasto.stylize  # submodules load on first use too


def test_type_hints_of_the_public_classes_resolve():
    # Tools that read them at run time (typing.get_type_hints) must find every name they use.
    for name in ("Config", "ProgressEvent", "Result", "ResumePoint"):
        assert typing.get_type_hints(getattr(impasto, name))
    assert typing.get_type_hints(impasto.ProgressEvent.stopped_here)["return"] is impasto.Result
    # A callback may return anything (only a bool True stops the run): "bool | None" refused, for a type
    # checker, the documented `lambda e: e.image.mean() > 0.5`, which returns a tensor.
    assert typing.get_args(typing.get_type_hints(impasto.stylize)["callback"]) == (impasto.Callback, type(None))
    assert typing.get_args(impasto.Callback) == ([impasto.ProgressEvent], object)


def test_a_folder_named_impasto_in_the_current_folder_does_not_hide_the_package(tmp_path):
    # The clone seen from the folder above it. With setuptools' default editable install Python imported
    # it as an empty namespace package (no stylize); `make` installs in the mode that puts the project on
    # the path, where a regular package wins.
    (tmp_path / "impasto").mkdir()
    code = "import impasto; print(impasto.stylize.__module__)"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "impasto.api", run.stderr


def test_the_wheel_holds_the_package_its_web_page_and_its_license(tmp_path):
    # What `pip install` puts on a user's machine: `impasto serve` needs the page's files, type checkers
    # py.typed; tests, benchmarks and caches stay out. Built with the setuptools installed here, offline.
    project = tmp_path / "project"  # a copy without a working tree's build/, whose stale files would go in
    shutil.copytree(Path(__file__).resolve().parent.parent, project, ignore=shutil.ignore_patterns(
        "build", "dist", ".venv", "*.egg-info", "__pycache__", ".git", "bench-out", "*.png"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(project)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("impasto-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"impasto-{impasto.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {"impasto/static/index.html", "impasto/static/app.js", "impasto/static/style.css", "impasto/py.typed",
            "impasto/web/app.py", f"{info}/licenses/LICENSE"} <= names
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/")) or "__pycache__" in name]
    assert "License-Expression: MIT" in metadata and "Requires-Python: >=3.11" in metadata
    assert "impasto = impasto.console:main" in entry_points
