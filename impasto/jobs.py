"""The command line's jobs: the settings, inputs and outputs of each photo, worked out from the
parsed arguments (a folder, a batch, a --rerun or --resume image) and checked before any work, so
that a bad input or output fails in one line before the first step, not after an hour; and what a
picture already written is to a run, for --continue and --resume. ``runner.py`` paints the jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import os
import re
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from . import __version__
from .api import check_one_each, fingerprint, input_record
from .device import machine, resolve_device, uses_bfloat16
from .resume import differing_input, differing_setting, resume_point, said_difference
from .cli import as_typed, config_from_args, say
from .config import DEFAULT_DPI, INITS, Config, print_box, print_long_edge
from .errors import ConfigError, ImageError, ImpastoError
from .imageio import (HEIC_EXTENSIONS, SAVE_FORMATS, check_format_holds, check_writable, file_key, header_size,
                      read_formats, missing_sidecar, read_image, read_metadata, sidecar_path)
from .plot import PLOT_FORMATS
from .vgg import load_weights


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
            say(f"note: --print-size {args.print_size} fits each photo on the sheet as it is painted; "
                "max_size here is the sheet's long edge")
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
            say(f"note: with --content, every other image is a painting: blending {len(styles)} "
                f"({', '.join(styles)})")
        _note_photos_painted_in_their_own_style(contents, styles, args.quiet)
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


def _note_photos_painted_in_their_own_style(contents: list[str], styles: list[str], quiet: bool) -> None:
    """A photo given as a painting too is painted in its own style: a valid run, if an odd one, and more
    likely a slip (a name completed twice), which a note shows before the painting's minutes are spent.
    A folder leaves its paintings out itself (``_expand``)."""
    paintings = {file_key(style) for style in styles}
    for photo in contents:
        if not quiet and not Path(photo).is_dir() and file_key(photo) in paintings:
            say(f"note: {photo} is the painting too, so it is painted in its own style")


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
             f"(pip install pillow-heif): {few_names(heic)}"
    paintings = {file_key(style) for style in styles}
    photos = [image for image in images if file_key(image) not in paintings and not _painted_by_impasto(image)]
    if not photos and heic:
        raise ImageError(f"{content}: folder holds no photo impasto can read but {unread}")
    if not photos:
        raise ImageError(f"{content}: folder holds no image files" + (" but paintings and earlier results"
                                                                         if images else ""))
    if heic and not quiet:
        say(f"note: {content}: leaving out {unread}")
    folders = sorted(p.name for p in Path(content).iterdir() if not p.name.startswith(".") and p.is_dir())
    if folders and not quiet:
        say(f"note: {content}: leaving out {len(folders)} folder{'s' if len(folders) > 1 else ''} in it "
            f"(only the folder's own photos are painted): {few_names(folders)}")
    kept = set(photos)
    left_out = [Path(image).name for image in images if image not in kept]
    if left_out and not quiet:
        many = len(left_out) > 1
        say(f"note: {content}: leaving out {len(left_out)} image{'s' if many else ''} that "
            f"{'are' if many else 'is'} a painting or an earlier result: {few_names(left_out)}")
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
        say(f"note: {source} was made by impasto {meta.get('impasto')}, this is {__version__}; "
            "the result may differ")
    config = _fitted(args, config_from_args(args, _recorded_config(meta, source, inputs, paths)), paths["content"])
    if args.print_config:
        return Plan(config, [], [], False)
    new_name = source.name if args.resume else f"{source.stem}-rerun{source.suffix}"
    snapshot_of = meta.get("snapshot_of") if args.resume else None
    if isinstance(snapshot_of, str):  # a --save-every snapshot: the painting keeps the run's name
        new_name = Path(snapshot_of).name
        if not args.output:
            args.output = _snapshots_output(source, Path(snapshot_of), config, inputs, args.quiet)
    if not args.output:
        args.output = str(source.with_name(new_name))
    elif Path(args.output).is_dir() or args.output.endswith(("/", os.sep)):  # into a folder: the same name
        args.output = os.path.join(args.output, new_name)
    styles = [_demo_style_if_drawn(p, h) for p, h in zip(paths["style"], inputs["style"])]
    _check_unchanged(source, verb, config, inputs, paths, styles)
    if args.resume:  # a run that cannot go on is refused before any output is touched (the rest: stylize)
        resume_point(source, config)
    the_plan = _finish_plan(args, config, [paths["content"]], styles, False)
    if args.rerun and not args.quiet:  # once it can be rerun: no note before a refusal
        for note in _rerun_differences(source, meta, config):
            say(f"note: {note}")
    return the_plan


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
    the snapshot; refused when its folder is gone, when it holds the run's finished painting (which
    painting it again would replace), or another picture."""
    if not output.parent.is_dir():
        raise ConfigError(f"{snapshot}: a --save-every snapshot of {output}, whose folder is gone; name the "
                          "painting's file with -o")
    state = run_of(output, config, inputs).state if output.exists() else "stopped"
    if state == "finished":
        raise ConfigError(f"{snapshot}: a --save-every snapshot of {output}, which holds the run's finished "
                          "painting; to paint it again from the snapshot, name the new file with -o")
    if state != "stopped":
        raise ConfigError(f"{snapshot}: a --save-every snapshot of {output}, which now holds another picture; "
                          "name the painting's file with -o")
    if not quiet:
        say(f"note: {snapshot} is a --save-every snapshot of {output}; the painting goes there")
    return str(output)


