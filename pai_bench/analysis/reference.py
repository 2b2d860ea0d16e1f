"""Reference results: stored runs as one CSV file in the repository, read back beside a folder.

A reference file (``results/reference/*.csv``, written by ``python -m pai_bench reference export
RESULTS_DIR --out FILE``) holds one row per run: every configuration field, the hash, and what
the run measured (``RESULT_COLUMNS``: accuracy, loss, sparsities, cost, seconds, machine,
threads where recorded, the torch version). ``results.load_runs`` reads such files beside
results folders, so ``table`` and ``plot`` compare a new method's local runs with them.

A row counts only for the configuration whose hash *this* code computes from the row's fields:
a field added since (with its default: old hashes stay valid) is filled in, but a changed
default, a removed field, an unknown method option or any other difference gives another hash,
and the row is stale. Stale rows are left out and listed on stderr (one line each, the first
``SHOWN_STALE``, then a count), never silently used.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the library loads where used
    import pandas as pd

from pai_bench import paths
from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.io import atomic_write_text

# What a run measured, after its configuration fields and hash (the columns of
# ``results.load_runs`` but the configuration, and the software the run was made with).
RESULT_COLUMNS = ["status", "test_accuracy", "test_loss", "kept", "prunable",
                  "achieved_sparsity", "effective_sparsity", "ineffective_kept",
                  "dense_test_accuracy", "train_epochs", "dense_train_epochs", "train_macs",
                  "inference_macs", "dense_inference_macs", "seconds", "seconds_per_epoch",
                  "scoring_seconds", "machine", "threads", "torch"]
TEXT_COLUMNS = ("status", "machine", "torch")  # the rest are numbers
SHOWN_STALE = 10  # stale rows listed one per line; the rest counted


def reference_rows(runs: pd.DataFrame, config_cls: type = RunConfig) -> pd.DataFrame:
    """``runs`` (``results.load_runs`` of results folders: its ``source`` column names each
    run's folder) as reference rows: configuration fields, hash, ``RESULT_COLUMNS``; the torch
    version from each run's ``config.json`` and its threads from its summary where recorded
    (else empty)."""
    names = [f.name for f in dataclasses.fields(config_cls)]
    out = runs.reindex(columns=[*names, "hash", *RESULT_COLUMNS]).copy()
    software = [_software(folder, m, h)
                for folder, m, h in zip(runs["source"], runs["method"], runs["hash"])]
    out["torch"] = [s.get("torch") for s in software]
    out["threads"] = [s.get("threads") for s in software]
    return out.sort_values(["method", "hash"]).reset_index(drop=True)


def _software(results_dir: Path | str, method: str, run_hash: str) -> dict:
    """{"torch": version, "threads": n} of a stored run, as far as its files record them."""
    folder = paths.stored_run_dir(results_dir, method, run_hash)
    found = {}
    for name, keys in ((paths.CONFIG, ("versions", "torch")), (paths.SUMMARY, ("threads",))):
        try:
            value = json.loads((folder / name).read_text())
            for key in keys:
                value = value[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found[keys[-1]] = value
    return found


def write_reference(rows: pd.DataFrame, out: Path | str) -> Path:
    """Write reference ``rows`` as CSV (atomically); returns the file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, rows.to_csv(index=False))
    return out


def read_reference(path: Path | str, config_cls: type = RunConfig, configs=None
                   ) -> pd.DataFrame:
    """The rows of reference file ``path`` that count (``configs``: only theirs, if given), as
    ``results.load_runs`` rows; stale rows are listed on stderr and left out. A file that
    cannot be read, or has no hash column, is a ConfigError naming it."""
    import pandas as pd
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=object, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read reference file {path}: {e}") from e
    if len(table) and "hash" not in table.columns:
        raise ConfigError(f"reference file {path} has no 'hash' column: not a reference file "
                          f"(write one with `reference export`)")
    wanted = None if configs is None else {c.hash() for c in configs}
    rows, stale = [], []
    for i, row in enumerate(table.to_dict("records")):
        config, why = _config_of(row, config_cls)
        if config is not None and (wanted is None or config.hash() in wanted):
            try:
                rows.append(_as_run(row, config))
            except ValueError as e:  # a measurement that is no number: not used either
                why = f"a measurement is not a number ({e})"
        if why:
            stale.append(f"row {i + 2} ({row.get('method')}, hash {row.get('hash')}): {why}")
    if stale:
        _say_stale(path, stale)
    return pd.DataFrame(rows)


def _config_of(row: dict, config_cls: type) -> tuple[RunConfig | None, str]:
    """The configuration of a reference row, or None and why the row does not count."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = [c for c in row if c not in fields and c != "hash" and c not in RESULT_COLUMNS
               and c != "source"]
    if unknown:
        return None, f"fields this code does not have: {', '.join(unknown)}"
    given = {k: _value(v, fields[k]) for k, v in row.items() if k in fields}
    try:
        config = config_cls(**{k: v for k, v in given.items() if v is not _ABSENT})
    except (ConfigError, TypeError) as e:
        return None, f"not a valid configuration here: {e}"
    if config.hash() != row.get("hash"):
        return None, f"its fields give hash {config.hash()} here"
    return config, ""


_ABSENT = object()  # an empty cell of a field whose default is not None: the default


def _value(text: str, field: dataclasses.Field):
    """A reference cell (text) as the value of configuration ``field``."""
    if text == "":
        return None if field.default is None else _ABSENT
    if field.name == "method_args":
        return tuple(tuple(p.split("=", 1)) for p in text.split(",") if p)
    kind = field.metadata.get("kind", str)
    if kind is bool:
        return {"True": True, "False": False}.get(text, text)
    if kind in (int, float):
        number = float(text)
        return int(number) if kind is int and number.is_integer() else number
    return text


def _as_run(row: dict, config: RunConfig) -> dict:
    """A reference row as a ``results.load_runs`` row: the canonical configuration, the
    measurements as numbers where they are."""
    fields = config.to_dict()
    fields["method_args"] = ",".join(f"{k}={v}" for k, v in config.method_args)
    out = {**fields, "hash": row["hash"]}
    for column in RESULT_COLUMNS:
        text = row.get(column, "")
        out[column] = (text or None) if column in TEXT_COLUMNS else _number(text)
    return out


def _number(text: str):
    """A measurement cell as a number: an int where written as one, None where empty or not
    finite."""
    if text == "":
        return None
    value = float(text)
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _say_stale(path: Path, stale: list[str]) -> None:
    """Each stale row on stderr, the first SHOWN_STALE one per line, then how many more."""
    lines = [f"[pai-bench] warning: reference file {path}: {len(stale)} stale row(s) left "
             f"out (a row counts only for the configuration whose hash this code computes "
             f"from its fields):"]
    lines += [f"  {s}" for s in stale[:SHOWN_STALE]]
    if len(stale) > SHOWN_STALE:
        lines.append(f"  ... and {len(stale) - SHOWN_STALE} more")
    print("\n".join(lines), file=sys.stderr)
