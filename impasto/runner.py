"""The command line's runs, once its arguments parse: the settings, inputs and outputs of each photo
worked out and checked before any work, then each one painted with a progress bar, saved (or rescued
elsewhere), with Ctrl-C, SIGTERM and SIGHUP keeping the best image so far. ``cli.main`` imports this
module only after parsing, so that --help, --version and usage errors answer without loading torch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import functools
import json
import math
import os
import re
import shlex
import signal
import string
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TextIO

from . import __version__
from .api import check_one_each, fingerprint, input_record, stylize
from .device import machine, native_bfloat16, resolve_device, uses_bfloat16
from .result import Result
from .resume import differing_input, differing_setting, resume_point
from .cli import EXIT_FAILED, EXIT_OK, as_typed, config_from_args, config_to_toml
from .config import DEFAULT_DPI, INITS, Config, print_box, print_long_edge, printed_length
from .errors import AGAIN, EXIT_SIGNAL, NOTHING_WRITTEN, ConfigError, ImageError, ImpastoError, Interrupted
from .imageio import (HEIC_EXTENSIONS, SAVE_FORMATS, check_writable, header_size, long_edge_shape, read_formats,
                      read_image, read_metadata, save_image, sidecar_path)
from .optimize import ProgressEvent
from .plot import PLOT_FORMATS, loss_kinds, plot_losses
from .vgg import load_weights, smallest_edge


# --- Planning a run: inputs, outputs, checks before any work ------------------------------------


@dataclass
class Job:
    """One photo to paint and where its files go."""

    content: Any  # a path, or the demo's in-memory photo
    output: Path
    config: Config  # the plan's, with a --print-size sheet's long edge for this photo
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
    if args.continue_run and (args.rerun or args.resume):
        raise ConfigError("--continue goes on with photos to paint: give it without --rerun or --resume")
    if args.rerun or args.resume:
        option = "--rerun" if args.rerun else "--resume"
        if args.inputs or args.content or args.demo:
            raise ConfigError(f"{option} takes no CONTENT, STYLE, --content or --demo: the inputs come from the image")
        return _plan_rerun(args)
    config = config_from_args(args)
    if args.print_config:
        photos = args.content or args.inputs[:1]  # a sheet is fitted to the one photo given
        fitted = _fitted(args, config, photos[0]) if len(photos) == 1 and Path(photos[0]).is_file() else config
        if _sheet(args) and fitted is config and not args.quiet:
            print(f"impasto: note: --print-size {args.print_size} fits each photo on the sheet as it is painted; "
                  "max_size here is the sheet's long edge", file=sys.stderr)
        return Plan(fitted, [], [], False)
    if args.demo:
        if args.inputs or args.content:
            raise ConfigError("--demo takes no CONTENT, STYLE or --content: it paints its own sample photo and painting")
        from .samples import sample_photo_path, sample_style_image

        contents, styles, batch = [sample_photo_path()], [sample_style_image()], False
        args.output = args.output or "impasto-demo.png"
    else:
        contents, styles = (args.content, args.inputs) if args.content else (args.inputs[:1], args.inputs[1:])
        _check_named(args, contents, styles)
        batch = len(contents) > 1 or any(Path(c).is_dir() for c in contents)
        if args.content and len(styles) > 1 and not args.quiet:  # "impasto -c a.jpg photo.jpg art.jpg" meant one
            print(f"impasto: note: with --content, every other image is a painting: blending {len(styles)} "
                  f"({', '.join(styles)})", file=sys.stderr)
        contents = [photo for c in contents for photo in _expand(c, styles, args.quiet)]
    return _finish_plan(args, config, contents, styles, batch)


def _check_named(args: argparse.Namespace, contents: list[str], styles: list[str]) -> None:
    """Refuse a command line without a photo, a painting or an output, saying which is missing."""
    if not contents:
        raise ConfigError("give CONTENT, at least one STYLE and -o OUTPUT (or --rerun IMAGE, or --demo; "
                          "see impasto --help)")
    if not styles:
        where = "as the images besides --content" if args.content else "after the photo"
        raise ConfigError(f"no STYLE image: give one or more paintings {where} (impasto PHOTO PAINTING -o OUT)")
    if args.output is None:
        raise ConfigError("no -o OUTPUT: name the file to write, -o out.png say (for a batch, a folder or a template)")
    if not args.output.strip():
        raise ConfigError("-o is empty: name the file to write, -o out.png say")


def _expand(content: str, styles: list[str], quiet: bool) -> list[str]:
    """A folder becomes the image files in it (by extension, sorted), but for the paintings and for
    earlier results (images with impasto's metadata: painting a folder again with -o in it must not
    paint its results); a file stays itself."""
    if not Path(content).is_dir():
        return [content]
    from PIL import Image

    formats = read_formats()  # first: registering pillow-heif's reader adds to Pillow's extensions
    extensions = {ext for ext, fmt in Image.registered_extensions().items() if fmt in formats}
    files = sorted((p for p in Path(content).iterdir() if not p.name.startswith(".") and not p.is_dir()), key=str)
    images = [str(p) for p in files if p.suffix.lower() in extensions]
    heic = [p.name for p in files if p.suffix.lower() in HEIC_EXTENSIONS and p.suffix.lower() not in extensions]
    unread = f"{len(heic)} HEIC image{'s, which need' if len(heic) > 1 else ', which needs'} pillow-heif " \
             f"(pip install pillow-heif): {_named(heic)}"
    paintings = {_file_key(style) for style in styles}
    photos = [image for image in images if _file_key(image) not in paintings and not _painted_by_impasto(image)]
    if not photos and heic:
        raise ImageError(f"{content}: folder holds no photo impasto can read but {unread}")
    if not photos:
        raise ImageError(f"{content}: folder holds no image files" + (" but paintings and earlier results"
                                                                         if images else ""))
    if heic and not quiet:
        print(f"impasto: note: {content}: leaving out {unread}", file=sys.stderr)
    kept = set(photos)
    left_out = [Path(image).name for image in images if image not in kept]
    if left_out and not quiet:
        many = len(left_out) > 1
        print(f"impasto: note: {content}: leaving out {len(left_out)} image{'s' if many else ''} that "
              f"{'are' if many else 'is'} a painting or an earlier result: {_named(left_out)}", file=sys.stderr)
    return photos


def _painted_by_impasto(path: str) -> bool:
    try:
        return read_metadata(path) is not None
    except ImpastoError:  # unreadable: left in, for the run to report
        return False


def _plan_rerun(args: argparse.Namespace) -> Plan:
    """The plan of --rerun (the same run again) or --resume (the rest of a stopped run)."""
    source, verb = (Path(args.rerun), "rerun") if args.rerun else (Path(args.resume), "resume")
    meta = _saved_run(source, verb)
    inputs, paths = _recorded_inputs(meta, source, verb)
    paths = _found_beside(source, inputs, paths, args.quiet)
    if meta.get("impasto") != __version__ and not args.quiet:
        print(f"impasto: note: {source} was made by impasto {meta.get('impasto')}, this is {__version__}; "
              "the result may differ", file=sys.stderr)
    config = _fitted(args, config_from_args(args, _recorded_config(meta, source, inputs, paths)), paths["content"])
    if args.print_config:
        return Plan(config, [], [], False)
    new_name = source.name if args.resume else f"{source.stem}-rerun{source.suffix}"
    if args.resume and not args.output and isinstance(meta.get("snapshot_of"), str):
        args.output = _snapshots_output(source, Path(meta["snapshot_of"]), config, inputs, args.quiet)
    if not args.output:
        args.output = str(source.with_name(new_name))
    elif Path(args.output).is_dir() or args.output.endswith(("/", os.sep)):  # into a folder: the same name
        args.output = os.path.join(args.output, new_name)
    if args.rerun and not args.quiet:
        for note in _rerun_differences(source, meta, config):
            print(f"impasto: note: {note}", file=sys.stderr)
    styles = [_demo_style_if_drawn(p, h) for p, h in zip(paths["style"], inputs["style"])]
    _check_unchanged(source, verb, config, inputs, paths, styles)
    if args.resume:  # a run that cannot go on is refused before any output is touched (the rest: stylize)
        resume_point(source, config)
    return _finish_plan(args, config, [paths["content"]], styles, False)


def _rerun_differences(source: Path, meta: dict[str, Any], config: Config) -> list[str]:
    """Why a rerun of ``source`` here will not repeat its picture to the last bit (besides new settings)."""
    notes = []
    if meta.get("resumed_from"):
        notes.append(f"{source} was stopped and resumed; the rerun paints it without a stop, so it differs a little")
    elif meta.get("stopped_at"):
        notes.append(f"{source} was stopped at step {meta.get('steps')}; the rerun paints all the steps")
    device = resolve_device(config.device)
    was, now = meta.get("machine") or {}, machine(device)
    if was.get("device", now["device"]).split(":")[0] != device.type:
        notes.append(f"{source} was painted on {was['device']}, this run is on {now['device']}, so it differs a little")
    elif was.get("threads", now.get("threads")) != now.get("threads"):
        threads = f"{was['threads']} CPU thread{'s' if was['threads'] != 1 else ''}"
        notes.append(f"{source} was painted with {threads}, this run has {now['threads']}, so it differs a little "
                     f"(OMP_NUM_THREADS={was['threads']} repeats it)")
    if "bfloat16" in meta and meta["bfloat16"] != uses_bfloat16(config.precision, device):
        then, here = ("bfloat16", "float32") if meta["bfloat16"] else ("float32", "bfloat16")
        notes.append(f"{source} was painted in {then}, this run computes in {here}, so it differs "
                     f"(--precision {then} repeats it)")
    return notes


def _snapshots_output(snapshot: Path, output: Path, config: Config, inputs: dict[str, Any], quiet: bool) -> str:
    """Where a --save-every snapshot resumed without -o writes the painting: the run's output, not over
    the snapshot; refused when that is gone, or holds a picture of another run."""
    if not output.parent.is_dir():
        raise ConfigError(f"{snapshot}: a --save-every snapshot of {output}, whose folder is gone; name the "
                          "painting's file with -o")
    if output.exists() and _run_of(output, config, inputs).state not in ("stopped", "finished"):
        raise ConfigError(f"{snapshot}: a --save-every snapshot of {output}, which now holds another picture; "
                          "name the painting's file with -o")
    if not quiet:
        print(f"impasto: note: {snapshot} is a --save-every snapshot of {output}; the painting goes there",
              file=sys.stderr)
    return str(output)


def _saved_run(source: Path, verb: str) -> dict[str, Any]:
    """The impasto metadata of a painting to rerun or resume."""
    meta = read_metadata(source)
    if meta and "config" not in meta and "step" in meta:
        raise ImageError(f"{source}: a --save-every snapshot of impasto before 0.9.0 records only its step and "
                         f"losses; {verb} the painting it led to")
    if not meta or "config" not in meta:
        raise ImageError(f"{source}: carries no impasto metadata, cannot {verb} it")
    return meta


def _recorded_config(meta: dict[str, Any], source: Path, inputs: dict[str, Any], paths: dict[str, Any]
                     ) -> dict[str, Any]:
    """The saved run's settings as a dict, with its init image, masks and weights by absolute path,
    so that a rerun from another folder finds them."""
    try:
        base = dataclasses.asdict(Config.from_saved(meta["config"]))
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{source}: its settings cannot be used ({exc})") from None
    for name in ("init", "weights"):
        if name in inputs:
            base[name] = paths[name]
    if "masks" in inputs:
        base["masks"] = tuple(paths["masks"])
    return base


def _check_unchanged(source: Path, verb: str, config: Config, inputs: dict[str, Any], paths: dict[str, Any],
                     styles: list[Any]) -> None:
    """Each recorded input that the run will read is still there, with the SHA-256 recorded; the
    recorded init image, masks and weights only where the new settings still use them."""
    checks = [("content image", paths["content"], inputs["content"])]
    checks += [(f"style image {i + 1}", p, h) for i, (p, h, style) in
               enumerate(zip(paths["style"], inputs["style"], styles)) if style is p]
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


def _found_beside(source: Path, inputs: dict[str, Any], paths: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """``paths``, with each input no longer at its recorded path but beside ``source`` or in the folder
    above it (a --save-dir snapshot's), under its name and with its recorded SHA-256, taken from
    there: a folder of photo, painting and pictures moved as a whole still reruns and resumes."""
    picture = Path(os.path.abspath(source))  # "x.png" has a folder above it too

    def found(path: Any, digest: str) -> Any:
        if not isinstance(path, str) or Path(path).exists():
            return path
        near = (folder / Path(path).name for folder in (picture.parent, picture.parent.parent))
        beside = next((file for file in near if file.is_file() and fingerprint(file) == digest), None)
        if beside is None:
            return path
        if not quiet:
            print(f"impasto: note: {path} is gone; using {beside}, found near {source} (the same SHA-256)",
                  file=sys.stderr)
        return os.path.abspath(beside)
    return {key: [found(p, d) for p, d in zip(value, inputs[key])] if isinstance(value, list)
            else found(value, inputs[key]) for key, value in paths.items() if key in inputs}


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
    """Check the inputs every photo shares, name each photo's outputs, and check that they can be written."""
    _check_shared_inputs(args, config, styles)
    style_names = "+".join(Path(s).stem if isinstance(s, (str, os.PathLike)) else "style" for s in styles)
    jobs = []
    for index, content in enumerate(contents, 1):
        names = {"stem": Path(content).stem, "style": style_names, "index": index}
        output = _output_path(args.output, names, "-o", "{stem}-{style}.png", batch)
        plot = _output_path(args.plot, names, "--plot", "{stem}-{style}-losses.png", batch) if args.plot else None
        jobs.append(Job(content, output, _fitted(args, config, content), plot))
    _check_no_two_alike(args, jobs)
    if args.continue_run and batch:  # one photo's output is named for it
        _check_outputs_not_moved(args, jobs)
    _check_nothing_overwritten(args, config, contents, styles, jobs)
    for job in jobs:
        _check_output_path(job.output, SAVE_FORMATS)
        if sidecar_path(job.output):
            check_writable(sidecar_path(job.output))
        if job.plot:
            _check_output_path(job.plot, PLOT_FORMATS)
    if args.log_json:
        _check_a_file(args.log_json, "--log-json")
        _check_output_path(Path(args.log_json), None)
    if args.save_every:
        save_dir = Path(args.save_dir) if args.save_dir else None
        for folder in {save_dir or job.output.parent for job in jobs}:
            _make_save_dir(folder)
    elif args.save_dir:
        raise ConfigError("--save-dir needs --save-every N")
    return Plan(config, styles, jobs, batch)


def _check_shared_inputs(args: argparse.Namespace, config: Config, styles: list[Any]) -> None:
    """The settings' counts, the paintings, masks, start image, weights and device: a bad one would
    fail every photo of a batch, so it is found before the first."""
    try:
        check_one_each(config, len(styles))
    except ConfigError as exc:  # named as typed: the option, or the --config file's key
        name = str(exc).partition(" ")[0]
        in_file = getattr(args, "config", None) and not hasattr(args, name)
        raise ConfigError(f"{args.config}: {exc}" if in_file else f"invalid option: {as_typed(str(exc))}") from None
    for i, style in enumerate(styles):
        if isinstance(style, (str, os.PathLike)):
            read_image(style, what=f"style image {i + 1}")
    for i, mask in enumerate(config.masks):
        _check_readable(mask, f"mask {i + 1}" if len(config.masks) > 1 else "mask")
    if config.init not in INITS:
        _check_readable(config.init, "init image")
    if config.weights:
        load_weights(config.weights)
    resolve_device(config.device)


def _check_outputs_not_moved(args: argparse.Namespace, jobs: list[Job]) -> None:
    """For --continue: no output may hold the painting of another photo, one of the batch or one of
    another name. {index} moves when a photo joins or leaves the folder, and going on would paint
    every photo after it again, each over another's painting. A photo changed under its own name is
    painted again, as it would be."""
    jobs_of: dict[str, list[Job]] = {}  # by the photo's SHA-256: two files may hold the same photo
    for job in jobs:
        with contextlib.suppress(ImpastoError):  # a photo that cannot be read fails when it is painted
            jobs_of.setdefault(fingerprint(job.content), []).append(job)
    for job in jobs:
        try:
            meta = read_metadata(job.output) if job.output.is_file() else None
        except ImpastoError:
            continue
        inputs = meta.get("inputs") if isinstance(meta, dict) else None
        paths = inputs.get("paths") if isinstance(inputs, dict) else None
        digest, path = inputs and inputs.get("content"), paths.get("content") if isinstance(paths, dict) else None
        painted = jobs_of.get(digest, []) if isinstance(digest, str) else []
        if job in painted:
            continue
        if painted:
            other = f"{painted[0].content}, which this run would write to {painted[0].output}"
        elif isinstance(path, str) and Path(path).name != Path(job.content).name:
            other = path
        else:  # the photo, changed (or metadata that names none)
            continue
        raise ConfigError(f"--continue: {job.output} holds the painting of {other}: the outputs have moved, as "
                          f"{{index}} in -o {args.output} does when a photo joins or leaves; name them by {{stem}}, "
                          "or give a new folder")


def _fitted(args: argparse.Namespace, config: Config, content: Any) -> Config:
    """``config`` for one photo: a --print-size sheet or paper (10x15cm, A4) sets the long edge that fits it."""
    if not _sheet(args):
        return config
    size = header_size(content) if isinstance(content, (str, os.PathLike)) else None
    if size is None:  # read_image says why when the photo is painted
        return config
    return config.replace(max_size=print_long_edge(args.print_size, config.dpi or DEFAULT_DPI, size))


def _sheet(args: argparse.Namespace) -> bool:
    """Whether --print-size names a sheet or a paper (fitted to each photo) rather than a long edge."""
    return bool(getattr(args, "print_size", None)) and print_box(args.print_size)[1] is not None


def _check_no_two_alike(args: argparse.Namespace, jobs: list[Job]) -> None:
    """No photo given twice (a file, and in a folder given too, say), and no two photos of a batch
    written to the same file (-o or --plot)."""
    photos: set[str] = set()
    for job in jobs:
        if not isinstance(job.content, (str, os.PathLike)):
            continue
        if _file_key(job.content) in photos:
            raise ConfigError(f"{job.content}: given twice as a photo; give it once")
        photos.add(_file_key(job.content))
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


def _make_save_dir(folder: Path) -> None:
    """--save-every's folder, made if missing, and checked to be writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # it, or a folder above it, is a file
        file = next((p for p in (*reversed(folder.parents), folder) if p.exists() and not p.is_dir()), folder)
        raise ImageError(f"--save-dir {folder}: {'it' if file == folder else file} is a file, not a folder") from None
    except OSError as exc:
        raise ImageError(f"--save-dir {folder}: cannot make the folder ({exc.strerror or exc})") from None
    _check_folder_writable(folder, f"--save-dir {folder}")


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
            if any(_file_key(path.parent) == folder and _snapshot_step(path.name, stem) is not None
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


def _check_readable(path: str, what: str) -> None:
    """Read an image file that an option names, saying in the error what it was for."""
    try:
        read_image(path, what=what)
    except ImageError as exc:
        raise ImageError(f"{exc} (the {what})") from None


def _check_a_file(text: str, option: str) -> None:
    """A path as typed that ends in a slash names a folder (which Path would quietly drop)."""
    if text.endswith(("/", os.sep)):
        raise ImageError(f"{text}: {option} takes a file name, not a folder")


def _check_output_path(path: Path, formats: Any) -> None:
    """Fail now, not after minutes of work, if ``path`` cannot be written."""
    if formats is not None and not path.suffix:  # the format comes from the extension
        raise ImageError(f"{path}: no extension to tell the format; use one of {', '.join(formats)} "
                         f"({path.name}{next(iter(formats))}, say)")
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
    if args.print_config:
        _print_config(the_plan.config)
        return EXIT_OK
    _say_device(the_plan.config, args.quiet)
    if not args.quiet:
        _say_if_paintings_enlarged(the_plan.styles, max((job.config for job in the_plan.jobs),
                                                        key=lambda config: config.max_size))
    # A resumed run's steps go on from the stopped run's (--continue's too): so does its log, when it is the same file
    appends = args.resume or args.continue_run
    log = open(args.log_json, "a" if appends else "w", encoding="utf-8") if args.log_json else None
    clock = _BatchClock([_pixels_to_paint(args, job, the_plan) for job in the_plan.jobs]) if the_plan.batch else None
    outcomes: list[str] = []
    started = time.monotonic()
    try:
        with Interrupts(say=not args.quiet) as interrupts:
            for index, job in enumerate(the_plan.jobs):
                interrupts.painting = False  # until this photo's first step: a signal now leaves it unpainted
                try:
                    outcome = _paint_or_skip(args, the_plan, index, job, log, interrupts, clock)
                except Interrupted as exc:  # a second signal: quit at once, naming the photos left unpainted
                    left = the_plan.jobs[index + exc.after_writing:]
                    if the_plan.batch and left:
                        exc.args = (f"{exc}; {_not_painted(left)}",)
                    raise
                except ImpastoError as exc:
                    if not the_plan.batch:
                        raise
                    outcome = "failed"
                    _say_failed(job, exc)
                outcomes.append(outcome)
                if interrupts.signum is not None:
                    _say_stopped(interrupts.signum, the_plan, the_plan.jobs[index + (outcome != "left"):])
                    return EXIT_SIGNAL[interrupts.signum]
    finally:
        if log:
            with contextlib.suppress(OSError):  # its failure was reported at the step it happened
                log.close()
    failed = outcomes.count("failed")
    if the_plan.batch and (failed or not args.quiet):
        print(f"impasto: {_batch_summary(outcomes, time.monotonic() - started)}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _batch_summary(outcomes: list[str], seconds: float) -> str:
    """A finished batch in a line: "2 of 3 photos failed; 1 painted in 1 min 12 s, 1 already painted"."""
    painted, skipped, failed = (outcomes.count(outcome) for outcome in ("painted", "skipped", "failed"))
    done = []
    if painted:
        done.append(f"{painted} painted in {_duration(seconds)}")
    if skipped:
        done.append(f"{skipped} already painted (--continue)")
    if failed:
        return f"{failed} of {len(outcomes)} photos failed" + (f"; {', '.join(done)}" if done else "")
    count, _, rest = ", ".join(done).partition(" ")
    return f"{count} photo{'s' * (int(count) > 1)} {rest}"


def _duration(seconds: float) -> str:
    """42.3 s, 4 min 12 s or 1 h 4 min."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes = round(seconds) // 60
    if minutes < 60:
        return f"{minutes} min {round(seconds) % 60} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _print_config(config: Config) -> None:
    """--print-config: the settings as TOML, in UTF-8 whatever the console's code page."""
    text, binary = config_to_toml(config), getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text stream put in place of stdout: it takes text
        print(text, end="")
        return
    sys.stdout.flush()
    binary.write(text.encode("utf-8"))
    binary.flush()


def _paint_or_skip(args: argparse.Namespace, the_plan: Plan, index: int, job: Job, log: TextIO | None,
                   interrupts: "Interrupts", clock: "_BatchClock | None") -> str:
    """Paint photo number ``index`` (with --continue, only what is left of it): "painted", "skipped"
    (painted already), or "left" unpainted by a signal before its first step."""
    finished, resume = _continuing(args, job, the_plan) if args.continue_run else (False, args.resume)
    if finished:
        if not args.quiet:
            print(f"impasto: {job.output} is already painted with these settings; skipped (--continue)",
                  file=sys.stderr)
        return "skipped"
    label = f"[{index + 1}/{len(the_plan.jobs)}] {Path(job.content).name}" if the_plan.batch else ""
    batch_left = functools.partial(clock.seconds_left, index) if clock else None
    return "painted" if _paint(args, the_plan, job, label, log, interrupts, resume, batch_left) else "left"


def _say_failed(job: Job, exc: ImpastoError) -> None:
    """A batch's photo that failed, named, and whether its painting was skipped or kept elsewhere."""
    photo = "" if str(job.content) in str(exc) else f"photo {job.content}"  # a mask's error, say
    skipped = "" if isinstance(exc, Unsaved) else "skipped"  # painted, and kept elsewhere
    said = ", ".join(filter(None, (photo, skipped)))
    print(f"impasto: error: {exc}{f' ({said})' if said else ''}", file=sys.stderr)


def _say_stopped(signum: int, the_plan: Plan, left: list[Job]) -> None:
    """A run stopped by a signal: the photos it left unpainted, and how to paint them."""
    name = signal.Signals(signum).name
    if the_plan.batch and left:
        print(f"impasto: stopped by {name}; {_not_painted(left)} (the same command with --continue paints what "
              "is left)", file=sys.stderr)
    elif left:
        print(f"impasto: stopped by {name} {NOTHING_WRITTEN}", file=sys.stderr)


def _not_painted(jobs: list[Job]) -> str:
    names = [Path(job.content).name for job in jobs]
    return f"{len(names)} photo{'s' if len(names) > 1 else ''} not painted: {_named(names)}"


def _named(names: list[str]) -> str:
    """Up to five names, then "…"."""
    return ", ".join(names[:5]) + (", …" if len(names) > 5 else "")


def _continuing(args: argparse.Namespace, job: Job, the_plan: Plan) -> tuple[bool, Path | None]:
    """For --continue: whether ``job``'s output is already its painting with these settings and inputs,
    and if not, the picture to go on from, the furthest along: that run stopped part way in the
    output, or one of its --save-every snapshots (all that is left of a run killed outright)."""
    inputs, found = _output_run(job, the_plan)
    if found.state == "finished":
        return True, None
    if found.state == "stopped elsewise" and not args.quiet:  # a typo in a setting would lose a long print
        print(f"impasto: note: {job.output} was stopped part way with {as_typed(found.why)}; replacing it",
              file=sys.stderr)
    folder = _snapshot_path(args, job, 0).parent
    snapshots = [path for path in (folder.iterdir() if folder.is_dir() else [])
                 if _snapshot_step(path.name, job.output.stem) is not None]
    stopped = [(found.steps, job.output)] if found.state == "stopped" else []
    for path in snapshots:
        snapshot = _run_of(path, job.config, inputs)
        if snapshot.state == "stopped":
            stopped.append((snapshot.steps, path))
    return False, max(stopped, key=lambda pair: pair[0])[1] if stopped else None


class _Found(NamedTuple):
    """What a picture is to a run (``_run_of``)."""

    state: Literal["finished", "stopped", "stopped elsewise", "other"]  # elsewise: with other settings or inputs
    steps: int = 0  # steps it records
    why: str = ""  # for "stopped elsewise": the setting or input that differs


def _output_run(job: Job, the_plan: Plan) -> tuple[dict[str, Any], _Found]:
    """``job``'s inputs (``api.input_record``), and what its output is to a run of them (``_run_of``)."""
    inputs = input_record(job.content, the_plan.styles, job.config)
    return inputs, _run_of(job.output, job.config, inputs)


def _run_of(path: Path, config: Config, inputs: dict[str, Any]) -> _Found:
    """What the picture in ``path`` is to a run of ``config`` on ``inputs`` (``api.input_record``): its
    painting, that run stopped part way, or another (none, another run's, or a file whose metadata
    cannot be read, which is painted afresh)."""
    try:
        meta = read_metadata(path) if path.is_file() else None
        saved = Config.from_saved(meta["config"]) if meta and "config" in meta else None
    except (ImpastoError, TypeError):
        return _Found("other")
    recorded = meta.get("inputs") if meta else None
    if saved is None or not isinstance(recorded, dict) or not isinstance(meta.get("steps"), int):
        return _Found("other")
    setting, differing = differing_setting(config, saved), differing_input(recorded, inputs)
    if setting or differing:
        why = f"{setting[0]} {setting[2]!r}, not {setting[1]!r}" if setting else f"other {differing[1]}"
        return _Found("stopped elsewise" if meta.get("stopped_at") else "other", meta["steps"], why)
    return _Found("stopped" if meta.get("stopped_at") else "finished", meta["steps"])


def _paint(args: argparse.Namespace, the_plan: Plan, job: Job, label: str, log: TextIO | None,
           interrupts: "Interrupts", resume: Any,
           batch_left: Callable[[float, float], float | None] | None) -> bool:
    """Paint one photo (going on from the stopped picture ``resume``, if not None) and write its image,
    plot and intermediate saves; False when a signal came before its first step was made, and nothing
    was written (its output, if any, left as it was)."""
    if not args.quiet:
        _say_if_enlarged(job.content, job.config)
    progress = Progress(args, job, label, log, interrupts, resume, batch_left)
    try:
        try:
            result = stylize(job.content, the_plan.styles, job.config, callback=progress, resume=resume)
        except ImpastoError as exc:  # its advice names settings as the command line spells them
            renamed = type(exc)(as_typed(str(exc)))
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
                kept = _kept(stopped, path, bool(problem), args, job)
                print(f"impasto: {problem + '; ' if problem else ''}{kept}", file=sys.stderr)
            except Unsaved as lost:
                print(f"impasto: error: {lost}", file=sys.stderr)
        raise
    if progress.stopped_unpainted:  # a picture of one step, perhaps over a finished one: not worth it
        return False
    if resume is not None and not result.history and not args.quiet:  # stopped on its last step: no event said so
        print(f"impasto: {resume} had no steps left to paint; finishing it", file=sys.stderr)
    with interrupts.hold():
        path, problem = _save_or_rescue(result, job.output)
    if problem:
        message = f"{problem}; {_kept(result, path, True, args, job)}"
        interrupts.abort_if_pending(message)
        if interrupts.signum is None:
            raise Unsaved(message)
        print(f"impasto: error: {message}", file=sys.stderr)  # the run stopped as asked: exit as a signal says
        return True
    try:
        interrupts.abort_if_pending(_kept(result, path, False, args, job))
        _plot_and_report(args, the_plan, job, result, path, interrupts)
    except Interrupted as exc:  # the picture is written all the same: it is not among those left unpainted
        if not exc.after_writing:  # a second signal during the plot or the report
            exc.args, exc.after_writing = (f"interrupted again; {_kept(result, path, False, args, job)}",), True
        raise
    return True


def _plot_and_report(args: argparse.Namespace, the_plan: Plan, job: Job, result: Result, path: Path,
                     interrupts: "Interrupts") -> None:
    """Once a photo's painting is written: its --plot, and what was written, how and why it stopped."""
    if job.plot:
        history = result.history
        if result.resumed_from and args.log_json and history:  # the part before the stop, from the log
            logged = _logged_rows(args.log_json, _logged_input(job), os.path.abspath(job.output), history[0]["step"])
            history = logged + history
        plot_losses(history, job.plot, job.config.sizes(), title=f"{path.name}: loss per step")
    if not args.quiet:
        squeezed = (", activations recomputed to fit in memory" if result.checkpointed
                    else ", freed memory given back at every step to fit in memory" if not result.keeps_freed else "")
        reason = result.stop_reason
        if interrupts.signum is not None:
            signal_name = signal.Signals(interrupts.signum).name
            reason = (f"{signal_name}: the best image so far" if reason == "cancelled"
                      else f"{reason}; {signal_name} came after the last step")
        timing = f"{result.timings['total']:.1f} s"
        if result.resumed_from:
            timing += f" resumed, {result.timings['total'] + result.resumed_from['seconds']:.1f} s in all"
        steps = f"{result.steps} step{'s' if result.steps != 1 else ''}"
        print(f"wrote {path}{_print_size(result)} ({steps}, {timing}, stopped by {reason}{squeezed})", file=sys.stderr)
        if result.stopped_at:
            print(f"impasto: to go on where it stopped: {_resume_command(path, args, job)}", file=sys.stderr)


def _print_size(result: Result) -> str:
    """", a 42.0 × 31.5 cm (16.5 × 12.4 in) print at 300 dpi" for a picture saved with a dpi; else ""."""
    dpi = result.config.dpi
    if dpi is None:
        return ""
    inches = [pixels / dpi for pixels in (result.image.shape[2], result.image.shape[1])]
    return (f", a {inches[0] * 2.54:.1f} × {inches[1] * 2.54:.1f} cm ({inches[0]:.1f} × {inches[1]:.1f} in) "
            f"print at {dpi} dpi")


def _logged_input(job: Job) -> str:
    """How --log-json names a photo: its absolute path (a --resume of the run reads the path from the
    metadata, and logs the same name)."""
    return os.path.abspath(job.content) if isinstance(job.content, (str, os.PathLike)) else "<image>"


def _logged_rows(log: str, content: str, output: str, before: int) -> list[dict[str, float]]:
    """The history rows that --log-json recorded for ``content`` painted into ``output`` before step
    ``before``, so that a resumed run's plot draws the whole run; none where the log cannot be read
    (missing, or not text), and the plot draws only the resumed part."""
    rows: dict[int, dict[str, float]] = {}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(log).read_text(encoding="utf-8").splitlines():
            record = _logged_record(line, content, output)
            with contextlib.suppress(TypeError, KeyError):  # a record of ours that was edited: left out
                if record is not None and record["step"] < before:
                    rows[record["step"]] = {"step": record["step"], "scale": record["scale"], "loss": record["loss"],
                                            **record["terms"]}
    return [rows[step] for step in sorted(rows)]


def _logged_record(line: str, content: str, output: str) -> dict[str, Any] | None:
    """A --log-json line's record, if it is one of a run painting ``content`` into ``output``."""
    with contextlib.suppress(ValueError):
        record = json.loads(line)
        if isinstance(record, dict) and record.get("input") == content and record.get("output") == output:
            return record
    return None


def _kept(result: Result, path: Path, instead: bool, args: argparse.Namespace, job: Job) -> str:
    """Where ``result`` was kept (``instead`` of its output), and for a stopped run how to go on."""
    what = f"the best image so far (step {result.image_step or result.steps})" if result.stopped_at else "the painting"
    kept = f"{what} is kept in {path}{' instead' if instead else ''}"
    return kept + (f"; to go on from it: {_resume_command(path, args, job)}" if result.stopped_at else "")


def _resume_command(path: Path, args: argparse.Namespace, job: Job) -> str:
    """The command that resumes the picture stopped in ``path``, with the run's log, plot and snapshots,
    which --resume does not take from the picture."""
    words = ["impasto", "--resume", str(path)]
    if args.log_json:
        words += ["--log-json", args.log_json]
    if job.plot:
        words += ["--plot", str(job.plot)]
    if args.save_every:
        words += ["--save-every", str(args.save_every), *(["--save-dir", args.save_dir] if args.save_dir else [])]
    return shlex.join(words)


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
    printed = f"; {printed_length(max(size), config.dpi)}" if config.dpi else ""
    own = "" if min(size) < smallest_edge(config.layers) else f" (-s {max(size)} paints it at its own size{printed})"
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


def _snapshot_step(name: str, stem: str) -> int | None:
    """The step of a file named as _snapshot_path names the snapshots of an output named ``stem``; None
    for any other name."""
    match = re.fullmatch(rf"{re.escape(stem)}-step(\d{{5,}})\.png", name)
    return int(match[1]) if match else None


def _say_device(config: Config, quiet: bool) -> None:
    if quiet:
        return
    if config.precision == "bfloat16" and resolve_device(config.device).type == "cpu" and native_bfloat16() is False:
        print("impasto: note: this CPU has no bfloat16 arithmetic (AVX-512 BF16 or AMX): --precision bfloat16 is "
              "emulated, many times slower than float32 (40 times on AVX2)", file=sys.stderr)
    if config.device != "auto":
        return
    device = resolve_device("auto")
    if device.type == "cuda":
        import torch

        print(f"impasto: using the GPU {torch.cuda.get_device_name(device)} ({device})", file=sys.stderr)
    elif device.type != "cpu":
        print(f"impasto: using the GPU ({device})", file=sys.stderr)


PLAIN_LINE_SECONDS = 60.0  # the longest a log file goes without a line from a run


class Progress:
    """The callback of one run: progress bar, JSON log, intermediate saves, and stop on a signal."""

    def __init__(self, args: argparse.Namespace, job: Job, label: str, log: TextIO | None,
                 interrupts: "Interrupts", resume: Any,
                 batch_left: Callable[[float, float], float | None] | None) -> None:
        self.quiet, self.label, self.log, self.interrupts = args.quiet, label, log, interrupts
        self.batch_left = batch_left  # (elapsed, this photo's seconds left) -> the batch's
        # Absolute: a --resume of the run, which reads the path from the metadata, logs the same name
        self.content = _logged_input(job)
        self.every, self.output = args.save_every, os.path.abspath(job.output)
        self.snapshot = functools.partial(_snapshot_path, args, job)
        self.bar: Any = None
        self.resuming = resume  # said at the first step, once stylize has checked all it resumes
        # A log added to (--resume, --continue) may hold steps of an earlier run of this output from the
        # first step on: that run's, replaced, or those a resumed run paints again.
        self.forget_logged = bool(args.resume or args.continue_run)
        self.stopped_unpainted = False  # a signal came before the first step was made
        self.said_at = 0.0  # the run's elapsed seconds at its last plain line (stderr not a terminal)

    def __call__(self, event: ProgressEvent) -> bool:
        if not self.interrupts.painting:
            self.interrupts.painting = True
            if self.interrupts.signum is not None:
                self.stopped_unpainted = True
                return True
        kinds = loss_kinds(event.losses)
        height, width = event.image.shape[1:]
        if self.resuming and not self.quiet:
            print(f"impasto: resuming {self.resuming} at step {event.step} of {event.total} "
                  f"({max(height, width)} px)", file=sys.stderr)
        if self.forget_logged and self.log is not None:
            _forget_logged_steps(self.log, self.content, self.output, event.step)
        self.resuming, self.forget_logged = None, False
        if not self.quiet:
            self._draw(event, kinds, f"{width}x{height}")
        if self.log is not None:
            record = {"input": self.content, "output": self.output, "step": event.step, "total": event.total,
                      "scale": event.scale, "size": [height, width], "loss": event.loss, **kinds, "terms": event.losses,
                      "elapsed": round(event.elapsed, 4),
                      "seconds_left": None if event.seconds_left is None else round(event.seconds_left, 4)}
            try:
                self.log.write(json.dumps(record) + "\n")
                self.log.flush()
            except OSError as exc:  # the painting matters more than its log: go on without it
                self._give_up("--log-json", self.log.name, exc.strerror or exc)
                self.log = None
        if self.every and event.step % self.every == 0:
            try:
                stopped = event.stopped_here()  # a picture --resume goes on from, to the run's output
                save_image(stopped.image, self.snapshot(event.step),
                           metadata={**stopped.metadata(), "snapshot_of": self.output})
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
        from tqdm import tqdm

        terms = (f"{size} " if event.scales > 1 else "") + " ".join(f"{kind} {value:.3g}" for kind, value in kinds.items())
        # stylize's estimate, not tqdm's count of steps: a 2048 px print's last steps take 17 times its first
        seconds_left = 0.0 if event.step == event.total else event.seconds_left  # None: not known yet
        left = f"{tqdm.format_interval(seconds_left)} left, " if seconds_left else ""
        if self.batch_left is not None and seconds_left is not None:  # told at every step: it keeps each photo's time
            in_all = self.batch_left(event.elapsed, seconds_left)
            left += "" if in_all is None else f"{tqdm.format_interval(in_all)} for the batch, "
        if not sys.stderr.isatty():  # a log file: a plain line every tenth of the run, not a redrawn bar
            # and at the first step, which says that it started and how long a step takes, and at least
            # once a minute (a print's steps at its last size take a minute each at 4K)
            if (event.step % max(1, event.total // 10) == 0 or event.step in (1, event.total)
                    or event.elapsed - self.said_at >= PLAIN_LINE_SECONDS):
                self.said_at = event.elapsed
                print(f"{self.label + ' ' if self.label else ''}step {event.step}/{event.total}, "
                      f"{event.elapsed:.1f} s, {left}{terms}", file=sys.stderr, flush=True)
            return
        if self.bar is None:
            self.bar = tqdm(total=event.total, desc=self.label or None, unit="step", dynamic_ncols=True,
                            file=sys.stderr, initial=event.step - 1,  # a resumed run starts part way
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]")
        self.bar.total = event.total  # less once a size has stopped early (tolerance)
        self.bar.set_postfix_str(left + terms, refresh=False)
        self.bar.update(event.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _BatchClock:
    """The time a batch has left: its photo's own, and the photos after it at the pace, per pixel,
    of those painted so far (before the first is done, at the pace the first is taking)."""

    def __init__(self, pixels: list[int]) -> None:
        self.pixels = pixels  # each photo's painting's, 0 for one that will not be painted
        self.seconds: dict[int, float] = {}  # each photo's painting time so far, by its index

    def seconds_left(self, index: int, elapsed: float, left: float) -> float | None:
        """None for the batch's last photo to paint: its own time left is the batch's."""
        self.seconds[index] = elapsed
        if not any(self.pixels[index + 1:]):
            return None
        done = [i for i in self.seconds if i != index]
        if done and sum(self.pixels[i] for i in done):
            pace = sum(self.seconds[i] for i in done) / sum(self.pixels[i] for i in done)
        else:
            pace = (elapsed + left) / max(1, self.pixels[index])
        return left + pace * sum(self.pixels[index + 1:])


def _pixels_to_paint(args: argparse.Namespace, job: Job, the_plan: Plan) -> int:
    """The pixels of ``job``'s painting, from its photo's header; 0 where it cannot be read (painting
    it will say why) or where --continue will skip it, painted already."""
    size = header_size(job.content) if isinstance(job.content, (str, os.PathLike)) else None
    if size is None:
        return 0
    if args.continue_run:
        try:
            if _output_run(job, the_plan)[1].state == "finished":
                return 0
        except ImpastoError:  # an input that cannot be read fails the photo when it is painted
            pass
    return math.prod(long_edge_shape(*size, job.config.max_size))


def _forget_logged_steps(log: TextIO, content: str, output: str, first: int) -> None:
    """Drop from a --log-json file the records of the steps from ``first`` on of a run painting
    ``content`` into ``output``: those of a run that this one replaces, or that a run killed after
    its last snapshot had logged and, resumed from the snapshot, paints again."""
    def repeated(line: str) -> bool:
        record = _logged_record(line, content, output)
        step = record and record.get("step")
        return isinstance(step, int) and step >= first

    try:
        log.flush()
        with open(log.name, "r+", encoding="utf-8") as file:
            lines = file.readlines()
            kept = [line for line in lines if not repeated(line)]
            if len(kept) < len(lines):  # the log's own handle appends, so it goes on after the kept lines
                file.seek(0)
                file.writelines(kept)
                file.truncate()
    except (OSError, ValueError):  # not text (UnicodeDecodeError): the log's to keep, the painting goes on
        pass


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
        self.painting = False  # a photo's first step has been made: a signal now keeps its picture

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
                doing = ("stopping after this step, keeping the best image so far (Ctrl-C again quits at once, "
                         "without it)" if self.painting else "stopping before the painting starts")
                with contextlib.suppress(OSError, ValueError):  # stderr closed: the stop goes on regardless
                    print(f"\nimpasto: {doing}", file=sys.stderr, flush=True)
            return
        exit_code = EXIT_SIGNAL.get(signum, EXIT_SIGNAL[signal.SIGINT])
        if self.holding:
            self.pending = exit_code
        else:
            raise Interrupted(exit_code, AGAIN)

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
            raise Interrupted(self.pending, f"interrupted; {done}", after_writing=True)

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