def _saved_run(source: Path, verb: str) -> dict[str, Any]:
    """The impasto metadata of a painting to rerun or resume."""
    meta = read_metadata(source)
    if meta and "config" not in meta and "step" in meta:
        raise ImageError(f"{source}: a --save-every snapshot of impasto before 0.9.0 records only its step and "
                         f"losses; {verb} the painting it led to")
    if not meta or "config" not in meta:
        raise ImageError(f"{source}: carries no impasto metadata{missing_sidecar(source)}, cannot {verb} it")
    return meta


def _recorded_config(meta: dict[str, Any], source: Path, inputs: dict[str, Any], paths: dict[str, Any]
                     ) -> dict[str, Any]:
    """The saved run's settings as a dict, with its init image, masks and weights by absolute path,
    so that a rerun from another folder finds them."""
    try:
        base = dataclasses.asdict(Config.from_saved(meta["config"]))
    except ConfigError as exc:
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
            near = _named_near(source, path)  # not taken by _found_beside: another file
            changed = f"; {near[0]}, found near it, has its name but not its SHA-256" if near else ""
            raise ImageError(f"{path}: {what} of {source} is missing{changed}")
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
    def found(path: Any, digest: str) -> Any:
        if not isinstance(path, str) or Path(path).exists():
            return path
        beside = next((file for file in _named_near(source, path) if fingerprint(file) == digest), None)
        if beside is None:
            return path
        if not quiet:
            say(f"note: {path} is gone; using {beside}, found near {source} (the same SHA-256)")
        return os.path.abspath(beside)
    return {key: [found(p, d) for p, d in zip(value, inputs[key])] if isinstance(value, list)
            else found(value, inputs[key]) for key, value in paths.items() if key in inputs}


def _named_near(source: Path, path: str) -> list[Path]:
    """The files named as ``path`` beside ``source`` and in the folder above it (a --save-dir snapshot's)."""
    picture = Path(os.path.abspath(source))  # "x.png" has a folder above it too
    return [file for file in (folder / Path(path).name for folder in (picture.parent, picture.parent.parent))
            if file.is_file()]


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
        check_format_holds(job.output, job.config.max_size)
        if sidecar_path(job.output):
            check_writable(sidecar_path(job.output))
        if job.plot:
            _check_output_path(job.plot, PLOT_FORMATS)
    if args.log_json:
        _check_a_file(args.log_json, "--log-json")
        if any(f"{{{name}}}" in args.log_json for name in ("stem", "style", "index")):  # else written literally
            raise ConfigError(f"--log-json {args.log_json}: takes one file{' for the whole batch' if batch else ''}, "
                              "not a template (each line names its photo as \"input\")")
        _check_output_path(Path(args.log_json), None)
    if args.save_every:
        save_dir = Path(args.save_dir) if args.save_dir else None
        for folder in {save_dir or job.output.parent for job in jobs}:
            if not args.dry_run:
                _make_save_dir(folder)
            elif folder.is_dir():  # a dry run makes nothing
                _check_folder_writable(folder, f"--save-dir {folder}")
    elif args.save_dir:
        raise ConfigError("--save-dir needs --save-every N")
    return Plan(config, styles, jobs, batch)


