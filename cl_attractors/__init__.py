"""cl-attractors: sticky-gradient continual learning on permuted MNIST, with fair baselines.

The Python API, for notebooks (docs/api.md)::

    import cl_attractors
    runs = cl_attractors.load_runs("runs/fig2")      # one row per run: config, final metrics, curves
    curves = cl_attractors.task_curves(runs)         # one row per run and task

Importing the package loads neither Lightning nor torch; the API loads pandas when first used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_runs", "task_curves"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cl_attractors import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'cl_attractors' has no attribute {name!r}")
