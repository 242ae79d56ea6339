"""End to end through the public API, on real weights and real images at tiny sizes."""

import gc
import io
import re
import shutil
import traceback

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto import api
from impasto.api import check_edges, initial_image, load_extractor, pixels_per_step
from impasto.color import match_color
from impasto.device import resolve_device
from impasto.errors import Interrupted
from impasto.imageio import long_edge_shape, read_metadata, resize, resize_to_long_edge
from impasto.memory import GB
from impasto.postprocess import denoise, despeckle, lone_pixels

from helpers import GLIBC, ON_GLIBC, TWO_SIZES, bytes_mapped_for_a_new_block, fail_at_the_second_size, memory_needs

FAST = dict(max_size=64, iterations=40, tolerance=0.0)


def _style_total(row: dict) -> float:
    return sum(v for k, v in row.items() if k.startswith("style/"))


@pytest.fixture(scope="module")
def painted(images):
    events = []
    config = impasto.Config(max_size=96, iterations=60, tolerance=0.0)
    result = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg", config,
                             callback=events.append)
    return result, events


def test_style_loss_falls_tenfold(painted):
    result, _ = painted
    assert result.steps == 60 and result.stop_reason == "iterations"
    assert _style_total(result.history[-1]) < _style_total(result.history[0]) / 10
    assert result.history[0]["content/relu4_2"] > 0.0  # palette start: the photo recoloured, not the photo
    assert set(result.history[0]) == {"step", "scale", "loss", "content/relu4_2", *(
        f"style/{layer}" for layer in impasto.Config().style_layers), *(["tv"] if impasto.Config().tv_weight else [])}


def test_result_image_and_file(painted, tmp_path):
    result, _ = painted
    assert result.image.shape == (3, 72, 96)  # golden_gate is 979×734, long edge scaled to 96
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    path = result.save(tmp_path / "out.png")
    with Image.open(path) as saved:
        assert saved.format == "PNG" and saved.size == (96, 72)
    meta = read_metadata(path)
    assert meta["config"] == result.config.to_dict() and meta["impasto"] == impasto.__version__
    assert len(meta["inputs"]["content"]) == 64 and len(meta["inputs"]["style"]) == 1
    assert result.timings["total"] >= result.timings["optimize"] > 0


def test_a_result_is_not_saved_over_a_file_its_run_read(images, tmp_path):
    photo, mask = tmp_path / "photo.jpg", tmp_path / "mask.png"
    shutil.copy(images / "content/golden_gate.jpg", photo)
    Image.new("L", (979, 734), 255).save(mask)
    result = impasto.stylize(photo, images / "style/starry_night.jpg", impasto.Config(max_size=32, iterations=1,
                                                                                         masks=(str(mask),)))
    before = photo.read_bytes()
    for path, what in ((photo, "content image"), (tmp_path / ".." / tmp_path.name / "photo.jpg", "content image"),
                       (mask, "mask 1"), (images / "style/starry_night.jpg", "style image 1")):
        with pytest.raises(impasto.ImageError, match=f"^{re.escape(str(path))}: would overwrite the run's {what}; "):
            result.save(path)
    assert photo.read_bytes() == before
    assert read_metadata(result.save(tmp_path / "painted.jpg"))["steps"] == 1  # beside it: saved


def test_saved_file_scores_what_the_optimiser_reached(painted, tmp_path):
    # The 8-bit file is what users keep: the optimiser's pixels stay in range, so saving only rounds.
    result, _ = painted
    path = result.save(tmp_path / "out.png")
    saved = impasto.read_image(path)
    assert torch.abs(saved - result.image).max() <= 0.5 / 255 + 1e-6


def test_objective_for_scores_pictures_as_the_run_did(painted, images):
    photo_path, painting_path = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    # The picture itself is scored, not the canvas the run painted: with no margin, as the run did.
    assert painted[0].config.margin == 8 and painted[0].image.shape == (3, 72, 96)
    result = impasto.stylize(photo_path, painting_path, painted[0].config.replace(margin=0, iterations=20))
    objective = impasto.objective_for(photo_path, painting_path, painted[0].config)
    assert objective.image_shape == (72, 96) and objective.margin == 0
    best = min(result.history, key=lambda row: row["loss"])  # the run returns its best image
    terms = objective.score(result.image)
    assert terms.keys() == best.keys() - {"step", "scale", "loss"}
    for name, value in terms.items():
        assert value == pytest.approx(best[name], rel=1e-4), name
    photo = objective.score(impasto.read_image(photo_path))  # resized to the objective's 72×96
    # Not 0 on a bfloat16 CPU: the image's features are rounded, the photo's target is not.
    assert photo["content/relu4_2"] < 1e-3 * terms["content/relu4_2"]
    assert _style_total(photo) > 10 * _style_total(terms)
    assert impasto.objective_for(photo_path, painting_path, result.config, size=np.int64(48)).image_shape == (36, 48)
    with pytest.raises(impasto.ImageError, match=r"objective: expected an image of shape \(1, 3, 72, 96\), got "
                                                 r"\(3, 72, 96\) \(score\(\) takes any picture\)"):
        objective(result.image)  # broadcast, it used to give a wrong loss
    assert objective.score(result.image.double()) == terms  # any float dtype is scored in float32
    # Anything read_image takes: a file, 8-bit pixels (255 is white).
    eight_bit = objective.score((result.image * 255).round().to(torch.uint8))
    assert eight_bit == pytest.approx(terms, rel=0.02) and objective.score(photo_path) == photo


