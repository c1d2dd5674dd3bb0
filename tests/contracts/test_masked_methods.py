"""Replay, A-GEM, LwF, EWC and MAS on a family that masks outputs per task (split MNIST's task and
class scenarios): each memory example scored on its own task's outputs, LwF's distillation per old
head, against sums written out row by row; EWC's and MAS's importance on the task's counted
outputs; then a tiny split run of each method in each scenario."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cl_attractors.methods.agem import AGEM
from cl_attractors.methods.base import CLMethod, MethodContext, Vanilla
from cl_attractors.methods.baseline_formulas import distillation_loss
from cl_attractors.methods.ewc import EWC
from cl_attractors.methods.importance import fisher_diagonal, mas_importance
from cl_attractors.methods.lwf import LwF
from cl_attractors.methods.mas import MAS
from cl_attractors.methods.replay import Replay
from cl_attractors.train.data import TaskData
from cl_attractors.train.families import Split
from cl_attractors.train.networks import MLP
from cl_attractors.train.scenarios import SplitScenario
from tests.helpers import quick_fit

GROUPS = [[0, 1], [2, 3], [4, 5]]
GEN = torch.Generator().manual_seed(0)
X = torch.randn(60, 4, generator=GEN)


def context(scenario: str) -> tuple[nn.Module, MethodContext, SplitScenario]:
    """A Linear(4, 8)-ReLU-Linear(8, outputs) net and a context whose mask lookup is the split's
    (None where every output counts, as ``TaskData.output_mask`` hands it)."""
    split = SplitScenario.build(GROUPS, scenario, 8)  # classes 6, 7 never seen
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, split.num_outputs))

    def sample(task: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        idx = torch.randperm(20, generator=generator)[:n]
        classes = torch.tensor(GROUPS[task])[idx % 2]
        return X[20 * task + idx] + task, split.targets(task)[classes]

    def output_mask(task: int, trained: int) -> Tensor | None:
        mask = split.output_mask(task, trained)
        return None if bool(mask.all()) else mask

    return net, MethodContext(net, sample, 0, output_mask), split


def trained_two_tasks(method: CLMethod, ctx: MethodContext) -> None:
    """The method attached to ``ctx.net``, its state after tasks 0 and 1: ``ctx.task`` is 2,
    the task in training."""
    method.attach(ctx.net)
    for task in range(2):
        ctx.task = task
        method.on_task_end(ctx)
    ctx.task = 2


def row_by_row(logits: Tensor, labels: Tensor, tasks: Tensor, split: SplitScenario, trained: int) -> Tensor:
    """The mean over rows of the cross-entropy of each row's counted outputs, sliced out."""
    losses = []
    for out, label, task in zip(logits, labels, tasks.tolist()):
        counted = split.output_mask(task, trained).nonzero().flatten().tolist()
        losses.append(F.cross_entropy(out[counted][None], torch.tensor([counted.index(int(label))])))
    return torch.stack(losses).mean()


def test_the_context_hides_per_row_the_outputs_its_task_does_not_count() -> None:
    tasks = torch.tensor([0, 1, 0])
    _, ctx, _ = context("task")
    hidden = ctx.hidden_outputs(tasks, 2)
    head0, head1 = [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0]
    assert hidden is not None and (~hidden).long().tolist() == [head0, head1, head0]
    _, ctx, _ = context("class")
    hidden = ctx.hidden_outputs(tasks, 1)
    assert hidden is not None and (~hidden).long().tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]] * 3
    assert context("domain")[1].hidden_outputs(tasks, 2) is None


@pytest.mark.parametrize("scenario", ["task", "class", "domain"])
def test_replay_scores_each_memory_example_on_its_own_tasks_outputs(scenario: str) -> None:
    method = Replay(memory_size=24, batch_size=10, seed=2)
    net, ctx, split = context(scenario)
    trained_two_tasks(method, ctx)
    xm, ym, tasks = method.memory.draw(10, 0)
    assert set(tasks.tolist()) == {0, 1}
    got = method.loss(ctx, X[:4], ym[:4], net(X[:4]))
    assert got is not None
    assert got.item() == pytest.approx(row_by_row(net(xm), ym, tasks, split, 2).item(), rel=1e-6)


@pytest.mark.parametrize("scenario", ["task", "class"])
def test_agem_takes_its_reference_gradient_on_each_examples_own_outputs(scenario: str) -> None:
    method = AGEM(memory_size=24, ref_batch_size=24, seed=1)
    net, ctx, split = context(scenario)
    trained_two_tasks(method, ctx)
    xm, ym, tasks = method.memory.draw(24, 0)
    refs = torch.autograd.grad(row_by_row(net(xm), ym, tasks, split, 2), list(net.parameters()))
    for p, r in zip(net.parameters(), refs):
        p.grad = -r.clone() + 0.01  # conflicts with the memory's gradient
    method.on_before_optimizer_step(ctx, torch.optim.SGD(net.parameters()))
    dot = sum((p.grad * r).sum() for p, r in zip(net.parameters(), refs))  # type: ignore[operator]
    assert abs(float(dot)) < 1e-5  # projected onto the plane orthogonal to the per-row reference


@pytest.mark.parametrize(
    ("scenario", "heads"),
    [("task", [[0, 1], [2, 3]]), ("class", [[0, 1, 2, 3]]), ("domain", [[0, 1]])],
)
def test_lwf_distils_each_old_head_on_its_own_softmax_summed(scenario: str, heads: list[list[int]]) -> None:
    method = LwF(lam=2.0, temperature=3.0)
    net, ctx, split = context(scenario)
    trained_two_tasks(method, ctx)  # the frozen copy: the network at the end of task 1
    frozen = copy.deepcopy(net)
    with torch.no_grad():
        net[2].weight.add_(0.5 * torch.randn(net[2].weight.shape, generator=GEN))  # move away
    x = X[:6] + 2
    got = method.loss(ctx, x, split.targets(2)[torch.tensor([4, 5] * 3)], net(x))
    assert got is not None
    expected = sum(distillation_loss(net(x)[:, h], frozen(x)[:, h], 3.0) for h in heads)
    assert got.item() == pytest.approx(2.0 * float(expected), rel=1e-6)


