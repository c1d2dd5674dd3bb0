"""A benchmark never prints an impossible number (issue 22: bench_throughput printed a fraction
of the matmul ceiling of 5.8 under load): above 1 it is flagged and left out."""

from __future__ import annotations

import importlib.util

from tests.helpers import ROOT


def test_a_fraction_of_the_ceiling_above_one_is_flagged_not_printed() -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_throughput", ROOT / "benchmarks" / "bench_throughput.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.ceiling_fraction(0.42) == (0.42, False)
    assert bench.ceiling_fraction(5.8) == (None, True)
    assert "measured while other work loaded the cores" in bench.CEILING_NOTE
