"""An experiment extended and shown: methods added where its findings ask about them, and its
sweeps written as the TOML files and commands that run them.

``add_methods`` puts a method (a plugin's, or any registered one) into an experiment the way
the experiment's own methods are in it: beside every sweep that holds methods of its kind (at
initialization, or after training), with that sweep's sparsities, seeds, prune-at points and
settings, and only the runs that one of the experiment's findings compares (the report's own
``results.comparisons`` and ``findings.first_covering`` decide, as ``design.family_sizes``
counts them), so the method appears in every family it belongs to and adds no run that answers
nothing (GraSP's inverted sweep in ``noninferiority`` is GraSP's finding alone).
"""

from __future__ import annotations

import dataclasses
import json
import math


from pai_bench.config import RunConfig
from pai_bench.analysis.findings import first_covering, with_margin
from pai_bench.methods import METHODS
from pai_bench.analysis.results import comparisons, subject_fields
from pai_bench.sweeps.sweep import SweepSpec

AXES = ("methods", "sparsities", "seeds", "checks", "prune_at")  # SweepSpec's axes, in order
SPEC_FIELD = {"methods": "method", "sparsities": "sparsity", "seeds": "seed",
              "checks": "check", "prune_at": "prune_at"}  # axis -> RunConfig field


def add_methods(specs: list[SweepSpec], findings, methods: tuple[str, ...],
                margin_points: float = 2.0) -> list[SweepSpec]:
    """``specs`` and, for each of ``methods`` (registered names: METHODS.get checks them), a
    sweep of it alone beside each sweep of ``specs`` holding a method of its kind but not it,
    cut to the values of its axes that the findings' comparisons use (none: no such sweep)."""
    added = []
    for name in methods:
        kind = METHODS.get(name).after_training
        for spec in specs:
            if name in spec.methods or not any(
                    METHODS.get(m).after_training == kind for m in spec.methods if m in METHODS):
                continue
            added.append(dataclasses.replace(spec, methods=(name,)))
    if not added:
        return list(specs)
    used = _compared(specs + added, findings, margin_points, set(methods))
    kept, runs = [], set()
    for spec in (_cut(spec, used) for spec in added):
        if spec is not None and not set(spec.configs()) <= runs:  # not another's runs again
            kept.append(spec)
            runs |= set(spec.configs())
    return list(specs) + kept


def _compared(specs: list[SweepSpec], findings, margin_points: float,
              names: set[str]) -> set[RunConfig]:
    """The runs of ``names`` in ``specs`` (at seed 0: every seed is compared alike) that a
    comparison covered by ``findings`` uses, as the compared runs or as their reference (a
    check's unmodified run, an after-training baseline)."""
    import pandas as pd
    configs = list(dict.fromkeys(_seed0(c) for s in specs for c in s.configs()))
    rows = [{**_row(c), "status": "finished", "test_accuracy": 0.5} for c in configs]
    mine = [(c, _row(c)) for c in configs if c.method in names]
    findings = with_margin(findings, margin_points)
    used = set()
    for comp in comparisons(pd.DataFrame(rows)):
        ref = comp["reference"].split(" ")[0]  # "ltr", "snip, unmodified" -> "snip,"
        if comp["method"] not in names and ref not in names:
            continue
        if first_covering(findings, comp["comparison"], comp["method"], comp["check"],
                          comp["prune_at"], model=comp.get("model"),
                          budget=comp.get("budget", "equal")) is None:
            continue
        used |= {c for c, row in mine if _in_comparison(c, row, comp, ref)}
    return used


def _seed0(c: RunConfig) -> RunConfig:
    return dataclasses.replace(c, seed=0)


def _row(c: RunConfig) -> dict:
    """``c`` as a row of ``results.load_runs`` (method options as one string)."""
    row = c.to_dict()
    row["method_args"] = ",".join(f"{k}={v}" for k, v in row.get("method_args", []))
    return row


def _in_comparison(c: RunConfig, row: dict, comp: dict, ref: str) -> bool:
    """Whether run ``c`` is one side of the comparison ``comp``: the check or its unmodified
    run; the compared method; or the after-training reference (same shared setting)."""
    setting = {k: v for k, v in comp.items() if k in row and k not in ("method", "check")}
    if comp["comparison"] == "check":
        return (c.method == comp["method"] and c.check in (comp["check"], "none")
                and _matches(row, setting))
    if c.check != "none":
        return False
    if c.method == comp["method"]:
        return _matches(row, setting)
    shared = {k: v for k, v in setting.items() if k not in subject_fields()}
    return ref == c.method and _matches(row, shared)


def _matches(row: dict, setting: dict) -> bool:
    """Whether ``row`` has the values of ``setting`` (NaN in the table is None in a config)."""
    return all((_missing(v) and _missing(row[k])) or row[k] == v for k, v in setting.items())


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cut(spec: SweepSpec, used: set[RunConfig]) -> SweepSpec | None:
    """``spec`` with each axis cut to the values of its runs in ``used`` (None: none is)."""
    mine = [c for c in spec.configs() if _seed0(c) in used]
    if not mine:
        return None
    cut = {axis: tuple(v for v in getattr(spec, axis)
                       if any(getattr(c, SPEC_FIELD[axis]) == v for c in mine))
           for axis in AXES}
    return dataclasses.replace(spec, **cut)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def sweep_toml(spec: SweepSpec) -> str:
    """``spec`` as the TOML sweep file that runs it (``sweeps.load_spec`` reads it back): the
    axes at top level, the shared settings under ``[run]``."""
    lines = [f"{axis} = {_toml_value(getattr(spec, axis))}" for axis in AXES]
    run = {k: v for k, v in spec.run.items() if v is not None and v != ()}
    if run:
        lines += ["", "[run]"] + [f"{k} = {_toml_value(v)}" for k, v in run.items()]
    return "\n".join(lines) + "\n"


def experiment_toml(specs: list[SweepSpec], title: str, command: str) -> str:
    """Every sweep of ``specs`` as a TOML document, each under a comment naming the command
    that runs it (``command`` with FILE where the document's file goes)."""
    parts = [f"# {title}: {len(specs)} sweep(s); save each document as a file and run it with\n"
             f"# {command}\n"]
    for i, spec in enumerate(specs, 1):
        runs = len(spec.configs())
        parts.append(f"# --- sweep {i} of {len(specs)} ({runs} runs): sweep{i}.toml ---\n"
                     + sweep_toml(spec))
    return "\n".join(parts)
