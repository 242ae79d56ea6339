"""The public entry point: ``stylize(content, style, config) -> Result``: the run's inputs read and
checked, then its sizes painted in turn (coarse-to-fine); and ``objective_for``, the objective a run
minimises, to score pictures by it."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import numbers
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import PIL.Image
import torch

from .color import blended_mean_and_covariance, luminance, match_color, match_luminance, recolor, with_chroma_of
from .config import INITS, Config, checked_config
from .device import machine, repeatable, resolve_device, uses_bfloat16
from .errors import ConfigError, ImageError, Interrupted
from .imageio import (ImageSource, long_edge_shape, pixels_shape, read_image, resize, resize_to_long_edge,
                      resize_to_pixels, same_aspect, source_name, unenlarge)
from .masks import fit_mask, read_masks
from .memory import MemoryPlan, manage_freed_memory, plan as plan_memory, run_on_the_heap
from .objective import Objective, WithComposition
from .optimize import Callback, LoopState, ProgressEvent, optimize
from .postprocess import denoise, despeckle
from .result import Result
from .resume import ResumePoint, resumed_run
from .vgg import LAYER_NAMES, VGGFeatures, check_weights_file, conv_work, load_weights, smallest_edge


def stylize(
    content: ImageSource,
    style: ImageSource | Iterable[ImageSource],
    config: Config | None = None,
    *,
    callback: Callback | None = None,
    resume: Result | str | os.PathLike | None = None,
) -> Result:
    """Paint ``content`` in the style of ``style`` (one image, or several blended).

    Images may be paths, PIL images, arrays (H, W[, C]) or tensors ((1,) 3, H, W, or grey H, W) in
    [0, 1] (whole-number types in their own range). ``callback`` receives a ``ProgressEvent`` after
    every step and may return True to stop early. ``resume`` goes on with a stopped run (its
    cancelled ``Result``, or the file it was saved to) from the size and step where it stopped; the
    inputs and settings must be the same, bar device, precision and max_memory. The optimizer's
    memory starts afresh, so the picture is alike, not identical to an uninterrupted run's.

    The Result's ``stop_reason`` says how the run ended: "iterations", "tolerance" (the loss
    stalled), "cancelled" (the callback asked, or an exception stopped it) or "diverged". An
    exception raised by the callback or during the run (a KeyboardInterrupt, out of memory) comes
    out of ``stylize`` with the best image so far as its ``result`` attribute (once a picture
    exists). Raises ``ImpastoError`` subclasses for bad inputs or settings; never prints.
    """
    config = checked_config(config)
    if callback is not None and not callable(callback):
        raise ConfigError(f"callback must be a function of a ProgressEvent, not {type(callback).__name__}")
    result, interrupted = _paint(content, style, config, callback, resume)
    if interrupted is not None:  # a callback's error or Ctrl-C: raised, carrying the best image so far
        interrupted.result = result
        _release_frames(interrupted)
        raise interrupted
    return result


def _paint(content: ImageSource, style: ImageSource | Iterable[ImageSource], config: Config,
           callback: Callback | None, resume: Result | str | os.PathLike | None
           ) -> tuple[Result, BaseException | None]:
    """``stylize``'s run, and what stopped it when an exception did (the run's objects are gone once it
    returns: they are not in that exception's traceback)."""
    started = time.perf_counter()
    styles = _style_list(style)
    images, bfloat16, memory = _read_and_planned(content, styles, config)
    inputs = input_record(content, styles, config)
    point, stopped_image = (resumed_run(resume, config, inputs, tuple(images.photo.shape[1:]))
                            if resume is not None else (None, None))
    # What every Result of the run records besides its picture and progress
    result_fields = {"inputs": inputs, "checkpointed": memory.checkpointed, "keeps_freed": memory.keeps_freed,
                     "bfloat16": bfloat16, "machine": machine(images.device)}
    painting = _Painting(config, images, _extractor(config, images.device, memory.checkpointed), callback,
                         point, stopped_image, result_fields)
    painting.setup = setup = time.perf_counter() - started
    painting.paint()
    state = painting.state
    if state.stop_reason == "diverged" and not state.history:  # the picture would be the start, unpainted
        raise ConfigError(f"{source_name(content, 'content image')}: the loss is not finite (NaN or infinity) "
                          "from the first step; nothing was painted: are the weights too large?")
    final_size = long_edge_shape(*images.photo.shape[1:], config.max_size)
    image = _finished(resize(painting.image, *final_size), images.photo, config)
    total = time.perf_counter() - started
    result = Result(image, config, state.history, {"setup": setup, "optimize": total - setup, "total": total},
                    state.stop_reason, stopped_at=painting.stopped_at, resumed_from=painting.resumed_from,
                    image_step=state.best_step, **result_fields)
    return result, state.interrupted


