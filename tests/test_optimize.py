import math

import numpy as np
import pytest
import torch

from impasto.optimize import (FIRST_STEP, LBFGS_HISTORY, RESUME_FIRST_STEP, RESUME_MARGIN_STEPS, LoopState,
                              ProjectedAdam, ProjectedLBFGS, _stalled, optimize)

TARGET = torch.tensor([-0.5, 0.2, 0.7, 1.8, 0.4, 3.0]).view(1, 1, 2, 3)  # some outside [0, 1]
CURVATURE = torch.tensor([1.0, 10.0, 100.0, 3.0, 30.0, 0.3]).view(1, 1, 2, 3)  # ill-conditioned


def quadratic(image):
    """A box-constrained quadratic whose minimiser in [0, 1] is TARGET clipped."""
    loss = (CURVATURE * (image - TARGET) ** 2).sum()
    return loss, {"quadratic": loss}


def picture_to_target_margin_to_white(canvas):
    """``quadratic`` on the picture inside a margin of 1 px, which is drawn to white."""
    margin_loss = (canvas - 1).square().sum() - (canvas[..., 1:-1, 1:-1] - 1).square().sum()
    loss = quadratic(canvas[..., 1:-1, 1:-1])[0] + margin_loss
    return loss, {"quadratic": loss}


@pytest.mark.parametrize("optimizer, steps", [(ProjectedLBFGS(lr=1.0), 40), (None, 600)])
def test_projected_optimizers_reach_the_clipped_minimum(optimizer, steps):
    image = torch.full((1, 1, 2, 3), 0.5, requires_grad=True)
    optimizer = optimizer or ProjectedAdam(image, lr=0.02)
    for _ in range(steps):
        loss, _ = quadratic(image)
        (grad,) = torch.autograd.grad(loss, image)
        optimizer.step(image, grad)
        assert image.min() >= 0 and image.max() <= 1  # never leaves the valid range
    assert torch.allclose(image.detach(), TARGET.clamp(0, 1), atol=1e-3)


def test_lbfgs_converges_fast_with_pixels_held_at_the_bounds():
    # Three of the six coordinates end on a bound; plain L-BFGS + clamping stalls well short here.
    image = torch.full((1, 1, 2, 3), 0.5, requires_grad=True)
    lbfgs = ProjectedLBFGS(lr=1.0)
    for _ in range(12):
        loss, _ = quadratic(image)
        lbfgs.step(image, torch.autograd.grad(loss, image)[0])
    clipped_minimum = quadratic(TARGET.clamp(0, 1))[0].item()
    assert quadratic(image)[0].item() - clipped_minimum < 1e-3


def test_loop_records_history_and_returns_best():
    state = LoopState(total=30)
    events = []
    best = optimize(torch.full((1, 1, 2, 3), 0.5), quadratic, optimizer="lbfgs", lr=1.0, iterations=30,
                    tolerance=0, state=state, callback=events.append)
    assert state.stop_reason == "iterations" and state.step == 30 and len(state.history) == 30
    assert [e.step for e in events] == list(range(1, 31)) and events[-1].total == 30
    assert events[0].losses == {"quadratic": pytest.approx(events[0].loss)}
    assert state.history[-1]["loss"] == pytest.approx(quadratic(TARGET.clamp(0, 1))[0].item(), abs=1e-4)
    assert quadratic(best)[0].item() == pytest.approx(min(row["loss"] for row in state.history))


def test_the_best_step_is_the_one_whose_picture_is_returned():
    # Adam at a large rate overshoots: its loss rises and falls, and the best is not the last step's.
    state, events = LoopState(total=12), []
    best = optimize(torch.full((1, 1, 2, 3), 0.5), quadratic, optimizer="adam", lr=0.6, iterations=12,
                    tolerance=0, state=state, callback=events.append)
    losses = [row["loss"] for row in state.history]
    assert losses.index(min(losses)) + 1 == state.best_step < 12
    assert torch.equal(best[0], events[state.best_step - 1].image)


