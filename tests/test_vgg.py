import subprocess
import sys

import pytest
import torch
from torch import nn

from impasto.device import uses_bfloat16
from impasto.errors import ConfigError, WeightsError
from impasto.vgg import CONV_NAMES, LAYER_NAMES, AvgPool2x2, VGGFeatures, fusable, load_weights, smallest_edge


@pytest.fixture(scope="module")
def weights():
    return load_weights()


def _test_image(size: int = 48) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([x, y, (x * y * 7).sin() * 0.5 + 0.5])[None]  # (1, 3, H, W), distinct channels


def test_layer_names_follow_the_paper():
    assert len(CONV_NAMES) == 16
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5" and "relu5_4" in LAYER_NAMES and "conv4_2" in LAYER_NAMES


def test_builtin_weights_are_the_oxford_vgg19(weights):
    shapes = [tuple(w.shape) for w, _ in weights.convs]
    assert shapes[0] == (64, 3, 3, 3) and shapes[2] == (128, 64, 3, 3) and shapes[-1] == (512, 512, 3, 3)
    assert weights.convs[0][1][0].item() == pytest.approx(0.7302, abs=1e-4)  # as in the Caffe model
    assert weights.bgr and weights.scale == 255.0 and weights.mean == (103.939, 116.779, 123.68)


def test_features_fingerprint(weights):
    # Recorded from the built-in weights: a change to the loader or the network changes these.
    features = VGGFeatures(weights, ["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"], "max")(_test_image())
    expected = {"relu1_1": (64, 48, 40.8555, 70.8390), "relu2_1": (128, 24, 168.689, 244.346),
                "relu3_1": (256, 12, 223.687, 368.864), "relu4_2": (512, 6, 585.721, 1174.94),
                "relu5_1": (512, 3, 98.9151, 234.205)}
    for name, (channels, size, mean, std) in expected.items():
        assert features[name].shape == (1, channels, size, size)
        assert features[name].mean().item() == pytest.approx(mean, rel=1e-4)
        assert features[name].std().item() == pytest.approx(std, rel=1e-4)


def test_network_stops_at_deepest_layer_and_is_frozen(weights):
    model = VGGFeatures(weights, ["relu2_1", "conv1_2"], "avg")
    assert list(dict(model.body.named_children()))[-1] == "relu2_1"
    assert isinstance(model.body.pool1, AvgPool2x2)
    assert not any(p.requires_grad for p in model.parameters())
    assert set(model(_test_image(16))) == {"relu2_1", "conv1_2"}
    assert (model(_test_image(16))["conv1_2"] < 0).any()  # conv features are taken before their ReLU


def test_building_draws_no_random_numbers_and_copies_the_weights(weights):
    before = torch.random.get_rng_state()
    model = VGGFeatures(weights, ["relu1_2"], channels_last=False)
    assert torch.equal(torch.random.get_rng_state(), before)  # a seed alone decides a noise start
    assert torch.equal(model.body.conv1_2.weight, weights.convs[1][0]) and torch.equal(model.body.conv1_2.bias,
                                                                                         weights.convs[1][1])
    assert model.body.conv1_2.weight.data_ptr() != weights.convs[1][0].data_ptr()