def test_lwf_zero_target_spans_the_seen_classes_in_the_class_scenario() -> None:
    """``new_outputs="zero_target"``: the trained network's softmax over every class seen (task 2's
    included), the frozen network's over the old ones padded with 0 (van de Ven & Tolias)."""
    method = LwF(lam=2.0, temperature=3.0, new_outputs="zero_target")
    net, ctx, split = context("class")
    trained_two_tasks(method, ctx)
    frozen = copy.deepcopy(net)
    with torch.no_grad():
        net[2].weight.add_(0.5 * torch.randn(net[2].weight.shape, generator=GEN))
    x = X[:6] + 2
    got = method.loss(ctx, x, split.targets(2)[torch.tensor([4, 5] * 3)], net(x))
    assert got is not None
    target = F.pad(F.softmax(frozen(x)[:, :4] / 3.0, -1), (0, 2))  # classes 4, 5: probability 0
    expected = -(target * F.log_softmax(net(x)[:, :6] / 3.0, -1)).sum(1).mean()
    assert got.item() == pytest.approx(2.0 * expected.item(), rel=1e-6)


@pytest.mark.parametrize("scenario", ["task", "class", "domain"])
@pytest.mark.parametrize("name", ["ewc_true", "mas"])
def test_a_penalty_consolidates_each_task_on_the_outputs_it_counted(scenario: str, name: str) -> None:
    """The read-out rows a task's loss never counted get no importance (a head per task: the
    other heads; class-incremental: the classes not yet seen), and each task's importance is the
    estimator's on its own mask, as the context hands it."""
    method: EWC | MAS = EWC(lam=1.0, fisher="true", fisher_samples=20) if name == "ewc_true" else MAS(1.0, 20)
    net, ctx, split = context(scenario)
    method.attach(net)
    importance = torch.zeros_like(net[2].weight)
    for task in range(2):
        ctx.task = task
        x, y = method.draw(ctx, 20, 0)
        params, mask = dict(net.named_parameters()), ctx.output_mask(task, task)
        if name == "mas":
            new = mas_importance(net, params, x, mask=mask)
        else:
            new = fisher_diagonal(net, params, x, y, "true", mask=mask)
        importance += new["2.weight"]
        method.on_task_end(ctx)
        torch.testing.assert_close(method.per_target(method.weight_name)[2], importance)
        counted = split.output_mask(task, task)
        assert bool((new["2.weight"][~counted] == 0).all()) and bool((new["2.weight"][counted] != 0).any())
    rows = importance.abs().sum(1) > 0
    seen = {"task": [1, 1, 1, 1, 0, 0], "class": [1, 1, 1, 1, 0, 0, 0, 0], "domain": [1, 1]}
    assert rows.long().tolist() == seen[scenario]


# ---- tiny split runs: every method in every scenario -------------------------------------------
OUTPUTS = {"task": (2, 3), "domain": (2, 1), "class": (10, 1)}  # num_classes, heads of the MLP
METHODS = {
    "vanilla": lambda: Vanilla(),
    "replay": lambda: Replay(memory_size=60, batch_size=8),
    "agem": lambda: AGEM(memory_size=60, ref_batch_size=16),
    "lwf": lambda: LwF(lam=1.0, temperature=2.0),
    "ewc": lambda: EWC(lam=100.0, fisher="true", fisher_samples=32),
    "mas": lambda: MAS(lam=1.0, samples=32),
}
PENALTIES = {"ewc", "mas"}


class ReadOut(pl.Callback):
    """The read-out layer's weights at every task's end (one epoch a task)."""

    def __init__(self) -> None:
        self.weights: list[Tensor] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.weights.append(pl_module.net[-1].weight.detach().clone())  # type: ignore[index]


def split_fit(method: CLMethod, scenario: str) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Three tasks of synthetic split data: the accuracy matrix, the read-out's initial weights
    and its weights at each task's end."""
    dm = TaskData(
        family=Split(scenario, groups=GROUPS),
        source="synthetic",
        synthetic_size=256,
        num_tasks=3,
        batch_size=16,
        steps_per_chunk=2,
    )
    pl.seed_everything(0, verbose=False)
    net = MLP(784, [16], *OUTPUTS[scenario])
    start = net[-1].weight.detach().clone()
    read_out = ReadOut()
    matrix = quick_fit(net, method, dm, read_out)
    return matrix, start, read_out.weights


@pytest.mark.parametrize("scenario", sorted(OUTPUTS))
@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_method_trains_only_the_outputs_its_scenario_counts(name: str, scenario: str) -> None:
    A, start, ends = split_fit(METHODS[name](), scenario)
    assert A.shape == (3, 3) and bool(torch.isfinite(A).all() and (A >= 0).all() and (A <= 1).all())
    if scenario == "class":  # classes 6..9 are never seen: no method may touch their outputs
        assert torch.equal(ends[-1][6:], start[6:]), name
    if scenario == "task":  # task 2's head before task 2: untouched (no importance, no pull)
        assert torch.equal(ends[1][4:], start[4:]), name
    if scenario == "task" and name not in PENALTIES:  # task 0's head, after task 0: only what
        # remembers task 0 moves it (a penalty's pull at its anchor is rounding noise Adam scales)
        moved = not torch.equal(ends[-1][:2], ends[0][:2])
        assert moved == (name != "vanilla"), name
