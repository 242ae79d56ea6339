"""The command line: ``impasto CONTENT STYLE [STYLE ...] -o OUT``, a thin layer over ``stylize``.

Options are derived from the fields of ``Config`` (names, help, groups and defaults), so the command
line and the library cannot disagree. Errors become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Sequence
from typing import Any

from . import __version__
from .api import stylize
from .config import OPTIMIZERS, POOLINGS, Config
from .errors import ConfigError, ImpastoError
from .optimize import ProgressEvent

EXIT_ERROR = 2

# Single-letter aliases for the options people type most.
_SHORT = {"max_size": "-s", "iterations": "-n", "style_weight": "-w"}
_CHOICES = {"optimizer": OPTIMIZERS, "pooling": POOLINGS}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        content, styles = _inputs(args, parser)
        result = stylize(content, styles, config, callback=_progress(args.quiet))
        path = result.save(args.output)
    except ImpastoError as exc:
        print(f"impasto: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        print(f"wrote {path} ({result.steps} steps, {result.timings['total']:.1f} s, "
              f"stopped by {result.stop_reason})", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="impasto", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Paint a photo in the style of one or more paintings (Gatys et al. style transfer).")
    parser.add_argument("content", nargs="?", help="the photo (any format Pillow reads)")
    parser.add_argument("styles", nargs="*", metavar="style", help="the painting(s)")
    parser.add_argument("-o", "--output", help="result file; the extension picks the format (png, jpg, tif, webp)")
    parser.add_argument("--demo", action="store_true",
                        help="paint the built-in sample photo in the built-in sample style")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    hints = typing.get_type_hints(Config)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(Config):
        group_name = f.metadata["group"]
        group = groups.get(group_name) or groups.setdefault(group_name, parser.add_argument_group(group_name))
        flags = [f"--{f.name.replace('_', '-')}", *([_SHORT[f.name]] if f.name in _SHORT else [])]
        group.add_argument(*flags, dest=f.name, type=_parser_for(hints[f.name], f.name),
                           default=_shown(f.default), choices=_CHOICES.get(f.name), help=f.metadata["help"])
    return parser


def _parser_for(hint: Any, name: str):
    """A function turning the option's text into the field's type, with a message naming the option."""
    args = typing.get_args(hint)
    item = args[0] if typing.get_origin(hint) is tuple else next((a for a in args if a is not type(None)), hint)
    flag = f"--{name.replace('_', '-')}"

    def convert_one(text: str) -> Any:
        try:
            return item(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: {text!r} is not a valid {item.__name__}") from None

    if typing.get_origin(hint) is tuple:
        return lambda text: tuple(convert_one(part.strip()) for part in text.split(",") if part.strip())
    return convert_one


def _shown(default: Any) -> Any:
    """The default as the command line shows it (lists comma-separated)."""
    return ",".join(map(str, default)) if isinstance(default, tuple) else default


def config_from_args(args: argparse.Namespace) -> Config:
    values = {}
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name)
        values[f.name] = _parser_for(typing.get_type_hints(Config)[f.name], f.name)(value) \
            if isinstance(value, str) and isinstance(f.default, tuple) else value
    try:
        return Config(**values)
    except ConfigError as exc:
        raise ConfigError(f"invalid option: {exc}") from None


def _inputs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Any, list[Any]]:
    if args.demo:
        from .samples import sample_photo_path, sample_style_image

        args.output = args.output or "impasto-demo.png"
        return sample_photo_path(), [sample_style_image()]
    if not args.content or not args.styles or not args.output:
        parser.error("give CONTENT, at least one STYLE and -o OUTPUT (or --demo)")
    return args.content, list(args.styles)


def _progress(quiet: bool):
    """A callback drawing a progress bar with the loss terms (nothing when quiet)."""
    if quiet:
        return None
    from tqdm import tqdm

    bar = None

    def update(event: ProgressEvent) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=event.total, unit="step", dynamic_ncols=True, file=sys.stderr)
        bar.set_postfix_str(f"loss {event.loss:.4g} " + " ".join(
            f"{name.split('/')[0]} {value:.3g}" for name, value in _by_kind(event.losses).items()))
        bar.update(event.step - bar.n)
        if event.step >= event.total:
            bar.close()

    return update


def _by_kind(losses: dict[str, float]) -> dict[str, float]:
    """Sum the per-layer terms into content, style and tv."""
    totals: dict[str, float] = {}
    for name, value in losses.items():
        kind = name.split("/")[0]
        totals[kind] = totals.get(kind, 0.0) + value
    return totals
