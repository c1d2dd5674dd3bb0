"""Image transforms a task family applies once per task (never per batch), as pure functions.

Images are held flat, ``[n, height * width]`` float32; each function takes the image shape and
returns a new tensor (inputs are never modified). On a CPU every function here is deterministic:
the same inputs give bit-identical outputs, and processing in chunks gives the same bits as
processing at once (each image is transformed on its own).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from cl_attractors.errors import require, require_finite
from cl_attractors.train.sources import Splits

CHUNK = 8192  # images per sparse product (bounds its transposed copy)


def rotation_matrix(degrees: float, shape: tuple[int, int]) -> Tensor:
    """The ``[2, 3]`` matrix ``affine_grid`` needs to turn an image of ``shape`` ``degrees``
    counter-clockwise as displayed (row 0 at the top) about its centre.

    ``affine_grid`` gives, for each output pixel, the input location it samples, in coordinates
    normalised to [-1, 1] per axis (x right, y down). In pixel units (``S = diag(w/2, h/2)``) the
    counter-clockwise turn samples ``R p`` with ``R = [[c, -s], [s, c]]`` (y down); normalised,
    ``S^-1 R S``, which keeps a non-square image's pixels square.
    """
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    height, width = shape
    return torch.tensor([[c, -s * height / width, 0.0], [s * width / height, c, 0.0]], dtype=torch.float32)


def rotation_taps(degrees: float, shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """The bilinear taps of a turn of ``degrees``: for each output pixel, the four input pixels it
    reads (``[4, h * w]`` flat indices) and their weights (``[4, h * w]``, 0 for a tap outside the
    frame: black corners), at the locations ``affine_grid`` gives (``align_corners=False``),
    computed in float64 once per angle."""
    height, width = shape
    matrix = rotation_matrix(degrees, shape).double()[None]
    grid = F.affine_grid(matrix, [1, 1, height, width], align_corners=False)[0]
    ix, iy = ((grid[..., 0] + 1) * width - 1) / 2, ((grid[..., 1] + 1) * height - 1) / 2
    indices, weights = [], []
    for ys in (iy.floor(), iy.floor() + 1):
        for xs in (ix.floor(), ix.floor() + 1):
            inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
            weight = (1 - (ix - xs).abs()) * (1 - (iy - ys).abs())
            indices.append((ys.clamp(0, height - 1) * width + xs.clamp(0, width - 1)).long().flatten())
            weights.append(torch.where(inside, weight, 0.0).flatten())
    return torch.stack(indices), torch.stack(weights)


def rotation_operator(
    degrees: float, shape: tuple[int, int], dtype: torch.dtype, device: torch.device
) -> Tensor:
    """The turn as a sparse ``[h * w, h * w]`` matrix ``R`` (CSR, four taps a row): ``R @ image``."""
    indices, weights = rotation_taps(degrees, shape)
    pixels = shape[0] * shape[1]
    coords = torch.stack([torch.arange(pixels).repeat(4), indices.flatten()])
    turn = torch.sparse_coo_tensor(coords, weights.flatten(), (pixels, pixels), check_invariants=True)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": its product is all we use
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return turn.coalesce().to(device, dtype).to_sparse_csr()


def rotate(images: Tensor, shape: tuple[int, int], degrees: float) -> Tensor:
    """Each flat image turned ``degrees`` counter-clockwise about its centre: bilinear
    interpolation, zero (black) outside the original frame, the frame kept (corners cut). Each
    output pixel is the weighted sum of its four taps (:func:`rotation_taps`): one sparse matrix
    product per ``CHUNK`` images.

    Args:
        images: ``[n, height * width]`` float images.
        shape: ``(height, width)``.
        degrees: the angle; 0 returns an exact copy.
    """
    height, width = shape
    require(images.shape[-1] == height * width, "images", tuple(images.shape), f"[n, {height * width}]")
    if degrees % 360 == 0:
        return images.clone()
    turn = rotation_operator(degrees, shape, images.dtype, images.device)
    out = torch.empty_like(images)
    for start in range(0, len(images), CHUNK):
        out[start : start + CHUNK] = (turn @ images[start : start + CHUNK].t()).t()
    return out


def pad(images: Tensor, shape: tuple[int, int], border: int, value: float = 0.0) -> Tensor:
    """Flat images ``[n, h * w]`` framed by ``border`` pixels of ``value`` on every side:
    ``[n, (h + 2 border) * (w + 2 border)]`` (Hsu et al. pad MNIST 28x28 to 32x32 with 2)."""
    require(isinstance(border, int) and border >= 0, "border", border, "an integer >= 0")
    height, width = shape
    framed = F.pad(images.reshape(-1, height, width), (border, border, border, border), value=value)
    return framed.reshape(len(images), -1)


def normalise(images: Tensor, mean: float, std: float) -> Tensor:
    """``(images - mean) / std`` (Hsu et al.: mean 0.1, std 0.2752 on padded MNIST)."""
    require_finite({"mean": mean, "std": std}, "normalise")
    require(std > 0, "std", std, "a number > 0")
    return (images - mean) / std


def draw_angles(num_tasks: int, seed: int, low: float, high: float, first_upright: bool) -> list[float]:
    """``num_tasks`` angles in degrees, uniform in ``[low, high)`` from a generator seeded by
    ``seed`` (the global RNG is untouched); ``first_upright``: task 0 is 0 degrees."""
    g = torch.Generator().manual_seed(seed)
    draws = (low + (high - low) * torch.rand(num_tasks, generator=g, dtype=torch.float64)).tolist()
    return [0.0, *draws[1:]] if first_upright and num_tasks else draws


def square_side(num_features: int, field: str) -> int:
    """The side of square images of ``num_features`` pixels (a ConfigError naming ``field`` else)."""
    side = math.isqrt(num_features)
    require(side * side == num_features, field, num_features, "square images (their pixel count is not)")
    return side


def prepare(splits: Splits, border: int, mean_std: list[float] | None, merge_val: bool) -> Splits:
    """A source's splits as a protocol wants them, once at loading: ``merge_val`` trains on train +
    val (the embedded 50k + 10k are MNIST's 60k training images), ``border`` pads the square
    images, ``mean_std`` normalises them (Hsu et al.: 2 and [0.1, 0.2752])."""
    xtr, ytr, xva, yva, xte, yte = (getattr(splits, f) for f in Splits.__dataclass_fields__)
    if merge_val:
        xtr, ytr = torch.cat([xtr, xva]), torch.cat([ytr, yva])
    xs = [xtr, xva, xte]
    if border:
        side = square_side(xtr.shape[1], "data.pad")
        xs = [pad(x, (side, side), border) for x in xs]
    if mean_std is not None:
        require(len(mean_std) == 2, "data.normalise", mean_std, "[mean, std]")
        xs = [normalise(x, mean_std[0], mean_std[1]) for x in xs]
    return Splits(xs[0], ytr, xs[1], yva, xs[2], yte)


def concat(parts: list[Splits], names: list[str]) -> Splits:
    """Several sources as one (a sequence of datasets): their splits concatenated, the labels of
    source ``k`` shifted past those of the sources before it (MNIST 0-9, then Fashion-MNIST 10-19)."""
    if len(parts) == 1:
        return parts[0]
    features = parts[0].x_train.shape[1]
    fields = list(Splits.__dataclass_fields__)
    out: dict[str, list[Tensor]] = {f: [] for f in fields}
    offset = 0
    for k, (part, name) in enumerate(zip(parts, names)):
        size = part.x_train.shape[1]
        require(
            size == features,
            f"data.source[{k}]",
            name,
            f"a source of {features} pixels, like {names[0]!r} ({size})",
        )
        for f in fields:
            value = getattr(part, f)
            out[f].append(value + offset if f.startswith("y_") else value)
        offset += 1 + max(int(getattr(part, f).max()) for f in fields if f.startswith("y_"))
    return Splits(*(torch.cat(out[f]) for f in fields))