def test_a_resumed_start_is_scored_for_its_first_move_not_counted_as_a_step():
    start, scored = torch.full((1, 1, 2, 3), 0.5), []

    def counted(image):
        scored.append(image.detach().clone())
        return quadratic(image)

    state = LoopState(total=5, step=3)  # a run stopped after 3 steps, whose last picture is ``start``
    events = []
    optimize(start, counted, optimizer="lbfgs", lr=1.0, iterations=2, tolerance=0, state=state,
             callback=events.append, resumed=True)
    assert len(scored) == 3 and torch.equal(scored[0], start)  # the start, then the pictures of steps 4 and 5
    assert [e.step for e in events] == [4, 5] and [row["step"] for row in state.history] == [4, 5]
    assert not torch.equal(events[0].image[None], start)  # step 4 shows a moved picture, not the start again
    assert events[0].loss < quadratic(start)[0].item()
    assert state.best_step == 5


def test_the_margin_is_painted_and_cropped_off():
    canvases = []

    def on_canvas(canvas):  # the picture to TARGET, the margin of 1 px to white
        canvases.append(canvas.detach().clone())
        return picture_to_target_margin_to_white(canvas)

    events = []
    start = torch.full((1, 1, 2, 3), 0.5)
    start[..., 0, 0] = 0.0
    best = optimize(start, on_canvas, optimizer="lbfgs", lr=1.0, iterations=30, tolerance=0,
                    state=LoopState(total=30), callback=events.append, margin=1)
    assert canvases[0].shape == (1, 1, 4, 5)  # the picture mirrored into the margin at first
    assert torch.equal(canvases[0][0, 0, 1], torch.tensor([0.5, 0.0, 0.5, 0.5, 0.5]))
    assert canvases[-1][0, 0, 0].min() > 0.99  # the margin was painted
    assert best.shape == (1, 1, 2, 3) and torch.allclose(best, TARGET.clamp(0, 1), atol=1e-3)
    assert all(e.image.shape == (1, 2, 3) for e in events)


def test_a_resumed_start_that_stays_the_best_is_its_own_step():
    # The start is the minimum already: no step betters it, and it is the picture of the stopped run's step 3
    state = LoopState(total=5, step=3)
    optimize(TARGET.clamp(0, 1), quadratic, optimizer="lbfgs", lr=1.0, iterations=2, tolerance=0, state=state,
             resumed=True)
    assert state.best_step == 3


def test_a_resumed_picture_moves_first_by_resume_first_step_after_its_margin():
    # The margin's steps leave the picture as it stopped; then L-BFGS starts afresh on the picture, whose first
    # step is RESUME_FIRST_STEP, not the 0.5 the margin's curvature pairs would scale it to
    start, events = torch.full((1, 1, 2, 3), 0.5), []
    state = LoopState(total=20, step=5)
    optimize(start, picture_to_target_margin_to_white, optimizer="lbfgs", lr=1.0,
             iterations=RESUME_MARGIN_STEPS + 1, tolerance=0, state=state, callback=events.append, margin=1,
             resumed=True)
    assert [e.step for e in events] == list(range(6, 7 + RESUME_MARGIN_STEPS))
    assert all(torch.equal(e.image, start[0]) for e in events[:-1])  # steps 6 to 15: the margin's
    assert (events[-1].image - start[0]).abs().max().item() == pytest.approx(RESUME_FIRST_STEP, rel=1e-4)  # float32


def test_a_run_that_diverges_part_way_stops_and_keeps_its_best_finite_picture():
    calls = []

    def diverging(image):  # NaN from its fourth evaluation on
        calls.append(None)
        loss = ((image - 0.8) ** 2).sum() * (math.nan if len(calls) >= 4 else 1.0)
        return loss, {"quadratic": loss}

    state, events = LoopState(total=10), []
    best = optimize(torch.full((1, 1, 2, 3), 0.5), diverging, optimizer="lbfgs", lr=1.0, iterations=10, tolerance=0,
                    state=state, callback=events.append)
    assert (state.stop_reason, state.step, len(state.history), state.best_step) == ("diverged", 3, 3, 3)
    assert torch.equal(best[0], events[-1].image) and best.isfinite().all()


def test_a_progress_events_repr_leaves_its_image_out():
    events = []
    optimize(torch.full((1, 1, 2, 3), 0.5), quadratic, optimizer="lbfgs", lr=1.0, iterations=1, tolerance=0,
             state=LoopState(total=1), callback=events.append)
    assert repr(events[0]).startswith("ProgressEvent(step=1, total=1,") and "tensor" not in repr(events[0])