def test_a_results_losses_are_those_of_its_picture_not_of_the_last_step(images, tmp_path):
    # Adam at a large rate overshoots: the picture kept is an earlier step's, and the losses reported are its.
    photo, painting = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(max_size=48, iterations=8, optimizer="adam", learning_rate=0.5, margin=0,
                            despeckle=0, tolerance=0.0)
    result = impasto.stylize(photo, painting, config)
    best = min(result.history, key=lambda row: row["loss"])
    assert best["step"] < result.steps == 8 and result.image_step == best["step"] and result.losses == best
    assert repr(result).endswith(f", loss {best['loss']:.4g}>")
    meta = read_metadata(result.save(tmp_path / "out.png"))
    assert meta["image_step"] == best["step"] and meta["final_losses"] == best
    assert sum(impasto.objective_for(photo, painting, config).score(result.image).values()) == pytest.approx(
        best["loss"], rel=1e-4)


def test_a_result_made_by_hand_records_its_last_step_as_its_pictures():
    rows = [{"step": 1, "scale": 0, "loss": 2.0}, {"step": 2, "scale": 0, "loss": 3.0}]
    result = impasto.Result(torch.zeros(3, 2, 2), impasto.Config(), rows, {}, "iterations")  # image_step None
    meta = result.metadata()
    assert (meta["image_step"], meta["final_losses"], meta["steps"]) == (2, rows[1], 2)


def test_objective_for_a_grey_run_scores_the_saved_colour_picture_as_the_run_saw_it(images):
    photo_path, painting_path = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(max_size=48, iterations=10, preserve_color="luminance", margin=0)  # the picture's loss
    result = impasto.stylize(photo_path, painting_path, config)
    best = min(result.history, key=lambda row: row["loss"])
    terms = impasto.objective_for(photo_path, painting_path, config).score(result.image)  # in colour
    # Not exact: putting the photo's colour back clips what leaves the RGB cube, and the result is
    # rounded to 8 bits. Scored in colour as the run's loss, the relu4_1 term would be 14 times the
    # run's; had the run let its channels drift apart (it used to, by up to 0.1), 8 % more in all.
    assert terms["content/relu4_2"] == pytest.approx(best["content/relu4_2"], rel=0.01)
    assert sum(terms.values()) == pytest.approx(best["loss"], rel=0.01)


def test_progress_events(painted):
    result, events = painted
    assert [e.step for e in events] == list(range(1, 61)) and events[-1].total == 60
    assert events[-1].loss == pytest.approx(result.history[-1]["loss"])
    assert events[0].image.shape == (3, 72, 96) and events[-1].elapsed > events[0].elapsed


def test_the_time_left_weighs_each_step_by_the_pixels_it_computes(images):
    events = []
    config = impasto.Config(max_size=64, min_size=32, coarse_iterations=4, iterations=4, tolerance=0.0,
                            refine_style_layers=())  # the whole network at every size
    assert config.sizes() == [32, 64]
    impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg", config,
                    callback=events.append)
    # A step at 32 px is one unit of work; at 64 px four, and one more for the composition term at 32 px.
    # The pace is that of the steps after the first, whose time holds the setup too.
    done = [1, 2, 3, 4, 9, 14, 19, 24]
    assert events[0].seconds_left is None and events[-1].seconds_left == 0
    for event, made in zip(events[1:], done[1:], strict=True):
        assert event.seconds_left == pytest.approx((event.elapsed - events[0].elapsed) / (made - 1) * (24 - made))
    pace = (events[3].elapsed - events[0].elapsed) / 3  # at the first size's end: 20 units left
    assert events[3].seconds_left == pytest.approx(20 * pace)
    assert events[0].pace is None and events[3].pace == pytest.approx(pace / (32 * 24))  # per pixel of a step
    alone = []  # without the composition term a 64 px step is four units
    impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                    config.replace(composition_weight=0.0), callback=alone.append)
    assert alone[3].seconds_left == pytest.approx(16 * (alone[3].elapsed - alone[0].elapsed) / 3)
    assert alone[0].seconds_left is None


