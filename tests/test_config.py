import dataclasses
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from impasto.config import PAPERS, Config, parse_setting, print_box, print_inches, print_long_edge
from impasto.errors import ConfigError
from impasto.imageio import long_edge_shape


def test_defaults_follow_the_paper_layers():
    config = Config()
    assert config.content_layer == "relu4_2"
    assert config.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert config.layers == ("relu4_2", *config.style_layers)  # all the network must give, content first
    assert config.max_size == 512 and config.optimizer == "lbfgs" and config.init == "palette"
    assert config.sizes() == [512]  # a 256 px stage would erase the subject: below min_size


def test_coarse_to_fine_starts_at_min_size_and_grows_at_most_twofold():
    config = Config()
    assert config.replace(max_size=1023).sizes() == [1023]  # below 2 x min_size: one size
    assert config.replace(max_size=1024).sizes() == [512, 1024]
    assert config.replace(max_size=1024, scales=1).sizes() == [1024]
    assert config.replace(max_size=1500).sizes() == [512, 876, 1500]  # equal ratios of 1.71
    assert config.replace(max_size=2048).sizes() == [512, 1024, 2048]
    assert config.replace(max_size=3840).sizes() == [512, 1002, 1962, 3840]  # 4K: composed at 512 px
    assert config.replace(max_size=3840, scales=2).sizes() == [512, 3840]  # capped: one bigger step
    assert config.replace(max_size=1000, min_size=64).sizes() == [64, 160, 400, 1000]  # 4 sizes at most
    assert config.replace(max_size=1000, min_size=64, scales=8).sizes() == [64, 127, 253, 503, 1000]


def test_steps_compose_at_the_first_size_and_only_sharpen_between():
    config = Config(coarse_iterations=150, refine_iterations=50, iterations=100)
    assert config.steps_per_size() == [100]
    assert config.replace(max_size=1024).steps_per_size() == [150, 100]
    assert config.replace(max_size=3840).steps_per_size() == [150, 50, 50, 100]


def test_round_trip_through_json():
    config = Config(max_size=300, style_layers=("relu1_1", "relu3_1"), style_layer_weights=(2.0, 1.0),
                    style_blend=(0.7, 0.3), weights="/tmp/w.pth", learning_rate=0.5)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["style_layers"] == ["relu1_1", "relu3_1"]
    assert Config.from_dict(data) == config


def test_lists_become_tuples_and_paths_text():
    config = Config(style_layers=["relu1_1", "relu2_1"], style_layer_weights=[1, 2], init=Path("/tmp/start.png"),
                    masks=[Path("sky.png"), "land.png"])
    assert config.style_layers == ("relu1_1", "relu2_1") and config.style_layer_weights == (1, 2)
    assert config.init == "/tmp/start.png" and config.masks == ("sky.png", "land.png")
    assert json.loads(json.dumps(config.to_dict()))["masks"] == ["sky.png", "land.png"]
    assert hash(config) == hash(Config.from_dict(config.to_dict()))
    assert Config(device="cuda:1").device == "cuda:1" and Config(seed=2**63 - 1).seed == 2**63 - 1
    numpy_numbers = Config(max_size=np.int64(64), style_weight=np.float32(100.0), style_blend=[np.float64(1)])
    assert json.dumps(numpy_numbers.to_dict()) and type(numpy_numbers.max_size) is int
    assert (numpy_numbers.style_weight, numpy_numbers.style_blend) == (100.0, (1.0,))
    rows = Config(style_blend=np.array([0.7, 0.3]), style_layer_weights=torch.tensor([1, 2, 3, 4, 5]))
    assert rows.style_blend == (0.7, 0.3) and rows.style_layer_weights == (1, 2, 3, 4, 5)  # "must be a list"
    assert json.dumps(rows.to_dict()) and type(rows.style_blend[0]) is float


def test_style_layers_weigh_equally_unless_weighted():
    assert Config().layer_weights == dict.fromkeys(Config().style_layers, 1.0)
    assert Config(style_layers=("relu1_1", "relu3_1")).layer_weights == {"relu1_1": 1.0, "relu3_1": 1.0}
    assert Config(style_layers=("relu1_1", "relu3_1"), style_layer_weights=(2, 1)).layer_weights == {
        "relu1_1": 2, "relu3_1": 1}


