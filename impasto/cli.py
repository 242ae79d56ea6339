"""The command line: ``impasto CONTENT STYLE [STYLE ...] -o OUT``, a thin layer over ``stylize``.

Options are derived from the fields of ``Config`` (names, help, groups and defaults), so the command
line and the library cannot disagree. Settings come from the defaults, then a ``--rerun`` image's
metadata, then a ``--config`` TOML file, then the flags given on the command line, each overriding
the last. Every problem becomes one line on stderr and an exit code (see ``EPILOG``).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import dataclasses
import difflib
import functools
import importlib
import json
import os
import re
import shlex
import signal
import string
import sys
import tempfile
import threading
import tomllib
import traceback
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .api import Result, check_one_each, fingerprint, resolve_device, resume_point, stylize
from .config import COLOR_MODES, INITS, OPTIMIZERS, POOLINGS, PRECISIONS, Config, parse_setting, refuse_unknown
from .errors import EXIT_SIGNAL, ConfigError, ImageError, ImpastoError, Interrupted
from .imageio import READ_FORMATS, SAVE_FORMATS, check_writable, header_size, read_image, read_metadata, save_image, sidecar_path
from .optimize import ProgressEvent
from .plot import PLOT_FORMATS, loss_kinds, plot_losses
from .vgg import load_weights, smallest_edge

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

# Single-letter aliases for the options people type most, and other spellings.
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
        return run(args)
    except ImpastoError as exc:
        return _fail(args, str(exc), getattr(exc, "exit_code", EXIT_USAGE))
    except KeyboardInterrupt as exc:  # a second signal, or Ctrl-C before the run started
        return _fail(args, str(exc) or "interrupted", getattr(exc, "exit_code", EXIT_SIGNAL[signal.SIGINT]))
    except Exception as exc:  # a bug or the machine: one line and a pointer to the traceback
        if isinstance(exc, MemoryError) or "out of memory" in str(exc):
            return _fail(args, "out of memory; try a smaller --max-size (or --device cpu)", EXIT_FAILED)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        hint = "" if args.debug else " (run with --debug for the traceback)"  # with it, the traceback is above
        return _fail(args, f"unexpected {type(exc).__name__}: {first_line}{hint}", EXIT_FAILED)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"impasto: error: {message}", file=sys.stderr)
    return code


def _serve(argv: list[str]) -> int:
    """``impasto serve ...``: the web app, an optional extra."""
    try:
        web = importlib.import_module("impasto.web")  # lazily: the extra may be missing
    except ImportError as exc:
        print(f"impasto: error: the web app is not installed ({exc}); {WEB_INSTALL}", file=sys.stderr)
        return EXIT_USAGE
    return web.main(argv)


# --- The parser ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        return super().parse_args(self._negative_values_joined(sys.argv[1:] if args is None else list(args)),
                                  namespace)

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
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], self._option_string_actions, n=1)
                if word.startswith("--") and close:
                    message += f" (did you mean {close[0]}?)"
                    break
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see impasto --help)\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        shown = action.default not in (None, False, argparse.SUPPRESS) and "default:" not in (action.help or "")
        return f"{action.help} (default: %(default)s)" if shown else action.help or ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="impasto", formatter_class=_HelpFormatter, epilog=EPILOG,
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
    # A flag that takes no value, so that it may stand before the photo without swallowing it.
    groups["output"].add_argument("--remove-noise", dest="denoise", action="store_const", const=1.0,
                                  default=argparse.SUPPRESS, help="the same as --denoise 1")
    return parser


def _metavar(name: str) -> str | None:
    hint = _HINTS[name]
    if name in _CHOICES:
        return "{" + ",".join(_CHOICES[name]) + "}"
    if typing.get_origin(hint) is tuple:
        return "A,B,..."
    return {int: "N", float: "X"}.get(hint) or {"weights": "FILE", "learning_rate": "X", "content_layer": "LAYER"}.get(name)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


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


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Config:
    """The settings in force: ``base`` (defaults, or a rerun's), then --config FILE, then the flags."""
    from_file = read_config_file(args.config) if getattr(args, "config", None) else {}
    flags = {name: getattr(args, name) for name in _FIELDS if hasattr(args, name)}
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
        raise ConfigError(f"{source}: {_as_typed(message) if source == 'invalid option' else message}") from None


def _as_typed(message: str) -> str:
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
    try:
        refuse_unknown(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    values = {}
    for key, value in data.items():
        if isinstance(value, (dict, bool)) or (isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value)):
            raise ConfigError(f"{path}: {key}: {value!r} is not a valid value")
        try:  # list items one by one: a file name may hold a comma
            values[key] = parse_setting(key, [str(v) for v in value] if isinstance(value, list) else str(value))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {key}: {exc}") from None
    return _paths_from(values, Path(path).parent)


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


# --- Planning a run: inputs, outputs, checks before any work ------------------------------------


@dataclass
class Job:
    """One photo to paint and where its files go."""

    content: Any  # a path, or the demo's in-memory photo
    output: Path
    plot: Path | None = None


@dataclass
class Plan:
    config: Config
    styles: list[Any]
    jobs: list[Job]
    batch: bool  # several photos: a bad one is skipped (exit 1) instead of stopping the run (exit 2)


def plan(args: argparse.Namespace) -> Plan:
    """Work out the settings, inputs and outputs, and check them all before any optimisation."""
    if args.rerun and args.resume:
        raise ConfigError("give --rerun or --resume, not both")
    if args.rerun or args.resume:
        option = "--rerun" if args.rerun else "--resume"
        if args.inputs or args.content or args.demo:
            raise ConfigError(f"{option} takes no CONTENT, STYLE, --content or --demo: the inputs come from the image")
        return _plan_rerun(args)
    config = config_from_args(args)
    if args.print_config:
        return Plan(config, [], [], False)
    if args.demo:
        if args.inputs or args.content:
            raise ConfigError("--demo takes no CONTENT, STYLE or --content: it paints its own sample photo and painting")
        from .samples import sample_photo_path, sample_style_image

        contents, styles, batch = [sample_photo_path()], [sample_style_image()], False
        args.output = args.output or "impasto-demo.png"
    else:
        contents, styles = (args.content, args.inputs) if args.content else (args.inputs[:1], args.inputs[1:])
        if not contents or not styles or not args.output:
            raise ConfigError("give CONTENT, at least one STYLE and -o OUTPUT (or --rerun IMAGE, or --demo; "
                              "see impasto --help)")
        batch = len(contents) > 1 or any(Path(c).is_dir() for c in contents)
        if args.content and len(styles) > 1 and not args.quiet:  # "impasto -c a.jpg photo.jpg art.jpg" meant one
            print(f"impasto: note: with --content, every other image is a painting: blending {len(styles)} "
                  f"({', '.join(styles)})", file=sys.stderr)
        contents = [photo for c in contents for photo in _expand(c, styles, args.quiet)]
    return _finish_plan(args, config, contents, styles, batch)


def _expand(content: str, styles: list[str], quiet: bool) -> list[str]:
    """A folder becomes the image files in it (by extension, sorted), but for the paintings and for
    earlier results (images with impasto's metadata: painting a folder again with -o in it must not
    paint its results); a file stays itself."""
    if not Path(content).is_dir():
        return [content]
    from PIL import Image

    extensions = {ext for ext, fmt in Image.registered_extensions().items() if fmt in READ_FORMATS}
    images = sorted(str(p) for p in Path(content).iterdir()
                    if p.suffix.lower() in extensions and not p.name.startswith(".") and not p.is_dir())
    paintings = {_file_key(style) for style in styles}
    photos = [image for image in images if _file_key(image) not in paintings and not _painted_by_impasto(image)]
    if not photos:
        raise ImageError(f"{content}: folder holds no image files" + (" but paintings and earlier results"
                                                                         if images else ""))
    left_out = len(images) - len(photos)
    if left_out and not quiet:
        print(f"impasto: note: {content}: leaving out {left_out} image{'s' if left_out > 1 else ''} that "
              f"{'are' if left_out > 1 else 'is'} a painting or an earlier result", file=sys.stderr)
    return photos


def _painted_by_impasto(path: str) -> bool:
    try:
        return read_metadata(path) is not None
    except ImpastoError:  # unreadable: left in, for the run to report
        return False


def _plan_rerun(args: argparse.Namespace) -> Plan:
    """The plan of --rerun (the same run again) or --resume (the rest of a stopped run)."""
    source, verb = (Path(args.rerun), "rerun") if args.rerun else (Path(args.resume), "resume")
    meta = read_metadata(source)
    if meta and "config" not in meta and "step" in meta:
        raise ImageError(f"{source}: a --save-every snapshot records only its step and losses; {verb} the "
                         "painting it led to")
    if not meta or "config" not in meta:
        raise ImageError(f"{source}: carries no impasto metadata, cannot {verb} it")
    inputs, paths = _recorded_inputs(meta, source, verb)
    if meta.get("impasto") != __version__ and not args.quiet:
        print(f"impasto: note: {source} was made by impasto {meta.get('impasto')}, this is {__version__}; "
              "the result may differ", file=sys.stderr)
    try:
        base = dataclasses.asdict(Config.from_saved(meta["config"]))
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{source}: its settings cannot be used ({exc})") from None
    if "init" in inputs:
        base["init"] = paths["init"]  # absolute, so that a rerun from another folder finds it
    if "masks" in inputs:
        base["masks"] = tuple(paths["masks"])
    if "weights" in inputs:
        base["weights"] = paths["weights"]
    config = config_from_args(args, base)
    new_name = source.name if args.resume else f"{source.stem}-rerun{source.suffix}"
    if not args.output:
        args.output = str(source.with_name(new_name))
    elif Path(args.output).is_dir() or args.output.endswith(("/", os.sep)):  # into a folder: the same name
        args.output = os.path.join(args.output, new_name)
    if args.print_config:
        return Plan(config, [], [], False)
    styles = [_demo_style_if_drawn(p, h) for p, h in zip(paths["style"], inputs["style"])]
    checks = [("content image", paths["content"], inputs["content"])]
    checks += [(f"style image {i + 1}", p, h) for i, (p, h, style) in
               enumerate(zip(paths["style"], inputs["style"], styles)) if style is p]
    # the recorded init image, masks and weights only where the new settings still use them
    if "init" in inputs and config.init == paths.get("init"):
        checks.append(("init image", paths.get("init"), inputs["init"]))
    if "masks" in inputs and config.masks == tuple(paths.get("masks", [])):
        checks += [(f"mask {i + 1}", p, h) for i, (p, h) in enumerate(zip(paths["masks"], inputs["masks"]))]
    if "weights" in inputs and config.weights == paths.get("weights"):
        checks.append(("weights file", paths.get("weights"), inputs["weights"]))
    for what, path, digest in checks:
        if path is None:
            raise ImageError(f"{source}: its {what} was not a file, cannot {verb} it")
        if not Path(path).is_file():
            raise ImageError(f"{path}: {what} of {source} is missing")
        if fingerprint(path) != digest:
            raise ImageError(f"{path}: {what} of {source} has changed since (its SHA-256 differs)")
    if args.resume:  # a run that cannot go on is refused before any output is touched (the rest: stylize)
        resume_point(source, config)
    return _finish_plan(args, config, [paths["content"]], styles, False)


def _recorded_inputs(meta: dict[str, Any], source: Path, verb: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inputs that ``meta`` records (SHA-256s, and their paths), checked to be of the shape
    ``stylize`` writes: a file edited by hand gets a one-line error, not a crash."""
    inputs = meta["inputs"] if isinstance(meta.get("inputs"), dict) else {}
    paths = inputs.get("paths")
    if not isinstance(paths, dict) or not {"content", "style"} <= set(paths) or "content" not in inputs:
        raise ImageError(f"{source}: its metadata records no input paths (an older impasto); cannot {verb} it")

    def digests(key: str) -> bool:
        return isinstance(inputs[key], list) and all(isinstance(d, str) for d in inputs[key])

    def named(key: str) -> bool:  # a path for each digest; None for an image that was not a file
        given = paths.get(key)
        return (isinstance(given, list) and len(given) == len(inputs[key])
                and all(p is None or isinstance(p, str) for p in given))

    content = isinstance(inputs["content"], str) and isinstance(paths["content"], str | None)
    styles = "style" in inputs and digests("style") and len(inputs["style"]) > 0 and named("style")
    masks = "masks" not in inputs or (digests("masks") and named("masks"))
    files = all(isinstance(inputs[key], str) and isinstance(paths.get(key), str)
                for key in ("init", "weights") if key in inputs)
    if not (content and styles and masks and files):
        raise ImageError(f"{source}: its metadata's record of its inputs is damaged; cannot {verb} it")
    return inputs, paths


def _demo_style_if_drawn(path: str | None, digest: str) -> Any:
    """A style input to rerun: its path, or, for the painting --demo draws, that painting drawn again."""
    from .samples import sample_style_image

    if path is None:
        drawn = sample_style_image()
        if fingerprint(drawn) == digest:
            return drawn
    return path


def _finish_plan(args: argparse.Namespace, config: Config, contents: list[Any], styles: list[Any],
                 batch: bool) -> Plan:
    try:
        check_one_each(config, len(styles))
    except ConfigError as exc:  # named as typed: the option, or the --config file's key
        name = str(exc).partition(" ")[0]
        in_file = getattr(args, "config", None) and not hasattr(args, name)
        raise ConfigError(f"{args.config}: {exc}" if in_file else _as_typed(str(exc))) from None
    for i, style in enumerate(styles):
        if isinstance(style, (str, os.PathLike)):
            read_image(style, what=f"style image {i + 1}")  # a bad painting would fail every photo
    for mask in config.masks:
        read_image(mask, what="mask")  # an unreadable mask would fail every photo
    if config.init not in INITS:
        read_image(config.init, what="init image")
    if config.weights:
        load_weights(config.weights)  # a bad weights file would fail every photo
    resolve_device(config.device)
    style_names = "+".join(Path(s).stem if isinstance(s, (str, os.PathLike)) else "style" for s in styles)
    jobs = []
    for index, content in enumerate(contents, 1):
        names = {"stem": Path(content).stem, "style": style_names, "index": index}
        output = _output_path(args.output, names, "-o", "{stem}-{style}.png", batch)
        plot = _output_path(args.plot, names, "--plot", "{stem}-{style}-losses.png", batch) if args.plot else None
        jobs.append(Job(content, output, plot))
    for attr, what in (("output", "-o"), ("plot", "--plot")):
        first_of: dict[str, Job] = {}
        for job in jobs:
            if getattr(job, attr) is None:
                continue
            other = first_of.setdefault(_file_key(getattr(job, attr)), job)
            if other is job:
                continue
            names = [Path(other.content).name, Path(job.content).name]  # in full when they are alike
            template, clash = getattr(args, attr), " and ".join(names if names[0] != names[1] else
                                                                  [str(other.content), str(job.content)])
            advice = "put {stem} or {index} in the name, or give a folder"
            if "{stem}" in template or Path(template).is_dir() or template.endswith(("/", os.sep)):
                advice = "put {index} in it, such as FOLDER/{stem}-{index}.png"
            raise ConfigError(f"{what} {template}: {clash} would be written to the same file, "
                              f"{getattr(job, attr)}; {advice}")
    _check_nothing_overwritten(args, config, contents, styles, jobs)
    for job in jobs:
        _check_writable(job.output, SAVE_FORMATS)
        if sidecar_path(job.output):
            check_writable(sidecar_path(job.output))
        if job.plot:
            _check_writable(job.plot, PLOT_FORMATS)
    if args.log_json:
        _check_a_file(args.log_json, "--log-json")
        _check_writable(Path(args.log_json), None)
    if args.save_every:
        save_dir = Path(args.save_dir) if args.save_dir else None
        for folder in {save_dir or job.output.parent for job in jobs}:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ImageError(f"--save-dir {folder}: cannot make the folder ({exc.strerror or exc})") from None
            _check_folder_writable(folder, f"--save-dir {folder}")
    elif args.save_dir:
        raise ConfigError("--save-dir needs --save-every N")
    return Plan(config, styles, jobs, batch)


def _check_nothing_overwritten(args: argparse.Namespace, config: Config, contents: list[Any], styles: list[Any],
                               jobs: list[Job]) -> None:
    """No file the run writes may be one it reads, or one it writes for something else."""
    reads = {"an input image": [*contents, *styles, *config.masks, *([config.init] if config.init not in INITS else [])],
             "the weights file": [config.weights] if config.weights else [],
             "the --config file": [args.config] if getattr(args, "config", None) else []}
    read = {_file_key(p): what for what, paths in reads.items() for p in paths if isinstance(p, (str, os.PathLike))}
    # -o may replace the picture rerun or resumed (--resume's default does); nothing else may.
    source = getattr(args, "rerun", None) or getattr(args, "resume", None)
    verb = "rerun" if getattr(args, "rerun", None) else "resume"
    kept = {_file_key(p): f"the picture to {verb}" for p in (source, source and sidecar_path(source)) if p}
    writes = [(job.output, "-o") for job in jobs] + [(job.plot, "--plot") for job in jobs if job.plot]
    writes += [(sidecar_path(job.output), "-o's metadata") for job in jobs if sidecar_path(job.output)]
    if args.save_every:  # snapshots are named after their photo's output: two alike would overwrite
        snapshots = [_snapshot_path(args, job, 0) for job in jobs]
        if len({_file_key(path) for path in snapshots}) < len(snapshots):
            raise ConfigError(f"--save-every: two photos' snapshots would have the same names in "
                              f"{snapshots[0].parent}; give the outputs different names")
    writes += [(Path(args.log_json), "--log-json")] if args.log_json else []
    if args.save_every:  # no other output may have a snapshot's name (OUT-step00050.png)
        snapshot_names = {(_file_key(_snapshot_path(args, job, 0).parent), job.output.stem) for job in jobs}
        for path, what in writes:
            if any(_file_key(path.parent) == folder and re.fullmatch(re.escape(stem) + r"-step\d{5}\.png", path.name)
                   for folder, stem in snapshot_names):
                raise ConfigError(f"{path}: {what} has the name of a --save-every snapshot")
    written: dict[str, str] = {}
    for path, what in writes:
        resolved = _file_key(path)
        if resolved in read:
            raise ConfigError(f"{path}: {what} would overwrite {read[resolved]}")
        if resolved in kept and not what.startswith("-o"):
            raise ConfigError(f"{path}: {what} would overwrite {kept[resolved]}")
        if written.get(resolved, what) != what:
            raise ConfigError(f"{path}: {written[resolved]} and {what} would write the same file")
        written[resolved] = what


def _file_key(path: str | os.PathLike) -> str:
    """What names one file: the absolute path, without case where the file system ignores it
    (Windows; macOS by default)."""
    resolved = os.path.normcase(str(Path(path).resolve()))
    return resolved.casefold() if sys.platform == "darwin" else resolved


def _output_path(template: str, names: dict[str, Any], what: str, in_folder: str, batch: bool) -> Path:
    """The file for one photo: the template filled in, or a name inside a folder. For a single photo
    a name whose braces are not placeholders is kept as it is, unless they hold a placeholder misspelt."""
    if Path(template).is_dir() or template.endswith(("/", os.sep)):
        template = os.path.join(template, in_folder)
    try:
        unknown = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None
                   and field not in names]
        problem = f"bad placeholder {{{unknown[0]}}}" if unknown else None
    except ValueError:
        unknown, problem = [], "a brace that is not closed"
    misspelt = [(field, close[0]) for field in unknown if (close := difflib.get_close_matches(field, names, n=1))]
    if misspelt:
        raise ConfigError(f"{what} {template}: bad placeholder {{{misspelt[0][0]}}}; did you mean {{{misspelt[0][1]}}}?")
    if problem and not batch:  # one photo: the name is taken as it is
        return Path(template)
    if problem:
        raise ConfigError(f"{what} {template}: {problem}; use {{stem}}, {{style}} or {{index}} "
                          "(a brace in the name is written twice)")
    try:
        return Path(template.format(**names))
    except ValueError as exc:  # a format that does not fit the value: {stem:d}, {index!x}
        raise ConfigError(f"{what} {template}: {exc}") from None


def _check_a_file(text: str, option: str) -> None:
    """A path as typed that ends in a slash names a folder (which Path would quietly drop)."""
    if text.endswith(("/", os.sep)):
        raise ImageError(f"{text}: {option} takes a file name, not a folder")


def _check_writable(path: Path, formats: Any) -> None:
    """Fail now, not after minutes of work, if ``path`` cannot be written."""
    if formats is not None and path.suffix.lower() not in formats:
        raise ImageError(f"{path}: unsupported extension {path.suffix!r}; use one of {', '.join(formats)}")
    check_writable(path)
    _check_folder_writable(Path(os.path.realpath(path)).parent, str(path))


def _check_folder_writable(folder: Path, name: str) -> None:
    """Make and remove a file in ``folder``: the one sure test (modes, ACLs, read-only mounts, quotas)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".impasto-check-", dir=folder)
    except OSError as exc:
        raise ImageError(f"{name}: cannot write in folder {str(folder)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


# --- Running ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Carry out parsed arguments; ImpastoError for bad input (the caller reports it)."""
    the_plan = plan(args)
    if args.print_config:  # UTF-8 whatever the console's code page: it is a TOML file
        text, binary = config_to_toml(the_plan.config), getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text stream put in place of stdout: it takes text
            print(text, end="")
        else:
            sys.stdout.flush()
            binary.write(text.encode("utf-8"))
            binary.flush()
        return EXIT_OK
    _say_device(the_plan.config, args.quiet)
    if not args.quiet:
        _say_if_paintings_enlarged(the_plan.styles, the_plan.config)
    # A resumed run's steps go on from the stopped run's: so does its log, when it is the same file
    log = open(args.log_json, "a" if args.resume else "w", encoding="utf-8") if args.log_json else None
    failed = 0
    try:
        with Interrupts(say=not args.quiet) as interrupts:
            for index, job in enumerate(the_plan.jobs):
                label = f"[{index + 1}/{len(the_plan.jobs)}] {Path(job.content).name}" if the_plan.batch else ""
                try:
                    _paint(args, the_plan, job, label, log, interrupts)
                except ImpastoError as exc:
                    if not the_plan.batch:
                        raise
                    failed += 1
                    photo = "" if str(job.content) in str(exc) else f"photo {job.content}"  # a mask's error, say
                    skipped = "" if isinstance(exc, Unsaved) else "skipped"  # painted, and kept elsewhere
                    said = ", ".join(filter(None, (photo, skipped)))
                    print(f"impasto: error: {exc}{f' ({said})' if said else ''}", file=sys.stderr)
                if interrupts.signum is not None:
                    left = [Path(job.content).name for job in the_plan.jobs[index + 1:]]
                    if left:
                        named = ", ".join(left[:5]) + (", …" if len(left) > 5 else "")
                        print(f"impasto: stopped by {signal.Signals(interrupts.signum).name}; {len(left)} "
                              f"photo{'s' if len(left) > 1 else ''} not painted: {named}", file=sys.stderr)
                    return EXIT_SIGNAL[interrupts.signum]
    finally:
        if log:
            with contextlib.suppress(OSError):  # its failure was reported at the step it happened
                log.close()
    if failed:
        print(f"impasto: {failed} of {len(the_plan.jobs)} photos failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _paint(args: argparse.Namespace, the_plan: Plan, job: Job, label: str, log: TextIO | None,
           interrupts: "Interrupts") -> None:
    """Paint one photo and write its image, plot and intermediate saves."""
    if not args.quiet:
        _say_if_enlarged(job.content, the_plan.config)
    progress = Progress(args, the_plan.config, job, label, log, interrupts)
    try:
        try:
            result = stylize(job.content, the_plan.styles, the_plan.config, callback=progress, resume=args.resume)
        except ImpastoError as exc:  # its advice names settings as the command line spells them
            renamed = type(exc)(_as_typed(str(exc)))
            if hasattr(exc, "result"):
                renamed.result = exc.result
            raise renamed from None
        finally:
            progress.close()
    except Exception as exc:  # a failure mid-run (out of memory, say) carries the best image so far
        stopped = getattr(exc, "result", None)
        if stopped is not None and stopped.history:  # steps made in this call (not only a resumed run's)
            try:
                with interrupts.hold():  # the failure is what gets reported, a second signal or not
                    path, problem = _save_or_rescue(stopped, job.output)
                kept = _kept(stopped, path, instead=bool(problem))
                print(f"impasto: {problem + '; ' if problem else ''}{kept}", file=sys.stderr)
            except Unsaved as lost:
                print(f"impasto: error: {lost}", file=sys.stderr)
        raise
    with interrupts.hold():
        path, problem = _save_or_rescue(result, job.output)
    if problem:
        message = f"{problem}; {_kept(result, path, instead=True)}"
        interrupts.abort_if_pending(message)
        if interrupts.signum is None:
            raise Unsaved(message)
        print(f"impasto: error: {message}", file=sys.stderr)  # the run stopped as asked: exit as a signal says
        return
    interrupts.abort_if_pending(_kept(result, path, instead=False))
    if job.plot:
        plot_losses(result.history, job.plot, the_plan.config.sizes(), title=f"{path.name}: loss per step")
    if not args.quiet:
        squeezed = ", activations recomputed to fit in memory" if result.checkpointed else ""
        reason = result.stop_reason
        if interrupts.signum is not None:
            signal_name = signal.Signals(interrupts.signum).name
            reason = (f"{signal_name}: the best image so far" if reason == "cancelled"
                      else f"{reason}; {signal_name} came after the last step")
        timing = f"{result.timings['total']:.1f} s"
        if result.resumed_from:
            timing += f" resumed, {result.timings['total'] + result.resumed_from['seconds']:.1f} s in all"
        steps = f"{result.steps} step{'s' if result.steps != 1 else ''}"
        print(f"wrote {path} ({steps}, {timing}, stopped by {reason}{squeezed})", file=sys.stderr)
        if result.stopped_at:
            print(f"impasto: to go on where it stopped: impasto --resume {shlex.quote(str(path))}", file=sys.stderr)


def _kept(result: Result, path: Path, instead: bool) -> str:
    """Where ``result`` was kept (``instead`` of its output), and for a stopped run how to go on."""
    what = f"the best image so far (step {result.steps})" if result.stopped_at else "the painting"
    kept = f"{what} is kept in {path}{' instead' if instead else ''}"
    return kept + (f"; to go on from it: impasto --resume {shlex.quote(str(path))}" if result.stopped_at else "")


ENLARGED = 4  # a photo enlarged more than this many times comes out soft: say so


def _enlarged(source: Any, edge: float) -> tuple[int, int] | None:
    """(width, height) of an image file that a long edge of ``edge`` px enlarges more than ENLARGED
    times; None otherwise, or for an image in memory."""
    size = header_size(source) if isinstance(source, (str, os.PathLike)) else None
    return size if size and edge > ENLARGED * max(size) else None


def _say_if_enlarged(content: Any, config: Config) -> None:
    """A photo much smaller than the painting comes out soft; say so, and how to paint it at its size
    (when the network can see it at that size)."""
    size = _enlarged(content, config.max_size)
    if size is None:
        return
    own = "" if min(size) < smallest_edge((config.content_layer, *config.style_layers)) else \
        f" (-s {max(size)} paints it at its own size)"
    print(f"impasto: note: {content} is {size[0]}x{size[1]} px; painted at {config.max_size} px, "
          f"{config.max_size / max(size):.1f} times larger, it will look soft{own}", file=sys.stderr)


def _say_if_paintings_enlarged(styles: list[Any], config: Config) -> None:
    """A painting is seen at about the picture's size (times style_scale): a small one enlarged much,
    its strokes are blurs, which the result takes on."""
    seen = config.max_size * config.style_scale  # its long edge, for a painting of the photo's shape
    for style in styles:
        size = _enlarged(style, seen)
        if size is not None:
            print(f"impasto: note: {style} is {size[0]}x{size[1]} px; seen {seen / max(size):.1f} times larger, "
                  "its strokes will be blurred (a larger copy of the painting, or a smaller --style-scale, "
                  "paints sharper)", file=sys.stderr)


class Unsaved(ImageError):
    """The output could not be written once the painting was done (and maybe not kept elsewhere)."""

    exit_code = EXIT_FAILED  # not bad input: the run worked, the folder failed under it


def _save_or_rescue(result: Result, output: Path) -> tuple[Path, str | None]:
    """Write ``result`` to ``output`` or, if that fails now (a folder made read-only or a disk filled
    during the run), to a new file in the temporary folder: never lose the painting quietly. Returns
    where it went and, if not to ``output``, why; raises Unsaved when it could go nowhere."""
    try:
        return result.save(output), None
    except ImageError as exc:
        problem = str(exc)
    try:
        fd, rescue = tempfile.mkstemp(prefix=f"{output.stem}-", suffix=".png")
        os.close(fd)
    except OSError as exc:
        raise Unsaved(f"{problem}; nor could it be kept in the temporary folder {tempfile.gettempdir()} "
                      f"({exc.strerror or exc}): the picture is lost") from None
    try:
        return result.save(rescue), problem
    except ImpastoError as exc:
        Path(rescue).unlink(missing_ok=True)
        raise Unsaved(f"{problem}; nor could it be kept in {rescue} ({str(exc).removeprefix(rescue + ': ')}): "
                      "the picture is lost") from None


def _snapshot_path(args: argparse.Namespace, job: Job, step: int) -> Path:
    """Where --save-every writes a photo's picture after ``step`` steps."""
    folder = Path(args.save_dir) if args.save_dir else job.output.parent
    return (folder / f"{job.output.stem}-step{step:05d}.png").resolve()


def _say_device(config: Config, quiet: bool) -> None:
    if config.device != "auto" or quiet:
        return
    device = resolve_device("auto")
    if device.type == "cuda":
        import torch

        print(f"impasto: using the GPU {torch.cuda.get_device_name(device)} ({device})", file=sys.stderr)
    elif device.type != "cpu":
        print(f"impasto: using the GPU ({device})", file=sys.stderr)


class Progress:
    """The callback of one run: progress bar, JSON log, intermediate saves, and stop on a signal."""

    def __init__(self, args: argparse.Namespace, config: Config, job: Job, label: str, log: TextIO | None,
                 interrupts: "Interrupts") -> None:
        self.quiet, self.label, self.log, self.interrupts = args.quiet, label, log, interrupts
        # Absolute: a --resume of the run, which reads the path from the metadata, logs the same name
        self.content = os.path.abspath(job.content) if isinstance(job.content, (str, os.PathLike)) else "<image>"
        self.every = args.save_every
        self.snapshot = functools.partial(_snapshot_path, args, job)
        self.bar: Any = None
        self.resuming = args.resume  # said at the first step, once stylize has checked all it resumes

    def __call__(self, event: ProgressEvent) -> bool:
        kinds = loss_kinds(event.losses)
        height, width = event.image.shape[1:]
        if self.resuming and not self.quiet:
            print(f"impasto: resuming {self.resuming} at step {event.step} of {event.total} "
                  f"({max(height, width)} px)", file=sys.stderr)
        self.resuming = None
        if not self.quiet:
            self._draw(event, kinds, f"{width}x{height}")
        if self.log is not None:
            record = {"input": self.content, "step": event.step, "total": event.total, "scale": event.scale,
                      "size": [height, width], "loss": event.loss, **kinds, "terms": event.losses,
                      "elapsed": round(event.elapsed, 4)}
            try:
                self.log.write(json.dumps(record) + "\n")
                self.log.flush()
            except OSError as exc:  # the painting matters more than its log: go on without it
                self._give_up("--log-json", self.log.name, exc.strerror or exc)
                self.log = None
        if self.every and event.step % self.every == 0:
            try:
                save_image(event.image, self.snapshot(event.step),
                           metadata={"step": event.step, "loss": event.loss, "losses": event.losses})
            except ImpastoError as exc:
                path = self.snapshot(event.step)
                self._give_up("--save-every", path, str(exc).removeprefix(f"{path}: "))
                self.every = 0
        return self.interrupts.signum is not None  # True stops the run, keeping the best image

    def _give_up(self, option: str, path: Any, reason: Any) -> None:
        if self.bar is not None:
            self.bar.clear()
        print(f"impasto: warning: {option}: cannot write {path} ({reason}); going on without it", file=sys.stderr)

    def _draw(self, event: ProgressEvent, kinds: dict[str, float], size: str) -> None:
        terms = (f"{size} " if event.scales > 1 else "") + " ".join(f"{kind} {value:.3g}" for kind, value in kinds.items())
        if not sys.stderr.isatty():  # a log file: a plain line every tenth of the run, not a redrawn bar
            # and at the first step, which says that it started and how long a step takes
            if event.step % max(1, event.total // 10) == 0 or event.step in (1, event.total):
                print(f"{self.label + ' ' if self.label else ''}step {event.step}/{event.total}, "
                      f"{event.elapsed:.1f} s: {terms}", file=sys.stderr, flush=True)
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=event.total, desc=self.label or None, unit="step", dynamic_ncols=True,
                            file=sys.stderr, initial=event.step - 1)  # a resumed run starts part way
        self.bar.total = event.total  # less once a size has stopped early (tolerance)
        self.bar.set_postfix_str(terms, refresh=False)
        self.bar.update(event.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Interrupts:
    """While active, the first SIGINT or SIGTERM only sets ``signum``: the progress callback then stops
    the run, which keeps the best image so far. A second signal aborts at once, or once the result
    being written is whole (``hold``). Previous handlers are restored on exit; a signal that was
    being ignored stays ignored. ``say``: answer the first Ctrl-C at once, as a step may take a
    minute (at 4K), and a user who sees nothing presses it again and loses the picture."""

    def __init__(self, say: bool = False) -> None:
        self.say = say
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}
        self.holding = False  # while a result is written: a second signal waits until it is
        self.pending: int | None = None  # the exit code of a signal that waited

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_SIGNAL:
                previous = signal.getsignal(sig)
                if previous is not signal.SIG_IGN:
                    self.previous[sig] = previous
                    signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            if self.say and signum == signal.SIGINT:
                with contextlib.suppress(OSError, ValueError):  # stderr closed: the stop goes on regardless
                    print("\nimpasto: stopping after this step, keeping the best image so far "
                          "(Ctrl-C again quits at once, without it)", file=sys.stderr, flush=True)
            return
        exit_code = EXIT_SIGNAL.get(signum, EXIT_SIGNAL[signal.SIGINT])
        if self.holding:
            self.pending = exit_code
        else:
            raise Interrupted(exit_code)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Write a result (an image and its sidecar) whole: a second signal waits for
        ``abort_if_pending``, which is told what was written."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def abort_if_pending(self, done: str) -> None:
        """Abort for a second signal that came while a result was written, saying what was."""
        if self.pending is not None:
            raise Interrupted(self.pending, f"interrupted; {done}")

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