def test_building_imports_no_symbolic_maths():
    # torch's skip_init imported sympy: 0.3 s a process here, 3.4 s without a bytecode cache (an H200's image)
    code = ("import sys; from impasto.vgg import VGGFeatures, load_weights; "
            "VGGFeatures(load_weights(), ['relu5_1']); print('sympy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_smallest_edge_halves_with_every_pooling_before_the_deepest_layer():
    assert smallest_edge(["relu1_1"]) == 1 and smallest_edge(["relu2_1", "relu1_2"]) == 2
    assert smallest_edge(["relu4_2", "relu5_1"]) == 16 and smallest_edge(["relu4_2"]) == 8
    assert smallest_edge(["pool1"]) == 2 and smallest_edge(["relu1_1", "pool5"]) == 32  # a pooling's own halving


def test_unknown_layer_lists_the_valid_ones(weights):
    with pytest.raises(ConfigError, match=r"unknown VGG-19 layer 'relu4_5'.*relu1_1, conv1_2"):
        VGGFeatures(weights, ["relu4_5"])
    with pytest.raises(ConfigError, match="pooling"):
        VGGFeatures(weights, ["relu1_1"], "median")


def _as_torchvision(weights) -> dict[str, torch.Tensor]:
    """The built-in weights re-expressed for RGB input in 0–1 normalised by mean/std."""
    mean, std = torch.tensor((0.485, 0.456, 0.406)), torch.tensor((0.229, 0.224, 0.225))
    caffe_mean = torch.tensor(weights.mean)  # BGR, 0–255
    state, layer = {}, 0
    for i, (w, b) in enumerate(weights.convs):
        if i == 0:
            w_rgb = w.flip(1)  # the first convolution reads BGR: reorder its input channels
            # Caffe input 255·rgb − caffe_mean = 255·std·z + (255·mean − caffe_mean) with z the normalised input
            w = w_rgb * 255 * std.view(1, 3, 1, 1)
            b = b + (w_rgb * (255 * mean - caffe_mean.flip(0)).view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
        while not LAYER_NAMES[layer].startswith("conv"):
            layer += 1
        state[f"features.{layer}.weight"], state[f"features.{layer}.bias"] = w, b
        layer += 1
    return state


def test_torchvision_state_dict_gives_the_same_features(weights, tmp_path):
    path = tmp_path / "vgg19_tv.pth"
    torch.save(_as_torchvision(weights), path)
    loaded = load_weights(path)
    assert not loaded.bgr and loaded.scale == 1.0 and loaded.std == (0.229, 0.224, 0.225)
    image = _test_image(32)
    ours = VGGFeatures(weights, ["relu1_1", "relu2_1"])(image)
    theirs = VGGFeatures(loaded, ["relu1_1", "relu2_1"])(image)
    # Zero padding means a different colour in the two conventions, so compare away from the border.
    assert torch.allclose(ours["relu1_1"][..., 1:-1, 1:-1], theirs["relu1_1"][..., 1:-1, 1:-1], rtol=1e-4, atol=1e-2)
    assert torch.allclose(ours["relu2_1"][..., 3:-3, 3:-3], theirs["relu2_1"][..., 3:-3, 3:-3], rtol=1e-4, atol=1e-1)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such weights file"),
        (b"not a checkpoint", "not a PyTorch weights file"),
        ({"fc.weight": torch.zeros(2)}, "not VGG-19 weights: expected the keys"),
        ({"features.0.weight": torch.zeros(64, 3, 5, 5), "features.0.bias": torch.zeros(64)}, r"features.0 has shape \(64, 3, 5, 5\)"),
        ({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, "missing features.2.weight for conv1_2"),
        ([1, 2, 3], "expected a dict of tensors"),
        ({"features.0.weight": torch.full((64, 3, 3, 3), torch.nan), "features.0.bias": torch.zeros(64)},
         "features.0 holds values that are not finite"),
        ("folder", "is a folder, not a weights file"),
    ],
)
def test_bad_weights_files(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(WeightsError, match=message) as info:
        load_weights(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_layouts_and_checkpointing_give_the_same_features_and_gradients(weights):
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]

    def features_and_gradient(model):
        image = _test_image(40).requires_grad_(True)
        features = model(image)
        loss = sum((f * f.detach().roll(1, dims=1)).mean() for f in features.values())
        return features, torch.autograd.grad(loss, image)[0]

    plain, plain_grad = features_and_gradient(VGGFeatures(weights, layers, "max", channels_last=False))
    for model in (VGGFeatures(weights, layers, "max"), VGGFeatures(weights, layers, "max", checkpointed=True)):
        features, grad = features_and_gradient(model)
        assert features["relu1_1"].is_contiguous(memory_format=torch.channels_last)
        assert list(features) == layers
        for name in layers:
            torch.testing.assert_close(features[name], plain[name], rtol=1e-3, atol=1e-5 * plain[name].abs().max().item())
        torch.testing.assert_close(grad, plain_grad, rtol=1e-3, atol=1e-4 * plain_grad.abs().max().item())


@pytest.mark.parametrize("checkpointed", [False, True])
def test_fused_convolutions_and_relus_give_the_same_features_and_gradients_to_the_last_bit(weights, checkpointed):
    assert not fusable(torch.float32)  # no faster there
    if uses_bfloat16("auto", torch.device("cpu")):  # oneDNN runs bfloat16 natively here
        assert fusable(torch.bfloat16) == torch.backends.mkldnn.is_available()  # every x86 build of torch has it
    if not fusable(torch.bfloat16):
        pytest.skip("this CPU's oneDNN has no fused convolution in bfloat16")
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]

    def features_and_gradient(model, bfloat16=True):
        image = _test_image(40).requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):  # as Objective runs it
            features = model(image)
        loss = sum((f.float() * f.detach().float().roll(1, dims=1)).mean() for f in features.values())
        return features, torch.autograd.grad(loss, image)[0]

    fused = VGGFeatures(weights, layers, "avg", checkpointed=checkpointed)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # the weights are cast here,
        fused(_test_image(16))  # and autograd must still be able to save them afterwards
    features, grad = features_and_gradient(fused)
    unfused = VGGFeatures(weights, layers, "avg", checkpointed=checkpointed, fused=False)
    plain, plain_grad = features_and_gradient(unfused)
    if not checkpointed:  # the graph holds one node per convolution and ReLU pair, not two; in float32, two
        assert type(features["relu1_1"].grad_fn).__name__ == "_ConvReLUBackward"
        assert type(plain["relu1_1"].grad_fn).__name__ == "ReluBackward0"
        assert type(features_and_gradient(fused, bfloat16=False)[0]["relu1_1"].grad_fn).__name__ == "ReluBackward0"
    for name in layers:
        assert features[name].is_contiguous(memory_format=torch.channels_last)
        assert features[name].dtype == torch.bfloat16 and torch.equal(features[name], plain[name])
    assert torch.equal(grad, plain_grad)
    cast = fused._cast_weights["conv1_1", torch.bfloat16]  # cast once, not at every call as autocast would
    features_and_gradient(fused)
    assert fused._cast_weights["conv1_1", torch.bfloat16] is cast and cast[0].dtype == torch.bfloat16


