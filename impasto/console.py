"""The ``impasto`` command's entry point: the command line, with a Ctrl-C, SIGTERM or SIGHUP during
start-up or shutdown answered like any other, without a traceback. This module turns SIGTERM and
SIGHUP into exceptions and covers the command line's own import; ``cli.main`` covers the runner's,
which loads torch (a second or two)."""

import signal
import sys

from .errors import BEFORE_PAINTING, EXIT_SIGNAL, Interrupted


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP before the run's own handlers are in place: handled as Ctrl-C is, with its
    exit code."""
    raise Interrupted(EXIT_SIGNAL[signum])


def main() -> int:
    # --help has α and β in it: a console that cannot show them (Windows' cp1252) gets \u escapes, not a crash.
    if hasattr(sys.stdout, "reconfigure"):  # not when a caller has put a plain stream there
        sys.stdout.reconfigure(errors="backslashreplace")
    for sig in EXIT_SIGNAL.keys() - {signal.SIGINT}:  # Python makes SIGINT a KeyboardInterrupt already
        if signal.getsignal(sig) is signal.SIG_DFL:  # not one that nohup told us to ignore
            signal.signal(sig, _terminated)
    try:
        from .cli import main as run
    except KeyboardInterrupt as exc:
        print(f"impasto: error: {BEFORE_PAINTING}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_SIGNAL[signal.SIGINT])
    code = run()
    for sig in EXIT_SIGNAL:  # the run is over: let the interpreter exit in peace
        signal.signal(sig, signal.SIG_IGN)
    return code
