"""Our numbers beside a published table: SDs as the source computed them, verdicts, bad input."""

from __future__ import annotations

import math

import pytest

from cl_attractors.errors import ConfigError
from cl_attractors.report.published import check_published, compare, published_markdown
from cl_attractors.report.stats import mean_ci


def agg(finals: dict[str, list[float]]) -> dict:
    return {
        "variants": {
            name: {"label": name.upper(), "final": {"final_avg_acc": mean_ci(values)}}
            for name, values in finals.items()
        },
        "missing": [],
    }


PUBLISHED = {"source": "T2", "values": {"a": [90.0, 1.0], "b": [50.0, 2.0], "c": [10.0, 0.5]}}


def test_rows_use_the_sources_sd_and_two_sd_verdicts() -> None:
    rows = {r["variant"]: r for r in compare(agg({"a": [0.91, 0.93], "b": [0.40, 0.40]}), PUBLISHED)}
    a = rows["a"]
    assert math.isclose(a["ours"], 92.0) and math.isclose(a["our_sd"], 1.0)  # population SD
    assert math.isclose(a["sds"], 2.0) and a["verdict"] == "agrees" and a["n"] == 2
    assert rows["b"]["verdict"] == "differs (5.0 SDs)" and math.isclose(rows["b"]["sds"], -5.0)
    assert rows["c"]["verdict"] == "not run yet" and rows["c"]["ours"] is None
    sample = compare(agg({"a": [0.91, 0.93]}), {**PUBLISHED, "sd": "sample"})[0]
    assert math.isclose(sample["our_sd"], math.sqrt(2.0))


def test_markdown_has_one_row_per_published_variant() -> None:
    text = published_markdown(agg({"a": [0.9]}), PUBLISHED)
    assert "| A | 1 | 90.00 ± 0.00 | 90.00 ± 1.00 | +0.00 | +0.0 | **agrees** |" in text
    assert text.count("**not run yet**") == 2 and "## Beside the published numbers: T2" in text


@pytest.mark.parametrize(
    ("published", "message"),
    [
        ([1], r"^published=\[1\] is not allowed"),
        ({"values": {"a": [1, 1]}}, r"^published\.source=None"),
        ({"source": "x", "values": {"z": [1]}}, r"^published\.values\.z=\[1\] is not allowed"),
        ({"source": "x", "values": {"a": [1, -1]}}, r"^published\.values\.a=\[1, -1\]"),
        ({"source": "x", "values": {"a": [1, float("nan")]}}, r"^published\.values\.a="),
        ({"source": "x", "values": {"a": [1, 1]}, "sd": "iqr"}, r"^published\.sd='iqr'"),
        ({"source": "x", "values": {"a": [1, 1]}, "metric": "acc"}, r"^published\.metric='acc'"),
        ({"source": "x", "values": {"a": [1, 1]}, "extra": 1}, r"^published\.extra is not a key"),
    ],
)
def test_bad_published_tables_name_the_key(published: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_published(published)
