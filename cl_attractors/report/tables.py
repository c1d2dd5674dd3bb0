"""pandas tables of the reports: CSV (six decimals, empty cells for missing values) and markdown."""

from __future__ import annotations

import pandas as pd


def to_csv(df: pd.DataFrame) -> str:
    """CSV text without the index; floats with six decimals, None/NaN as empty cells."""
    return df.to_csv(index=False, float_format="%.6f", lineterminator="\n")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table of ``df`` (cells as they are, the index dropped)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |\n"
    rule = "|" + "---|" * len(df.columns) + "\n"
    body = "".join("| " + " | ".join(map(str, row)) + " |\n" for row in df.itertuples(index=False))
    return head + rule + body