def test_step_size_defaults_per_optimizer():
    assert Config().step_size == 1.0
    assert Config(optimizer="adam").step_size == 0.02
    assert Config(optimizer="adam", learning_rate=0.1).step_size == 0.1
    assert Config(optimizer="adam", learning_rate=1000).step_size == 1000  # the most


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"max_size": 8}, "max_size must be at least 16"),
        ({"max_size": 65536}, "max_size must be at most 65535 pixels, not 65536$"),  # a figure of memory to read
        ({"style_scale": 0}, "style_scale must be above 0 and at most 16, not 0"),
        ({"style_scale": 1e200}, "style_scale must be above 0 and at most 16, not 1e"),
        ({"scales": 0}, "scales must be at least 1, not 0$"),
        ({"min_size": 8}, "min_size must be at least 16 pixels, not 8$"),  # relu5_1's maps: under a pixel
        ({"composition_weight": -1.0}, "composition_weight must not be negative, not -1$"),
        ({"content_layer": "relu9_1"}, "unknown VGG-19 layer 'relu9_1'; valid layers: conv1_1"),
        ({"style_layers": ("relu1_1",), "style_layer_weights": (1.0, 2.0)},
         "style_layer_weights has 2 values for 1 style layer"),
        ({"style_layers": (), "style_layer_weights": ()}, "at least one layer"),
        ({"tv_weight": -1.0}, "tv_weight must not be negative"),
        # The start would come back unchanged, the progress saying "content 0 style 0" at every step
        ({"content_weight": 0.0, "style_weight": 0.0}, "nothing to paint: content_weight, style_weight"),
        ({"content_weight": 0.0, "strength": 0.0}, "nothing to paint: content_weight, style_weight"),
        ({"style_blend": (0.0, 0.0)}, "positive sum"),
        # A positive sum is not enough: a negative weight would paint a painting's opposite
        ({"style_blend": (-1.0, 2.0)}, "style_blend must be non-negative with a positive sum, not -1, 2$"),
        ({"pooling": "min"}, "pooling must be one of max, avg"),
        ({"optimizer": "sgd"}, "optimizer must be one of lbfgs, adam"),
        ({"learning_rate": 0.0}, "learning_rate must be positive and at most 1000, not 0$"),
        ({"learning_rate": 1000.001}, "learning_rate must be positive and at most 1000, not 1000"),
        ({"iterations": 0}, "iterations must be at least 1"),
        ({"tolerance": -0.1}, "tolerance must not be negative"),
        ({"refine_iterations": -1}, "refine_iterations must not be negative"),
        ({"iterations": 5.5}, "iterations must be a whole number, not 5.5"),
        ({"max_size": "64"}, "max_size must be a whole number, not '64'"),
        ({"seed": True}, "seed must be a whole number, not True"),
        ({"style_weight": "a lot"}, "style_weight must be a number, not 'a lot'"),
        ({"pooling": 2}, "pooling must be text, not 2"),
        ({"style_layers": "relu1_1"}, "style_layers must be a list, not 'relu1_1'"),
        ({"denoise": float("nan")}, "denoise must be a finite number, not nan"),
        ({"strength": float("inf")}, "strength must be a finite number, not inf"),
        ({"style_layer_weights": (1.0, 1.0, 1.0, 1.0, float("nan"))}, "style_layer_weights must be a finite number"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite number"),
        ({"max_memory": float("nan")}, "max_memory must be a finite number"),
        ({"seed": -1}, r"seed must be from 0 to 2\*\*63 - 1, not -1"),
        ({"seed": 2**70}, r"seed must be from 0 to 2\*\*63 - 1"),
        ({"device": "meta"}, "unknown device 'meta'; use auto, cpu, cuda, cuda:N or mps"),
        ({"style_layers": ("relu1_1", "relu1_1"), "style_layer_weights": (1.0, 3.0)}, "names a layer twice"),
        ({"init": "Noise"}, "init must be one of content, palette, noise, style or an image file, not 'Noise'"),
        ({"init": ""}, "init must be one of .* or an image file, not ''"),
        ({"init": "nosie"}, r"init must be one of .* or an image file, not 'nosie' \(did you mean noise\?\)"),
        ({"init": "/no/such/folder/Palete"}, r"not '/no/such/folder/Palete' \(did you mean palette\?\)"),
        ({"style_weight": -5.0}, "style_weight must not be negative, not -5$"),  # as typed, not -5.0
        ({"style_layers": ("relu1-1",), "style_layer_weights": ()}, "unknown VGG-19 layer 'relu1-1'; did you mean 'relu1_1'"),
        ({"masks": ("",)}, "masks has an empty file name"),
        ({"iters": 3}, "unknown setting 'iters'; did you mean 'iterations'?"),
        ({"zzz": 3}, "unknown setting 'zzz'; valid settings: max_size"),
        ({"margin": -1}, "margin must be from 0 to 64 pixels, not -1"),
        ({"margin": 65}, "margin must be from 0 to 64 pixels, not 65"),
        ({"despeckle": -1}, "despeckle must be from 0 to 255 grey levels, not -1"),
        ({"despeckle": 256}, "despeckle must be from 0 to 255 grey levels, not 256"),
        ({"dpi": 0}, "dpi must be from 1 to 65535 pixels per inch, not 0"),
        ({"dpi": 65536}, "dpi must be from 1 to 65535 pixels per inch, not 65536"),
        ({"dpi": 299.5}, "dpi must be a whole number"),
    ],
)
def test_invalid_settings_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(**changes)
    with pytest.raises(ValueError, match=message):  # caught as Python's own bad arguments are
        Config().replace(**changes)