def test_a_step_after_the_first_size_counts_the_work_of_its_shorter_network():
    config = impasto.Config(max_size=1024)  # 512 px, then 1024 px without relu5_1: the network ends at relu4_2
    # Multiply-adds per pixel: to relu5_1, 361 152; the last three convolutions, at 1/64 and 1/256 of
    # the positions, are 2 × 36 864 + 9216 of them.
    assert pixels_per_step(config, 734, 979) == [512 * 384, round(1024 * 768 * (361152 - 82944) / 361152) + 512 * 384]
    assert pixels_per_step(config.replace(refine_style_layers=()), 734, 979) == [512 * 384, 1024 * 768 + 512 * 384]


def test_same_seed_same_image(images):
    config = impasto.Config(init="noise", seed=7, iterations=5, max_size=48, tolerance=0.0)
    content, style = images / "content/golden_gate.jpg", images / "style/the_scream.jpg"
    first = impasto.stylize(content, style, config).image
    assert torch.equal(first, impasto.stylize(content, style, config).image)
    assert not torch.equal(first, impasto.stylize(content, style, config.replace(seed=8)).image)


def test_in_memory_inputs_and_blend(images):
    photo = np.asarray(Image.open(images / "content/hoovertowernight.jpg").convert("RGB"))
    painting = Image.open(images / "style/the_scream.jpg")
    result = impasto.stylize(photo, [painting, images / "style/starry_night.jpg"],
                             impasto.Config(style_blend=(0.7, 0.3), **FAST).replace(iterations=3))
    assert result.image.shape == (3, 34, 64) and result.steps == 3


def test_paintings_may_come_in_any_iterable_and_results_compare_as_objects(images):
    photo, paintings = images / "content/golden_gate.jpg", [images / "style/the_scream.jpg", images / "style/starry_night.jpg"]
    config = impasto.Config(**FAST).replace(iterations=2)
    listed = impasto.stylize(photo, paintings, config)
    generated = impasto.stylize(photo, (p for p in paintings), config)
    assert torch.equal(listed.image, generated.image) and generated.inputs == listed.inputs
    assert listed == listed and listed != generated and listed in [generated, listed]  # not == on their images


def test_a_blend_weight_of_zero_leaves_a_painting_out_entirely(images):
    # the Gram targets and the palette start alike: (0, 1) is the second painting alone, bit for bit
    photo, first, second = (images / p for p in ("content/golden_gate.jpg", "style/starry_night.jpg",
                                                  "style/the_scream.jpg"))
    config = impasto.Config(max_size=48, iterations=4)
    blended = impasto.stylize(photo, [first, second], config.replace(style_blend=(0.0, 1.0)))
    assert torch.equal(blended.image, impasto.stylize(photo, second, config).image)


@pytest.mark.parametrize("no_style", [{"strength": 0}, {"style_weight": 0}])
def test_strength_or_style_weight_zero_gives_the_photo_back(images, no_style):
    # With no style to paint the start is the photo, not recoloured (1.5e-4 away after 20 steps for style_weight 0)
    photo = images / "content/golden_gate.jpg"
    result = impasto.stylize(photo, images / "style/starry_night.jpg", impasto.Config(max_size=48, iterations=20,
                                                                                    **no_style))
    resized = resize_to_long_edge(impasto.read_image(photo), 48)
    assert (result.image - resized).abs().mean() < 2e-3  # the palette start would be ~0.1 away


def test_cancel_keeps_the_best_image(images):
    result = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                             impasto.Config(**FAST), callback=lambda event: event.step >= 4)
    assert result.stop_reason == "cancelled" and result.steps == 4


class _Oops(Exception):
    pass


@pytest.mark.parametrize("error", [_Oops, KeyboardInterrupt])
def test_an_error_in_a_step_is_raised_with_the_best_image_so_far(images, error, tmp_path):
    # A callback's bug, or a notebook's stop button (KeyboardInterrupt), must not lose the picture.
    photo, art = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(**TWO_SIZES)

    def fails_at_step_15(event):
        if event.step == 15:  # the third step at the second size
            raise error("at step 15")

    with pytest.raises(error, match="at step 15") as raised:
        impasto.stylize(photo, art, config, callback=fails_at_step_15)
    stopped = raised.value.result
    assert stopped.stop_reason == "cancelled" and stopped.steps == 15 and stopped.image.shape == (3, 48, 64)
    assert stopped.stopped_at == {"size_index": 1, "size": 64, "steps_at_size": 3}
    resumed = impasto.stylize(photo, art, config, resume=stopped.save(tmp_path / "stopped.png"))
    assert resumed.steps == 24 and resumed.history[0]["step"] == 16


def _tensor_bytes() -> int:
    gc.collect()
    return sum(o.nbytes for o in gc.get_objects() if issubclass(type(o), torch.Tensor))  # type(): no proxy's warning


