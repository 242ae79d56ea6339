"""The `impasto` command's entry point and the package's lazy public names."""

import os
import signal
import subprocess
import sys
import types

import pytest

import impasto
from impasto import console


class _InterruptedImport(types.ModuleType):
    def __getattr__(self, name):
        raise KeyboardInterrupt  # as a Ctrl-C while torch loads would


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "impasto.cli", _InterruptedImport("impasto.cli"))
    assert console.main() == 130
    assert capsys.readouterr().err == "impasto: error: interrupted\n"


def test_the_command_runs_the_cli_and_then_ignores_ctrl_c(monkeypatch):
    monkeypatch.setitem(sys.modules, "impasto.cli", types.SimpleNamespace(main=lambda: 7))
    handler = signal.getsignal(signal.SIGINT)
    try:
        assert console.main() == 7 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, handler)


def test_importing_impasto_loads_torch_only_when_needed():
    code = ("import sys, impasto; print('torch' in sys.modules); impasto.Config; print('torch' in sys.modules); "
            "from impasto import stylize; print(stylize.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "impasto.api"]


def test_public_names():
    assert set(impasto.__all__) <= set(dir(impasto))
    assert all(getattr(impasto, name) is not None for name in impasto.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        impasto.nope
    assert impasto.api.stylize is impasto.stylize  # submodules load on first use too


def test_help_on_a_console_that_cannot_show_greek_letters():
    run = subprocess.run([sys.executable, "-m", "impasto", "--help"], capture_output=True,
                         env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    assert run.returncode == 0 and b"weight of the content term (\\u03b1)" in run.stdout
