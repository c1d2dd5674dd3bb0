"""Final weights of finished runs (from their checkpoints, never by training): histograms, modes."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


def final_weights(run_dir: Path, min_abs: float = 1e-5) -> Tensor:
    """All weight matrices (no biases) of ``run_dir/checkpoints/last.ckpt``, ``|w| < min_abs`` dropped."""
    ckpt = torch.load(Path(run_dir) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    values = torch.cat(
        [
            v.flatten().float()
            for k, v in ckpt["state_dict"].items()
            if k.startswith("net.") and k.endswith(".weight")
        ]
    )
    return values[values.abs() >= min_abs]


def histogram(values: Tensor, bin_width: float, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """(edges, counts) of ``values`` on ``[lo, hi]`` with bins of ``bin_width`` (values outside dropped)."""
    bins = max(1, round((hi - lo) / bin_width))
    counts = torch.histc(values.float(), bins=bins, min=lo, max=hi).double()
    return torch.linspace(lo, hi, bins + 1, dtype=torch.float64), counts


def find_modes(
    edges: Tensor,
    counts: Tensor,
    smooth_bins: int = 1,
    min_prominence: float = 0.2,
    min_height: float = 1e-3,
    min_count: float = 20.0,
) -> list[float]:
    """Centres of the histogram's modes, by topographic prominence of the smoothed counts.

    A local maximum is a mode when its height is at least ``min_height`` times the highest bin and
    ``min_count`` weights, and it stands ``min_prominence`` (a fraction of its own height) above
    the higher of the two lowest points separating it from a higher bin on each side (the edge
    counts as a separator).
    """
    k = 2 * smooth_bins + 1
    h = torch.nn.functional.avg_pool1d(
        counts.view(1, 1, -1), k, stride=1, padding=smooth_bins, count_include_pad=False
    ).flatten()
    centres = (edges[:-1] + edges[1:]) / 2
    top = float(h.max()) if h.numel() else 0.0
    modes = []
    for i in range(len(h)):
        hi_ = float(h[i])
        if hi_ < max(min_height * top, min_count, 1e-12):
            continue
        if (i > 0 and h[i - 1] > hi_) or (i + 1 < len(h) and h[i + 1] >= hi_):
            continue
        bases = []
        for side in (h[:i].flip(0), h[i + 1 :]):
            higher = (side > hi_).nonzero()
            stretch = side if len(higher) == 0 else side[: int(higher[0])]
            bases.append(float(stretch.min()) if len(stretch) else 0.0)
        if hi_ - max(bases) >= min_prominence * hi_:  # located at the highest raw bin nearby
            lo = max(i - smooth_bins, 0)
            modes.append(float(centres[lo + int(counts[lo : i + smooth_bins + 1].argmax())]))
    return modes
