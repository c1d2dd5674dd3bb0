"""The two-attractor sticky gradient (``methods/sticky_two.py``) through its hooks and in a tiny run:
it trains, checkpoints, continues identically from its state, and reports both dips' fractions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from cl_attractors.methods.formulas import TwoDips
from cl_attractors.methods.sticky_two import TwoAttractorSticky
from cl_attractors.train.cli import make_cli
from tests.helpers import fake_context, paper_method, tiny_args, tiny_net, train_steps

CONFIG = "configs/method/sticky_two_attractors.yaml"


def test_tiny_run_trains_and_checkpoints(tmp_path: Path) -> None:
    make_cli(tiny_args(tmp_path, "--model.method", CONFIG, num_tasks=2))
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["complete"] and summary["final_avg_acc"] > 0.2  # 10 classes: chance is 0.1
    state = torch.load(tmp_path / "checkpoints" / "task_01.ckpt", weights_only=True)["state_dict"]
    assert any(k.startswith("method.") for k in state), sorted(state)


def test_uses_two_dips_and_reports_both_fractions() -> None:
    method = paper_method("sticky_two_attractors", stats_every=1)
    assert isinstance(method, TwoAttractorSticky) and isinstance(method.dip, TwoDips)
    net, opt = tiny_net(method)
    with torch.no_grad():
        net[0].weight.fill_(2.0)  # far from both attractors
        net[0].weight[:2] = -0.279  # 8 of the 59 target values sit at a2
    train_steps(method, net, opt, 3)
    stats = method.on_task_end(fake_context(net, 0))
    assert 0.0 < stats["dip2_fraction"] < 1.0 and 0.0 <= stats["dip_fraction"] < 1.0
    assert 0.0 < stats["gated_fraction"] <= 1.0


def test_state_round_trip_continues_identically() -> None:
    method = paper_method("sticky_two_attractors", stats_every=3)
    net, opt = tiny_net(method)
    train_steps(method, net, opt, 5)
    method.on_task_end(fake_context(net, 0))
    fresh = paper_method("sticky_two_attractors", stats_every=3)
    net2, opt2 = tiny_net(fresh, seed=99)
    net2.load_state_dict(net.state_dict())
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    fresh.load_state_dict(method.state_dict())
    train_steps(method, net, opt, 4, seed=7)
    train_steps(fresh, net2, opt2, 4, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))