def test_an_exception_kept_after_a_stop_keeps_none_of_the_runs_tensors(images):
    # A notebook keeps the last exception. Its traceback's frames, and a stopped_here held by the callback's
    # event, kept the run's features, targets and L-BFGS's pairs: 20 MB more at 96 px, 50 MB at 512 px.
    args = (images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
            impasto.Config(max_size=96, iterations=5))
    impasto.stylize(*args)  # the weights, and whatever a finished run leaves cached
    before = _tensor_bytes()

    def fails_at_step_2(event):
        if event.step == 2:
            raise _Oops("at step 2")

    with pytest.raises(_Oops) as raised:
        impasto.stylize(*args, callback=fails_at_step_2)
    picture = raised.value.result.image
    assert _tensor_bytes() - before <= 2 * picture.nbytes  # that picture, and the event's copy in the callback
    assert "fails_at_step_2" in "".join(traceback.format_exception(raised.value))  # the lines are all there


def test_the_command_lines_abort_goes_straight_through(images):
    # Its second Ctrl-C (Interrupted) aborts at once: nothing is finished or kept.
    def abort_at_step_2(event):
        if event.step == 2:
            raise Interrupted(130)

    with pytest.raises(Interrupted) as raised:
        impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                        impasto.Config(max_size=32, iterations=5), callback=abort_at_step_2)
    assert not hasattr(raised.value, "result")


def test_a_failure_between_sizes_keeps_the_last_sizes_picture(images, monkeypatch, tmp_path):
    # The machine failing while the second size's targets are built: the first size's picture is kept,
    # to resume at the second.
    fail_at_the_second_size(monkeypatch)
    photo, art, config = images / "content/golden_gate.jpg", images / "style/starry_night.jpg", impasto.Config(**TWO_SIZES)
    with pytest.raises(MemoryError) as raised:
        impasto.stylize(photo, art, config)
    stopped = raised.value.result
    assert stopped.steps == 12 and stopped.stopped_at == {"size_index": 1, "size": 64, "steps_at_size": 0}
    monkeypatch.undo()
    resumed = impasto.stylize(photo, art, config, resume=stopped.save(tmp_path / "stopped.png"))
    assert resumed.history[0]["step"] == 13 and resumed.steps == 24 and resumed.history[0]["scale"] == 1


def test_a_loss_that_is_never_finite_is_an_error_not_a_picture(images):
    with pytest.raises(impasto.ConfigError, match=r"golden_gate\.jpg: the loss is not finite \(NaN or infinity\) "
                       "from the first step; nothing was painted"):
        impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                        impasto.Config(max_size=32, iterations=3, style_weight=1e38))


def test_progress_images_are_copies_a_callback_may_keep(images):
    frames = []
    impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                    impasto.Config(max_size=32, iterations=3), callback=lambda event: frames.append(event.image))
    assert len(frames) == 3 and not torch.equal(frames[0], frames[2])


def test_a_caller_without_gradients_still_gets_a_painting(images):
    # A service may run under torch.no_grad() or inference mode; the run turns gradients on for itself.
    photo, painting = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(max_size=32, iterations=3)
    load_extractor.cache_clear()  # the network built under inference mode, and cached for the next runs
    with torch.inference_mode():
        first = impasto.stylize(photo, painting, config)
    expected = impasto.stylize(photo, painting, config)
    assert torch.equal(first.image, expected.image)
    with torch.no_grad():
        assert torch.equal(impasto.stylize(photo, painting, config).image, expected.image)
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        photo_tensor = impasto.read_image(photo)  # an inference tensor, which autograd cannot save
        result = impasto.stylize(photo_tensor, painting, config)
    assert result.steps == 3 and torch.equal(result.image, expected.image)


def test_stylize_leaves_the_global_random_state_alone(images):
    load_extractor.cache_clear()  # building the network must not draw from it either
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    result = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                             impasto.Config(max_size=32, iterations=2, init="noise", seed=5))
    assert torch.equal(torch.rand(3), expected)
    assert repr(result) == f"<Result 32x24 px, 2 steps, iterations, loss {result.history[-1]['loss']:.4g}>"
    with Image.open(io.BytesIO(result._repr_png_())) as shown:  # what a notebook displays
        assert np.array_equal(np.asarray(shown), np.asarray(result.to_pil()))


def test_a_run_removes_the_specks_it_leaves(images):
    photo = torch.full((3, 24, 32), 0.2)
    photo[:, 10, 12] = 1.0  # a white dot, still one after two steps
    config = impasto.Config(max_size=32, iterations=2, despeckle=0)
    kept = impasto.stylize(photo, images / "style/starry_night.jpg", config)
    assert lone_pixels(kept.image, 60).nonzero().tolist() == [[10, 12]]
    removed = impasto.stylize(photo, images / "style/starry_night.jpg", config.replace(despeckle=60))
    assert torch.equal(removed.image, despeckle(kept.image, 60)) and removed.history == kept.history


