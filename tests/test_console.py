"""The `impasto` command's entry point (impasto/console.py)."""

import os
import signal
import subprocess
import sys
import types

import impasto
from impasto import console


class _InterruptedImport(types.ModuleType):
    def __getattr__(self, name):
        raise KeyboardInterrupt  # as a Ctrl-C while torch loads would


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "impasto.cli", _InterruptedImport("impasto.cli"))
    assert console.main() == 130
    assert capsys.readouterr().err == "impasto: error: interrupted\n"


def test_the_command_runs_the_cli_and_then_ignores_ctrl_c(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["impasto", "--version"])
    handler = signal.getsignal(signal.SIGINT)
    try:
        assert console.main() == 0 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, handler)
    assert capsys.readouterr().out == f"impasto {impasto.__version__}\n"


def test_help_on_a_console_that_cannot_show_greek_letters():
    run = subprocess.run([sys.executable, "-m", "impasto", "--help"], capture_output=True,
                         env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    assert run.returncode == 0 and b"weight of the content term (\\u03b1)" in run.stdout