def _check_shared_inputs(args: argparse.Namespace, config: Config, styles: list[Any]) -> None:
    """The settings' counts, the paintings, masks, start image, weights and device: a bad one would
    fail every photo of a batch, so it is found before the first."""
    try:
        check_one_each(config, len(styles))
    except ConfigError as exc:  # named as typed: the option, or the --config file's key
        in_file = _from_config_file(args, str(exc).partition(" ")[0])
        raise ConfigError(f"{args.config}: {exc}" if in_file else f"invalid option: {as_typed(str(exc))}") from None
    for i, style in enumerate(styles):
        if isinstance(style, (str, os.PathLike)):  # named as the role it has: a photo's error names none
            _check_readable(os.fspath(style), f"painting {i + 1}" if len(styles) > 1 else "painting")
    files = [(style, file_key(style)) for style in styles if isinstance(style, (str, os.PathLike))]
    keys = [key for _, key in files]
    repeated = next(((style, keys.count(key)) for style, key in files if keys.count(key) > 1), None)
    if repeated and not args.quiet:  # weighed double on purpose, perhaps: said, not refused
        times = "twice" if repeated[1] == 2 else f"{repeated[1]} times"
        say(f"note: {repeated[0]} is given {times} as a painting: it counts {times} in the blend")
    for i, mask in enumerate(config.masks):
        _check_readable(mask, f"mask {i + 1}" if len(config.masks) > 1 else "mask")
    if config.init not in INITS:
        _check_readable(config.init, "init image")
    if config.weights:
        load_weights(config.weights)
    try:
        resolve_device(config.device)
    except ConfigError as exc:  # a device the --config file asks for: the file is named
        if _from_config_file(args, "device"):
            raise ConfigError(f"{args.config}: {exc}") from None
        raise


def _from_config_file(args: argparse.Namespace, setting: str) -> bool:
    """Whether ``setting`` is in force from the --config file (no option gave it): its errors name the file."""
    return bool(getattr(args, "config", None)) and not hasattr(args, setting)


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
        if file_key(job.content) in photos:
            raise ConfigError(f"{job.content}: given twice as a photo; give it once")
        photos.add(file_key(job.content))
    for attr, what in (("output", "-o"), ("plot", "--plot")):
        first_of: dict[str, Job] = {}
        for job in jobs:
            if getattr(job, attr) is None:
                continue
            other = first_of.setdefault(file_key(getattr(job, attr)), job)
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
    read = {file_key(p): what for what, paths in reads.items() for p in paths if isinstance(p, (str, os.PathLike))}
    # -o may replace the picture rerun or resumed (--resume's default does); nothing else may.
    source = getattr(args, "rerun", None) or getattr(args, "resume", None)
    verb = "rerun" if getattr(args, "rerun", None) else "resume"
    kept = {file_key(p): f"the picture to {verb}" for p in (source, source and sidecar_path(source)) if p}
    writes = [(job.output, "-o") for job in jobs] + [(job.plot, "--plot") for job in jobs if job.plot]
    writes += [(sidecar_path(job.output), "-o's metadata") for job in jobs if sidecar_path(job.output)]
    if args.save_every:  # snapshots are named after their photo's output: two alike would overwrite
        snapshots = [snapshot_path(args, job, 0) for job in jobs]
        if len({file_key(path) for path in snapshots}) < len(snapshots):
            raise ConfigError(f"--save-every: two photos' snapshots would have the same names in "
                              f"{snapshots[0].parent}; give the outputs different names")
    writes += [(Path(args.log_json), "--log-json")] if args.log_json else []
    if args.save_every:  # no other output may have a snapshot's name (OUT-step00050.png)
        snapshot_names = {(file_key(snapshot_path(args, job, 0).parent), job.output.stem) for job in jobs}
        for path, what in writes:
            if any(file_key(path.parent) == folder and snapshot_step(path.name, stem) is not None
                   for folder, stem in snapshot_names):
                raise ConfigError(f"{path}: {what} has the name of a --save-every snapshot")
    written: dict[str, str] = {}
    for path, what in writes:
        resolved = file_key(path)
        if resolved in read:
            raise ConfigError(f"{path}: {what} would overwrite {read[resolved]}")
        if resolved in kept and not what.startswith("-o"):
            raise ConfigError(f"{path}: {what} would overwrite {kept[resolved]}")
        if written.get(resolved, what) != what:
            raise ConfigError(f"{path}: {written[resolved]} and {what} would write the same file")
        written[resolved] = what


