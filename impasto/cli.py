"""The command line: ``impasto CONTENT STYLE [STYLE ...] -o OUT``, a thin layer over ``stylize``
(called from ``runner.py``).

Options are derived from the fields of ``Config`` (names, help, groups and defaults), so the command
line and the library cannot disagree. Settings come from the defaults, then a ``--rerun`` image's
metadata, then a ``--config`` TOML file, then the flags given on the command line, each overriding
the last. Every problem becomes one line on stderr and an exit code (see ``EPILOG``). This module is
the parser and the settings; the runs themselves are ``jobs.py``'s (the inputs and outputs of each
photo) and ``runner.py``'s (progress, saving), loaded once the arguments parse, since they bring
torch (a second or more).
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import difflib
import importlib
import json
import os
import re
import signal
import sys
import tomllib
import traceback
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import (COLOR_MODES, DEFAULT_DPI, INITS, MAX_DPI, OPTIMIZERS, POOLINGS, PRECISIONS, Config, parse_setting,
                     parse_value, print_box, print_long_edge, refuse_unknown)
from .errors import BEFORE_PAINTING, EXIT_SIGNAL, ConfigError, ImpastoError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
WEB_INSTALL = "in impasto's folder: pip install -c constraints.txt -e '.[web]'"  # the web extra, as the README installs it

EPILOG = """\
batch: give a folder as CONTENT, or --content several times; then -o is a
template with {stem} (the photo's name), {style} (the paintings' names) and
{index} (1, 2, ...), or a folder.

