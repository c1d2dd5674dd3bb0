"""Summaries of the accuracy matrix on hand-written matrices."""

import math

import pytest
import torch

from cl_attractors import metrics

# A[i, j]: accuracy on task i after training task j
A3 = torch.tensor([[0.9, 0.8, 0.7], [0.1, 0.95, 0.85], [0.2, 0.15, 0.99]], dtype=torch.float64)


def test_average_over_seen_tasks_uses_the_upper_triangle() -> None:
    expected = [0.9, (0.8 + 0.95) / 2, (0.7 + 0.85 + 0.99) / 3]
    assert metrics.avg_acc_seen(A3).tolist() == pytest.approx(expected)


def test_average_over_previous_tasks_is_nan_at_the_first_task() -> None:
    out = metrics.avg_acc_previous(A3)
    assert math.isnan(out[0])
    assert out[1:].tolist() == pytest.approx([0.8, (0.7 + 0.85) / 2])


def test_current_accuracy_is_the_diagonal() -> None:
    assert metrics.current_acc(A3).tolist() == pytest.approx([0.9, 0.95, 0.99])


def test_backward_transfer_and_forgetting() -> None:
    assert metrics.bwt(A3) == pytest.approx(((0.7 - 0.9) + (0.85 - 0.95)) / 2)
    # forgetting of task 0: best before the end is max(0.9, 0.8) = 0.9, final 0.7
    assert metrics.forgetting(A3) == pytest.approx(((0.9 - 0.7) + (0.95 - 0.85)) / 2)


def test_forgetting_uses_the_best_accuracy_not_the_first() -> None:
    A = torch.tensor([[0.5, 0.9, 0.6], [0.0, 0.8, 0.8], [0.0, 0.0, 0.7]], dtype=torch.float64)
    assert metrics.forgetting(A) == pytest.approx(((0.9 - 0.6) + 0.0) / 2)
    assert metrics.bwt(A) == pytest.approx(((0.6 - 0.5) + 0.0) / 2)


def test_forward_transfer_against_the_untrained_network() -> None:
    initial = torch.tensor([0.1, 0.12, 0.08], dtype=torch.float64)
    assert metrics.fwt(A3, initial) == pytest.approx(((0.1 - 0.12) + (0.15 - 0.08)) / 2)
    assert math.isnan(metrics.fwt(A3, None))


def test_eq2_exactly_as_printed() -> None:
    # sum_j log(j)/j * sum_{i<=j} A(i,j)  /  (N * sum_j log j), j = 1..N
    num = (math.log(1) / 1) * 0.9 + (math.log(2) / 2) * (0.8 + 0.95) + (math.log(3) / 3) * (0.7 + 0.85 + 0.99)
    den = 3 * (math.log(1) + math.log(2) + math.log(3))
    assert metrics.eq2(A3) == pytest.approx(num / den)
    assert metrics.eq2_weighted_mean(A3) == pytest.approx(3 * num / den)


def test_eq2_maximum_is_one_over_n_with_the_printed_normalisation() -> None:
    for n in (2, 5, 10):
        assert metrics.eq2(torch.ones(n, n)) == pytest.approx(1 / n)
        assert metrics.eq2_weighted_mean(torch.ones(n, n)) == pytest.approx(1.0)


def test_eq2_single_task_takes_the_limit_convention() -> None:
    A = torch.tensor([[0.7]], dtype=torch.float64)
    assert metrics.eq2(A) == pytest.approx(0.7)
    assert math.isnan(metrics.bwt(A)) and math.isnan(metrics.forgetting(A))


def test_eq2_ignores_the_lower_triangle() -> None:
    B = A3.clone()
    B[2, 0] = B[1, 0] = B[2, 1] = 0.0
    assert metrics.eq2(B) == metrics.eq2(A3)


def test_non_square_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="square"):
        metrics.avg_acc_seen(torch.zeros(2, 3))


def test_summarize_is_json_ready() -> None:
    import json

    s = metrics.summarize(A3, torch.tensor([0.1, 0.1, 0.1]))
    assert s["avg_acc_previous"][0] is None
    assert s["final_avg_acc"] == pytest.approx((0.7 + 0.85 + 0.99) / 3)
    json.dumps(s, allow_nan=False)


def test_fwt_against_the_independent_reference() -> None:
    A = torch.tensor([[0.9, 0.8, 0.7], [0.1, 0.95, 0.9], [0.2, 0.3, 0.8]], dtype=torch.float64)
    fresh = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9]], dtype=torch.float64)
    assert metrics.fwt_independent(A, fresh) == pytest.approx(((0.95 - 0.9) + (0.8 - 0.9)) / 2)
    assert math.isnan(metrics.fwt_independent(A[:1, :1], fresh[:1, :1]))
    with pytest.raises(ValueError, match="reference matrix has shape"):
        metrics.fwt_independent(A, fresh[:2, :2])
