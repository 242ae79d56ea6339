"""What a run gives back: ``Result``, the painting with how the loss went, how long it took, and
the metadata that repeats it."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image
import torch

from . import __version__
from .config import Config
from .errors import ImageError
from .imageio import file_key, save_image, to_pil


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
    # Whether the run's memory plan let its steps keep the memory they freed for the next one (they do
    # so only as the one run going on in the process, on glibc's main heap: memory.manage_freed_memory);
    # False: it went back to the system at once, to fit in memory (slower steps), as in every checkpointed run.
    keeps_freed: bool = True
    bfloat16: bool = False  # whether the features were computed in bfloat16 (precision 'auto' decides per machine)
    # Where a cancelled run stopped, for ``stylize(..., resume=)``: "size_index" (into config.sizes()),
    # "size" (px) and "steps_at_size"; None when it has nothing left to do.
    stopped_at: dict[str, int] | None = None
    resumed_from: dict[str, float] | None = None  # a resumed run: "steps" and "seconds" made before it
    image_step: int | None = None  # the step whose picture ``image`` is (the best seen); None: the last
    # What the pixels depend on besides the settings: "device" ("cpu", "cuda:0" …) and, on a CPU, "threads"
    # (the sums of a convolution are split among them, in an order that changes the last bits).
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def losses(self) -> dict[str, float]:
        """The history's row of the step whose picture ``image`` is: its loss and terms. The best
        picture is usually the last step's, not always (a step may raise the loss); {} when it is a
        resumed run's stopped picture, scored before this run."""
        step = self.steps if self.image_step is None else self.image_step
        return next((row for row in reversed(self.history) if row["step"] == step), {})

    @property
    def steps(self) -> int:
        """Steps made in all (a resumed run's count goes on from where it stopped)."""
        return int(self.history[-1]["step"]) if self.history else int((self.resumed_from or {}).get("steps", 0))

    def __repr__(self) -> str:  # the image and the history would fill a notebook's screen
        loss = f", loss {self.losses['loss']:.4g}" if self.losses else ""
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
        before = self.resumed_from or {}
        meta = {"impasto": __version__, "config": self.config.to_dict(), "inputs": self.inputs,
                "steps": self.steps, "stop_reason": self.stop_reason,
                "image_step": self.steps if self.image_step is None else self.image_step, "final_losses": self.losses,
                "seconds": round(before.get("seconds", 0.0) + self.timings.get("total", 0.0), 3),
                "checkpointed": self.checkpointed, "keeps_freed": self.keeps_freed, "bfloat16": self.bfloat16,
                "machine": self.machine}
        if self.stopped_at:
            meta["stopped_at"] = self.stopped_at
        if self.resumed_from:
            meta["resumed_from"] = self.resumed_from
        return meta

    def save(self, path: str | os.PathLike) -> Path:
        """Write the image (format from the extension) atomically, with the run's metadata and, when
        ``config.dpi`` is set, its print resolution. ImageError for a file the run read (its photo, say)."""
        read_as = self._read_files().get(file_key(path)) if isinstance(path, (str, os.PathLike)) else None
        if read_as:
            raise ImageError(f"{path}: would overwrite the run's {read_as}; save the painting elsewhere")
        return save_image(self.image, path, metadata=self.metadata(), dpi=self.config.dpi)

    def _read_files(self) -> dict[str, str]:
        """The files the run read, by ``file_key``: what each was to it."""
        paths = self.inputs.get("paths", {})
        named = [("content image", paths.get("content")), ("init image", paths.get("init")),
                 ("weights file", paths.get("weights")),
                 *((f"style image {k}", p) for k, p in enumerate(paths.get("style") or [], 1)),
                 *((f"mask {k}", p) for k, p in enumerate(paths.get("masks") or [], 1))]
        # reversed: a file read in two roles is named by the first
        return {file_key(p): what for what, p in reversed(named) if isinstance(p, str)}
