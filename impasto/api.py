"""The public entry point: ``stylize(content, style, config) -> Result``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import math
import numbers
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import PIL.Image
import torch

from . import __version__
from .color import blended_mean_and_covariance, luminance, match_color, match_luminance, recolor, with_chroma_of
from .config import INITS, Config, check_device
from .errors import ConfigError, ImageError, Interrupted
from .imageio import (ImageSource, long_edge_shape, pixels_shape, read_image, read_metadata, resize,
                      resize_to_long_edge, resize_to_pixels, same_aspect, save_image, source_name, to_pil, unenlarge)
from .masks import fit_mask, read_masks
from .memory import MemoryPlan, plan as plan_memory, return_freed_memory
from .objective import Objective, WithComposition
from .optimize import Callback, LoopState, optimize
from .postprocess import denoise, despeckle
from .vgg import LAYER_NAMES, VGGFeatures, check_weights_file, load_weights, smallest_edge


@dataclass(eq=False)  # two Results are the same run only if they are one object: == on images would raise
class Result:
    """A finished (or stopped) run: the painting, how the loss went, and how long it took."""

    image: torch.Tensor  # (3, H, W) RGB in [0, 1], the best image seen
    config: Config
    history: list[dict[str, float]]  # one row per step: step, scale, loss and each weighted term
    timings: dict[str, float]  # seconds: "setup" (weights, images), "optimize" (targets and steps), "total"
    stop_reason: str  # "iterations", "tolerance", "cancelled" or "diverged"
    inputs: dict[str, Any] = field(default_factory=dict)  # SHA-256 of each input, for reproduction
    checkpointed: bool = False  # whether activations were recomputed to fit in memory (see memory)
    bfloat16: bool = False  # whether the features were computed in bfloat16 (precision 'auto' decides per machine)
    # Where a cancelled run stopped, for ``stylize(..., resume=)``: "size_index" (into config.sizes()),
    # "size" (px) and "steps_at_size"; None when it has nothing left to do.
    stopped_at: dict[str, int] | None = None
    resumed_from: dict[str, float] | None = None  # a resumed run: "steps" and "seconds" made before it

    @property
    def steps(self) -> int:
        """Steps made in all (a resumed run's count goes on from where it stopped)."""
        return int(self.history[-1]["step"]) if self.history else int((self.resumed_from or {}).get("steps", 0))

    def __repr__(self) -> str:  # the image and the history would fill a notebook's screen
        loss = f", loss {self.history[-1]['loss']:.4g}" if self.history else ""
        return f"<Result {self.image.shape[2]}x{self.image.shape[1]} px, {self.steps} steps, {self.stop_reason}{loss}>"

    def to_pil(self) -> PIL.Image.Image:
        """The painting as an 8-bit RGB PIL image (to hand it on)."""
        return to_pil(self.image)

    def _repr_png_(self) -> bytes:  # Jupyter and IPython show a Result as its painting
        buffer = io.BytesIO()
        self.to_pil().save(buffer, format="PNG")
        return buffer.getvalue()

    def metadata(self) -> dict[str, Any]:
        """Everything needed to repeat the run: settings, version, inputs, outcome."""
        final = self.history[-1] if self.history else {}
        before = self.resumed_from or {}
        meta = {"impasto": __version__, "config": self.config.to_dict(), "inputs": self.inputs,
                "steps": self.steps, "stop_reason": self.stop_reason, "final_losses": final,
                "seconds": round(before.get("seconds", 0.0) + self.timings.get("total", 0.0), 3),
                "checkpointed": self.checkpointed, "bfloat16": self.bfloat16}
        if self.stopped_at:
            meta["stopped_at"] = self.stopped_at
        if self.resumed_from:
            meta["resumed_from"] = self.resumed_from
        return meta

    def save(self, path: str | os.PathLike) -> Path:
        """Write the image (format from the extension) atomically, with the run's metadata."""
        return save_image(self.image, path, metadata=self.metadata())


def stylize(
    content: ImageSource,
    style: ImageSource | Iterable[ImageSource],
    config: Config | None = None,
    *,
    callback: Callback | None = None,
    resume: Result | str | os.PathLike | None = None,
) -> Result:
    """Paint ``content`` in the style of ``style`` (one image, or several blended).

    Images may be paths, PIL images, arrays (H, W[, C]) or tensors (3, H, W) in [0, 1]. ``callback``
    receives a ``ProgressEvent`` after every step and may return True to stop early. ``resume`` goes
    on with a stopped run (its cancelled ``Result``, or the file it was saved to) from the size and
    step where it stopped; the inputs and settings must be the same, bar ``MACHINE_SETTINGS``. The
    optimizer's memory starts afresh, so the picture is alike, not identical to an uninterrupted
    run's. Raises ``ImpastoError`` subclasses for bad inputs or settings; never prints.
    """
    config = _checked_config(config)
    if callback is not None and not callable(callback):
        raise ConfigError(f"callback must be a function of a ProgressEvent, not {type(callback).__name__}")
    started = time.perf_counter()
    styles = _style_list(style)
    images = _read_images(content, styles, config, config.painted_sizes())
    inputs = _inputs(content, styles, config)
    final_size = long_edge_shape(*images.photo.shape[1:], config.max_size)
    point, stopped_image = _resumed(resume, config, inputs, final_size) if resume is not None else (None, None)
    bfloat16 = uses_bfloat16(config.precision, images.device)
    memory = _planned_memory(config, images, bfloat16)
    painting = _Painting(config, images, _extractor(config, images.device, memory.checkpointed), callback,
                         point, stopped_image)
    setup = time.perf_counter() - started
    painting.paint()
    state = painting.state
    if state.stop_reason == "diverged" and not state.history:  # the picture would be the start, unpainted
        raise ConfigError(f"{source_name(content, 'content image')}: the loss is not finite (NaN or infinity) "
                          "from the first step; nothing was painted: are the weights too large?")
    image = _finished(resize(painting.image, *final_size), images.photo, config)
    total = time.perf_counter() - started
    result = Result(image, config, state.history, {"setup": setup, "optimize": total - setup, "total": total},
                    state.stop_reason, inputs, memory.checkpointed, bfloat16, painting.stopped_at,
                    point and {"steps": point.steps, "seconds": point.seconds})
    if state.interrupted is not None:  # a callback's error or Ctrl-C: raised, carrying the best image so far
        state.interrupted.result = result
        raise state.interrupted
    return result


def _style_list(style: ImageSource | Iterable[ImageSource]) -> list[ImageSource]:
    """One painting, or several in any iterable (a list, a tuple, a generator …)."""
    one = isinstance(style, (str, os.PathLike, PIL.Image.Image, np.ndarray, torch.Tensor))
    return [style] if one or not isinstance(style, Iterable) else list(style)


def _planned_memory(config: Config, images: _Images, bfloat16: bool) -> MemoryPlan:
    """The run's memory plan (checkpointed or not), counting the images already held; a checkpointed
    run gives freed memory back to the system first."""
    held = {id(t): t.nbytes for t in (images.photo, images.target, *images.paintings, *(images.masks or []))}
    memory = plan_memory(config, *images.photo.shape[1:], images.device, bfloat16, held=sum(held.values()))
    if memory.checkpointed:
        return_freed_memory()
    return memory


class _Painting:
    """A run's sizes painted in turn (coarse-to-fine), each from the last one's picture, from the
    start or from where a stopped run left off (``point``, with its ``stopped_image``).

    ``paint`` leaves the picture in ``image`` (at the last size painted), how the run ended in
    ``state``, and where it stopped, when it stopped part way, in ``stopped_at``.
    """

    def __init__(self, config: Config, images: _Images, extractor: VGGFeatures, callback: Callback | None,
                 point: ResumePoint | None, stopped_image: torch.Tensor | None) -> None:
        self.config, self.images, self.extractor, self.callback = config, images, extractor, callback
        self.point, self.stopped_image = point, stopped_image
        self.sizes, self.steps = config.sizes(), config.steps_per_size()
        self.grey = config.preserve_color == "luminance"
        self.generator = torch.Generator().manual_seed(config.seed)
        # With no style to paint (strength 0) there is no recolouring either: the photo comes back.
        self.init = "content" if config.init == "palette" and not config.style_weight * config.strength else config.init
        # A resumed run's count of steps and its clock go on from where it stopped.
        self.state = (LoopState(point.total, len(self.sizes), point.steps, time.perf_counter() - point.seconds)
                      if point else LoopState(sum(self.steps), len(self.sizes)))
        self.image: torch.Tensor | None = None
        self.stopped_at: dict[str, int] | None = None
        self._first: Objective | None = None  # the first size's, which the composition term scores
        self._done = 0  # steps the current size had made before this call (a resumed run's)

    def paint(self) -> None:
        scale = 0
        with repeatable(self.images.device):
            try:
                for scale, (size, iterations) in enumerate(zip(self.sizes, self.steps)):
                    if not self._paint_size(scale, size, iterations):
                        break
            except BaseException as exc:  # between a size's steps (building its targets, say): keep the last picture
                if isinstance(exc, Interrupted) or self.image is None:
                    raise
                self.state.stop_reason, self.state.interrupted = "cancelled", exc
                self.stopped_at = {"size_index": scale, "size": self.sizes[scale], "steps_at_size": self._done}

    def _paint_size(self, scale: int, size: int, iterations: int) -> bool:
        """Paint size number ``scale``; whether the run goes on to the next size."""
        point, state = self.point, self.state
        painted = point is not None and scale < point.size_index  # before the run stopped
        if iterations == 0 or (painted and (self._first is not None or not self.config.composition_weight)):
            return True  # nor needed for the composition term
        self._done = 0
        content_image, style_images, masks = _at_size(self.images, size, self.config)
        objective = self._objective(content_image, style_images, masks)
        if painted:
            return True
        if point and scale == point.size_index:  # the stopped run's picture, at the size it was painting
            self.image, self._done = unenlarge(self.stopped_image, *content_image.shape[1:]), point.steps_at_size
            self.image = luminance(self.image) if self.grey else self.image
            if self._done >= iterations:
                return True  # it stopped on this size's last step: the next size goes on from it
        start = self._start(content_image, style_images, masks)
        state.stop_reason, before = "iterations", state.step
        callback = self.callback
        if self.grey:
            callback = _in_color(callback, resize_to_long_edge(self.images.photo, size))
        self.image = optimize(start[None].to(self.images.device), objective, optimizer=self.config.optimizer,
                              lr=self.config.step_size, iterations=iterations - self._done,
                              tolerance=self.config.tolerance, state=state, scale=scale, callback=callback,
                              grey=self.grey, margin=objective.margin, resumed=self._done > 0)[0].cpu()
        if state.stop_reason == "cancelled":
            self._note_stop(scale, size, iterations, state.step - before)
        return state.stop_reason not in ("cancelled", "diverged")

    def _objective(self, content_image: torch.Tensor, style_images: list[torch.Tensor],
                   masks: list[torch.Tensor] | None) -> Objective | WithComposition:
        objective = _objective(self.extractor, content_image, style_images, self.config, self.images.device, masks)
        if self._first is None:
            self._first = objective
        elif self.config.composition_weight:
            objective = WithComposition(objective, self._first, self.config.composition_weight)
        return objective

    def _start(self, content_image: torch.Tensor, style_images: list[torch.Tensor],
               masks: list[torch.Tensor] | None) -> torch.Tensor:
        if self.image is None:
            start = initial_image(self.init, content_image, style_images, self.generator, masks,
                                  self.config.style_blend)
            return luminance(start) if self.grey else start
        return resize(self.image, *content_image.shape[1:])  # coarse-to-fine: the last size's result, upsampled

    def _note_stop(self, scale: int, size: int, iterations: int, made: int) -> None:
        """A stop request during size number ``scale``, after ``made`` steps of this call there: where
        the run stopped, unless that was its last step anyway."""
        state = self.state
        left_here = state.total - state.step - sum(self.steps[scale + 1:])  # 0 once this size has stalled
        if state.total > state.step:
            self.stopped_at = {"size_index": scale, "size": size, "steps_at_size": iterations - left_here}
        else:  # the stop came with the run's last step: it had nothing left to do
            state.stop_reason = "iterations" if self._done + made == iterations else "tolerance"


def _finished(picture: torch.Tensor, photo: torch.Tensor, config: Config) -> torch.Tensor:
    """The optimised ``picture`` at the output's size as the result shows it: in the ``photo``'s
    colours for a luminance-only run, its specks removed, smoothed if asked."""
    if config.preserve_color == "luminance":  # the optimised luminance with the photo's chroma
        picture = with_chroma_of(picture, resize_to_long_edge(photo, config.max_size))
    if config.despeckle:
        picture = despeckle(picture, config.despeckle)
    return denoise(picture, config.denoise) if config.denoise else picture


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
    config = _checked_config(config)
    name = _resume_name(stopped)
    meta = stopped.metadata() if isinstance(stopped, Result) else read_metadata(stopped)
    if not meta or "config" not in meta:
        raise ImageError(f"{name}: carries no impasto metadata, cannot resume it")
    at = meta.get("stopped_at")
    if not at:
        raise ImageError(f"{name}: not stopped part way (its run stopped by {meta.get('stop_reason')}), "
                         "nothing to resume")
    try:
        saved = Config.from_saved(meta["config"])
    except (ConfigError, TypeError) as exc:
        raise ImageError(f"{name}: its settings cannot be used ({exc})") from None
    for f in dataclasses.fields(Config):
        ours, theirs = (_as_compared(c, f.name) for c in (config, saved))
        if f.name not in MACHINE_SETTINGS and ours != theirs:
            raise ConfigError(f"{name}: painted with {f.name} {theirs!r}, not {ours!r}; resume it with its own settings")
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


def _resumed(stopped: Result | str | os.PathLike, config: Config, inputs: dict[str, Any],
             shape: tuple[int, int]) -> tuple[ResumePoint, torch.Tensor]:
    """``resume_point(stopped, config)`` and the stopped picture (3, H, W), after checking that it was
    painted from the same ``inputs`` (as ``_inputs`` fingerprints them) and is of the output's ``shape``."""
    point, name = resume_point(stopped, config), _resume_name(stopped)
    for key, what in (("content", "content image"), ("style", "style images"), ("init", "init image"),
                      ("masks", "masks"), ("weights", "weights file")):
        if point.inputs.get(key) != inputs.get(key):
            hint = ("; a file is fingerprinted by its bytes, an image in memory by its pixels: give it as then"
                    if _given_in_memory(point.inputs, key) != _given_in_memory(inputs, key) else "")
            raise ImageError(f"{name}: painted from other {what} (their SHA-256 differs{hint})")
    image = stopped.image if isinstance(stopped, Result) else read_image(stopped, what="image to resume")
    if tuple(image.shape[1:]) != shape:
        raise ImageError(f"{name}: is {image.shape[2]}x{image.shape[1]}, but the run it stopped paints "
                         f"{shape[1]}x{shape[0]}")
    return point, image


def _resume_name(stopped: Result | str | os.PathLike) -> str:
    return "the run to resume" if isinstance(stopped, Result) else str(stopped)


def _given_in_memory(inputs: dict[str, Any], key: str) -> list[bool]:
    """Which of ``inputs``' images under ``key`` were given in memory (they have no path)."""
    paths = inputs.get("paths")
    given = paths.get(key) if isinstance(paths, dict) else None
    return [path is None for path in (given if isinstance(given, list) else [given])]


def _as_compared(config: Config, name: str) -> Any:
    """A setting of ``config`` as resuming compares it: the learning rate in force (an empty one is the
    optimizer's default), files by how many there are (their contents are compared by fingerprint, as
    their paths may differ)."""
    value = getattr(config, name)
    if name == "learning_rate":
        return config.step_size
    if name == "init" and value not in INITS:
        return "an image file"
    if name == "masks":
        return f"{len(value)} image(s)"
    return ("a file" if value else "built-in") if name == "weights" else value


def objective_for(content: ImageSource, style: ImageSource | Iterable[ImageSource], config: Config | None = None,
                  size: int | None = None) -> Objective:
    """The objective of ``config`` at ``size`` px (long edge; default ``config.max_size``), of the picture
    itself: a run minimises it on a canvas with ``config.margin`` px more on each side, which it crops
    off, so that a picture's terms here count its edges as they are, where the run's losses counted
    the margin's instead (the default 512 px painting's content 1.03 and style 1.4 times its run's
    best loss; the same for a run with no margin).

    ``objective.score(picture)`` gives the weighted terms of a (3, H, W) picture by name
    ("content/relu4_2", "style/relu1_1", …); ``objective(image)`` the differentiable loss and its
    terms, ``(loss, {name: term})``, of a (1, 3, H, W) image of ``objective.image_shape`` on
    ``objective.device``. At the sizes after a
    coarse-to-fine run's first, the run adds the composition term; this leaves it out. With
    ``preserve_color = "luminance"`` it makes a picture grey before scoring it, as the run paints it.
    """
    config = _checked_config(config)
    if size is not None and (not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1):
        raise ConfigError(f"size must be a whole number of pixels, not {size!r}")
    styles = _style_list(style)
    at = config.max_size if size is None else int(size)
    images = _read_images(content, styles, config, [at], None if size is None else "size")
    content_image, style_images, masks = _at_size(images, at, config)
    return _objective(_extractor(config, images.device), content_image, style_images, config.replace(margin=0),
                      images.device, masks)


def _checked_config(config: Config | None) -> Config:
    if config is None:
        return Config()
    if not isinstance(config, Config):
        raise ConfigError(f"config must be an impasto.Config, not {type(config).__name__} "
                          "(Config.from_dict makes one from a dict)")
    return config


class _Images(NamedTuple):
    photo: torch.Tensor  # as read
    target: torch.Tensor  # the photo the content term matches (grey for preserve_color 'luminance')
    paintings: list[torch.Tensor]  # recoloured for preserve_color
    masks: list[torch.Tensor] | None
    device: torch.device


def _read_images(content: ImageSource, styles: list[ImageSource], config: Config, sizes: list[int],
                 size_setting: str | None = None) -> _Images:
    """The run's images, read and checked against the settings and the ``sizes`` it runs at (which
    ``size_setting`` names, when not max_size and min_size), and its device."""
    if not styles:
        raise ImageError("no style image: give at least one painting")
    check_one_each(config, len(styles))
    device = resolve_device(config.device)
    photo = read_image(content, what="content image")
    paintings = [read_image(s, what=f"style image {i + 1}") for i, s in enumerate(styles)]
    masks = read_masks(config.masks, photo) if config.masks else None
    check_edges(tuple(photo.shape[1:]), source_name(content, "content image"), {
        source_name(source, f"style image {i + 1}"): tuple(painting.shape[1:])
        for i, (source, painting) in enumerate(zip(styles, paintings))}, sizes, config, size_setting)
    target, paintings = color_inputs(photo, paintings, config.preserve_color)
    return _Images(photo, target, paintings, masks, device)


def check_one_each(config: Config, paintings: int) -> None:
    """Refuse blend weights or masks that are not one for each of the ``paintings``."""
    def counted(n: int, thing: str) -> str:
        return f"{n} {thing}{'s' if n != 1 else ''}"

    named = counted(paintings, "style image")
    if config.style_blend and len(config.style_blend) != paintings:
        raise ConfigError(f"style_blend has {counted(len(config.style_blend), 'weight')} for {named}")
    if config.masks and len(config.masks) != paintings:
        raise ConfigError(f"masks has {counted(len(config.masks), 'image')} for {named} (one each)")


def check_edges(photo: tuple[int, int], photo_name: str, paintings: dict[str, tuple[int, int]], sizes: list[int],
                config: Config, size_setting: str | None = None) -> None:
    """Refuse, naming the image, a photo or painting (their (H, W), ``paintings`` by name) whose short
    edge at one of ``sizes`` is too short for the deepest layer used (16 px for relu5_1, after four
    poolings). The advice names ``size_setting`` as the size to raise, or max_size or min_size."""
    layers = config.layers
    shortest = smallest_edge(layers)
    advice = f"VGG-19's {max(layers, key=LAYER_NAMES.index)} needs a short edge of at least {shortest} px"
    for size in sizes:
        height, width = long_edge_shape(*photo, size)
        larger = size_setting or ("max_size" if size == config.max_size else "min_size")  # what made this size
        if min(height, width) < shortest:
            raise ImageError(f"{photo_name}: {width}×{height} at {size} px is too narrow ({advice}: raise "
                             f"{larger} to {_size_for_edge(photo, shortest)} px or more, or crop the image)")
        pixels = max(1, round(height * width * config.style_scale**2))
        for name, painting in paintings.items():
            painting_height, painting_width = pixels_shape(*painting, pixels)
            if min(painting_height, painting_width) < shortest:
                raise ImageError(f"{name}: seen at {painting_width}×{painting_height} for a {size} px picture, "
                                 f"too narrow ({advice}: raise {larger} or style_scale, or crop the painting)")


def _size_for_edge(shape: tuple[int, int], shortest: int) -> int:
    """The smallest long edge at which a picture of ``shape`` (H, W) has a short edge of ``shortest`` px."""
    size = max(1, (shortest - 1) * max(shape) // min(shape))  # too small: the short edge is rounded
    while min(long_edge_shape(*shape, size)) < shortest:
        size += 1
    return size


def _at_size(images: _Images, size: int, config: Config
             ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor] | None]:
    """The photo at ``size`` px, the paintings scaled to it, and the masks fitted to it."""
    content_image = resize_to_long_edge(images.target, size)
    styles = _scaled_styles(images.paintings, content_image, config.style_scale)
    masks = None if images.masks is None else [fit_mask(m, *content_image.shape[1:]) for m in images.masks]
    return content_image, styles, masks


def _extractor(config: Config, device: torch.device, checkpointed: bool = False) -> VGGFeatures:
    return load_extractor(config.weights, config.pooling, config.layers, str(device), checkpointed)


def color_inputs(photo: torch.Tensor, paintings: list[torch.Tensor], mode: str
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The photo to match and the paintings to take the style from, for a ``preserve_color`` mode.

    'histogram' recolours each painting to the photo's colour statistics; 'luminance' makes both grey
    (the painting's brightness matched to the photo's), and the photo's chroma returns at the end.
    """
    if mode == "histogram":
        return photo, [match_color(p, photo) for p in paintings]
    if mode == "luminance":
        return luminance(photo), [match_luminance(p, photo) for p in paintings]
    return photo, paintings


def _in_color(callback: Callback | None, photo: torch.Tensor) -> Callback | None:
    """Front ends show the image in the photo's colours while a luminance-only run optimises grey."""
    if callback is None:
        return None
    return lambda event: callback(dataclasses.replace(
        event, image=with_chroma_of(event.image, photo.to(event.image.device))))


def _inputs(content: ImageSource, styles: list[ImageSource], config: Config) -> dict[str, Any]:
    """SHA-256 of every input (the weights file too), and the absolute paths of those given as files
    (None otherwise)."""
    inputs: dict[str, Any] = {"content": fingerprint(content), "style": [fingerprint(s) for s in styles],
                              "paths": {"content": _abspath(content), "style": [_abspath(s) for s in styles]}}
    if config.init not in INITS:  # an image file
        inputs["init"] = fingerprint(config.init)
        inputs["paths"]["init"] = _abspath(config.init)
    if config.masks:
        inputs["masks"] = [fingerprint(m) for m in config.masks]
        inputs["paths"]["masks"] = [_abspath(m) for m in config.masks]
    if config.weights:
        inputs["weights"] = fingerprint(check_weights_file(config.weights))
        inputs["paths"]["weights"] = _abspath(config.weights)
    return inputs


def _abspath(source: ImageSource) -> str | None:
    return os.path.abspath(source) if isinstance(source, (str, os.PathLike)) else None


def _scaled_styles(paintings: list[torch.Tensor], content: torch.Tensor, style_scale: float) -> list[torch.Tensor]:
    """Each painting scaled to the photo's pixel count times style_scale² (aspect kept)."""
    pixels = round(content.shape[1] * content.shape[2] * style_scale**2)
    return [resize_to_pixels(painting, pixels) for painting in paintings]


def _objective(extractor: VGGFeatures, content: torch.Tensor, styles: list[torch.Tensor], config: Config,
               device: torch.device, masks: list[torch.Tensor] | None = None) -> Objective:
    return Objective(
        extractor, content[None].to(device), [s[None].to(device) for s in styles],
        content_layer=config.content_layer,
        style_layer_weights=config.layer_weights,
        # strength needs no size factor: both losses are means (see losses), so β/α is size-free.
        content_weight=config.content_weight, style_weight=config.style_weight * config.strength,
        tv_weight=config.tv_weight, style_blend=config.style_blend,
        masks=None if masks is None else [m.to(device) for m in masks],
        bfloat16=uses_bfloat16(config.precision, device), grey=config.preserve_color == "luminance",
        margin=config.margin)


def uses_bfloat16(precision: str, device: torch.device) -> bool:
    """Whether a run computes its features in bfloat16: 'auto' does only on CPUs with native bfloat16
    arithmetic (measured 2x faster with the same scores; elsewhere it is emulated, or unmeasured)."""
    if precision != "auto":
        return precision == "bfloat16"
    return device.type == "cpu" and bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


@functools.cache
def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def initial_image(init: str, content: torch.Tensor, styles: list[torch.Tensor], generator: torch.Generator,
                  masks: list[torch.Tensor] | None = None, blend: Sequence[float] = ()) -> torch.Tensor:
    """The starting pixels (3, H, W): the photo, noise, the (heaviest) painting or an image file, at the photo's size.

    'palette' recolours the photo to the paintings' colours, pooled in the ``blend`` proportions
    (default equal); with masks, each masked region to its own painting, the rest left the photo.
    """
    size = content.shape[1:]
    if init == "content":
        return content.clone()
    if init == "palette":
        if not masks:
            return recolor(content, *blended_mean_and_covariance(styles, list(blend) or [1.0] * len(styles)))
        weights = [m.reshape(1, *size).cpu() for m in masks]
        unmasked = (1 - sum(weights)).clamp(min=0)
        mixed = unmasked * content + sum(w * match_color(content, s) for w, s in zip(weights, styles))
        return mixed / (unmasked + sum(weights))
    if init == "noise":
        # Noise around mid-grey: uniform noise in [0, 1] is far from any natural image's statistics.
        return (0.5 + 0.25 * torch.randn(content.shape, generator=generator)).clamp(0, 1)
    if init == "style":  # the painting the blend weighs most (the first of equals)
        weights = list(blend) or [1.0] * len(styles)
        image = styles[weights.index(max(weights))]
    elif init in INITS:
        raise AssertionError(init)
    else:
        image = read_image(init, what="init image")
        rounded = long_edge_shape(*image.shape[1:], max(size))  # small sizes round by up to a pixel
        if not same_aspect(*image.shape[1:], *size) and any(abs(a - b) > 1 for a, b in zip(rounded, size)):
            (height, width), ratio = image.shape[1:], lambda h, w: f"{w / h:.2f}:1"
            raise ImageError(f"{init}: a start image must have the photo's proportions; it is {width}x{height} "
                             f"({ratio(height, width)}), the photo {ratio(*size)} ({size[1]}x{size[0]} at this size)")
    return resize(image, *size)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; anything else must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    check_device(name)
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but no CUDA GPU is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(f"device {name!r} asked for, but there is no such CUDA GPU: this machine has {count} "
                          f"(cuda:0{f' to cuda:{count - 1}' if count > 1 else ''})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS is not available")
    return device


class _DeterministicCudnn:
    """While any run is inside, cuDNN uses only its deterministic algorithms.

    cuDNN's fastest convolution algorithms may add partial sums in a different order each time: on
    a GPU the same run then drifts by rounding, step after step (seen on an H200). The deterministic
    ones cost 2 % at 512 px and nothing at 2048 px there (``benchmarks/gpu.sh``). Runs are counted,
    so that concurrent ones (the web app's workers) keep the setting until the last ends, which
    restores the caller's own.
    """

    def __init__(self) -> None:
        self.lock, self.runs, self.before = threading.Lock(), 0, False

    def __enter__(self) -> None:
        with self.lock:
            if self.runs == 0:
                self.before = torch.backends.cudnn.deterministic
            self.runs += 1
            torch.backends.cudnn.deterministic = True

    def __exit__(self, *exc_info: object) -> None:
        with self.lock:
            self.runs -= 1
            if self.runs == 0:
                torch.backends.cudnn.deterministic = self.before


_DETERMINISTIC_CUDNN = _DeterministicCudnn()


def repeatable(device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which the same seed repeats a run on ``device`` to the last bit."""
    return _DETERMINISTIC_CUDNN if device.type == "cuda" else contextlib.nullcontext()


@functools.lru_cache(maxsize=4)
def load_extractor(weights: str | None, pooling: str, layers: tuple[str, ...], device: str,
                   checkpointed: bool = False) -> VGGFeatures:
    """The frozen VGG-19 for these settings, loaded once per process (batches reuse it)."""
    # channels-last is oneDNN's and cuDNN's fast layout; MPS is left in the plain one.
    channels_last = not device.startswith("mps")
    return VGGFeatures(load_weights(weights), layers, pooling, channels_last, checkpointed).to(device)


def fingerprint(source: ImageSource) -> str:
    """SHA-256 of an input file, or of the pixels of an in-memory image."""
    if isinstance(source, (str, os.PathLike)):
        digest = hashlib.sha256()
        try:
            with open(source, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            raise ImageError(f"{source}: no such file") from None
        except IsADirectoryError:
            raise ImageError(f"{source}: is a folder, not a file") from None
        except OSError as exc:
            raise ImageError(f"{source}: cannot read it ({exc.strerror or exc})") from None
        return digest.hexdigest()
    return hashlib.sha256(read_image(source).numpy().tobytes()).hexdigest()
