"""Results as data: every finished run under a results folder as one tidy pandas row, and the
verdicts computed from them: every comparison the report makes (a check against its
unmodified method, a method against random, a method against an after-training baseline),
answered as its finding asks (``pai_bench.analysis.findings``, ``pai_bench.analysis.verdicts``).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench import paths
from pai_bench.artifacts import read_summary
from pai_bench.config import RunConfig, fields_of, setting_fields
from pai_bench.errors import ConfigError
from pai_bench.analysis.findings import (PAPER_FINDINGS, after_training, default_margin_points,
                                first_covering, with_margin)
from pai_bench.analysis.reference import read_reference
from pai_bench.analysis.verdicts import (INCONCLUSIVE, MIN_SEEDS, answer, detectable_difference, holm,
                                read, seeds_to_settle)

METRICS = ["status", "test_accuracy", "test_loss", "kept", "prunable", "effective_sparsity",
           "ineffective_kept", "dense_test_accuracy", "seconds", "hash"]
COSTS = ["train_epochs", "dense_train_epochs", "train_macs", "inference_macs",
         "dense_inference_macs"]
# wall-clock seconds per epoch of the sparse training, and the machine that measured them
# (its CPU or GPU, ``precision.machine``; absent from summaries written before it was recorded)
# and the torch threads of the sparse training (a CPU run's last digits depend on them:
# docs/running.md, "Determinism"; absent from summaries written before issue 37); the seconds
# the method took to compute the masks the run derives from (``runner.scoring_seconds``; absent
# before issue 38)
MEASURED = ["seconds_per_epoch", "machine", "threads", "scoring_seconds"]


def load_runs(results_dir, configs=None, config_cls: type = RunConfig, *,
              references=()) -> pd.DataFrame:
    """One row per run summary under ``<results_dir>/runs`` (only those of ``configs`` if
    given); unreadable files are skipped with a warning that names them. A folder without
    runs gives no rows; a folder that does not exist is a ConfigError naming it (a mistyped
    path is not an empty result).

    ``results_dir`` may be several folders, and ``references`` reference files
    (``pai_bench.analysis.reference``: their stale rows are listed and left out) read beside them. A
    run found twice (one hash) counts once, the first found: folders first, in order. The
    column ``source`` names the folder or file of each row."""
    import pandas as pd
    folders = [results_dir] if isinstance(results_dir, (str, Path)) else list(results_dir)
    frames = [_folder_runs(f, configs, config_cls).assign(source=str(f)) for f in folders]
    frames += [read_reference(r, config_cls, configs).assign(source=str(r)) for r in references]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    runs = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return runs.drop_duplicates("hash", keep="first").reset_index(drop=True)


def _folder_runs(results_dir: Path | str, configs, config_cls: type) -> pd.DataFrame:
    """The runs stored under one results folder (``load_runs``)."""
    import pandas as pd
    if not Path(results_dir).is_dir():
        raise ConfigError(f"results folder {results_dir} does not exist")
    rows = []
    if configs is None:
        found = paths.summaries(results_dir)
    else:
        found = [paths.run_dir(results_dir, c) / paths.SUMMARY for c in configs]
        found = [f for f in found if f.exists()]
    for path in found:
        # a summary that is not a valid one of its folder's run is moved aside (artifacts.py)
        summary = read_summary(path, path.parent.name.rpartition("-")[2], config_cls)
        if summary is None:
            continue
        config = config_cls.from_dict(summary["config"]).to_dict()  # canonical, complete
        config["method_args"] = ",".join(f"{k}={v}" for k, v in config.get("method_args", []))
        row = {**config, **{k: summary.get(k) for k in METRICS},
               **{k: (summary.get("cost") or {}).get(k) for k in COSTS},
               **{k: summary.get(k) for k in MEASURED},
               "achieved_sparsity": summary.get("sparsity")}
        rows.append(row)
    return pd.DataFrame(rows)


def verdicts(runs: pd.DataFrame, alpha: float = 0.05, config_cls: type = RunConfig,
             findings=None, margin_points: float | None = None) -> pd.DataFrame:
    """Every comparison of ``runs`` with >= 2 finished seeds on each side, answered by the first
    of ``findings`` (default: ``findings.PAPER_FINDINGS``) that covers it; comparisons no finding
    covers are left out, and so are those that answer no question (a check that leaves its
    method what it was: ``findings.answers_no_question``), out of every Holm family.
    ``margin_points``: δ in accuracy points for findings without their own (default:
    ``findings.default_margin_points``); ``alpha``: for findings without their own.

    Columns: the setting, ``comparison`` (check, random, after training), ``reference``,
    ``family`` and ``claim`` (the finding), then ``verdicts.answer``'s (question, margin as a
    fraction, alpha, seeds per group, accuracies, difference, its 1 - 2α Welch interval, the
    question's p-value and its opposite's, pooled SD), ``family_size``, ``p_adjusted`` and
    ``p_opposite_adjusted`` (Holm within the family), ``reading`` (``verdicts.read``),
    ``detectable_difference`` (at 80% power, level α/family_size) and
    ``seeds_to_settle`` (per group, for inconclusive rows; empty where no number would).
    Diverged runs count as missing."""
    import pandas as pd
    points = margin_points if margin_points is not None else default_margin_points(runs)
    findings = with_margin(PAPER_FINDINGS if findings is None else findings, points)
    rows = []
    for c in comparisons(runs, config_cls):
        a, b = c.pop("a"), c.pop("b")
        f = first_covering(findings, c["comparison"], c["method"], c["check"], c["prune_at"],
                           model=c.get("model"), budget=c.get("budget", "equal"))
        if f is None or len(a) < MIN_SEEDS or len(b) < MIN_SEEDS:
            continue
        level = f.alpha if f.alpha is not None else alpha
        rows.append({**c, "family": f.family, "claim": f.claim,
                     **answer(a, b, f.question, f.margin_points / 100, level)})
    if not rows:
        return pd.DataFrame()
    rank = {family: i for i, family in enumerate(dict.fromkeys(f.family for f in findings))}
    table = pd.DataFrame(rows).sort_values("family", key=lambda s: s.map(rank), kind="stable")
    return _adjust(table.reset_index(drop=True))  # one finding's rows together, in its order


def _adjust(table: pd.DataFrame) -> pd.DataFrame:
    """Holm within each family (the claims' p-values, and apart their opposites'), then the
    reading and the power columns of every row."""
    import pandas as pd
    table["family_size"] = table.groupby("family")["p_value"].transform("size")
    table["p_adjusted"] = _holm_per_family(table, "p_value")
    table["p_opposite_adjusted"] = _holm_per_family(table, "p_opposite")  # as carefully
    table["reading"] = [read(q, p, a, po) for q, p, a, po in
                        zip(table["question"], table["p_adjusted"], table["alpha"],
                            table["p_opposite_adjusted"])]
    rows = table.to_dict("records")
    table["detectable_difference"] = [detectable_difference(
        r["seeds"], r["seeds_reference"], r["sd_pooled"], r["question"], r["alpha"],
        r["family_size"]) for r in rows]
    table["seeds_to_settle"] = pd.array([seeds_to_settle(
        r["difference"], r["sd_pooled"], r["question"], r["margin"], r["alpha"],
        r["family_size"]) if r["reading"] == INCONCLUSIVE else None for r in rows], dtype="Int64")
    return table


def _holm_per_family(table: pd.DataFrame, column: str) -> pd.Series:
    import pandas as pd
    adjusted = pd.Series(index=table.index, dtype=float)
    for idx in table.groupby("family").groups.values():
        adjusted[idx] = holm(table.loc[idx, column])
    return adjusted


def subject_fields(config_cls: type = RunConfig) -> list[str]:
    """The pruning fields that make a method's run what it is (method, check, prune_at,
    rounds, ...): every pruning field but the sparsity and scope, which compared runs share."""
    return [f.name for f in fields_of(config_cls, ("pruning",))
            if f.name not in ("sparsity", "scope")]


def comparisons(runs: pd.DataFrame, config_cls: type = RunConfig) -> list[dict]:
    """Every comparison the report makes, as {setting fields, comparison, reference, a, b}
    (a, b: the finished seeds' accuracies, compared and reference): each check against its
    unmodified method; each unmodified method at initialization against random pruning at
    step 0 and against each unmodified after-training baseline, in the same setting."""
    # diverged runs are counted beside the finished ones (a setting whose runs all diverged
    # still has its comparisons, with no accuracy), never averaged
    done = runs[runs["status"].isin(COUNTED)] if len(runs) else runs
    if not len(done):
        return []
    out = []
    keys = [c for c in setting_fields(config_cls, exclude=("seed", "check")) if c in done.columns]
    for cell, group in done.groupby(keys, dropna=False, sort=True):
        base = _accuracies(group[group["check"] == "none"])
        fields = dict(zip(keys, cell))
        for check, sub in group[group["check"] != "none"].groupby("check"):
            out.append({**fields, "check": check, "comparison": "check",
                        "reference": f"{_label(fields, config_cls)}, unmodified",
                        "a": _accuracies(sub), "b": base,
                        **_diverged(sub, group[group["check"] == "none"])})
    subject = [c for c in subject_fields(config_cls) if c in done.columns]
    shared = [c for c in setting_fields(config_cls, exclude=("seed", *subject))
              if c in done.columns]
    for cell, group in done[done["check"] == "none"].groupby(shared, dropna=False, sort=True):
        runs_of = {key: sub for key, sub in group.groupby(subject, dropna=False, sort=True)}
        named = {key: dict(zip(subject, key)) for key in runs_of}
        # random pruning trained as long as the method (the same ``budget``); the
        # after-training baselines, whatever the method's budget (what "matched" matches)
        refs = [("random", k) for k, s in named.items()
                if s["method"] == "random" and _unmodified(s, config_cls, ("method", "budget"))]
        refs += [("after training", k) for k, s in named.items()
                 if after_training(s["method"]) and s["prune_at"] == 0]
        for key, s in named.items():
            if after_training(s["method"]):
                continue
            for kind, ref in refs:
                if ref != key and (kind != "random"
                                   or named[ref].get("budget") == s.get("budget")):
                    out.append({**dict(zip(shared, cell)), **s, "comparison": kind,
                                "reference": _label(named[ref], config_cls),
                                "a": _accuracies(runs_of[key]), "b": _accuracies(runs_of[ref]),
                                **_diverged(runs_of[key], runs_of[ref])})
    return out


COUNTED = ("finished", "diverged")  # the runs a table counts; failed ones are not results


def _accuracies(rows: pd.DataFrame) -> list[float]:
    return rows.loc[rows["status"] == "finished", "test_accuracy"].astype(float).tolist()


def _diverged(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, int]:
    """The diverged seeds of the compared runs ``a`` and of the reference ``b``."""
    return {"diverged": int((a["status"] == "diverged").sum()),
            "diverged_reference": int((b["status"] == "diverged").sum())}


def _unmodified(fields: dict, config_cls: type, but: tuple[str, ...] = ()) -> bool:
    """Whether every subject field in ``fields`` (but ``but``) is at its default."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    return all(_is_default(v, defaults[k]) for k, v in fields.items()
               if k in defaults and k not in but)


