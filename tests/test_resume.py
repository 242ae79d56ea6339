"""Going on with a stopped run (impasto/resume.py), end to end at tiny sizes."""

import pytest
import torch

import impasto
from impasto.imageio import read_image, read_metadata
from impasto.optimize import RESUME_MARGIN_STEPS
from impasto.resume import differing_input, differing_setting

from helpers import TWO_SIZES


@pytest.fixture(scope="module")
def stopped(images, tmp_path_factory):
    """A two-size run cancelled after step 8 (at the first size), saved as a file."""
    photo, art = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(**TWO_SIZES)
    result = impasto.stylize(photo, art, config, callback=lambda event: event.step == 8)
    path = result.save(tmp_path_factory.mktemp("stopped") / "stopped.png")
    return photo, art, config, result, path


def test_a_stopped_run_records_where_it_stopped(stopped):
    *_, result, path = stopped
    assert result.stop_reason == "cancelled" and result.steps == 8
    assert result.stopped_at == {"size_index": 0, "size": 32, "steps_at_size": 8}
    assert read_metadata(path)["stopped_at"] == result.stopped_at


def test_resume_goes_on_from_the_stopped_picture(stopped):
    photo, art, config, result, path = stopped
    clock: list[float] = []
    resumed = impasto.stylize(photo, art, config, resume=path, callback=lambda event: clock.append(event.elapsed))
    assert [row["step"] for row in resumed.history] == list(range(9, 25))  # 4 more at 32 px, 12 at 64 px
    assert clock[0] > read_metadata(path)["seconds"]  # the clock goes on from the stopped part's time
    assert [row["scale"] for row in resumed.history] == [0] * 4 + [1] * 12
    assert resumed.steps == 24 and resumed.stop_reason == "iterations" and resumed.stopped_at is None
    # It starts from the stopped picture (rounded to 8 bits and back from 64 px), not from the photo again.
    # The margin around it, not saved, is the picture mirrored again: on this 32 px thumbnail's 4 px margin
    # that costs 16 % more loss (0.06 % with no margin), a small part of the way back to the start's.
    best_before = min(row["loss"] for row in result.history)
    assert abs(resumed.history[0]["loss"] - best_before) < 0.1 * (result.history[0]["loss"] - best_before)
    meta = resumed.metadata()
    assert meta["resumed_from"] == {"steps": 8, "seconds": read_metadata(path)["seconds"]}
    # its time is both parts', the stopped run's and this one's
    assert meta["seconds"] == round(meta["resumed_from"]["seconds"] + resumed.timings["total"], 3)
    assert "stopped_at" not in meta


def test_a_resumed_runs_steps_all_move_the_picture(images):
    # The stopped picture's loss is its run's last step: scored again, it only gives the first move. Counted
    # as a step (up to 0.8.0), a run stopped one step short of its end came back from resuming unchanged.
    photo, art = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(max_size=48, iterations=6, tolerance=0.0, margin=0, despeckle=0)
    stopped = impasto.stylize(photo, art, config, callback=lambda event: event.step == 5)
    resumed = impasto.stylize(photo, art, config, resume=stopped)
    assert [row["step"] for row in resumed.history] == [6] and resumed.steps == 6
    assert resumed.history[0]["loss"] < 0.99 * stopped.history[-1]["loss"]  # by RESUME_FIRST_STEP: 1.8 % here
    assert not torch.equal(resumed.image, stopped.image)


def test_a_resumed_run_repaints_its_margin_before_it_moves_the_picture(images, tmp_path):
    # The margin comes back as the picture mirrored, not as it was painted (the loss of the canvas 15 % up,
    # at 256 px). Moved at once, a picture resumed and soon stopped again came out worse than it had stopped
    # (the web page's Resume, then Cancel: 43 grey levels off here); now the first steps move the margin only.
    photo, art = images / "content/golden_gate.jpg", images / "style/woman-with-hat-matisse.jpg"
    config = impasto.Config(max_size=64, iterations=40, tolerance=0.0)
    path = impasto.stylize(photo, art, config, callback=lambda event: event.step == 25).save(tmp_path / "at25.png")
    again = impasto.stylize(photo, art, config, resume=path,
                            callback=lambda event: event.step == 25 + RESUME_MARGIN_STEPS)
    assert again.steps == 25 + RESUME_MARGIN_STEPS and len(again.history) == RESUME_MARGIN_STEPS
    assert again.history[-1]["loss"] < again.history[0]["loss"]  # the margin repainted
    assert (again.image - read_image(path)).abs().max() < 0.5 / 255  # the picture as it stopped
    finished = impasto.stylize(photo, art, config, resume=path)
    assert finished.steps == 40 and (finished.image - read_image(path)).abs().max() > 10 / 255


