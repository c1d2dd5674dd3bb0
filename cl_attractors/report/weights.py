"""Final weights of finished runs (from their checkpoints, never by training): histograms, modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks
from torch import Tensor

from cl_attractors.io import load_tensors


def final_weights(run_dir: Path, min_abs: float = 1e-5) -> Tensor:
    """All weight matrices (no biases) of ``run_dir/checkpoints/last.ckpt``, ``|w| < min_abs`` dropped."""
    ckpt = load_tensors(Path(run_dir) / "checkpoints" / "last.ckpt")
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
    """Centres of the histogram's modes: peaks of the smoothed counts (``scipy.signal.find_peaks``).

    The counts are smoothed by a moving mean over ``2 * smooth_bins + 1`` bins. A peak is a mode
    when its height is at least ``min_height`` times the highest bin and ``min_count`` weights, and
    its topographic prominence is at least ``min_prominence`` times its own height (the histogram's
    edges count as zero, so a peak in the first or last bin is found too). Each mode is reported
    at the highest raw bin within the smoothing window around the peak.
    """
    raw = counts.double().numpy()
    if raw.size == 0:
        return []
    ones = np.ones_like(raw)
    size = 2 * smooth_bins + 1
    smooth = uniform_filter1d(raw, size, mode="constant") / uniform_filter1d(ones, size, mode="constant")
    floor = max(min_height * float(smooth.max()), min_count, 1e-12)
    padded = np.concatenate([[0.0], smooth, [0.0]])
    peaks, props = find_peaks(padded, height=floor, prominence=0.0)
    centres = ((edges[:-1] + edges[1:]) / 2).numpy()
    modes = []
    for peak, prominence, height in zip(peaks - 1, props["prominences"], props["peak_heights"]):
        if prominence >= min_prominence * height:
            lo = max(int(peak) - smooth_bins, 0)
            modes.append(float(centres[lo + int(np.argmax(raw[lo : int(peak) + smooth_bins + 1]))]))
    return modes