def _output_path(template: str, names: dict[str, Any], what: str, in_folder: str, batch: bool) -> Path:
    """The file for one photo: the template filled in, or a name inside a folder. For a single photo
    a name whose braces are not placeholders is kept as it is, unless they hold a placeholder misspelt."""
    if os.path.isdir(template) or template.endswith(("/", os.sep)):  # False for a name too long: said below
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


def few_names(names: list[str]) -> str:
    """Up to five names, then "…"."""
    return ", ".join(names[:5]) + (", …" if len(names) > 5 else "")


# --- Pictures already written: what they are to a run ----------------------------------------


class Found(NamedTuple):
    """What a picture is to a run (``run_of``)."""

    state: Literal["finished", "stopped", "stopped elsewise", "other"]  # elsewise: with other settings or inputs
    steps: int = 0  # steps it records
    why: str = ""  # for "stopped elsewise": the setting or input that differs


def output_run(job: Job, the_plan: Plan) -> tuple[dict[str, Any], Found]:
    """``job``'s inputs (``api.input_record``), and what its output is to a run of them (``run_of``)."""
    inputs = input_record(job.content, the_plan.styles, job.config)
    return inputs, run_of(job.output, job.config, inputs)


def run_of(path: Path, config: Config, inputs: dict[str, Any]) -> Found:
    """What the picture in ``path`` is to a run of ``config`` on ``inputs`` (``api.input_record``): its
    painting, that run stopped part way, or another (none, another run's, or a file whose metadata
    cannot be read, which is painted afresh)."""
    try:
        meta = read_metadata(path) if path.is_file() else None
        saved = Config.from_saved(meta["config"]) if meta and "config" in meta else None
    except ImpastoError:
        return Found("other")
    recorded = meta.get("inputs") if meta else None
    if saved is None or not isinstance(recorded, dict) or not isinstance(meta.get("steps"), int):
        return Found("other")
    setting, differing = differing_setting(config, saved), differing_input(recorded, inputs)
    if setting or differing:
        why = said_difference(*setting) if setting else f"other {differing[1]}"
        return Found("stopped elsewise" if meta.get("stopped_at") else "other", meta["steps"], why)
    return Found("stopped" if meta.get("stopped_at") else "finished", meta["steps"])


def snapshot_path(args: argparse.Namespace, job: Job, step: int) -> Path:
    """Where --save-every writes a photo's picture after ``step`` steps."""
    folder = Path(args.save_dir) if args.save_dir else job.output.parent
    return (folder / f"{job.output.stem}-step{step:05d}.png").resolve()


def snapshot_step(name: str, stem: str) -> int | None:
    """The step of a file named as snapshot_path names the snapshots of an output named ``stem``; None
    for any other name."""
    match = re.fullmatch(rf"{re.escape(stem)}-step(\d{{5,}})\.png", name)
    return int(match[1]) if match else None