def test_a_progress_event_gives_a_picture_to_resume_from_as_if_stopped_there(stopped, tmp_path):
    # Saved every so often, it is what a run killed outright leaves to go on from.
    photo, art, config, *_ = stopped
    here, events = {}, []

    def keep(event):  # a record made at each step, and each event kept, to make one again later
        here.setdefault(event.step, event.stopped_here())
        events.append(event)
    whole = impasto.stylize(photo, art, config, callback=keep)
    assert events[7].stopped_here().steps == 8 == here[8].steps  # called later, still the run at step 8
    for step, at, shape in ((8, {"size_index": 0, "size": 32, "steps_at_size": 8}, (3, 24, 32)),
                            (17, {"size_index": 1, "size": 64, "steps_at_size": 5}, (3, 48, 64))):
        record = here[step]
        assert record.stop_reason == "cancelled" and record.steps == step and record.stopped_at == at
        assert record.image.shape == shape and record.losses == whole.history[step - 1]
        assert record.inputs == whole.inputs and record.machine == whole.machine
        timings = record.timings  # as a stopped run's: "optimize" was missing
        assert timings["setup"] == whole.timings["setup"] and 0 < timings["optimize"] < whole.timings["optimize"]
        assert timings["total"] == timings["setup"] + timings["optimize"]
        resumed = impasto.stylize(photo, art, config, resume=record.save(tmp_path / f"at{step}.png"))
        assert resumed.history[0]["step"] == step + 1 and resumed.steps == 24 and resumed.stop_reason == "iterations"
        assert resumed.resumed_from["steps"] == step
    with pytest.raises(impasto.ImpastoError, match="only the progress events of impasto.stylize know their run"):
        impasto.ProgressEvent(1, 1, 0, 1, 0.0, {}, 0.0, torch.zeros(3, 2, 2)).stopped_here()


def test_a_record_of_the_step_where_the_loss_stalled_has_nothing_left_to_paint(images):
    # The run ends there ("tolerance"): going on from that step must not paint the steps it never would.
    photo, art = images / "content/golden_gate.jpg", images / "style/starry_night.jpg"
    config = impasto.Config(max_size=32, iterations=30, tolerance=0.05)
    records = []
    ended = impasto.stylize(photo, art, config, callback=lambda event: records.append(event.stopped_here()) and None)
    assert ended.stop_reason == "tolerance" and ended.steps < 30
    last = records[-1]
    assert last.steps == ended.steps and last.stopped_at["steps_at_size"] == 30
    assert records[-2].stopped_at["steps_at_size"] == ended.steps - 1
    resumed = impasto.stylize(photo, art, config, resume=last)
    assert resumed.history == [] and resumed.steps == ended.steps and resumed.image_step == ended.steps


def test_a_run_stopped_at_the_end_of_a_size_resumes_at_the_next(stopped):
    photo, art, config, *_ = stopped
    result = impasto.stylize(photo, art, config, callback=lambda event: event.step == 12)
    assert result.stopped_at == {"size_index": 0, "size": 32, "steps_at_size": 12}
    # A machine setting may change, and a setting may be spelled out at the value it had (the default step).
    resumed = impasto.stylize(photo, art, config.replace(device="cpu", learning_rate=1.0), resume=result)
    assert [row["scale"] for row in resumed.history] == [1] * 12 and resumed.steps == 24
    finished = impasto.stylize(photo, art, config, callback=lambda event: event.step == 24)
    assert finished.stop_reason == "iterations" and finished.stopped_at is None  # nothing was left to do


def test_resuming_counts_the_steps_that_sizes_skipped_as_their_loss_stalled(stopped):
    photo, art, config, *_ = stopped
    config = config.replace(coarse_iterations=14, iterations=14, tolerance=1.0)  # each size stalls after 11 steps
    result = impasto.stylize(photo, art, config, callback=lambda event: event.step == 13)
    assert result.stopped_at == {"size_index": 1, "size": 64, "steps_at_size": 2}
    point = impasto.resume_point(result, config)
    assert (point.size_index, point.steps_at_size, point.steps, point.total) == (1, 2, 13, 25)  # 3 skipped at 32 px
    totals: list[int] = []
    resumed = impasto.stylize(photo, art, config, resume=result, callback=lambda event: totals.append(event.total))
    assert totals[0] == 25 and totals[-1] == resumed.steps == 24 and resumed.stop_reason == "tolerance"