def _steps_at_size(steps: list[int], scale: int, iterations: int, total: int, step: int) -> int:
    """Steps made at size number ``scale`` (of a run of ``steps`` a size) after ``step`` steps of at most
    ``total``: all of its ``iterations`` once its loss has stalled (the total dropped the steps it will not
    make)."""
    return iterations - (total - step - sum(steps[scale + 1:]))


# The folders of the code whose frames hold a run's tensors
_RUNS_CODE = (os.path.dirname(__file__) + os.sep, os.path.dirname(torch.__file__) + os.sep)


def _release_frames(exc: BaseException) -> None:
    """Clear the variables of impasto's and torch's frames in ``exc``'s traceback, and of the frames that
    called them, which a caller that keeps the exception keeps alive (as a notebook keeps the last one):
    the run's features, gradients and L-BFGS's pairs (50 MB at 512 px, gigabytes at a print's size). The
    caller's frames (a callback's) keep theirs; the traceback's lines stay."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        while frame is not None and frame.f_code.co_filename.startswith(_RUNS_CODE):
            with contextlib.suppress(RuntimeError):  # a frame still running (stylize's) cannot be cleared
                frame.clear()
            frame = frame.f_back
        tb = tb.tb_next


def planned_memory(content: ImageSource, style: ImageSource | Iterable[ImageSource], config: Config | None = None
                   ) -> tuple[MemoryPlan, tuple[int, int]]:
    """How a run of ``config`` would use memory (its peak estimate, and whether it keeps freed memory
    or checkpoints), and the (height, width) of its painting, with its images read and checked as
    ``stylize`` checks them, without painting: an image it would refuse, or a size too large for the
    memory, raises the same error here."""
    config = checked_config(config)
    images, _, memory = _read_and_planned(content, _style_list(style), config)
    return memory, long_edge_shape(*images.photo.shape[1:], config.max_size)


def _read_and_planned(content: ImageSource, styles: list[ImageSource], config: Config
                      ) -> tuple[_Images, bool, MemoryPlan]:
    """A run's images, read and checked; whether it computes in bfloat16; and its memory plan."""
    images = _read_images(content, styles, config, config.painted_sizes())
    bfloat16 = uses_bfloat16(config.precision, images.device)
    return images, bfloat16, _planned_memory(config, images, bfloat16)


def _style_list(style: ImageSource | Iterable[ImageSource]) -> list[ImageSource]:
    """One painting, or several in any iterable (a list, a tuple, a generator …)."""
    one = isinstance(style, (str, os.PathLike, PIL.Image.Image, np.ndarray, torch.Tensor))
    return [style] if one or not isinstance(style, Iterable) else list(style)


def _planned_memory(config: Config, images: _Images, bfloat16: bool) -> MemoryPlan:
    """The run's memory plan (checkpointed or not, keeping freed memory or not), counting the images
    already held."""
    held = {id(t): t.nbytes for t in (images.photo, images.target, *images.paintings, *(images.masks or []))}
    return plan_memory(config, *images.photo.shape[1:], images.device, bfloat16, held=sum(held.values()))


def pixels_per_step(config: Config, height: int, width: int) -> list[int]:
    """The pixels a step computes at each size of ``config.sizes()``, for a photo of ``height`` ×
    ``width``: the picture's at that size and, at each size after the first, the first size's too
    (the composition term), counted as pixels of the whole network: those of the sizes after the
    first by the share of its work that their shorter network does (``config.refining()``: 0.77
    without relu5_1). A step's time grows with them: the time left counts so, and so does
    --dry-run's estimate (a 1024 px step took 4.75 times a 512 px one on 2 cores, for 5 times the pixels)."""
    pixels = [math.prod(long_edge_shape(height, width, size)) for size in config.sizes()]
    first = pixels[0] if config.composition_weight else 0
    shorter = conv_work(config.refining().layers) / conv_work(config.layers)
    return [round(count * shorter) + first if k else count for k, count in enumerate(pixels)]