exit codes: 0 done; 1 some photos of a batch failed (the rest were written),
or an unexpected error; 2 bad input or usage; 130 / 143 / 129 interrupted by
Ctrl-C / SIGTERM / SIGHUP (the best image so far is written; a second Ctrl-C
aborts at once)."""

# Single-letter aliases for the options people type most.
_SHORT = {"max_size": ["-s"], "iterations": ["-n"], "style_weight": ["-w"]}
_CHOICES = {"optimizer": OPTIMIZERS, "pooling": POOLINGS, "preserve_color": COLOR_MODES, "precision": PRECISIONS}
_HINTS = typing.get_type_hints(Config)
_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises SystemExit)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        return _serve(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        from .runner import run  # here, not above: --help, --version and usage errors answer without torch

        return run(args)
    except ImpastoError as exc:
        return _fail(args, str(exc), getattr(exc, "exit_code", EXIT_USAGE))
    except KeyboardInterrupt as exc:  # a second signal, or one before the run started (while torch loads)
        return _fail(args, str(exc) or BEFORE_PAINTING, getattr(exc, "exit_code", EXIT_SIGNAL[signal.SIGINT]))
    except Exception as exc:  # a bug or the machine: one line and a pointer to the traceback
        if isinstance(exc, MemoryError) or "out of memory" in str(exc):
            return _fail(args, "out of memory; try a smaller --max-size (or --device cpu)", EXIT_FAILED)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        hint = "" if args.debug else " (run with --debug for the traceback)"  # with it, the traceback is above
        return _fail(args, f"unexpected {type(exc).__name__}: {first_line}{hint}", EXIT_FAILED)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    say_error(message)
    return code


def say(message: str) -> None:
    """``impasto: MESSAGE`` on standard error, on one line (``one_line``)."""
    print(f"impasto: {one_line(message)}", file=sys.stderr)


def one_line(text: str) -> str:
    """``text`` with each control character (a newline in a file's name, say) written as Python escapes
    it in a string (``\\n``): a line of the command's output stays one line."""
    return _CONTROL.sub(lambda c: repr(c.group())[1:-1], text)


def say_error(message: str) -> None:
    say(f"error: {message}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _serve(argv: list[str]) -> int:
    """``impasto serve ...``: the web app, an optional extra."""
    try:
        web = importlib.import_module("impasto.web")  # lazily: the extra may be missing
    except ImportError as exc:
        say_error(f"the web app is not installed ({exc}); {WEB_INSTALL}")
        return EXIT_USAGE
    return web.main(argv)


# --- The parser ---------------------------------------------------------------------------------


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``impasto`` and ``impasto serve`` share it)."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        # Intermixed, so that images may come after options too: `impasto photo.jpg -o out.png painting.jpg`.
        argv = sys.argv[1:] if args is None else list(args)
        # "--" ends the options (`impasto -o out.png -- -photo.jpg painting.jpg`), which intermixed parsing
        # does not know: what follows it is added to the images.
        argv, after = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
        parsed = self.parse_intermixed_args(self._negative_values_joined(argv), namespace)
        if after and not isinstance(getattr(parsed, "inputs", None), list):
            self.error(f"unrecognized arguments: {' '.join(after)}")
        if after:
            parsed.inputs += after
        return parsed

    def _negative_values_joined(self, argv: list[str]) -> list[str]:
        """Join a negative value that argparse would take for an option ("-1,2", "-1e-3") to its option,
        so that it is checked as a value is (argparse said "expected one argument")."""
        joined: list[str] = []
        for word in argv:
            action = self._option_string_actions.get(joined[-1]) if joined else None
            if action is not None and action.nargs is None and re.match(r"-\.?\d", word):
                joined[-1] += word if len(joined[-1]) == 2 else f"={word}"  # -s-5, --tv-weight=-1e-3
            else:
                joined.append(word)
        return joined

    def error(self, message: str) -> typing.NoReturn:
        """One line, with a "did you mean" for a misspelt option."""
        if message.startswith("unrecognized arguments:"):
            options = {option.lstrip("-"): option for option in self._option_string_actions if option.startswith("--")}
            for word in message.split(":", 1)[1].split():
                # Compared without the dashes, which every option shares ("--bogus" is not like "--host").
                close = difflib.get_close_matches(word.split("=")[0].lstrip("-"), options, n=1)
                if word.startswith("--") and close:
                    message += f" (did you mean {options[close[0]]}?)"
                    break
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        # The epilog's lines as written; each option's help gives its default itself (Config's, or none).
        prog="impasto", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        usage="impasto CONTENT STYLE [STYLE ...] -o OUT [options]\n"
              "       impasto -c PHOTO [-c PHOTO ...] STYLE [STYLE ...] -o 'out/{stem}.png'\n"
              "       impasto --rerun PAINTED.png [-o NEW.png] [options]\n"
              "       impasto --resume STOPPED.png [-o OUT.png]\n"
              "       impasto --demo [-o OUT] | impasto serve [...]",
        description="Paint a photo in the style of paintings (Gatys et al. style transfer).")
    parser.add_argument("inputs", nargs="*", metavar="IMAGE",
                        help="CONTENT (a photo, or a folder of photos), then one or more STYLE paintings; "
                             "with --content, all are STYLEs")
    files = parser.add_argument_group("files and runs")
    files.add_argument("-o", "--output", help="result file, the extension picks the format (png, jpg, tif, webp); "
                                              "a template or a folder for a batch")
    files.add_argument("-c", "--content", action="append", metavar="PHOTO",
                       help="a photo or a folder of photos to paint; repeat for a batch")
    files.add_argument("--config", metavar="FILE.toml", action=_OnlyOnce,
                       help="read settings (Config field names) from a TOML file; options given here override it")
    files.add_argument("--print-config", action="store_true", help="print the settings in force as TOML and exit")
    files.add_argument("--rerun", metavar="PAINTED.png",
                       help="repeat the run that made this image, from its metadata (default output: NAME-rerun.EXT)")
    files.add_argument("--resume", metavar="STOPPED.png",
                       help="go on with a run stopped part way (Ctrl-C), from the size and step where it stopped, "
                            "with its inputs and settings (default output: the same file)")
    files.add_argument("--continue", dest="continue_run", action="store_true",
                       help="paint only what is left: skip a photo whose output is already its painting with these "
                            "settings, resume one stopped part way (a batch run again after a stop)")
    files.add_argument("--dry-run", action="store_true",
                       help="paint nothing: check every photo and say, for each, its output, size, steps, about "
                            "how long it would take here and its memory, or why it would fail or be skipped")
    files.add_argument("--demo", action="store_true", help="paint the built-in sample photo in the built-in sample "
                       "style (to impasto-demo.png, unless -o names another file)")
    report = parser.add_argument_group("progress and reports")
    report.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages, only errors")
    report.add_argument("--log-json", metavar="FILE", help="write one JSON object per step to FILE (JSON Lines)")
    report.add_argument("--plot", metavar="FILE.png", help="draw the loss curves into FILE (.png, .svg, .pdf; "
                                                           "a template for a batch)")
    report.add_argument("--save-every", type=_positive_int, metavar="N", help="save the image every N steps")
    report.add_argument("--save-dir", metavar="DIR", help="folder for --save-every (made if missing; default: "
                                                          "the output's folder)")
    report.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    report.add_argument("--version", action="version", version=f"impasto {__version__}")
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        group_name = f.metadata["group"]
        group = groups.get(group_name) or groups.setdefault(group_name, parser.add_argument_group(group_name))
        flags = [f"--{f.name.replace('_', '-')}", *_SHORT.get(f.name, [])]
        shown = _shown(f.default)
        group.add_argument(*flags, dest=f.name, type=_option_type(f.name), default=argparse.SUPPRESS,
                           choices=_CHOICES.get(f.name), metavar=_metavar(f.name),
                           help=(f.metadata["help"] + ("" if shown is None else f" (default: {shown})")).replace("%", "%%"))
    groups["size"].add_argument(
        "--print-size", metavar="SIZE", type=_print_size,
        help=f"a print's long edge (42cm, 420mm, 16.5in), or a sheet (10x15cm, 8x10in) or paper (A4, A3, letter) "
             f"to fit each photo on: sets --max-size to it at --dpi (default here: {DEFAULT_DPI}), and writes that "
             f"dpi into the picture")
    # A flag that takes no value, so that it may stand before the photo without swallowing it.
    groups["output"].add_argument("--remove-noise", dest="denoise", action="store_const", const=1.0,
                                  default=argparse.SUPPRESS, help="the same as --denoise 1")
    return parser


