import pytest
import torch

from impasto.losses import content_loss, gram_matrix, guided_gram_matrix, style_loss, tv_loss

F = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (B=1, C=2, H=1, W=2)


def test_gram_matrix_by_hand():
    # F·Fᵀ = [[5, 11], [11, 25]], divided by C·H·W = 4.
    assert torch.equal(gram_matrix(F), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))


def test_gram_matrix_is_independent_of_image_size():
    tiled = F.repeat(1, 1, 3, 5)  # the same statistics over 15 times the positions
    assert torch.allclose(gram_matrix(tiled), gram_matrix(F))


def test_content_loss_by_hand():
    assert content_loss(F, torch.zeros_like(F)).item() == 7.5  # (1 + 4 + 9 + 16) / 4
    assert content_loss(F, F).item() == 0.0


def test_content_loss_of_channels_last_features_gives_their_gradient_in_their_layout():
    generator = torch.Generator().manual_seed(0)
    values, target = (torch.randn(1, 8, 5, 6, generator=generator) for _ in range(2))
    plain = values.clone().requires_grad_(True)
    channels_last = values.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    (expected,) = torch.autograd.grad(content_loss(plain, target), plain)
    for photo in (target, target.contiguous(memory_format=torch.channels_last)):
        loss = content_loss(channels_last, photo)
        (gradient,) = torch.autograd.grad(loss, channels_last)  # as it flows on, not a leaf's .grad (copied)
        assert loss.item() == pytest.approx(content_loss(values, target).item(), rel=1e-6)
        assert gradient.is_contiguous(memory_format=torch.channels_last)  # no layouts mixed
        torch.testing.assert_close(gradient, expected)


def test_style_loss_by_hand():
    # Gram entries 1.25, 2.75, 2.75, 6.25 against zero: mean of squares.
    assert style_loss(F, torch.zeros(1, 2, 2)).item() == (1.5625 + 2 * 7.5625 + 39.0625) / 4
    assert style_loss(F, gram_matrix(F)).item() == 0.0


def test_tv_loss_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])
    # vertical |3-0|, |5-1| → mean 3.5; horizontal |1-0|, |5-3| → mean 1.5
    assert tv_loss(image).item() == 5.0
    assert tv_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0


def _relu_features(seed: int, n: int = 4, m: int = 6):
    """Pre-activations X (1, N, 1, M) and F = relu(X), as in seed 002's derivation."""
    x = torch.randn(1, n, 1, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x.requires_grad_(True), n, m


def test_content_gradient_matches_closed_form():
    # Seed 002: L = ½Σ(F−P)², ∂L/∂X = (F−P) where X > 0, else 0.  Ours is a mean: L = mean·N·M/2.
    x, n, m = _relu_features(0)
    target = torch.rand(1, n, 1, m, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    features = torch.relu(x)
    (content_loss(features, target) * n * m / 2).backward()
    expected = (features - target).detach() * (x > 0)
    assert torch.allclose(x.grad, expected)


def test_style_gradient_matches_closed_form():
    # Seed 002: E = 1/(4N²M²)·Σ(G−A)² with raw Grams; ∂E/∂F = 1/(N²M²)·(Fᵀ(G−A))ᵀ where X > 0.
    # Our Gram is G/(N·M) and our loss a mean over N² entries, so E = style_loss · N²/4.
    x, n, m = _relu_features(2)
    other = torch.relu(torch.randn(n, m, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    raw_target = other @ other.T
    features = torch.relu(x)
    (style_loss(features, raw_target[None] / (n * m)) * n**2 / 4).backward()
    f = features.detach().reshape(n, m)
    expected = ((f.T @ (f @ f.T - raw_target)).T / (n**2 * m**2)).reshape(1, n, 1, m) * (x > 0)
    assert torch.allclose(x.grad, expected)


def test_guided_gram_matrix_by_hand():
    # A mask of ones is the plain Gram; a mask keeping one position is that position's outer product.
    assert torch.allclose(guided_gram_matrix(F, torch.ones(1, 1, 1, 2)), gram_matrix(F))
    keep_second = torch.tensor([[[[0.0, 1.0]]]])
    assert torch.equal(guided_gram_matrix(F, keep_second), torch.tensor([[[2.0, 4.0], [4.0, 8.0]]]))  # [2,4]ᵀ[2,4]/2
    # The normalisation is by the region's area, so the same statistics give the same Gram at any size.
    tiled = F.repeat(1, 1, 3, 5)
    mask = torch.zeros(1, 1, 3, 10)
    mask[..., 1::2] = 1.0
    assert torch.allclose(guided_gram_matrix(tiled, mask), guided_gram_matrix(F, keep_second))


def test_guided_gram_matrix_of_a_uniform_grey_mask_is_the_plain_gram():
    # Masks are blurred to grey at their edges: the region is weighted by mask² (area Σmask²), so a mask
    # that is the same grey everywhere gives back the plain Gram, whatever the grey.
    for grey in (0.1, 0.5):
        assert torch.allclose(guided_gram_matrix(F, torch.full((1, 1, 1, 2), grey)), gram_matrix(F))
    assert torch.allclose(gram_matrix(F), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))


def test_gram_matrices_do_not_depend_on_the_memory_layout():
    features = torch.randn(2, 5, 6, 7)
    mask = torch.rand(1, 1, 6, 7)
    channels_last = features.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gram_matrix(channels_last), gram_matrix(features))
    torch.testing.assert_close(guided_gram_matrix(channels_last, mask), guided_gram_matrix(features, mask))
    flat = features.reshape(2, 5, 42)
    torch.testing.assert_close(gram_matrix(channels_last), flat @ flat.transpose(1, 2) / (5 * 42))


def test_gram_gradient_matches_autograd_in_both_layouts():
    # gram_matrix has its own backward (one product); autograd through a plain product is the reference.
    features = torch.randn(2, 5, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    weights = torch.randn(2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    flat = features.reshape(2, 5, 42).requires_grad_(True)
    expected, = torch.autograd.grad(((flat @ flat.transpose(1, 2) / 210) * weights).sum(), flat)
    for layout in (torch.contiguous_format, torch.channels_last):
        x = features.contiguous(memory_format=layout).requires_grad_(True)
        grad, = torch.autograd.grad((gram_matrix(x) * weights).sum(), x)
        torch.testing.assert_close(grad.reshape(2, 5, 42), expected)
    assert torch.autograd.gradcheck(gram_matrix, features[:1, :3, :2, :3].clone().requires_grad_(True))


def test_masked_gram_gradient_under_bfloat16_autocast():
    # Masked features are float32 while autocast makes the product bfloat16: the gradient stays float32.
    features = torch.rand(1, 4, 5, 6, generator=torch.Generator().manual_seed(6)).requires_grad_(True)
    mask = torch.rand(1, 1, 5, 6, generator=torch.Generator().manual_seed(7))
    target = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = style_loss(features, target, mask)
    grad, = torch.autograd.grad(loss, features)
    reference, = torch.autograd.grad(style_loss(features, target, mask), features)
    assert grad.dtype == torch.float32
    assert torch.cosine_similarity(grad.flatten(), reference.flatten(), dim=0) > 0.999
