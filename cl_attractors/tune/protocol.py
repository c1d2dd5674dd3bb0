"""One study, one protocol: a study stores the fit arguments and search space it was made with
and the code versions that ran its trials (Optuna user attributes, shown by optuna-dashboard and in
``best_method.yaml``). A process whose fit arguments or space differ cannot join it: its trials
would not be comparable (Eq. 2 of 2 tasks tops at 1/2, of 10 at 1/10)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from cl_attractors.errors import ConfigError
from cl_attractors.report.provenance import code_version

MATCHED = ("fit_args", "space")  # a joining process must bring these unchanged


def protocol(fit_args: Sequence[str], space: Any) -> dict[str, Any]:
    """What a study records about how its trials are made."""
    return {"fit_args": [str(a) for a in fit_args], "space": space}


def _differ(theirs: list[str], ours: list[str]) -> tuple[str, str]:
    """The two argument lists from their first difference on."""
    i = next((k for k, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
    return " ".join(theirs[i:]) or "(nothing more)", " ".join(ours[i:]) or "(nothing more)"


def check_protocol(study: optuna.Study, ours: dict[str, Any], where: str) -> list[str]:
    """Record ``ours`` on a new study, or refuse to join one made with another protocol (one-line
    :class:`ConfigError` naming the difference); adds this code version to the study's list.
    Returns notes to print (a study made before protocols were recorded)."""
    attrs, notes = study.user_attrs, []
    if "fit_args" not in attrs:
        if study.get_trials(deepcopy=False):
            notes.append(
                f"study {study.study_name!r} recorded no protocol (made before protocols were stored); "
                "recording this command's fit arguments and space"
            )
        for key, value in ours.items():
            study.set_user_attr(key, value)
    for key in MATCHED:
        if attrs.get(key, ours[key]) != ours[key]:
            if key == "fit_args":
                theirs, given = _differ(list(attrs[key]), list(ours[key]))
                what = f"fit arguments: it was made with `{theirs}`, this command gives `{given}`"
            else:
                what = f"search space: it was made with {attrs[key]}, this command gives {ours[key]}"
            raise ConfigError(
                f"study {study.study_name!r} in {where} has other {what}; join it with its own "
                "arguments, or start another study (--study_name or --out_dir)"
            )
    code = code_version() or "unknown"
    versions = list(attrs.get("code_versions") or [])
    if code not in versions:
        study.set_user_attr("code_versions", [*versions, code])
    return notes


def protocol_lines(study: optuna.Study) -> list[str]:
    """The study's recorded protocol as comment lines (for ``best_method.yaml``)."""
    attrs = study.user_attrs
    if "fit_args" not in attrs:
        return ["# protocol: not recorded (a study made before protocols were stored)"]
    return [
        f"# protocol (fit arguments of every trial): {' '.join(attrs['fit_args'])}",
        f"# code versions that ran its trials: {', '.join(attrs.get('code_versions') or ['unknown'])}",
    ]
