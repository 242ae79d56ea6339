"""Going on with a stopped run (``stylize(..., resume=)``, ``--resume``): where it stopped, and the
checks that it may go on with these inputs and settings."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, NamedTuple

import torch

from .config import INITS, Config, checked_config
from .errors import ConfigError, ImageError
from .imageio import long_edge_shape, missing_sidecar, read_image, read_metadata
from .result import Result


# Settings that say where and how a run computes, not what it paints: a stopped run may resume with others.
MACHINE_SETTINGS = ("device", "precision", "max_memory")


class ResumePoint(NamedTuple):
    """Where a stopped run left off (``resume_point``)."""

    size_index: int  # the size it was painting, an index into config.sizes()
    size: int  # that size (px)
    steps_at_size: int  # steps made at that size (all of them once the loss had stalled there)
    steps: int  # steps made in all
    seconds: float  # time spent in all
    total: int  # the most steps the whole run can take: those planned, less those skipped as the loss stalled
    inputs: dict[str, Any]  # the SHA-256 of each input it was painted from, as ``Result.inputs``


def resume_point(stopped: Result | str | os.PathLike, config: Config) -> ResumePoint:
    """Where ``stopped`` (a cancelled Result, or the file it was saved to) left off, after checking
    that it can go on with ``config``: it stopped part way, was painted with the same settings, bar
    ``MACHINE_SETTINGS``, and its record of where it stopped is sound. ``stylize(..., resume=)``
    checks this first, then the inputs and the picture. Raises ``ImageError`` or ``ConfigError``."""
    if not isinstance(stopped, (Result, str, os.PathLike)):
        raise ImageError(f"resume: expected a stopped Result or the file it was saved to, not {type(stopped).__name__}")
    config = checked_config(config)
    name = _resume_name(stopped)
    meta = stopped.metadata() if isinstance(stopped, Result) else read_metadata(stopped)
    if not meta or "config" not in meta:
        where = "" if isinstance(stopped, Result) else missing_sidecar(stopped)
        raise ImageError(f"{name}: carries no impasto metadata{where}, cannot resume it")
    at = meta.get("stopped_at")
    if not at:
        raise ImageError(f"{name}: not stopped part way (its run stopped by {meta.get('stop_reason')}), "
                         "nothing to resume")
    try:
        saved = Config.from_saved(meta["config"])
    except (ConfigError, TypeError) as exc:
        raise ImageError(f"{name}: its settings cannot be used ({exc})") from None
    differing = differing_setting(config, saved)
    if differing:
        raise ConfigError(f"{name}: painted with {said_difference(*differing)}; resume it with its own settings")
    if not isinstance(meta.get("inputs"), dict):
        raise ImageError(f"{name}: its metadata records no inputs, cannot resume it")
    sizes, steps = config.sizes(), config.steps_per_size()
    try:
        index, made, before = at["size_index"], at["steps_at_size"], (meta["steps"], meta["seconds"])
        whole = all(isinstance(n, int) and not isinstance(n, bool) for n in (index, made, before[0]))
        seconds = isinstance(before[1], (int, float)) and not isinstance(before[1], bool) and 0 <= before[1] < math.inf
        if not (whole and seconds and 0 <= index < len(sizes) and 0 <= made <= steps[index]
                and 0 <= before[0] <= sum(steps[:index]) + made):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise ImageError(f"{name}: its record of where it stopped is damaged ({json.dumps(at)})") from None
    skipped = sum(steps[:index]) + made - before[0]  # by earlier sizes whose loss stalled
    return ResumePoint(index, sizes[index], made, before[0], float(before[1]), sum(steps) - skipped, meta["inputs"])


def resumed_run(stopped: Result | str | os.PathLike, config: Config, inputs: dict[str, Any],
                photo_shape: tuple[int, int]) -> tuple[ResumePoint, torch.Tensor]:
    """``resume_point(stopped, config)`` and the stopped picture (3, H, W), after checking that it was
    painted from the same ``inputs`` (as ``api.input_record`` fingerprints them) and is of the output's shape
    for a photo of ``photo_shape`` (H, W), or of the shape of the size it stopped at (a picture saved
    by ``ProgressEvent.stopped_here``)."""
    point, name = resume_point(stopped, config), _resume_name(stopped)
    differing = differing_input(point.inputs, inputs)
    if differing:
        key, what = differing
        hint = ("; a file is fingerprinted by its bytes, an image in memory by its pixels: give it as then"
                if _given_in_memory(point.inputs, key) != _given_in_memory(inputs, key) else "")
        raise ImageError(f"{name}: painted from other {what} (their SHA-256 differs{hint})")
    image = stopped.image if isinstance(stopped, Result) else read_image(stopped, what="image to resume")
    shape = long_edge_shape(*photo_shape, config.max_size)
    if tuple(image.shape[1:]) not in (shape, long_edge_shape(*photo_shape, point.size)):
        raise ImageError(f"{name}: is {image.shape[2]}x{image.shape[1]}, but the run it stopped paints "
                         f"{shape[1]}x{shape[0]}")
    return point, image


def differing_setting(config: Config, saved: Config) -> tuple[str, Any, Any] | None:
    """The first setting, bar ``MACHINE_SETTINGS``, in which ``config`` and ``saved`` differ as resuming
    compares them: (name, ours, theirs); None when they paint alike."""
    for f in dataclasses.fields(Config):
        ours, theirs = (_as_compared(c, f.name) for c in (config, saved))
        if f.name not in MACHINE_SETTINGS and ours != theirs:
            return f.name, ours, theirs
    return None


def said_difference(setting: str, ours: Any, theirs: Any) -> str:
    """``differing_setting``'s answer in words, as painted (theirs) against this run (ours): "dpi 300,
    not 150"; an unset value is none ("no dpi, not 300"), not Python's None."""
    painted = f"no {setting}" if theirs is None else f"{setting} {theirs!r}"
    return f"{painted}, not {'none' if ours is None else repr(ours)}"