def test_a_stop_as_the_loss_stalls_records_the_size_as_done(stopped):
    photo, art, config, *_ = stopped
    config = config.replace(coarse_iterations=14, iterations=14, tolerance=1.0)
    result = impasto.stylize(photo, art, config, callback=lambda event: event.step == 11)  # 32 px stalls then
    assert result.stopped_at == {"size_index": 0, "size": 32, "steps_at_size": 14}
    assert impasto.resume_point(result, config).total == 25
    resumed = impasto.stylize(photo, art, config, resume=result)
    assert [row["scale"] for row in resumed.history] == [1] * 11 and resumed.history[0]["step"] == 12
    last = impasto.stylize(photo, art, config, callback=lambda event: event.step == 22)  # 64 px stalls then
    assert last.stop_reason == "tolerance" and last.stopped_at is None


@pytest.mark.parametrize("change, message", [
    (dict(iterations=13), "painted with iterations 12, not 13; resume it with its own settings"),
    (dict(init="noise"), "painted with init 'palette', not 'noise'"),
    (dict(dpi=300), "painted with no dpi, not 300; resume"),  # not Python's None
    (dict(content="content/rainier.jpg"), "painted from other content image (their SHA-256 differs)"),
    (dict(style="style/the_scream.jpg"), "painted from other style images (their SHA-256 differs)"),
])
def test_resume_refuses_other_inputs_or_settings(stopped, images, change, message):
    photo, art, config, _, path = stopped
    photo = images / change.pop("content", photo)
    art = images / change.pop("style", art)
    with pytest.raises(impasto.ImpastoError, match="^" + str(path) + ": " + message.replace("(", r"\(").replace(")", r"\)")):
        impasto.stylize(photo, art, config.replace(**change), resume=path)


def test_resume_refuses_what_cannot_be_resumed(stopped, tmp_path):
    photo, art, config, result, path = stopped
    finished = impasto.stylize(photo, art, config.replace(iterations=2, coarse_iterations=2))
    with pytest.raises(impasto.ImageError, match="the run to resume: not stopped part way .its run stopped by "
                                                 "iterations., nothing to resume"):
        impasto.stylize(photo, art, finished.config, resume=finished)
    impasto.save_image(result.image, tmp_path / "plain.png")
    with pytest.raises(impasto.ImageError, match="plain.png: carries no impasto metadata, cannot resume it"):
        impasto.stylize(photo, art, config, resume=tmp_path / "plain.png")
    impasto.save_image(result.image, tmp_path / "plain.jpg")  # its metadata would be beside it: said so
    with pytest.raises(impasto.ImageError, match=r"plain\.jpg: carries no impasto metadata \(it would be in "
                       r"plain\.jpg\.json, beside it, which is missing\), cannot resume it$"):
        impasto.stylize(photo, art, config, resume=tmp_path / "plain.jpg")
    impasto.save_image(result.image[:, :, :60], tmp_path / "cropped.png", metadata=result.metadata())
    with pytest.raises(impasto.ImageError, match="cropped.png: is 60x48, but the run it stopped paints 64x48"):
        impasto.stylize(photo, art, config, resume=tmp_path / "cropped.png")
    at = {"size_index": 0, "steps_at_size": 8}
    # Each wrong in one thing: a size index out of range, more steps than its size has (12), a bool for a number
    for change in ({"stopped_at": {"size_index": 5, "steps_at_size": 8}},
                   {"stopped_at": {"size_index": -1, "steps_at_size": 8}},
                   {"stopped_at": {"size_index": 0, "steps_at_size": 13}},
                   {"stopped_at": {"size_index": True, "steps_at_size": 8}},
                   {"stopped_at": {"size_index": 0, "steps_at_size": 2.5}}, {"steps": -5}, {"steps": 9},
                   {"seconds": -100.0}, {"seconds": True}, {"seconds": "1.5"}, {"seconds": None}):
        damaged = {**result.metadata(), "stopped_at": at, **change}
        impasto.save_image(result.image, tmp_path / "damaged.png", metadata=damaged)
        with pytest.raises(impasto.ImageError, match="damaged.png: its record of where it stopped is damaged"):
            impasto.stylize(photo, art, config, resume=tmp_path / "damaged.png")
    impasto.save_image(result.image, tmp_path / "no-inputs.png", metadata={**result.metadata(), "inputs": []})
    with pytest.raises(impasto.ImageError, match="no-inputs.png: its metadata records no inputs, cannot resume it"):
        impasto.resume_point(tmp_path / "no-inputs.png", config)
    with pytest.raises(impasto.ImageError, match="resume: expected a stopped Result or the file it was saved to, not int"):
        impasto.stylize(photo, art, config, resume=123)
    with pytest.raises(impasto.ImageError, match="painted from other content image .their SHA-256 differs; a file is "
                                                 "fingerprinted by its bytes, an image in memory by its pixels"):
        impasto.stylize(impasto.read_image(photo), art, config, resume=path)  # the same photo, given in memory
    with pytest.raises(impasto.ConfigError, match="stopped.png: painted with max_size 64, not 512"):
        impasto.resume_point(path, None)  # None is the default Config, as for stylize


