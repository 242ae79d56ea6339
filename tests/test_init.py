"""The package itself (impasto/__init__.py): public names and submodules load on first use."""

import subprocess
import sys
import typing

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


def test_a_folder_named_impasto_in_the_current_folder_does_not_hide_the_package(tmp_path):
    # The clone seen from the folder above it. With setuptools' default editable install Python imported
    # it as an empty namespace package (no stylize); `make` installs in the mode that puts the project on
    # the path, where a regular package wins.
    (tmp_path / "impasto").mkdir()
    code = "import impasto; print(impasto.stylize.__module__)"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "impasto.api", run.stderr