def test_callback_can_stop_the_run():
    state = LoopState(total=50)
    optimize(torch.full((1, 1, 2, 3), 0.5), quadratic, optimizer="adam", lr=0.01, iterations=50,
             tolerance=0, state=state, callback=lambda event: event.step == 7)
    assert state.stop_reason == "cancelled" and state.step == 7


def test_only_a_true_bool_from_the_callback_stops_the_run():
    for answer, steps in ((True, 1), (np.True_, 1), (torch.tensor(True), 1), (torch.tensor([True]), 1),
                          (torch.tensor(False), 5), (torch.tensor([True, True]), 5), (torch.tensor(1.0), 5),
                          (1, 5), ("yes", 5), (None, 5), (False, 5)):
        state = LoopState(total=5)
        optimize(torch.full((1, 1, 2, 3), 0.5), quadratic, optimizer="lbfgs", lr=1.0, iterations=5,
                 tolerance=0, state=state, callback=lambda event: answer)
        assert state.step == steps, answer


def test_a_grey_image_stays_grey_and_reaches_the_best_grey_image():
    targets = torch.tensor([0.1, 0.5, 0.6]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    weights = torch.tensor([1.0, 2.0, 7.0]).view(1, 3, 1, 1)

    def coloured_target(image):
        loss = (weights * (image - targets) ** 2).sum()
        return loss, {"quadratic": loss}

    state = LoopState(total=40)
    best = optimize(torch.full((1, 3, 2, 2), 0.2), coloured_target, optimizer="lbfgs", lr=1.0, iterations=40,
                    tolerance=0, state=state, grey=True)
    assert torch.equal(best[:, 0], best[:, 1]) and torch.equal(best[:, 0], best[:, 2])
    assert best[0, 0] == pytest.approx(torch.full((2, 2), (0.1 + 1.0 + 4.2) / 10), abs=1e-4)  # weighted mean


def test_tolerance_stops_a_stalled_run():
    state = LoopState(total=200)
    optimize(torch.full((1, 1, 2, 3), 0.5), quadratic, optimizer="lbfgs", lr=1.0, iterations=200,
             tolerance=1e-3, state=state)
    assert state.stop_reason == "tolerance" and 10 < state.step < 200
    for iterations, reason in ((12, "tolerance"), (11, "iterations")):  # the test can judge from step 11 on
        state = LoopState(total=iterations)
        optimize(torch.full((1, 1, 2, 3), 0.5), quadratic, optimizer="lbfgs", lr=1.0, iterations=iterations,
                 tolerance=1e9, state=state)  # stalled as soon as it can be
        assert (state.stop_reason, state.step, state.total) == (reason, 11, 11)  # all its steps: not a stop


def test_stalled_averages_over_the_window():
    falling = [100.0 * 0.99**k for k in range(12)]  # 1 % per step
    assert not _stalled(falling, 5e-3) and _stalled(falling, 2e-2)
    # Over exactly TOLERANCE_WINDOW steps: (1 - 0.99^10) / 10 = 9.56e-3 a step (over 11 it would be 8.65e-3)
    assert not _stalled(falling, 9.5e-3) and _stalled(falling, 9.7e-3)
    assert not _stalled(falling[:10], 1.0)  # too few steps to judge
    assert not _stalled(falling, 0)  # 0 disables the test
    assert _stalled([0.0] * 11, 1e-4)  # a loss of zero cannot fall further


def test_lbfgs_stays_put_where_the_gradient_is_zero():
    image = torch.full((1, 1, 2, 2), 0.5)
    lbfgs = ProjectedLBFGS(lr=1.0)
    for _ in range(3):
        lbfgs.step(image, torch.zeros_like(image))
    assert torch.equal(image, torch.full((1, 1, 2, 2), 0.5))


def test_lbfgs_caps_the_change_of_a_pixel_per_step():
    # A flat quadratic whose Newton step would jump far: the cap bounds every step, yet it arrives.
    image = torch.zeros(1, 1, 2, 2, requires_grad=True)
    lbfgs = ProjectedLBFGS(lr=1.0, max_change=0.1)
    for _ in range(30):
        before = image.detach().clone()
        loss = (1e-3 * (image - 0.9) ** 2).sum()
        lbfgs.step(image, torch.autograd.grad(loss, image)[0])
        assert (image.detach() - before).abs().max() <= 0.1 + 1e-6
    assert torch.allclose(image.detach(), torch.full((1, 1, 2, 2), 0.9), atol=1e-3)


def test_lbfgs_caps_a_step_at_half_a_grey_range_by_default():
    # The flat quadratic of the test above, the cap left at its default: the Newton step (0.85) is cut to 0.5
    image = torch.zeros(1, 1, 2, 2, requires_grad=True)
    lbfgs, changes = ProjectedLBFGS(), []
    for _ in range(4):
        before = image.detach().clone()
        loss = (1e-3 * (image - 0.9) ** 2).sum()
        lbfgs.step(image, torch.autograd.grad(loss, image)[0])
        changes.append((image.detach() - before).abs().max().item())
    assert changes == pytest.approx([FIRST_STEP, 0.5, 0.35, 0.0], abs=1e-6)


def test_lbfgs_keeps_lbfgs_history_pairs():
    # Small capped steps on a quadratic: every step gives a pair, and only the last LBFGS_HISTORY are kept
    image = torch.zeros(1, 1, 4, 4, requires_grad=True)
    lbfgs = ProjectedLBFGS(max_change=0.01)
    for _ in range(30):
        loss = ((image - 0.9) ** 2 * torch.arange(1.0, 17.0).view_as(image)).sum()
        lbfgs.step(image, torch.autograd.grad(loss, image)[0])
    assert len(lbfgs.pairs) == LBFGS_HISTORY


@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e2])
def test_lbfgs_converges_alike_whatever_the_scale_of_the_loss(scale):
    # Its first inverse Hessian is scaled by sᵀy / yᵀy: unscaled, a loss 100 times smaller takes steps 100
    # times too short, and 8 steps leave it 0.02 off
    target = torch.tensor([0.3, 0.4, 0.6, 0.7]).view(1, 1, 2, 2)
    curvature = torch.tensor([1.0, 4.0, 2.0, 8.0]).view(1, 1, 2, 2)
    image = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
    lbfgs = ProjectedLBFGS()
    for _ in range(8):
        loss = scale * (curvature * (image - target) ** 2).sum()
        lbfgs.step(image, torch.autograd.grad(loss, image)[0])
    assert (image.detach() - target).abs().max() < 1e-4


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
@pytest.mark.parametrize("lr", [1.0, 0.5])
def test_lbfgs_first_step_moves_the_steepest_free_pixel_by_lr_times_first_step_whatever_the_scale(scale, lr):
    # A picture's gradient sums to 10^7 and more: a first step of 1/‖g‖₁ (torch's) would move nothing.
    image = torch.full((1, 3, 8, 8), 0.5)
    image[0, 0, 0, 0] = 0.0  # held at 0 by the steepest gradient of all, which points outwards
    grad = scale * torch.linspace(-1.0, 2.0, image.numel()).view_as(image)
    grad[0, 0, 0, 0] = 5 * scale
    ProjectedLBFGS(lr=lr).step(image, grad)
    moved = (image - 0.5).flatten()[1:]  # the free pixels
    assert image[0, 0, 0, 0] == 0.0  # the held pixel stays, and its gradient does not set the step
    assert moved.abs().max() == pytest.approx(lr * FIRST_STEP) and moved[-1] == pytest.approx(-lr * FIRST_STEP)
    assert torch.allclose(moved, -lr * FIRST_STEP * grad.flatten()[1:] / (2 * scale), atol=1e-7)


@pytest.mark.parametrize("first_step", [FIRST_STEP, RESUME_FIRST_STEP])
def test_lbfgs_first_step_is_set_per_optimizer(first_step):
    # A resumed picture is near a minimum: its first step is RESUME_FIRST_STEP, not FIRST_STEP
    image, grad = torch.full((1, 3, 4, 4), 0.5), torch.linspace(-1.0, 1.0, 48).view(1, 3, 4, 4)
    ProjectedLBFGS(first_step=first_step).step(image, grad)
    assert (image - 0.5).abs().max() == pytest.approx(first_step, rel=1e-5)