def _is_default(value, default) -> bool:
    import pandas as pd
    if default is None or default == ():  # None and () are NaN and "" in the table
        return value is None or value == "" or (not isinstance(value, str) and pd.isna(value))
    return value == default


def _label(fields: dict, config_cls: type) -> str:
    """A method and its non-default subject fields but the check: "ltr", "ltr rounds=5"."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    extra = [f"{k}={v}" for k, v in fields.items() if k in subject_fields(config_cls)
             and k not in ("method", "check") and not _is_default(v, defaults[k])]
    return " ".join([str(fields["method"]), *extra])


def reading(difference: float, p: float, alpha: float = 0.05) -> str:
    """The two-sided reading of ``compare``: "better" or "worse" when p < alpha, else "no
    significant difference" (with few seeds, not evidence of sameness: ``verdicts`` asks the
    directional questions that can say "not worse")."""
    if p >= alpha:
        return "no significant difference"
    return "better" if difference > 0 else "worse"


def compare(a: list[float], b: list[float], alpha: float = 0.05) -> dict:
    """The two-sided question "do mean(a) and mean(b) differ?": Welch's t-test (statsmodels,
    unequal variances) with a 1 - alpha interval. Kept for callers that ask it; the report asks
    its findings' directional questions (``verdicts``)."""
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW
    cm = CompareMeans(DescrStatsW(a), DescrStatsW(b))
    diff = float(cm.d1.mean - cm.d2.mean)
    if cm.std_meandiff_separatevar == 0:
        p, low, high = (1.0 if diff == 0 else 0.0), diff, diff
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(cm.ttest_ind(usevar="unequal")[1])
            low, high = (float(x) for x in cm.tconfint_diff(alpha=alpha, usevar="unequal"))
    return dict(seeds=len(a), seeds_original=len(b), accuracy=float(cm.d1.mean),
                accuracy_original=float(cm.d2.mean), difference=diff, ci_low=low, ci_high=high,
                p_value=p, reading=reading(diff, p, alpha))