def test_a_run_asked_to_denoise_smooths_its_result_and_only_that(images):
    # denoise is applied to the finished picture (0.06 away at most here), not to what the steps optimise
    photo, painting = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(max_size=32, iterations=2, despeckle=0)
    plain = impasto.stylize(photo, painting, config)
    smoothed = impasto.stylize(photo, painting, config.replace(denoise=1.0))
    assert torch.equal(smoothed.image, denoise(plain.image, 1.0)) and smoothed.history == plain.history
    assert not torch.equal(smoothed.image, plain.image)


def test_content_weight_scales_the_content_term_alone(images):
    # The first step scores the same start picture: its content term doubles exactly, its style terms stay.
    photo, painting = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(max_size=32, iterations=1, margin=0)
    once, twice = (impasto.stylize(photo, painting, config.replace(content_weight=weight)).history[0]
                   for weight in (1.0, 2.0))
    assert twice["content/relu4_2"] == 2 * once["content/relu4_2"] > 0
    assert all(twice[name] == once[name] for name in once if name.startswith("style/"))


def test_initial_images(images, tmp_path):
    content = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    style = torch.zeros(3, 40, 10)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(initial_image("content", content, [style], generator), content)
    noise = initial_image("noise", content, [style], generator)
    # around mid-grey, spread by 0.25 before clipping to [0, 1] (0.243 after)
    assert noise.shape == (3, 20, 30) and 0.4 < noise.mean() < 0.6 and 0.22 < noise.std() < 0.26
    assert torch.equal(initial_image("style", content, [style], generator), torch.zeros(3, 20, 30))
    white = torch.ones(3, 10, 10)  # with a blend, the painting weighed most
    assert torch.equal(initial_image("style", content, [style, white], generator, blend=(0.2, 0.8)), torch.ones(3, 20, 30))
    # palette: the photo's pixels moved to the painting's colour mean and covariance, the shapes kept.
    painting = torch.stack([torch.rand(40, 10) * 0.2 + 0.6, torch.rand(40, 10) * 0.2 + 0.1,
                            torch.rand(40, 10) * 0.1 + 0.4])
    palette = initial_image("palette", content, [painting], generator)
    torch.testing.assert_close(palette.mean((1, 2)), painting.mean((1, 2)), atol=1e-3, rtol=0)
    assert palette.std((1, 2)).max() < 0.1  # the painting's narrow spread, not the photo's
    assert torch.corrcoef(torch.stack([palette[0].flatten(), content[0].flatten()]))[0, 1] > 0.9
    # with a mask, only the masked (left) half takes the painting's colours
    left = torch.zeros(1, 1, 20, 30)
    left[..., :15] = 1.0
    masked = initial_image("palette", content, [painting], generator, [left])
    torch.testing.assert_close(masked[..., :15], palette[..., :15])
    torch.testing.assert_close(masked[..., 15:], content[..., 15:])
    # masks that overlap share the pixel: two full masks give each painting's recolouring half of it,
    # and none to the photo (its share is clamped at 0, not -1)
    other = torch.stack([torch.rand(40, 10) * 0.1 + 0.1, torch.rand(40, 10) * 0.2 + 0.7,
                         torch.rand(40, 10) * 0.1 + 0.2])
    full = torch.ones(1, 1, 20, 30)
    torch.testing.assert_close(initial_image("palette", content, [painting, other], generator, [full, full]),
                               (match_color(content, painting) + match_color(content, other)) / 2)
    # recolour: that share of the way from the photo's colours (a weaker style's start), none at 0
    torch.testing.assert_close(initial_image("palette", content, [painting], generator, recolour=0.25),
                               0.75 * content + 0.25 * palette)
    assert torch.equal(initial_image("palette", content, [painting], generator, recolour=0.0), content)
    impasto.save_image(torch.ones(3, 4, 6), tmp_path / "white.png")
    torch.testing.assert_close(initial_image(str(tmp_path / "white.png"), content, [style], generator),
                               torch.ones(3, 20, 30))
    thin = torch.rand(3, 345, 1000)  # at a 48 px long edge: 48×17, a 2.5 % rounding of the shape
    impasto.save_image(thin, tmp_path / "thin.png")
    assert initial_image(str(tmp_path / "thin.png"), resize_to_long_edge(thin, 48), [style], generator).shape == (3, 17, 48)
    impasto.save_image(torch.ones(3, 6, 4), tmp_path / "portrait.png")  # not stretched to fit: refused
    with pytest.raises(impasto.ImageError, match="portrait.png: a start image must have the photo's proportions; "
                                                 r"it is 4x6 \(0.67:1\), the photo 1.50:1 \(30x20 at this size\)"):
        initial_image(str(tmp_path / "portrait.png"), content, [style], generator)