def differing_input(recorded: dict[str, Any], inputs: dict[str, Any]) -> tuple[str, str] | None:
    """The first input whose SHA-256 differs between a picture's ``recorded`` inputs and the ``inputs``
    of a run (as ``api.input_record`` gives them): (its key, what it is); None when all are the same."""
    for key, what in (("content", "content image"), ("style", "style images"), ("init", "init image"),
                      ("masks", "masks"), ("weights", "weights file")):
        if recorded.get(key) != inputs.get(key):
            return key, what
    return None


def _resume_name(stopped: Result | str | os.PathLike) -> str:
    return "the run to resume" if isinstance(stopped, Result) else str(stopped)


def _given_in_memory(inputs: dict[str, Any], key: str) -> list[bool]:
    """Which of ``inputs``' images under ``key`` were given in memory (they have no path)."""
    paths = inputs.get("paths")
    given = paths.get(key) if isinstance(paths, dict) else None
    return [path is None for path in (given if isinstance(given, list) else [given])]


def _as_compared(config: Config, name: str) -> Any:
    """A setting of ``config`` as resuming compares it: the learning rate in force (an empty one is the
    optimizer's default), the style layers the sizes after the first keep, files by how many there are
    (their contents are compared by fingerprint, as their paths may differ)."""
    value = getattr(config, name)
    if name == "learning_rate":
        return config.step_size
    if name == "refine_style_layers":  # what it leaves out, where there are sizes after the first: a one-size
        # painting of a version before it is this version's painting
        return config.refining().style_layers if len(config.painted_sizes()) > 1 else None
    if name == "init" and value not in INITS:
        return "an image file"
    if name == "masks":
        return f"{len(value)} image(s)"
    return ("a file" if value else "built-in") if name == "weights" else value
