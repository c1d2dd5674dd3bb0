"""The once-per-task image transforms against scipy and exact identities."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from cl_attractors.errors import ConfigError
from cl_attractors.train.transforms import CHUNK, draw_angles, normalise, pad, rotate


def images(n: int, shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    return torch.rand(n, shape[0] * shape[1], generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("degrees", [30.0, -45.0, 90.0, 123.4, 271.0])
def test_rotate_matches_scipy_bilinear(degrees: float) -> None:
    x = images(3, (28, 28))
    ours = rotate(x, (28, 28), degrees).reshape(3, 28, 28).numpy()
    reference = np.stack(
        [
            scipy.ndimage.rotate(
                img.reshape(28, 28).double().numpy(), degrees, reshape=False, order=1, mode="grid-constant"
            )
            for img in x
        ]
    )
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_rotate_exact_identities() -> None:
    x = images(2, (4, 6))
    assert torch.equal(rotate(x, (4, 6), 0.0), x) and torch.equal(rotate(x, (4, 6), 360.0), x)
    flipped = x.reshape(2, 4, 6).flip(1, 2).reshape(2, -1)  # 180 degrees on a non-square frame
    torch.testing.assert_close(rotate(x, (4, 6), 180.0), flipped, atol=1e-6, rtol=0)
    square = images(2, (6, 6))  # 90 degrees counter-clockwise, as displayed
    turned = torch.rot90(square.reshape(2, 6, 6), 1, (1, 2)).reshape(2, -1)
    torch.testing.assert_close(rotate(square, (6, 6), 90.0), turned, atol=1e-5, rtol=0)


def test_rotate_is_bit_reproducible_and_chunk_independent() -> None:
    x = images(CHUNK + 5, (28, 28), seed=1)
    whole = rotate(x, (28, 28), 33.3)
    assert torch.equal(whole, rotate(x, (28, 28), 33.3))
    assert torch.equal(whole[-5:], rotate(x[-5:], (28, 28), 33.3))
    assert not torch.equal(x, whole)


def test_rotate_refuses_a_shape_that_does_not_fit() -> None:
    with pytest.raises(ConfigError, match=r"^images=\(2, 784\) is not allowed; use \[n, 1024\]"):
        rotate(images(2, (28, 28)), (32, 32), 10.0)


def test_pad_and_normalise_as_hsu_et_al() -> None:
    x = images(2, (28, 28))
    padded = pad(x, (28, 28), 2)
    assert padded.shape == (2, 1024)
    frame = padded.reshape(2, 32, 32)
    assert torch.equal(frame[:, 2:30, 2:30], x.reshape(2, 28, 28))
    assert frame[:, :2].abs().sum() == 0 and frame[:, :, -2:].abs().sum() == 0
    torch.testing.assert_close(normalise(padded, 0.1, 0.2752)[0, 0], torch.tensor(-0.1 / 0.2752))
    with pytest.raises(ConfigError, match="std=0"):
        normalise(padded, 0.1, 0)


def test_draw_angles_is_seeded_and_in_range() -> None:
    a = draw_angles(5, seed=3, low=0.0, high=180.0, first_upright=False)
    assert a == draw_angles(5, seed=3, low=0.0, high=180.0, first_upright=False)
    assert a != draw_angles(5, seed=4, low=0.0, high=180.0, first_upright=False)
    assert all(0.0 <= v < 180.0 for v in a) and len(set(a)) == 5
    upright = draw_angles(5, seed=3, low=0.0, high=180.0, first_upright=True)
    assert upright[0] == 0.0 and upright[1:] == a[1:]
