"""``impasto serve``: a local web app over ``impasto.stylize`` (the optional extra ``impasto[web]``).

Importing this package needs nothing beyond impasto itself; Starlette, uvicorn and torch are imported
when the app is made (``impasto.web.app.create_app``) or served (``main``), so that ``impasto serve
--help`` answers at once.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cli import WEB_INSTALL, OneLineParser
from ..config import MAX_SIZE, MIN_SIZE, parse_value
from ..errors import EXIT_SIGNAL, ConfigError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_upload_bytes: int = 32 * 2**20  # the whole multipart body
    max_size: int = 1024  # Config.max_size
    max_iterations: int = 1000  # Config.iterations
    max_pixels: int = 40_000_000  # of each uploaded image, read from its header before decoding
    max_queued: int = 20  # jobs waiting at once


def default_data_dir() -> Path:
    """Where results are kept: the platform's per-user data folder, e.g. ~/.local/share/impasto."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "impasto"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:  # no "(default: None)"
        return action.help or "" if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    limits = Limits()
    parser = OneLineParser(
        prog="impasto serve", formatter_class=_HelpFormatter,
        description="A web page on this machine: drop a photo and a painting, press Paint, watch it "
                    "take shape, download the result. Results are kept in the data folder.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on; anything but 127.0.0.1/localhost opens it to the network")
    parser.add_argument("--port", type=_number("int"), default=DEFAULT_PORT, metavar="N",
                        help="port to listen on (0: a free one, named in the line that says where to go)")
    parser.add_argument("--allowed-host", action="append", metavar="NAME",
                        help="another name the page may be opened by, besides IP addresses, localhost and (with a "
                             "--host open to the network) this machine's names; others get 403, against DNS rebinding")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), metavar="DIR",
                        help="folder for uploads and results")
    parser.add_argument("--workers", type=_number("int"), default=1, metavar="N", help="jobs run at the same time")
    parser.add_argument("--max-upload-mb", type=_number("float"), default=limits.max_upload_bytes / 2**20, metavar="MB",
                        help="largest request (both images together), in MB")
    parser.add_argument("--max-size", type=_number("int"), default=limits.max_size, metavar="N",
                        help="largest output long edge, in pixels")
    parser.add_argument("--max-iterations", type=_number("int"), default=limits.max_iterations, metavar="N",
                        help="most iterations per job")
    parser.add_argument("--max-pixels", type=_number("int"), default=limits.max_pixels, metavar="N",
                        help="largest uploaded image, in pixels (checked before decoding)")
    return parser


def _number(kind: str):
    """An option's value read as settings are ("1e3" is a whole number), and refused in their words."""
    def convert(text: str) -> int | float:
        try:
            return parse_value(kind, text.strip())
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the web app until Ctrl-C; returns the exit code (2: bad usage or the extra is missing)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse has reported
        return e.code if isinstance(e.code, int) else 2
    problem = _problem(args)
    if problem:
        print(f"impasto serve: error: {problem}", file=sys.stderr)
        return 2
    # Before any thread is started: the job workers then allocate from the main heap, where a run
    # keeps the memory each step frees for the next one (on heaps of their own, a 512 px job took
    # 1.09x as long and a 1024 px one 1.32x, faulting in fresh pages at every step; benchmarks/README.md).
    from ..memory import share_main_heap  # noqa: PLC0415 (torch, which --help does without)

    share_main_heap()
    try:
        import uvicorn  # noqa: PLC0415

        from .app import create_app  # noqa: PLC0415
    except ImportError as e:
        print(f"impasto serve: error: the web app needs the 'web' extra ({e.name} is missing): {WEB_INSTALL}",
              file=sys.stderr)
        return 2
    data_dir = args.data_dir.expanduser()
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_size=args.max_size,
                    max_iterations=args.max_iterations, max_pixels=args.max_pixels)
    try:
        app = create_app(data_dir, workers=args.workers, limits=limits,
                         hosts=_allowed_hosts(args.host, args.allowed_host or []))
    except OSError as e:
        print(f"impasto serve: error: cannot use the data folder {data_dir}: {e.strerror or e}", file=sys.stderr)
        return 2
    # Listening before saying where to go (uvicorn would only log a port in use, after), on the socket
    # uvicorn is then given: the port cannot be taken in between, and --port 0's is known.
    try:
        listener = socket.create_server((args.host, args.port), family=_family(args.host))
    except OSError as e:
        reason = (e.strerror or str(e)).split(" (while attempting")[0]
        print(f"impasto serve: error: cannot listen on {args.host} port {args.port} ({reason})", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        print(f"impasto serve: warning: listening on {args.host}: anyone who can reach this machine can "
              "use the app and see its results", file=sys.stderr)
    port = listener.getsockname()[1]  # --port 0: the free one the system chose
    host = socket.gethostname() if args.host in ("0.0.0.0", "::") else args.host  # any address: name this machine
    host = f"[{host}]" if ":" in host else host
    print(f"impasto: open http://{host}:{port}/ (results in {data_dir}; Ctrl-C stops)", flush=True)
    return _serve(uvicorn, app, listener)


def _problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options' values, if anything."""
    return next((message for bad, message in [
        (not 0 <= args.port <= 65535, f"--port must be 0..65535, not {args.port}"),
        (args.workers < 1, f"--workers must be at least 1, not {args.workers}"),
        (not 0 < args.max_upload_mb < math.inf, "--max-upload-mb must be a positive number"),
        (not MIN_SIZE <= args.max_size <= MAX_SIZE, f"--max-size must be {MIN_SIZE}..{MAX_SIZE}, not {args.max_size}"),
        (args.max_iterations < 1, "--max-iterations must be at least 1"),
        (args.max_pixels < 1, "--max-pixels must be positive"),
    ] if bad), None)


def _allowed_hosts(host: str, allowed: list[str]) -> set[str]:
    """The names the page may be opened by (IP addresses always may)."""
    hosts = {*LOOPBACK_NAMES, host, *allowed}
    if not _is_loopback(host):  # open to the network: this machine's own names too
        hosts |= {socket.gethostname(), socket.getfqdn()}
    return hosts


def _serve(uvicorn: Any, app: Any, listener: socket.socket) -> int:
    """Run the app on ``listener`` until a signal; its exit code."""
    manager = app.state.manager

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            # Cancel the jobs first: their progress streams then end, and the shutdown need not wait
            # for them (uvicorn waits for open requests before it stops the app). In a thread: a signal
            # handler must not wait for a lock that the code it interrupted may hold.
            threading.Thread(target=manager.cancel_all, daemon=True).start()
            super().handle_exit(sig, frame)

    host, port = listener.getsockname()[:2]
    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30))
    try:
        server.run(sockets=[listener])
    except SystemExit:  # uvicorn exits this way when the app fails to start (its lifespan)
        return 2
    except KeyboardInterrupt as exc:  # uvicorn re-raises the signal it handled, once it has shut down
        return getattr(exc, "exit_code", EXIT_SIGNAL[signal.SIGINT])  # SIGTERM's is 143 (impasto.console)
    return 0


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