@pytest.mark.parametrize("checkpointed", [False, True])
def test_fused_convolutions_still_give_the_convolution_features_asked_for(weights, checkpointed):
    # conv1_2 is asked for, so it runs apart from its ReLU (fused, only relu1_2 would come out); checkpointed,
    # relu1_2 is a segment of one layer after conv1_2's
    if not fusable(torch.bfloat16):
        pytest.skip("this CPU's oneDNN has no fused convolution in bfloat16")
    model = VGGFeatures(weights, ["conv1_2", "relu1_2", "relu2_1"], "avg", checkpointed=checkpointed)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as Objective runs it: where the fused path is taken
        features = model(_test_image(16).requires_grad_(True))
    assert list(features) == ["conv1_2", "relu1_2", "relu2_1"]
    assert (features["conv1_2"] < 0).any()  # taken before its ReLU
    assert torch.equal(features["relu1_2"], features["conv1_2"].relu())


def test_checkpointing_keeps_only_the_requested_features(weights):
    # Saved tensors are what the backward pass holds: checkpointed, far fewer bytes at the same size.
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]

    def saved_bytes(model):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(_test_image(64).requires_grad_(True))
        return sum(storages.values())

    plain = saved_bytes(VGGFeatures(weights, layers, "avg"))
    checkpointed = saved_bytes(VGGFeatures(weights, layers, "avg", checkpointed=True))
    assert checkpointed < 0.6 * plain


@pytest.mark.parametrize("shape", [(1, 3, 8, 10), (2, 5, 9, 7), (1, 64, 33, 25)])  # odd rows and columns too
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_average_pooling_and_its_gradient_are_torchs_to_the_last_bit(shape, layout, dtype):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator).to(dtype).contiguous(memory_format=layout).requires_grad_(True)
    ours, torchs = AvgPool2x2()(x), nn.AvgPool2d(2, 2)(x)
    weights = torch.randn(torchs.shape, generator=generator).to(dtype).contiguous(memory_format=layout)
    (gradient,) = torch.autograd.grad(ours, x, weights)
    (expected,) = torch.autograd.grad(torchs, x, weights)
    assert torch.equal(ours, torchs) and torch.equal(gradient, expected)
    assert gradient.is_contiguous(memory_format=layout)  # the layout the next layer's gradient is in