@pytest.mark.parametrize("problem", ["missing", "not an image", "truncated"])
def test_bad_inputs_raise_clear_errors(images, tmp_path, problem):
    path = tmp_path / "photo.jpg"
    if problem == "not an image":
        path.write_text("hello")
    elif problem == "truncated":
        path.write_bytes((images / "content/golden_gate.jpg").read_bytes()[:5000])
    with pytest.raises(impasto.ImageError) as info:
        impasto.stylize(path, images / "style/starry_night.jpg", impasto.Config(**FAST))
    assert "photo.jpg" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("photo, painting, changes, message", [
    ("content/golden_gate.jpg", "style/starry_night.jpg", {"max_size": 16},
     r"golden_gate.jpg: 16×12 at 16 px is too narrow \(VGG-19's relu5_1 needs a short edge of at least 16 px"),
    (np.full((20, 2000, 3), 0.5), "style/starry_night.jpg", {}, r"content image: 64×1 at 64 px is too narrow"),
    ("content/golden_gate.jpg", np.full((20, 2000, 3), 0.5), {},
     r"style image 1: seen at 554×6 for a 64 px picture, too narrow"),
    ("content/golden_gate.jpg", "style/starry_night.jpg", {"style_scale": 0.1},
     r"starry_night.jpg: seen at 7×4 for a 64 px picture, too narrow .* raise max_size or style_scale"),
    # coarse-to-fine: a size below max_size is checked too, before any step
    ("content/golden_gate.jpg", "style/starry_night.jpg", {"min_size": 16, "scales": 2, "coarse_iterations": 1},
     r"golden_gate.jpg: 16×12 at 16 px is too narrow"),
])
def test_images_too_narrow_for_the_network_are_refused(images, photo, painting, changes, message):
    photo = images / photo if isinstance(photo, str) else photo
    painting = images / painting if isinstance(painting, str) else painting
    steps = []
    with pytest.raises(impasto.ImageError, match=message):
        impasto.stylize(photo, painting, impasto.Config(**{**FAST, **changes}), callback=steps.append)
    assert steps == []


def test_shallow_layers_allow_smaller_pictures_and_objective_for_checks_its_size(images):
    photo, painting = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    shallow = impasto.Config(max_size=16, iterations=2, content_layer="relu2_2", style_layers=("relu1_1", "relu2_1"),
                             style_layer_weights=(1.0, 1.0))
    assert impasto.stylize(photo, painting, shallow).image.shape == (3, 12, 16)
    with pytest.raises(impasto.ImageError, match=r"8×6 at 8 px is too narrow \(.*: raise size to 21 px or more, or crop the image\)"):
        impasto.objective_for(photo, painting, impasto.Config(**FAST), size=8)


@pytest.mark.parametrize("shape, size", [((3, 400), 2067), ((480, 640), 21), ((100, 15), 104), ((1, 2), 31)])
def test_a_too_narrow_photo_is_told_the_size_that_would_do(shape, size):
    with pytest.raises(impasto.ImageError) as info:
        check_edges(shape, "thin.png", {}, [16], impasto.Config(max_size=16))
    assert str(info.value).endswith(f"raise max_size to {size} px or more, or crop the image)")
    assert min(long_edge_shape(*shape, size)) == 16 > min(long_edge_shape(*shape, size - 1))  # and no smaller
    for largest, advice in ((size, f"raise Size to {size} px or more, or crop the image)"),  # a server's limit
                            (size - 1, f", which it has only at {size} px, more than the {size - 1} px allowed: "
                                       "crop the image)")):
        with pytest.raises(impasto.ImageError) as info:
            check_edges(shape, "thin.png", {}, [16], impasto.Config(max_size=16), "Size", largest)
        assert str(info.value).endswith(advice)


def test_a_painting_too_narrow_at_the_pictures_pixels_is_refused():
    # A 20×16 picture has 320 pixels: a 40×30 painting seen at them is 21×15, below relu5_1's 16 px; 40×32 is not.
    with pytest.raises(impasto.ImageError, match=r"^art.png: seen at 21×15 for a 20 px picture, too narrow"):
        check_edges((16, 20), "p.png", {"art.png": (30, 40)}, [20], impasto.Config(max_size=20))
    check_edges((16, 20), "p.png", {"art.png": (32, 40)}, [20], impasto.Config(max_size=20))


def test_paintings_are_scaled_to_style_scale_squared_times_the_photos_pixels():
    # style_scale scales the painting's edges: its pixels grow with its square, 4 × 36 × 48 here, aspect kept.
    scaled = api._scaled_styles([torch.rand(3, 100, 200)], torch.rand(3, 36, 48), 2.0)
    assert [painting.shape for painting in scaled] == [(3, 59, 118)]  # 6962 ≈ 6912 pixels


