"""The dependency rules of CONTRIBUTING.md, checked on every import statement of the package.

Layers, lowest first; a module may import its own layer and the layers below, never above:

    0  cl_attractors.errors, .io, .metrics,      pure helpers, the maths of the accuracy matrix,
       .plots, .paths, .runs, .repair,         figures (drawn in training and in reports), config
       .transfer, .schedule, .signatures       paths, saved runs as pandas tables, a finished
                                               run's outputs repaired, untrusted trees copied,
                                               the task schedule, constructor arguments
    1  cl_attractors.methods, callbacks           CL methods (gradient space) and Lightning callbacks
    2  cl_attractors.train, .replicas             LightningModule, datamodule, task families, sources,
                                               networks, LightningCLI; R runs as one model
    3  cl_attractors.grid                         experiment specs and their typed report options, their
                                               checks before any run, and the runners of `fit`
                                               processes (the local pool; Dask; replica groups)
    4  cl_attractors.report                       from saved runs only: aggregate, stats, claims, plots
    5  cl_attractors.tune, .commands              the `tune`, `experiment`, `report` and `merge` commands
    6  cli                                        the command line (nothing imports it)

Besides the layers: metrics.py, paths.py, runs.py, schedule.py, report/, the search space, the
methods, the task families and the networks import no Lightning;
grid/ never imports train/ (a run is a `fit` process); methods never import callbacks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

LAYERS = {
    "cl_attractors.errors": 0,
    "cl_attractors.io": 0,
    "cl_attractors.metrics": 0,
    "cl_attractors.plots": 0,
    "cl_attractors.paths": 0,
    "cl_attractors.runs": 0,
    "cl_attractors.repair": 0,
    "cl_attractors.transfer": 0,
    "cl_attractors.schedule": 0,
    "cl_attractors.stability": 0,
    "cl_attractors.signatures": 0,
    "cl_attractors.methods": 1,
    "callbacks": 1,
    "cl_attractors.train": 2,
    "cl_attractors.replicas": 2,
    "cl_attractors.grid": 3,  # every module of grid/: one layer
    "cl_attractors.report": 4,
    "cl_attractors.tune": 5,
    "cl_attractors.commands": 5,  # experiment, report, merge: above grid/ and report/
    "cl_attractors": 5,  # the package's __init__ (its API for notebooks); not a prefix
    "cli": 6,
}
NO_LIGHTNING = (
    "callbacks.summary",
    "cl_attractors.metrics",
    "cl_attractors.paths",
    "cl_attractors.runs",
    "cl_attractors.schedule",
    "cl_attractors.stability",
    "cl_attractors.plots",
    "cl_attractors.report",
    "cl_attractors.tune.space",
    "cl_attractors.methods",  # a method sees the run through MethodContext only
    "cl_attractors.train.families",
    "cl_attractors.train.networks",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int | None:
    """The layer of the longest registered prefix of ``module`` (None: not ours; a new module of
    the package has none until it is given one)."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or (module.startswith(prefix + ".") and prefix != "cl_attractors"):
            return LAYERS[prefix]
    return None


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports count too)."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [f"{node.module}.{alias.name}" for alias in node.names]
    return out


SOURCES = sorted(
    [*(ROOT / "cl_attractors").rglob("*.py"), *(ROOT / "callbacks").glob("*.py"), ROOT / "cli.py"]
)


def violations(name: str, targets: list[str]) -> list[str]:
    """The rules broken by module ``name`` importing ``targets``."""
    own, found = layer(name), []
    if own is None:
        return [f"{name} has no layer: add it to LAYERS and CONTRIBUTING.md"]
    for target in targets:
        theirs = layer(target)
        if target == "cli" or (theirs is not None and theirs > own):
            found.append(f"{name} (layer {own}) imports {target} (layer {theirs})")
        if name.startswith(NO_LIGHTNING) and target.startswith("lightning"):
            found.append(f"{name} imports {target}: no Lightning here")
        if name.startswith("cl_attractors.grid") and target.startswith(("cl_attractors.train", "callbacks")):
            found.append(f"{name} imports {target}: a grid run is a fit process")
        if name.startswith("cl_attractors.report") and target.startswith(
            ("cl_attractors.train", "callbacks")
        ):
            found.append(f"{name} imports {target}: reports read saved runs only")
        if name.startswith("cl_attractors.methods") and target.startswith("callbacks"):
            found.append(f"{name} imports {target}: methods know no callbacks")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    assert violations(module_name(path), imports(path)) == []


def test_the_checker_finds_each_kind_of_violation(tmp_path: Path) -> None:
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from cl_attractors.train.module import CLModule\n")
    assert "cl_attractors.train.module.CLModule" in imports(lazy)
    assert violations("cl_attractors.report.render", imports(lazy)) != []
    assert violations("cl_attractors.grid.runner", ["cl_attractors.train.cli"]) != []
    assert violations("cl_attractors.metrics", ["lightning.pytorch"]) != []
    assert violations("cl_attractors.methods.ewc", ["callbacks.task_sequence"]) != []
    assert violations("cl_attractors.tune.study", ["cli"]) != []
    assert violations("cl_attractors.grid.spec", ["cl_attractors.report.render"]) != []
    assert violations("cl_attractors.commands.experiment", ["cl_attractors.report.render"]) == []
    assert violations("cl_attractors.newthing", []) != []
    assert violations("cl_attractors.tune.study", ["cl_attractors.train.cli", "optuna"]) == []