def test_a_one_size_painting_of_a_version_before_refine_style_layers_is_this_versions():
    older = impasto.Config(refine_style_layers=())  # as Config.from_saved reads a 0.12.0 picture's settings
    assert differing_setting(impasto.Config(), older) is None  # 512 px: one size, nothing left out anywhere
    four, five = ("relu1_1", "relu2_1", "relu3_1", "relu4_1"), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    print_size = older.replace(max_size=1024)  # two sizes: the second painted with relu5_1 then, without it now
    assert differing_setting(impasto.Config(max_size=1024), print_size) == ("refine_style_layers", four, five)
    assert differing_setting(impasto.Config(max_size=1024, refine_style_layers=five), print_size) is None


def test_machine_settings_may_change_and_input_files_are_compared_by_kind_not_path():
    # How a run computes may change; an input file's path may too (moved, or another folder's copy): its
    # contents are compared by fingerprint (differing_input). What kind of input it is may not change.
    assert differing_setting(impasto.Config(precision="float32", max_memory=2.0),
                             impasto.Config(precision="bfloat16")) is None
    same_kind = [("init", "/x/start.png", "/y/other.png"), ("masks", ("/a/land.png",), ("/b/sky.png",)),
                 ("weights", "/a/vgg.pth", "/b/vgg19.pth")]
    for setting, ours, theirs in same_kind:
        assert differing_setting(impasto.Config(**{setting: ours}), impasto.Config(**{setting: theirs})) is None
    other_kind = [("init", "noise", "/y/start.png", "noise", "an image file"),
                  ("masks", ("a.png", "b.png"), ("a.png",), "2 image(s)", "1 image(s)"),
                  ("weights", None, "/b/vgg.pth", "built-in", "a file")]
    for setting, ours, theirs, *compared in other_kind:
        config, saved = impasto.Config(**{setting: ours}), impasto.Config(**{setting: theirs})
        assert differing_setting(config, saved) == (setting, *compared)


def test_resume_compares_every_input_by_its_fingerprint(stopped):
    # A run resumed with another init image, other masks or another weights file would go on painting a
    # picture begun from other inputs.
    recorded = stopped[3].inputs
    assert differing_input(recorded, dict(recorded)) is None
    for key, what in (("content", "content image"), ("style", "style images"), ("init", "init image"),
                      ("masks", "masks"), ("weights", "weights file")):
        assert differing_input({**recorded, key: ["aa"]}, {**recorded, key: ["bb"]}) == (key, what)
        if key not in recorded:  # given now, not then
            assert differing_input(recorded, {**recorded, key: ["bb"]}) == (key, what)


def test_a_run_without_the_composition_term_resumes_a_later_size_with_its_own_layers(stopped):
    # Resumed there, the first size is not painted again, and with no composition term its objective is
    # not needed: the later size is still a later size (no relu5_1 since 0.13.0), not taken for the first.
    photo, art, config, *_ = stopped
    config = config.replace(composition_weight=0.0)
    result = impasto.stylize(photo, art, config, callback=lambda event: event.step == 15)
    assert result.stopped_at == {"size_index": 1, "size": 64, "steps_at_size": 3}
    resumed = impasto.stylize(photo, art, config, resume=result)
    later = [row for row in result.history + resumed.history if row["scale"] == 1]
    assert len(later) == 12 and all("style/relu4_1" in row and "style/relu5_1" not in row for row in later)