def _metavar(name: str) -> str | None:
    hint = _HINTS[name]
    if name in _CHOICES:
        return "{" + ",".join(_CHOICES[name]) + "}"
    named = {"weights": "FILE", "learning_rate": "X", "content_layer": "LAYER", "max_memory": "GB",
             "masks": "FILE,...", "style_layers": "LAYER,..."}
    if name in named:
        return named[name]
    return "A,B,..." if typing.get_origin(hint) is tuple else {int: "N", float: "X"}.get(hint)


def _positive_int(text: str) -> int:
    try:
        value = parse_value("int", text.strip())  # "1e2" as the settings read it
    except ConfigError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _print_size(text: str) -> str:
    """A print size's form checked as the option is read (its pixels wait for the dpi in force)."""
    try:
        print_box(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _shown(default: Any) -> str | None:
    """The default as the command line shows it (lists comma-separated; None is not shown)."""
    if default is None or default == ():
        return None
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


class _OnlyOnce(argparse.Action):
    """An option that may be given once: a second --config would silently drop the first file's settings."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            parser.error(f"{option_string} given twice ({getattr(namespace, self.dest)} and {values}): "
                         "put the settings in one file, or give the changes as options")
        setattr(namespace, self.dest, values)


def _option_type(name: str):
    def convert(text: str) -> Any:
        try:
            return parse_setting(name, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None  # argparse names the option

    return convert


# --- Settings -----------------------------------------------------------------------------------


def _toml_kind(value: Any) -> str:
    """A TOML value that no setting takes, as the file wrote it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "a table" if isinstance(value, dict) else "a list of lists or tables"


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Config:
    """The settings in force: ``base`` (defaults, or a rerun's), then --config FILE, then the flags."""
    from_file = read_config_file(args.config) if getattr(args, "config", None) else {}
    flags = {name: getattr(args, name) for name in _FIELDS if hasattr(args, name)}
    if getattr(args, "print_size", None):
        if "max_size" in flags:
            raise ConfigError("give --print-size or --max-size, not both: a print size sets the size")
        dpi = _merged(base or {}, from_file, flags).get("dpi")
        dpi = DEFAULT_DPI if dpi is None else dpi
        if isinstance(dpi, int) and 1 <= dpi <= MAX_DPI:  # else Config refuses it, as without a print size
            flags.update(max_size=print_long_edge(args.print_size, dpi), dpi=dpi)
    try:
        return Config(**_merged(base or {}, from_file, flags))
    except ConfigError as exc:
        # Flags may mend the file (--style-layer-weights for its style_layers); if not, blame the file
        # when it fails on its own too.
        source, message = "invalid option", str(exc)
        if from_file:
            try:
                Config(**_merged(base or {}, from_file))
            except ConfigError:
                source = args.config
        raise ConfigError(f"{source}: {as_typed(message) if source == 'invalid option' else message}") from None


def as_typed(message: str) -> str:
    """A message of the library's with the settings it names as options (style_blend: --style-blend),
    as the user types them on the command line: a leading name, and any other name with an
    underscore (one without, such as "masks" or "init", is also a plain word)."""
    name, _, rest = message.partition(" ")
    if name in _FIELDS:
        message = f"--{name.replace('_', '-')} {rest}"
    return _NAMES_WITH_UNDERSCORES.sub(lambda m: "--" + m.group(0).replace("_", "-"), message)


# Not inside a file's path (a folder called style_weight) nor a longer word.
_NAMES_WITH_UNDERSCORES = re.compile(r"(?<![\w/\\.-])(?:" + "|".join(n for n in _FIELDS if "_" in n)
                                     + r")(?![\w/\\-]|\.\w)")


def _merged(*sources: dict[str, Any]) -> dict[str, Any]:
    """Settings from several sources, later ones winning; a source that sets style_layers without
    style_layer_weights weighs them equally (earlier weights were for other layers)."""
    values: dict[str, Any] = {}
    for source in sources:
        values.update(source)
        if "style_layers" in source and "style_layer_weights" not in source:
            values["style_layer_weights"] = ()
    return values


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Settings from a TOML file whose keys are Config field names."""
    try:
        with open(path, "rb") as file:
            data = tomllib.loads(_toml_text(file.read()))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    _refuse_options_and_tables(path, data)
    try:
        refuse_unknown(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    values = {}
    for key, value in data.items():
        if isinstance(value, (dict, bool)) or (isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value)):
            raise ConfigError(f"{path}: {key}: {_toml_kind(value)} is not a valid value")
        try:  # list items one by one: a file name may hold a comma
            values[key] = parse_setting(key, [str(v) for v in value] if isinstance(value, list) else str(value))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {key}: {exc}") from None
    return _paths_from(values, Path(path).parent)


def _refuse_options_and_tables(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """ConfigError for a key of a --config file that is a command-line option only (print_size) or
    a [table], which the file's plain ``name = value`` settings have none of."""
    unknown = [key for key in data if key not in _FIELDS]
    if not unknown:
        return
    options = {action.dest: max(action.option_strings, key=len) for action in build_parser()._actions
               if action.option_strings and action.dest not in _FIELDS}  # the long name: --print-size, not -p
    for key in unknown:
        option = options.get(key.replace("-", "_"))
        if option:
            raise ConfigError(f"{path}: {key} is the command-line option {option}, not a setting of a --config "
                              "file" + ("; for a print, give max_size and dpi" if option == "--print-size" else ""))
        if isinstance(data[key], dict):
            raise ConfigError(f"{path}: [{key}] is a table; a --config file holds only `name = value` "
                              "settings, without tables")


def _toml_text(raw: bytes) -> str:
    """TOML is UTF-8; Windows tools also write UTF-8 with a byte-order mark, or UTF-16 (PowerShell's >)."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    return raw.decode("utf-8-sig")


def _paths_from(values: dict[str, Any], folder: Path | None) -> dict[str, Any]:
    """The settings with their file names (init image, masks, weights) relative to ``folder``, or
    made absolute when ``folder`` is None: a --config file's names are relative to the file."""
    def located(name: str) -> str:  # an empty name stays empty, for Config to refuse
        return name and os.path.abspath(name if folder is None else folder / name)

    values = dict(values)
    if isinstance(values.get("init"), str) and values["init"].lower() not in INITS:
        values["init"] = located(values["init"])
    if values.get("weights"):
        values["weights"] = located(values["weights"])
    if values.get("masks"):
        values["masks"] = tuple(located(mask) for mask in values["masks"])
    return values


def config_to_toml(config: Config) -> str:
    """The settings as a TOML file that --config reads back (unset optional values are comments;
    file names absolute, so the file works from any folder)."""
    config = Config(**_paths_from(dataclasses.asdict(config), None))
    lines = [f"# impasto {__version__} settings (use with --config FILE)"]
    group = None
    for name, f in _FIELDS.items():
        if f.metadata["group"] != group:
            group = f.metadata["group"]
            lines += ["", f"# {group}"]
        value = getattr(config, name)
        lines.append(f"# {name} = (not set)" if value is None else f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")  # a TOML basic string