def painting_work(config: Config, height: int, width: int, steps: Sequence[int] | None = None) -> int:
    """The pixels that all the steps of a painting compute (``pixels_per_step`` times the steps at each
    size: ``config.steps_per_size()``, or ``steps``). Times a machine's seconds per pixel of a step, it
    is about how long the painting takes there: --dry-run and the web page count so."""
    steps = config.steps_per_size() if steps is None else steps
    return sum(n * pixels for n, pixels in zip(steps, pixels_per_step(config, height, width)))


class _Painting:
    """A run's sizes painted in turn (coarse-to-fine), each from the last one's picture, from the
    start or from where a stopped run left off (``point``, with its ``stopped_image``).

    ``paint`` leaves the picture in ``image`` (at the last size painted), how the run ended in
    ``state``, and where it stopped, when it stopped part way, in ``stopped_at``.
    """

    def __init__(self, config: Config, images: _Images, extractor: VGGFeatures, callback: Callback | None,
                 point: ResumePoint | None, stopped_image: torch.Tensor | None, result_fields: dict[str, Any]
                 ) -> None:
        self.config, self.images, self.extractor, self.callback = config, images, extractor, callback
        self.point, self.stopped_image, self.result_fields = point, stopped_image, result_fields
        self.resumed_from = point and {"steps": point.steps, "seconds": point.seconds}
        self.sizes, self.steps = config.sizes(), config.steps_per_size()
        # The first size painted composes the picture (a size given no steps is skipped).
        self.first_scale = next((k for k, steps in enumerate(self.steps) if steps), 0)
        self.work = pixels_per_step(config, *images.photo.shape[1:])
        self.grey = config.preserve_color == "luminance"
        self.generator = torch.Generator().manual_seed(config.seed)
        # A weaker style pulls less towards the painting's colours: the start is recoloured as far as the
        # strength asks, up to 1 (with no style to paint, strength 0, the photo comes back).
        self.recolour = min(1.0, config.strength) if config.style_weight else 0.0
        # A resumed run's count of steps and its clock go on from where it stopped.
        self.state = (LoopState(point.total, len(self.sizes), point.steps, time.perf_counter() - point.seconds,
                                best_step=point.steps) if point else LoopState(sum(self.steps), len(self.sizes)))
        self.image: torch.Tensor | None = None
        self.stopped_at: dict[str, int] | None = None
        self._first: Objective | None = None  # the first size's, which the composition term scores
        self._done = 0  # steps the current size had made before this call (a resumed run's)
        self._first_step: tuple[float, float] | None = None  # (elapsed, work done) at this call's first step
        self.setup = 0.0  # seconds stylize took to read the images and build the network, for stopped_here

    def paint(self) -> None:
        scale = 0
        on_the_heap = run_on_the_heap() if self.images.device.type == "cpu" else contextlib.nullcontext()
        # Gradients on whatever the caller set (a service may call this under torch.no_grad()).
        with repeatable(self.images.device), torch.inference_mode(False), torch.enable_grad(), on_the_heap:
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
        if self.images.device.type == "cpu":
            manage_freed_memory(self.result_fields["keeps_freed"])  # the memory plan's
        self._done = 0
        content_image, style_images, masks = _at_size(self.images, size, self.config)
        objective = self._objective(scale, content_image, style_images, masks)
        if painted:
            return True
        if point and scale == point.size_index:  # the stopped run's picture, at the size it was painting
            self.image, self._done = unenlarge(self.stopped_image, *content_image.shape[1:]), point.steps_at_size
            self.image = luminance(self.image) if self.grey else self.image
            if self._done >= iterations:
                return True  # it stopped on this size's last step: the next size goes on from it
        start = self._start(content_image, style_images, masks)
        state.stop_reason, before = "iterations", state.step
        callback = self.callback and functools.partial(self._with_stop_record, self.callback, scale, size,
                                                       iterations)
        if self.grey:
            callback = _in_color(callback, resize_to_long_edge(self.images.photo, size))
        self.image = optimize(start[None].to(self.images.device), objective, optimizer=self.config.optimizer,
                              lr=self.config.step_size, iterations=iterations - self._done,
                              tolerance=self.config.tolerance, state=state, scale=scale, callback=callback,
                              grey=self.grey, margin=objective.margin, resumed=self._done > 0)[0].cpu()
        if state.stop_reason == "cancelled":
            self._note_stop(scale, size, iterations, state.step - before)
        return state.stop_reason not in ("cancelled", "diverged")

    def _with_stop_record(self, callback: Callback, scale: int, size: int, iterations: int,
                          event: ProgressEvent) -> object:
        """Call ``callback`` with an event that knows how to stop here (``ProgressEvent.stopped_here``),
        at size number ``scale`` (``size`` px, at most ``iterations`` steps)."""
        history = self.state.history[:]  # to this step: the callback may keep the event and call it later
        # Not self: an event a caller keeps (in an exception's traceback, say) would keep the run's tensors.
        config, resumed_from, result_fields, setup = self.config, self.resumed_from, self.result_fields, self.setup
        steps, before = self.steps, self.point.seconds if self.point else 0.0

        def stopped_here(at: ProgressEvent) -> Result:  # the event as the callback sees it (in colour)
            stopped_at = {"size_index": scale, "size": size,
                          "steps_at_size": _steps_at_size(steps, scale, iterations, at.total, at.step)}
            seconds = at.elapsed - before  # this call's, from the end of its setup
            timings = {"setup": setup, "optimize": seconds, "total": setup + seconds}
            return Result(at.image, config, history, timings, "cancelled", stopped_at=stopped_at,
                          resumed_from=resumed_from, image_step=at.step, **result_fields)
        pace, seconds_left = self._pace_and_time_left(event)
        return callback(dataclasses.replace(event, _as_stopped=stopped_here, pace=pace, seconds_left=seconds_left))

    def _pace_and_time_left(self, event: ProgressEvent) -> tuple[float | None, float | None]:
        """The pace of the run's steps since this call's first, in seconds per pixel of a step, and the
        time the run has left at it. The first step also holds loading the model and the painting's
        targets (at 512 px on 2 cores, 2.2 s against 0.7 s a step), and it has no pace of its own, so
        it gets None. Each step counts as the pixels it computes (``pixels_per_step``); steps before
        this size are counted as its earlier sizes' in order."""
        scale, later = event.scale, self.steps[event.scale + 1:]
        left_here = event.total - event.step - sum(later)
        here = self.steps[scale] - left_here  # steps made at this size
        done, before = here * self.work[scale], event.step - here
        for steps, per_step in zip(self.steps[:scale], self.work):
            done, before = done + min(steps, before) * per_step, before - min(steps, before)
        left = left_here * self.work[scale] + sum(steps * per_step
                                                  for steps, per_step in zip(later, self.work[scale + 1:]))
        if self._first_step is None:
            self._first_step = (event.elapsed, done)
        seconds, work_done = event.elapsed - self._first_step[0], done - self._first_step[1]
        pace = seconds / work_done if work_done > 0 else None
        if not left:
            return pace, 0.0
        return pace, None if pace is None else pace * left

    def _objective(self, scale: int, content_image: torch.Tensor, style_images: list[torch.Tensor],
                   masks: list[torch.Tensor] | None) -> Objective | WithComposition:
        """Size number ``scale``'s objective: the first size's; at each size after it, that of
        ``config.refining()``, on a network that ends at its deepest layer, and with the composition term."""
        if scale == self.first_scale:  # not the first built: a resumed run without the composition term skips it
            objective = _objective(self.extractor, content_image, style_images, self.config, self.images.device,
                                   masks)
            self._first = objective
            return objective
        config = self.config.refining()
        extractor = _extractor(config, self.images.device, self.extractor.checkpointed)
        objective = _objective(extractor, content_image, style_images, config, self.images.device, masks)
        if self.config.composition_weight:
            objective = WithComposition(objective, self._first, self.config.composition_weight)
        return objective

    def _start(self, content_image: torch.Tensor, style_images: list[torch.Tensor],
               masks: list[torch.Tensor] | None) -> torch.Tensor:
        if self.image is None:
            start = initial_image(self.config.init, content_image, style_images, self.generator, masks,
                                  self.config.style_blend, self.recolour)
            return luminance(start) if self.grey else start
        return resize(self.image, *content_image.shape[1:])  # coarse-to-fine: the last size's result, upsampled

    def _note_stop(self, scale: int, size: int, iterations: int, made: int) -> None:
        """A stop request during size number ``scale``, after ``made`` steps of this call there: where
        the run stopped, unless that was its last step anyway."""
        state = self.state
        if state.total > state.step:
            self.stopped_at = {"size_index": scale, "size": size,
                               "steps_at_size": _steps_at_size(self.steps, scale, iterations, state.total,
                                                                state.step)}
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
    config = checked_config(config)
    if size is not None and (not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 1):
        raise ConfigError(f"size must be a whole number of pixels, not {size!r}")
    styles = _style_list(style)
    at = config.max_size if size is None else int(size)
    images = _read_images(content, styles, config, [at], None if size is None else "size")
    content_image, style_images, masks = _at_size(images, at, config)
    return _objective(_extractor(config, images.device), content_image, style_images, config.replace(margin=0),
                      images.device, masks)


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
                config: Config, size_setting: str | None = None, largest: int | None = None) -> None:
    """Refuse, naming the image, a photo or painting (their (H, W), ``paintings`` by name) whose short
    edge at one of ``sizes`` is too short for the deepest layer used (16 px for relu5_1, after four
    poolings). The advice names ``size_setting`` as the size to raise, or max_size or min_size, up to
    ``largest`` px (a server's limit)."""
    layers = config.layers
    shortest = smallest_edge(layers)
    advice = f"VGG-19's {max(layers, key=LAYER_NAMES.index)} needs a short edge of at least {shortest} px"
    for size in sizes:
        height, width = long_edge_shape(*photo, size)
        larger = size_setting or ("max_size" if size == config.max_size else "min_size")  # what made this size
        if min(height, width) < shortest:
            needed = size_for_edge(photo, shortest)
            fix = (f": raise {larger} to {needed} px or more, or crop the image" if largest is None or needed <= largest
                   else f", which it has only at {needed} px, more than the {largest} px allowed: crop the image")
            raise ImageError(f"{photo_name}: {width}×{height} at {size} px is too narrow ({advice}{fix})")
        pixels = max(1, round(height * width * config.style_scale**2))
        for name, painting in paintings.items():
            painting_height, painting_width = pixels_shape(*painting, pixels)
            if min(painting_height, painting_width) < shortest:
                raise ImageError(f"{name}: seen at {painting_width}×{painting_height} for a {size} px picture, "
                                 f"too narrow ({advice}: raise {larger} or style_scale, or crop the painting)")


