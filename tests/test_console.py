"""The `impasto` command's entry point (impasto/console.py)."""

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


class _TerminatedImport(types.ModuleType):
    signum = signal.SIGTERM

    def __getattr__(self, name):
        signal.raise_signal(self.signum)  # as a `kill`, or the terminal closing, while torch loads would
        raise AssertionError(f"{self.signum.name} did not stop the start-up")


@pytest.fixture
def signal_handlers():
    """console.main sets the process's SIGINT, SIGTERM and SIGHUP handlers: put pytest's back."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


# torch loads with impasto.runner, once the arguments parse; a signal while impasto.cli loads is the
# console's to answer, one while the runner loads the command line's.
STARTING = pytest.mark.parametrize("module", ["impasto.cli", "impasto.runner"])


@STARTING
def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys, signal_handlers, module):
    monkeypatch.setattr(sys, "argv", ["impasto", "photo.jpg", "painting.jpg", "-o", "out.png"])
    monkeypatch.setitem(sys.modules, module, _InterruptedImport(module))
    assert console.main() == 130
    assert capsys.readouterr().err == "impasto: error: interrupted before the painting started; nothing was written\n"


@STARTING
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_or_sighup_while_starting_is_one_line_and_its_code(monkeypatch, capsys, signal_handlers, signum, code,
                                                                   module):
    monkeypatch.setattr(_TerminatedImport, "signum", signum)
    monkeypatch.setattr(sys, "argv", ["impasto", "photo.jpg", "painting.jpg", "-o", "out.png"])
    monkeypatch.setitem(sys.modules, module, _TerminatedImport(module))
    assert console.main() == code
    assert capsys.readouterr().err == "impasto: error: interrupted before the painting started; nothing was written\n"


def test_a_signal_that_nohup_ignores_stays_ignored_while_starting(monkeypatch, signal_handlers):
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # `nohup impasto ...`: the terminal closing must not stop it
    cli = types.ModuleType("impasto.cli")
    cli.main = lambda: 0 if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else 1  # as the command starts
    monkeypatch.setattr(sys, "argv", ["impasto", "photo.jpg", "painting.jpg", "-o", "out.png"])
    monkeypatch.setitem(sys.modules, "impasto.cli", cli)
    assert console.main() == 0


def test_the_command_runs_the_cli_and_then_ignores_signals(monkeypatch, capsys, signal_handlers):
    monkeypatch.setattr(sys, "argv", ["impasto", "--version"])
    assert console.main() == 0
    assert signal.getsignal(signal.SIGINT) is signal.getsignal(signal.SIGTERM) is signal.getsignal(signal.SIGHUP) \
        is signal.SIG_IGN
    assert capsys.readouterr().out == f"impasto {impasto.__version__}\n"


def test_help_on_a_console_that_cannot_show_greek_letters():
    run = subprocess.run([sys.executable, "-m", "impasto", "--help"], capture_output=True,
                         env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    assert run.returncode == 0 and b"weight of the content term (\\u03b1)" in run.stdout