def test_no_painting_is_a_clear_error(images):
    with pytest.raises(impasto.ImageError, match="no style image: give at least one painting"):
        impasto.stylize(images / "content/golden_gate.jpg", [], impasto.Config(**FAST))


def test_settings_that_are_not_a_config_are_a_clear_error(images):
    photo, painting = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    for call in (impasto.stylize, impasto.objective_for):
        with pytest.raises(impasto.ConfigError, match="config must be an impasto.Config, not dict"):
            call(photo, painting, {"max_size": 64})
    with pytest.raises(impasto.ConfigError, match="callback must be a function of a ProgressEvent, not int"):
        impasto.stylize(photo, painting, impasto.Config(**FAST), callback=5)
    for size in ("64", 64.5, True):
        with pytest.raises(impasto.ConfigError, match=f"size must be a whole number of pixels, not {size!r}"):
            impasto.objective_for(photo, painting, impasto.Config(**FAST), size=size)


def test_a_loss_of_zero_ends_the_run_with_the_start_image(images):
    # strength 0 from the photo: nothing to do. float32, so the loss is exactly 0 and the gradient too.
    photo = images / "content/golden_gate.jpg"
    config = impasto.Config(max_size=48, iterations=30, init="content", strength=0, precision="float32")
    for optimizer in ("lbfgs", "adam"):
        result = impasto.stylize(photo, images / "style/starry_night.jpg", config.replace(optimizer=optimizer))
        assert result.history[0]["loss"] == 0.0 and result.stop_reason == "tolerance" and result.steps == 11
        torch.testing.assert_close(result.image, resize_to_long_edge(impasto.read_image(photo), 48))


def test_paths_in_the_config_are_saved_as_text(images, tmp_path):
    start = images / "content/golden_gate.jpg"
    result = impasto.stylize(start, images / "style/starry_night.jpg",
                             impasto.Config(max_size=32, iterations=2, init=start))
    saved = read_metadata(result.save(tmp_path / "out.png"))
    assert saved["config"]["init"] == str(start)


def test_unwritable_output(painted, tmp_path):
    result, _ = painted
    with pytest.raises(impasto.ImageError, match="nowhere"):
        result.save(tmp_path / "nowhere" / "out.png")


def test_blend_must_match_styles(images):
    with pytest.raises(impasto.ConfigError, match="style_blend has 2 weights for 1 style image$"):
        impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                        impasto.Config(style_blend=(1.0, 2.0), **FAST))


def test_coarse_to_fine_schedule(images):
    events = []
    config = impasto.Config(max_size=128, min_size=32, coarse_iterations=4, refine_iterations=2, iterations=3,
                            tolerance=0.0)
    assert config.sizes() == [32, 64, 128]
    result = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg", config,
                             callback=events.append)
    assert [(e.scale, tuple(e.image.shape[1:])) for e in events] == (
        [(0, (24, 32))] * 4 + [(1, (48, 64))] * 2 + [(2, (96, 128))] * 3)
    assert events[-1].total == 9 and events[-1].scales == 3 and result.image.shape == (3, 96, 128)
    # From the second size on, the picture shrunk to the first size is scored too; at the first, once.
    assert [sorted({k.split("@")[1] for k in e.losses if "@" in k}) for e in events] == [[]] * 4 + [["32px"]] * 5
    assert all(e.loss == pytest.approx(sum(e.losses.values()), rel=1e-5) for e in events)
    alone = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                            config.replace(composition_weight=0.0))
    assert not any("@" in k for row in alone.history for k in row)
    assert not torch.equal(alone.image, result.image)  # the term moved the pixels (a run repeats exactly here)
    # relu5_1 is scored at the first size only (refine_style_layers), unless every layer is kept everywhere.
    assert ["style/relu5_1" in e.losses for e in events] == [True] * 4 + [False] * 5
    assert all("style/relu5_1@32px" in e.losses for e in events[4:])
    everywhere = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                                 config.replace(refine_style_layers=()))
    assert all("style/relu5_1" in row for row in everywhere.history)
    assert not torch.equal(everywhere.image, result.image)
    # A first size given no steps is skipped: the next one composes the picture, with every layer.
    skipped = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                              config.replace(coarse_iterations=0))
    assert [row["scale"] for row in skipped.history] == [1] * 2 + [2] * 3
    assert [("style/relu5_1" in row, "style/relu5_1@64px" in row) for row in skipped.history] == (
        [(True, False)] * 2 + [(False, True)] * 3)