def size_for_edge(shape: tuple[int, int], shortest: int) -> int:
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


def input_record(content: ImageSource, styles: list[ImageSource], config: Config) -> dict[str, Any]:
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


def initial_image(init: str, content: torch.Tensor, styles: list[torch.Tensor], generator: torch.Generator,
                  masks: list[torch.Tensor] | None = None, blend: Sequence[float] = (), recolour: float = 1.0
                  ) -> torch.Tensor:
    """The starting pixels (3, H, W): the photo, noise, the (heaviest) painting or an image file, at the photo's size.

    'palette' recolours the photo to the paintings' colours, pooled in the ``blend`` proportions
    (default equal); with masks, each masked region to its own painting, the rest left the photo.
    ``recolour`` goes that share of the way from the photo's colours (0: the photo itself).
    """
    size = content.shape[1:]
    if init == "content" or init == "palette" and not recolour:
        return content.clone()
    if init == "palette":
        if not masks:
            recoloured = recolor(content, *blended_mean_and_covariance(styles, list(blend) or [1.0] * len(styles)))
        else:
            weights = [m.reshape(1, *size).cpu() for m in masks]
            unmasked = (1 - sum(weights)).clamp(min=0)
            mixed = unmasked * content + sum(w * match_color(content, s) for w, s in zip(weights, styles))
            recoloured = mixed / (unmasked + sum(weights))
        return recoloured if recolour == 1 else torch.lerp(content, recoloured, recolour)
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


@functools.lru_cache(maxsize=4)
def load_extractor(weights: str | None, pooling: str, layers: tuple[str, ...], device: str,
                   checkpointed: bool = False) -> VGGFeatures:
    """The frozen VGG-19 for these settings, loaded once per process (batches reuse it)."""
    # channels-last is oneDNN's and cuDNN's fast layout; MPS is left in the plain one.
    channels_last = not device.startswith("mps")
    # Never inference tensors, whatever mode the first caller was in: autograd cannot save them, and the
    # network is cached for every later run.
    with torch.inference_mode(False):
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
