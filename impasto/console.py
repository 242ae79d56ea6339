"""The ``impasto`` command's entry point: the command line, with a Ctrl-C during start-up (while
torch loads, a second or two) or shutdown answered like any other, without a traceback."""

import signal
import sys


def main() -> int:
    # --help has α and β in it: a console that cannot show them (Windows' cp1252) gets \u escapes, not a crash.
    if hasattr(sys.stdout, "reconfigure"):  # not when a caller has put a plain stream there
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("impasto: error: interrupted", file=sys.stderr)
        return 130
    code = run()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run is over: let the interpreter exit in peace
    return code
