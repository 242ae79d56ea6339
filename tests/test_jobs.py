"""impasto/jobs.py: what a picture already written is to a run, and the names of snapshots. Planning
whole command lines is tested through them, in test_cli.py."""

from helpers import noise
from PIL import Image

from impasto import Config, stylize
from impasto.api import input_record
from impasto.imageio import read_image, read_metadata, save_image
from impasto.jobs import few_names, run_of, snapshot_step


def test_few_names_are_all_up_to_five_then_an_ellipsis():
    assert few_names(["a.jpg"]) == "a.jpg"
    assert few_names([f"{n}.jpg" for n in range(5)]) == "0.jpg, 1.jpg, 2.jpg, 3.jpg, 4.jpg"
    assert few_names([f"{n}.jpg" for n in range(6)]) == "0.jpg, 1.jpg, 2.jpg, 3.jpg, 4.jpg, …"


def test_a_snapshots_step_is_read_only_from_its_own_outputs_name():
    assert snapshot_step("out-step00050.png", "out") == 50
    assert snapshot_step("out-step123456.png", "out") == 123456  # past 99 999 steps the number grows
    assert snapshot_step("a.b-step00007.png", "a.b") == 7  # the stem is taken as it is, dots and all
    for name, stem in (("out-step0050.png", "out"), ("out-step00050.jpg", "out"), ("other-step00050.png", "out"),
                       ("out-step00050.png.json", "out"), ("axb-step00007.png", "a.b")):  # "." is not a wildcard
        assert snapshot_step(name, stem) is None


def test_a_picture_is_finished_stopped_or_another_runs_to_a_run(images, tmp_path):
    photo, painting = tmp_path / "photo.png", str(images / "style/the_scream.jpg")
    Image.fromarray(noise(24, 32, seed=3)).save(photo)
    config = Config(max_size=32, iterations=3)
    inputs = input_record(str(photo), [painting], config)
    assert run_of(tmp_path / "none.png", config, inputs).state == "other"  # no file
    stylize(str(photo), painting, config).save(tmp_path / "done.png")
    assert run_of(tmp_path / "done.png", config, inputs) == ("finished", 3, "")
    stylize(str(photo), painting, config, callback=lambda event: event.step == 2).save(tmp_path / "stopped.png")
    assert run_of(tmp_path / "stopped.png", config, inputs) == ("stopped", 2, "")
    assert run_of(tmp_path / "stopped.png", config.replace(style_weight=100.0), inputs) == (
        "stopped elsewise", 2, "style_weight 200.0, not 100.0")
    other = input_record(painting, [painting], config)  # another photo
    assert run_of(tmp_path / "stopped.png", config, other) == ("stopped elsewise", 2, "other content image")
    assert run_of(tmp_path / "done.png", config.replace(iterations=4), inputs).state == "other"  # finished elsewise
    (tmp_path / "text.png").write_text("not a picture")
    assert run_of(tmp_path / "text.png", config, inputs).state == "other"
    Image.fromarray(noise()).save(tmp_path / "plain.png")  # a picture without impasto's metadata
    assert run_of(tmp_path / "plain.png", config, inputs).state == "other"
    meta = read_metadata(tmp_path / "done.png")  # edited by hand: no count of its steps
    del meta["steps"]
    save_image(read_image(tmp_path / "done.png"), tmp_path / "edited.png", metadata=meta)
    assert run_of(tmp_path / "edited.png", config, inputs).state == "other"
