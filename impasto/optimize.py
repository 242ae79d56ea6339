"""The optimisation loop: the image's pixels are the only parameter.

One loop serves both optimizers: each step evaluates the objective once (forward + backward), reports
a ``ProgressEvent``, and lets the optimizer move the pixels, which are then kept in [0, 1] so that the
saved 8-bit file scores what the optimizer reached. The best image seen is what the loop returns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import ImpastoError, Interrupted
from .imageio import with_margin, without_margin
from .objective import Objective, WithComposition
from .result import Result

# Steps over which the relative decrease of the loss is averaged for the stopping test.
TOLERANCE_WINDOW = 10
LBFGS_HISTORY = 20  # curvature pairs L-BFGS keeps (impasto.memory counts their bytes)
# L-BFGS's steps while it has no curvature pair move the steepest pixel by this much times the
# learning rate (13 grey levels at the default 1). torch's L-BFGS steps by 1/‖g‖₁ then, which on a
# picture moves no pixel by a hundredth of a grey level, and a pair from so short a step measures the
# curvature poorly. It can come out indefinite, and be skipped, step after step: hoovertowernight ×
# woman-with-hat-matisse at 512 px crept 47 steps, then its loss rose for a step and the run stopped
# as stalled, the photo barely painted. Or it scales the next step wildly, which drove pixels onto
# the bounds and left coloured specks beside them: 12 photo × painting pairs at 384 px had 238 pixels
# more than 60 grey levels off all their neighbours, 101 from this step.
FIRST_STEP = 0.05
# A resumed run's picture comes back with itself mirrored into its margin, not the strokes painted there,
# which raised the loss of its canvas 15 % (golden_gate × woman-with-hat-matisse at 256 px, stopped at
# step 70: 63 120 against 53 996). Its first steps repaint the margin only (the picture stays as it
# stopped, so a run resumed and soon stopped again keeps it); then L-BFGS starts afresh, with a first
# step this small, as the picture is near a minimum (FIRST_STEP's 13 grey levels raised the loss 23 %).
RESUME_MARGIN_STEPS = 10
RESUME_FIRST_STEP = 0.002


@dataclass(frozen=True)
class ProgressEvent:
    """What a callback receives after every step."""

    step: int  # 1-based, counted over the whole run
    total: int  # the most steps the run can take (less once a size has stopped early)
    scale: int  # index of the current size in a coarse-to-fine schedule (0 for one size)
    scales: int  # number of sizes in the schedule
    loss: float  # weighted total
    losses: dict[str, float]  # weighted terms by name
    elapsed: float  # seconds since the run started (a resumed run's include those of the part before its stop)
    image: torch.Tensor = field(repr=False)  # the current pixels (3, H, W) in [0, 1], a copy the callback may keep
    # Seconds the run has left at the pace of its steps so far, each weighed by the pixels it computes, so
    # that a print's estimate holds from its first, small size on; set by stylize from its second step
    # (None at the first, whose time holds the setup too, and elsewhere).
    seconds_left: float | None = None
    # The pace of the run's steps after its first, in seconds per pixel of a step (api.pixels_per_step),
    # which seconds_left counts at; set by stylize from its second step.
    pace: float | None = None
    # Set by stylize: builds ``stopped_here``'s Result (a run's context, which this loop does not know).
    _as_stopped: Callable[[ProgressEvent], Result] | None = field(default=None, repr=False, compare=False)

    def stopped_here(self) -> Result:
        """The run as if it had stopped after this step: a cancelled ``Result`` of ``image`` (at this
        size's resolution) whose ``save`` writes a picture that ``stylize(..., resume=)`` and ``impasto
        --resume`` go on from. Saved every so often, it keeps a long run safe from a crash or a kill,
        which leave no stopped picture. Only the events of ``stylize`` have it."""
        if self._as_stopped is None:
            raise ImpastoError("stopped_here: only the progress events of impasto.stylize know their run")
        return self._as_stopped(self)


# Return True to stop the run after this step (the best image so far is kept). Only a bool (Python's,
# numpy's or a one-element torch bool tensor) True stops it, not any truthy value: a number or a text
# returned by chance goes on. Any return is allowed, so the type says object.
Callback = Callable[[ProgressEvent], object]


def _asks_to_stop(answer: object) -> bool:
    if isinstance(answer, torch.Tensor):  # a comparison of the event's image, say
        return answer.dtype == torch.bool and answer.numel() == 1 and bool(answer)
    return isinstance(answer, (bool, np.bool_)) and bool(answer)


class ProjectedLBFGS:
    """L-BFGS (two-loop recursion, fixed step) whose iterates are clipped to the box [0, 1].

    Pixels held at a bound by a gradient pointing outwards are left out of the step (their gradient
    is zeroed), and the curvature pairs use the step actually taken after clipping: without both,
    the clipped pixels corrupt the inverse-Hessian estimate and the run stalls short of the minimum
    (torch.optim.LBFGS plus clamping does). No step moves a pixel by more than ``max_change``:
    without a line search, the first steps' curvature estimates can send the loss up 100-fold,
    and recovering costs ~20 steps (golden_gate × starry_night at 256 px, with 0.6.0's first step:
    loss 7.5e4 after 40 steps with the cap, 1.7e5 without).
    """

    def __init__(self, lr: float = 1.0, history: int = LBFGS_HISTORY, max_change: float = 0.5,
                 first_step: float = FIRST_STEP) -> None:
        self.lr, self.history, self.max_change, self.first_step = lr, history, max_change, first_step
        self.pairs: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1/yᵀs)
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None  # (x, gradient) of the last step

    def step(self, image: torch.Tensor, grad: torch.Tensor) -> None:
        x = image.detach().reshape(-1)
        held = ((x <= 0) & (grad.reshape(-1) > 0)) | ((x >= 1) & (grad.reshape(-1) < 0))
        g = grad.reshape(-1).masked_fill(held, 0.0)
        if self.last is not None:
            s, y = x - self.last[0], g - self.last[1]
            ys = float(y @ s)
            if ys > 1e-10:  # skip pairs that would make the estimate indefinite
                self.pairs = [*self.pairs[-(self.history - 1):], (s, y, 1.0 / ys)]
        direction = self._direction(g).masked_fill_(held, 0.0)
        step = self.lr if self.pairs else self.lr * self._first_step(direction)
        largest = float(direction.abs().max()) * step
        if self.max_change and largest > self.max_change:
            step *= self.max_change / largest
        self.last = (x.clone(), g)
        with torch.no_grad():
            image.sub_(step * direction.view_as(image)).clamp_(0, 1)

    def _first_step(self, gradient: torch.Tensor) -> float:
        """The step along the (held-masked) gradient while no curvature is known: one that moves the
        steepest pixel by ``first_step`` (times lr), none at a stationary point (a seam for benchmarks to try
        others)."""
        steepest = float(gradient.abs().max())
        return self.first_step / steepest if steepest else 0.0

    def _initial_inverse_hessian(self, q: torch.Tensor, y: torch.Tensor, rho: float) -> torch.Tensor:
        """H₀·q for the two-loop recursion: the identity scaled by sᵀy / yᵀy (a seam for benchmarks to
        try other preconditioners)."""
        return q.div_(rho * (y @ y))

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        # The recursion's scalars stay tensors: read as Python numbers, each would make the CPU wait
        # for a GPU, 41 times a step with 20 pairs (7 % of a 2048 px step's time on an H200).
        q, alphas = g.clone(), []
        for s, y, rho in reversed(self.pairs):
            alpha = rho * (s @ q)
            q.sub_(alpha * y)
            alphas.append(alpha)
        if self.pairs:
            q = self._initial_inverse_hessian(q, *self.pairs[-1][1:])
        for (s, y, rho), alpha in zip(self.pairs, reversed(alphas)):
            beta = rho * (y @ q)
            q.add_(s * (alpha - beta))
        return q


class ProjectedAdam:
    """Adam on the pixels, clipped to [0, 1] after each step."""

    def __init__(self, image: torch.Tensor, lr: float) -> None:
        self.adam = torch.optim.Adam([image], lr=lr)

    def step(self, image: torch.Tensor, grad: torch.Tensor) -> None:
        image.grad = grad
        self.adam.step()
        with torch.no_grad():
            image.clamp_(0, 1)


def make_optimizer(name: str, image: torch.Tensor, lr: float) -> ProjectedLBFGS | ProjectedAdam:
    """The optimizer called ``name`` ('lbfgs' or 'adam') for this image."""
    return ProjectedLBFGS(lr) if name == "lbfgs" else ProjectedAdam(image, lr)


def _optimizer_for(name: str, image: torch.Tensor, lr: float, near_a_minimum: bool
                   ) -> ProjectedLBFGS | ProjectedAdam:
    """``make_optimizer``'s, with RESUME_FIRST_STEP for L-BFGS on a picture ``near_a_minimum`` (resumed)."""
    opt = make_optimizer(name, image, lr)
    if near_a_minimum and isinstance(opt, ProjectedLBFGS):
        opt.first_step = RESUME_FIRST_STEP
    return opt


@dataclass
class LoopState:
    """What a run carries across sizes: steps taken, the clock, the history, a stop request."""

    total: int
    scales: int = 1
    step: int = 0
    started: float = 0.0
    history: list[dict[str, float]] | None = None
    stop_reason: str = "iterations"
    interrupted: BaseException | None = None  # what stopped the run (a callback's error, Ctrl-C), raised at its end
    best_step: int = 0  # the step whose picture is the best of the current size (what optimize returns)

    def __post_init__(self) -> None:
        self.started = self.started or time.perf_counter()
        self.history = [] if self.history is None else self.history


def optimize(
    image: torch.Tensor,
    objective: Objective | WithComposition,
    *,
    optimizer: str,
    lr: float,
    iterations: int,
    tolerance: float,
    state: LoopState,
    scale: int = 0,
    callback: Callback | None = None,
    grey: bool = False,
    margin: int = 0,
    resumed: bool = False,
) -> torch.Tensor:
    """Minimise ``objective`` over the pixels of ``image`` (1, 3, H, W) and of a ``margin`` around it
    (px; the objective's canvas, first the picture mirrored into it); return the best picture seen,
    the margin cropped off, as callbacks see it. ``grey``: ``image`` is grey, and stays so (each step
    moves its three channels alike).

    ``resumed``: ``image`` is a stopped run's last picture, whose loss that run reported as its last
    step; evaluating it again only gives the first move, and ``iterations`` steps follow it, the first
    RESUME_MARGIN_STEPS of them moving the margin only.

    Stops after ``iterations`` steps, when the loss stalls (``tolerance``), when ``callback``
    returns True ("cancelled"), or when the loss is not finite ("diverged"); ``state.stop_reason``
    says which. An exception raised during a step (by the callback, or a KeyboardInterrupt) stops
    it as a cancel does, the exception kept in ``state.interrupted`` for the caller to raise once it
    has kept the best image.
    """
    image = with_margin(image.detach(), margin).clone().clamp_(0, 1).requires_grad_(True)
    margin_only = min(RESUME_MARGIN_STEPS, iterations) if resumed and margin else 0
    opt = _optimizer_for(optimizer, image, lr, resumed and not margin_only)  # a margin mirrored is no minimum
    best, best_loss, losses = image.detach().clone(), math.inf, []
    try:
        for evaluation in range(iterations + resumed):
            loss, terms = objective(image)
            (grad,) = torch.autograd.grad(loss, image)
            if grey:  # the gradient's part that keeps the channels equal: a grey picture's own gradient
                grad = grad.mean(1, keepdim=True).expand_as(grad)
            if evaluation < margin_only:  # the picture held as it stopped
                grad = grad.clone()
                grad[..., margin:-margin, margin:-margin] = 0.0
            elif margin_only and evaluation == margin_only:  # the picture's turn: its curvature is unknown
                opt = _optimizer_for(optimizer, image, lr, near_a_minimum=True)
            # One read of all the numbers: each read waits for a GPU to finish the step.
            loss_value, *values = torch.stack([value.detach() for value in (loss, *terms.values())]).tolist()
            if not math.isfinite(loss_value):
                state.stop_reason = "diverged"
                break
            if loss_value < best_loss:  # the picture before this evaluation's move: that of the step counted now
                best, best_loss = image.detach().clone(), loss_value
                state.best_step = state.step + (not (resumed and evaluation == 0))
            if resumed and evaluation == 0:  # not a step: counting it would spend one on a picture already scored
                opt.step(image, grad)
                continue
            state.step += 1
            term_values = dict(zip(terms, values))
            state.history.append({"step": state.step, "scale": scale, "loss": loss_value, **term_values})
            losses.append(loss_value)
            stalled = len(losses) < iterations and _stalled(losses, tolerance)  # the last step ends it anyway
            if stalled:  # the rest of this size's steps are not coming: the total says so from this step on
                state.total -= iterations - len(losses)
            if callback is not None and _asks_to_stop(callback(ProgressEvent(
                    state.step, state.total, scale, state.scales, loss_value, term_values,
                    time.perf_counter() - state.started, without_margin(image.detach()[0], margin).clone()))):
                state.stop_reason = "cancelled"
                break
            if stalled:
                state.stop_reason = "tolerance"
                break
            opt.step(image, grad)
    except Interrupted:  # the command line's second Ctrl-C: abort at once, keeping nothing
        raise
    except BaseException as exc:  # raised again by the caller, once it has kept the best image
        state.stop_reason, state.interrupted = "cancelled", exc
    return without_margin(best, margin)


def _stalled(losses: list[float], tolerance: float) -> bool:
    """Has the loss fallen by less than ``tolerance`` per step over the last window?"""
    if tolerance <= 0 or len(losses) <= TOLERANCE_WINDOW:
        return False
    before, now = losses[-TOLERANCE_WINDOW - 1], losses[-1]
    if before == 0:  # a loss of zero cannot fall further
        return True
    return (before - now) / (abs(before) * TOLERANCE_WINDOW) < tolerance