def test_a_smoothing_term_alone_is_something_to_paint():
    # Nothing to paint is refused only when all three terms are 0: the TV term alone still moves the start.
    assert Config(content_weight=0.0, style_weight=0.0, tv_weight=1.0).tv_weight == 1.0


def test_settings_are_named_by_text():
    for key in (1, 0, None):  # a key that is false as well
        with pytest.raises(ConfigError, match=f"^settings must be named by Config field names, not {key}$"):
            Config.from_dict({key: 2})


def test_an_init_file_is_not_taken_for_a_misspelt_choice(tmp_path):
    (tmp_path / "nosie").write_bytes(b"")  # a file by that name: a start image, however badly named
    assert Config(init=str(tmp_path / "nosie")).init == str(tmp_path / "nosie")
    assert Config(init="nosie.png").init == "nosie.png"  # an image file's name, checked when the run reads it
    assert Config(init="sunset").init == "sunset"  # like no choice


def test_saved_settings_of_an_older_version_repeat_its_picture():
    assert Config.from_saved(Config().to_dict()) == Config()  # this version's: as saved
    older = {k: v for k, v in Config().to_dict().items() if k not in ("margin", "despeckle")}  # 0.5.0's
    assert Config.from_saved(older).margin == 0 and Config.from_dict(older).margin == 8  # it painted to the edge
    assert Config.from_saved(older).despeckle == 0 and Config.from_dict(older).despeckle == 60  # and kept specks
    assert Config.from_saved({**older, "margin": 8}) == Config(despeckle=0)  # 0.6.0's to 0.7.2's
    with pytest.raises(ConfigError, match="settings must be a dict of Config fields, not list"):
        Config.from_saved([])


def test_the_sizes_after_the_first_leave_out_relu5_1_each_other_layer_at_its_weight():
    refining = Config().refining()
    assert refining.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    assert refining.style_layer_weights == (1.0,) * 4 and refining.style_weight == 160.0  # 40 a layer, as in all 5
    weighted = Config(style_layer_weights=(1, 1, 1, 1, 4), style_weight=100).refining()
    assert weighted.style_layer_weights == (1.0,) * 4 and weighted.style_weight == 50.0
    for kept in (Config(refine_style_layers=()), Config(style_layers=("relu1_1", "relu2_1")),
                 Config(style_layers=("relu5_1",)), Config(style_layer_weights=(0, 0, 0, 0, 1))):
        assert kept.refining() is kept  # nothing to leave out, or nothing that would be left
    assert Config(refine_style_layers=("relu1_1",)).refining().style_layers == ("relu1_1",)
    with pytest.raises(ConfigError, match="unknown VGG-19 layer 'relu6_1'"):
        Config(refine_style_layers=("relu6_1",))
    older = {k: v for k, v in Config().to_dict().items() if k != "refine_style_layers"}  # 0.12.0's and before
    assert Config.from_saved(older).refine_style_layers == ()


