"""Matplotlib figures, drawn from saved results only (nothing here trains)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def accuracy_heatmap(A: torch.Tensor) -> Figure:
    """Heat map of A(i, j): rows = evaluated task i, columns = after training task j."""
    n = A.shape[0]
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * n, 1.0 + 0.45 * n))
    im = ax.imshow(A.float().numpy(), vmin=0, vmax=1, cmap="viridis")
    ax.set(xlabel="after training task j", ylabel="evaluated task i",
           xticks=range(n), yticks=range(n))
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