def test_each_size_after_the_first_starts_from_the_last_sizes_picture(images, monkeypatch):
    # Coarse-to-fine: the 64 px size optimises the 32 px result upsampled, not a fresh start.
    starts, results, optimize = [], [], api.optimize

    def recorded(start, *args, **kwargs):
        starts.append(start.clone())
        results.append(optimize(start, *args, **kwargs))
        return results[-1]

    monkeypatch.setattr(api, "optimize", recorded)
    impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                    impasto.Config(**{**TWO_SIZES, "coarse_iterations": 2, "iterations": 2}))
    assert [start.shape for start in starts] == [(1, 3, 24, 32), (1, 3, 48, 64)]
    assert torch.equal(starts[1][0].cpu(), resize(results[0][0].cpu(), 48, 64))  # kept on the CPU between sizes


def test_a_size_that_stops_early_lowers_the_total(images):
    totals = []
    config = impasto.Config(max_size=96, min_size=32, scales=3, coarse_iterations=15, refine_iterations=15,
                            iterations=15, tolerance=0.5)  # stalls after 11 steps at every size
    result = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg", config,
                             callback=lambda event: totals.append((event.step, event.total)))
    # each size stops after 11 of its 15 steps, and its own last step already counts 4 fewer
    assert result.steps == 33 and [total for step, total in totals if step in (1, 10, 11, 22, 33)] == [45, 45, 41, 37, 33]


def test_cancel_at_a_coarse_size_still_gives_the_full_size(images):
    config = impasto.Config(max_size=128, scales=2, min_size=64, coarse_iterations=5, iterations=5, tolerance=0.0)
    result = impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg", config,
                             callback=lambda event: event.step == 2)
    assert result.stop_reason == "cancelled" and result.steps == 2 and result.image.shape == (3, 96, 128)


def test_less_memory_gives_freed_memory_back_then_checkpoints_and_paints_the_same_picture(images):
    content, style = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(max_size=64, iterations=4, tolerance=0.0, scales=1)
    device = resolve_device(config.device)
    allocator = GLIBC and device.type == "cpu"  # each run on the CPU sets glibc's (memory.manage_freed_memory)
    needs = memory_needs(config, content, style, 48, 64)  # golden_gate at a 64 px long edge
    mapped, after = [], []  # bytes glibc maps for a new block, at each step and after each run

    def probe(event: impasto.ProgressEvent) -> None:
        mapped.append(bytes_mapped_for_a_new_block())

    results = []
    for max_memory in (None, (needs[0] + needs[1]) / 2 / GB, (needs[1] + needs[2]) / 2 / GB):
        results.append(impasto.stylize(content, style, config.replace(max_memory=max_memory),
                                       callback=probe if allocator else None))
        after.append(bytes_mapped_for_a_new_block(33 << 20) if allocator else 0)
    plain, returning, squeezed = results
    returns_freed = ON_GLIBC and device.type == "cpu"  # elsewhere a plain run that does not fit checkpoints
    if allocator:  # freed memory kept for the next step, or given back at once when it would not fit
        assert mapped[:4] == [0] * 4 and min(mapped[4:]) >= 16 << 20
        assert min(after) >= 33 << 20  # and after a run, blocks over 32 MB are mapped, as glibc ends up doing
    assert [r.checkpointed for r in results] == [False, not returns_freed, True]
    assert [r.keeps_freed for r in results] == [True, False, False]
    assert squeezed.metadata()["checkpointed"] and not returning.metadata()["keeps_freed"]
    for result in (returning, squeezed):
        if result.checkpointed:
            torch.testing.assert_close(result.image, plain.image, atol=1e-4, rtol=0)
        else:  # the same computation, in other memory
            assert torch.equal(result.image, plain.image)


def test_a_size_that_cannot_fit_is_refused_before_any_step(images):
    steps = []
    with pytest.raises(impasto.ConfigError, match=r"a 4000×2999 painting needs about .* GB even with checkpointing"):
        impasto.stylize(images / "content/golden_gate.jpg", images / "style/starry_night.jpg",
                        impasto.Config(max_size=4000, max_memory=2.0), callback=steps.append)
    assert steps == []


def test_a_missing_init_or_weights_file_is_an_impasto_error(images, tmp_path):
    photo, art = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    with pytest.raises(impasto.ImageError, match="banana.png: no such file"):
        impasto.stylize(photo, art, impasto.Config(max_size=32, iterations=1, init=str(tmp_path / "banana.png")))
    with pytest.raises(impasto.WeightsError, match="nofile.pth: no such weights file"):
        impasto.stylize(photo, art, impasto.Config(max_size=32, iterations=1, weights=str(tmp_path / "nofile.pth")))
    with pytest.raises(impasto.WeightsError, match=": is a folder, not a weights file"):
        impasto.stylize(photo, art, impasto.Config(max_size=32, iterations=1, weights=str(tmp_path)))