def test_a_print_size_is_read_in_its_unit_and_made_pixels_at_the_dpi():
    assert print_inches("16.5in") == print_inches('16.5"') == print_inches(" 16.5 IN ") == 16.5
    assert print_inches("42cm") == pytest.approx(16.5354, abs=1e-4) and print_inches(".5in") == 0.5
    assert print_inches("29,7cm") == print_inches("29.7cm")  # a decimal comma, as much of Europe writes it
    assert print_long_edge("42cm", 300) == print_long_edge("420mm", 300) == 4961  # A3's long edge
    assert print_long_edge("16.5in", 240) == 3960 and print_long_edge("6.4cm", 10) == 25  # 25.2 px, rounded
    for length in ("42", "cm", "42 m", "1e3cm", "-4cm", "4 cm 2"):
        with pytest.raises(ConfigError, match=re.escape(f"print size must be a length (42cm, 420mm, 16.5in), a sheet "
                                                        f"(10x15cm, 8x10in) or a paper (A4, letter), not '{length}'")):
            print_inches(length)
    with pytest.raises(ConfigError, match="^print size must be above 0, not 0.0mm$"):
        print_inches("0.0mm")
    with pytest.raises(ConfigError, match="^print size 0.1cm at 300 dpi is 12 px; the least is 16 px$"):
        print_long_edge("0.1cm", 300)
    assert print_long_edge("a0", 1400) == 65535  # 46.81 in
    with pytest.raises(ConfigError, match="^print size a0 at 1401 dpi is 65582 px; the most is 65535 px$"):
        print_long_edge("a0", 1401)
    assert Config().dpi is None and Config(dpi=300).to_dict()["dpi"] == 300


def test_a_sheet_or_paper_fits_the_photo_turned_to_match_it():
    assert print_box("A4") == print_box(" a4 ") == print_box("297x210mm") == (297 / 25.4, 210 / 25.4)
    assert print_box("10x15cm") == print_box("15 × 10 cm") == print_box("10cm x 150mm") == (15 / 2.54, 10 / 2.54)
    assert print_box("8.5in x 11in") == PAPERS["letter"] == (11, 8.5)
    assert print_box("29,7x21cm") == pytest.approx(PAPERS["a4"])
    assert print_box("42cm") == (42 / 2.54, None)  # a long edge alone
    assert [round(PAPERS[f"a{n}"][0] * 25.4) for n in range(7)] == [1189, 841, 594, 420, 297, 210, 148]
    # A4 at 300 dpi is 3508 x 2480 px: a 4:3 photo is as tall as the sheet is short, either way up
    for photo, long_edge in (((4000, 3000), 3306), ((3000, 4000), 3306), ((979, 734), 3307)):
        assert print_long_edge("A4", 300, photo) == long_edge
    assert print_long_edge("A4", 300, (6000, 3375)) == print_long_edge("A4", 300) == 3508  # 16:9: as long as it
    assert print_long_edge("A4", 300, (500, 500)) == 2480  # square: the short edge's
    assert print_long_edge("10x15cm", 300, (3000, 2000)) == 1771  # 1181 px short, 3:2 would be 1771.5
    for size, photo in (("A4", (4000, 3000)), ("10x15cm", (3000, 2000)), ("8x10in", (97, 300))):
        long_edge, short_edge = (round(edge * 300) for edge in print_box(size))
        height, width = long_edge_shape(photo[1], photo[0], print_long_edge(size, 300, photo))
        assert max(height, width) <= long_edge and min(height, width) <= short_edge
        assert long_edge - max(height, width) <= 1 or short_edge - min(height, width) <= 1  # filled one way
    for size in ("10x15", "x15cm", "10x15xcm", "10cmx", "A4 x", "cm"):
        with pytest.raises(ConfigError, match="^print size must be a length"):
            print_box(size)
    for size in ("A7", "B5", "foolscap"):
        with pytest.raises(ConfigError, match=f"^unknown paper '{size}' for a print size; use A0 to A6, letter, "
                                              f"legal or tabloid, or the sheet's edges \\(10x15cm\\)$"):
            print_box(f" {size}")
    with pytest.raises(ConfigError, match="^print size must be above 0, not 0cm$"):
        print_box("10x0cm")
    assert print_long_edge("1x0.25in", 40) == 40
    with pytest.raises(ConfigError, match="^print size 1x0.25in at 40 dpi is 10 px; the least is 16 px$"):
        print_long_edge("1x0.25in", 40, (100, 100))  # a square photo on a 4:1 sheet: 10 px
    assert Config.from_saved({k: v for k, v in Config(dpi=300).to_dict().items() if k != "dpi"}).dpi is None


def test_an_empty_weights_file_means_the_built_in_weights():
    assert Config(weights="").weights is None
    assert Config.from_dict({"weights": ""}) == Config()


def test_unknown_setting_in_a_dict_or_a_call():
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        Config.from_dict({"colour": "blue"})
    with pytest.raises(ConfigError, match="unknown setting 'styl_weight'; did you mean 'style_weight'"):
        Config(styl_weight=3)  # as the dict's, not Python's TypeError with no hint
    assert str(inspect.signature(Config)).startswith("(max_size: 'int' = 512, scales: 'int' = 4")  # help() shows it
    for not_a_dict in (None, [("max_size", 64)]):
        with pytest.raises(ConfigError, match="settings must be a dict of Config fields, not"):
            Config.from_dict(not_a_dict)


def test_artistic_controls_are_off_by_default_and_checked():
    config = Config()
    assert (config.strength, config.preserve_color, config.masks) == (1.0, "none", ())
    assert Config(preserve_color="histogram", strength=0.0).strength == 0.0
    with pytest.raises(ConfigError, match="preserve_color must be one of none, luminance, histogram, not 'hsv'"):
        Config(preserve_color="hsv")
    with pytest.raises(ConfigError, match="strength must not be negative"):
        Config(strength=-1.0)


def test_precision_is_checked():
    assert Config().precision == "auto"
    with pytest.raises(ConfigError, match="precision must be one of auto, float32, bfloat16, not 'half'"):
        Config(precision="half")


def test_settings_are_read_from_text_one_way_for_every_front_end():
    assert [parse_setting("max_size", text) for text in ("512", " 1e3 ", "12.0")] == [512, 1000, 12]
    assert parse_setting("seed", str(2**53 - 1)) == 2**53 - 1  # not through a float, which would round it
    assert parse_setting("style_weight", "1e4") == 10000.0 and parse_setting("weights", " ") is None
    assert parse_setting("style_layers", "relu1_1, relu2_1,") == ("relu1_1", "relu2_1")  # a comma too many
    assert parse_setting("masks", ["a,b.png", ""]) == ("a,b.png", "")  # a file's list items as they are
    for name, text, kind in (("max_size", "1.5", "a whole number"), ("max_size", "1_000", "a whole number"),
                             ("style_weight", "lots", "a number"), ("style_weight", "1_0", "a number"),
                             ("iterations", "1e308", "too large"),
                             ("seed", "9.3e18", "too large")):  # past 2**63, no seed Config takes
        with pytest.raises(ConfigError, match=f"^'{text}' is (not )?{kind}$"):
            parse_setting(name, text)


def test_help_on_config_lists_every_setting_with_its_default_and_meaning():
    doc = " ".join(Config.__doc__.split())  # unwrapped
    for f in dataclasses.fields(Config):
        assert f"{f.name} = {f.default!r}: {' '.join(f.metadata['help'].split())}" in doc, f.name
