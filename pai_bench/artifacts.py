"""Stored artifacts read back and validated against the run they belong to.

Every file the suite reads from a results folder (a run's summary, masks and checkpoint, a dense
snapshot, an iterative baseline's round weights) goes through one of the ``read_*`` functions
here. Each returns the content, or None when the file is missing *or fails validation*: a
truncated or garbage file, and a well-formed one that does not fit the run (a summary whose hash
is not its folder's, an accuracy outside [0, 1], masks missing a layer or keeping the wrong
count, a checkpoint past the end of the schedule). A failing file is moved aside (renamed with a
``.corrupt`` suffix, never deleted) with one warning line naming it, and the caller recomputes
the stage as if the file had never been written.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Callable

import torch

from pai_bench import paths
from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError
from pai_bench.io import (Invalid, file_digest, json_digest, quarantine,  # noqa: F401
                          tensor_digest)  # (Invalid, tensor_digest: re-exported)
from pai_bench.masks import STORED_KEYS, Masks
from pai_bench.models import ModelFacts

STATUSES = ("finished", "diverged")
# What a run's summary must hold, and of which types (None allowed where a run can lack it).
SUMMARY_FIELDS: dict[str, tuple[type, ...]] = {
    "config": (dict,), "hash": (str,), "status": (str,), "test_accuracy": (float, int, type(None)),
    "test_loss": (float, int, type(None)), "sparsity": (float, int), "kept": (int,),
    "prunable": (int,), "seconds": (float, int), "digests": (dict,), "digest": (str,),
}
# Fractions a summary holds, each None or in [0, 1].
SUMMARY_FRACTIONS = ("test_accuracy", "dense_test_accuracy", "sparsity", "effective_sparsity")
# The files of a run a summary holds the digest of: tensors (hashed as ``tensor_digest``) and
# text files (``file_digest`` of their bytes), and the statuses whose runs have them.
RUN_FILES = {"masks": paths.MASKS, "weights": paths.WEIGHTS, "metrics": paths.METRICS,
             "layers": paths.LAYERS, "config": paths.CONFIG}
OLD_FILE = "written before stored files carried their digest and owner"


def read_valid(path: Path, read: Callable[[Path], Any], check: Callable[[Any], None],
               then: str = "recomputing") -> Any:
    """``read(path)`` if the file exists and passes ``check``; otherwise None (quarantined;
    ``then``: what happens next, said in the warning)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        value = read(path)
        check(value)
    except Exception as e:  # noqa: BLE001 - whatever is wrong with a file, it is recomputed
        quarantine(path, f"{type(e).__name__}: {e}".splitlines()[0][:200], then)
        return None
    return value


def strict_json(path: Path) -> Any:
    """JSON without the NaN/Infinity literals Python would otherwise accept."""
    def refuse(literal):
        raise ValueError(f"non-standard JSON literal {literal}")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


def check_summary(summary: Any, folder_hash: str, config_cls: type = RunConfig) -> None:
    if not isinstance(summary, dict):
        raise Invalid("not a JSON object")
    for key, types in SUMMARY_FIELDS.items():
        if key not in summary:
            raise Invalid(f"field {key!r} is missing")
        if not isinstance(summary[key], types) or isinstance(summary[key], bool):
            raise Invalid(f"field {key!r} is {summary[key]!r}")
    try:
        config_hash = config_cls.from_dict(summary["config"]).hash()
    except (ConfigError, TypeError) as e:
        raise Invalid(f"its config is invalid: {e}") from None
    if not summary["hash"] == config_hash == folder_hash:
        raise Invalid(f"its config hashes to {config_hash}, the folder's hash is {folder_hash}")
    if summary["status"] not in STATUSES:
        raise Invalid(f"status {summary['status']!r}")
    acc = summary["test_accuracy"]
    if summary["status"] == "finished" and (acc is None or not 0.0 <= acc <= 1.0):
        raise Invalid(f"test accuracy {acc!r} is not in [0, 1]")
    if summary["status"] == "finished" and not math.isfinite(summary["test_loss"]):
        raise Invalid(f"test loss {summary['test_loss']!r}")
    if not 0 <= summary["kept"] <= summary["prunable"]:
        raise Invalid(f"kept {summary['kept']} of {summary['prunable']}")
    check_sealed(summary)
    missing = expected_files(summary) - set(summary["digests"])
    if missing:  # a summary that cannot vouch for a file vouches for none
        raise Invalid(f"it holds no digest of its {', '.join(sorted(missing))}")
    for key in SUMMARY_FRACTIONS:
        value = summary.get(key)
        if value is not None and (not isinstance(value, (float, int)) or not 0 <= value <= 1):
            raise Invalid(f"{key} {value!r} is not in [0, 1]")


def seal(summary: dict) -> dict:
    """``summary`` with ``digest``: the digest of its other fields (``check_sealed``)."""
    body = {k: v for k, v in summary.items() if k != "digest"}
    return {**body, "digest": json_digest(body)}


def check_sealed(summary: dict) -> None:
    """A summary's fields hash to the ``digest`` written with them: an edited accuracy, kept
    count, status or sparsity is caught. A summary without one is refused, not trusted."""
    if not isinstance(summary.get("digest"), str):
        raise Invalid(f"it has no digest of its content ({OLD_FILE}?)")
    body = {k: v for k, v in summary.items() if k != "digest"}
    if json_digest(body) != summary["digest"]:
        raise Invalid("its fields do not hash to its digest (an edited value)")


def read_summary(path: Path, folder_hash: str, config_cls: type = RunConfig) -> dict | None:
    """A run's ``summary.json``, if it is one of the run whose hash is ``folder_hash``."""
    return read_valid(path, strict_json, lambda s: check_summary(s, folder_hash, config_cls))


def check_masks(masks: Masks, facts: ModelFacts, kept: int | None) -> None:
    names = list(facts.prunable)
    if list(masks) != names:
        missing, extra = set(names) - set(masks), set(masks) - set(names)
        raise Invalid(f"masks cover {sorted(extra) or 'no extra'} / miss {sorted(missing) or 'none'}"
                      if missing or extra else "masks are not in the model's order")
    for name, shape in facts.prunable.items():
        if tuple(masks[name].shape) != shape:
            raise Invalid(f"mask {name!r} has shape {tuple(masks[name].shape)}, the weight "
                          f"has {shape}")
    if kept is not None and masks.kept() != kept:
        raise Invalid(f"{masks.kept()} weights kept, the run keeps {kept}")


def check_digest(value: Any, digest: str | None) -> None:
    if digest is not None and tensor_digest(value) != digest:
        raise Invalid(f"its content does not hash to {digest}, the digest its run stored")


def check_owner(owner: Any, path: Path) -> None:
    """A stored file names the folder it belongs to (``paths.owner``): a valid file of another
    run, seed, method or dense network copied in its place is not this one's."""
    expected = paths.owner(Path(path).parent)
    if owner is None:
        raise Invalid(f"it names no owner ({OLD_FILE}?)")
    if owner != expected:
        raise Invalid(f"it belongs to {owner}, not to {expected}")


def stored_masks(raw: Any, path: Path) -> Masks:
    """The masks of what ``Masks.save`` wrote to ``path``: its digest (over the masks and
    their owner) holds and its owner is ``path``'s folder."""
    if not isinstance(raw, dict) or set(raw) != STORED_KEYS:
        raise Invalid(f"not masks with their owner and digest ({OLD_FILE}?)")
    check_digest({"masks": raw["masks"], "owner": raw["owner"]}, raw["digest"])
    check_owner(raw["owner"], path)
    return Masks(raw["masks"])


def load_masks(path: Path) -> Masks:
    return stored_masks(load_torch(path), path)


def read_masks(path: Path, facts: ModelFacts, kept: int | None = None,
               digest: str | None = None) -> Masks | None:
    """Masks of ``path``'s folder (``stored_masks``) over exactly the network's prunable
    weights (``facts``, in order), of their shapes, keeping ``kept`` weights when given,
    hashing to ``digest`` when given (a finished run's summary stores it)."""
    def check(m):
        check_masks(m, facts, kept)
        check_digest(dict(m), digest)
    return read_valid(path, load_masks, check)


LAYER_COLUMNS = ("name", "shape", "kept", "density", "collapsed")


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_layer_report(rows: Any) -> None:
    if not rows:
        raise Invalid("no layer rows")
    for row in rows:
        if None in row.values():  # csv's filler for the fields of a row cut short
            raise Invalid(f"the row of {row.get('name')!r} is cut short")
        if any(row.get(c) in (None, "") for c in LAYER_COLUMNS):
            raise Invalid(f"a row lacks one of {', '.join(LAYER_COLUMNS)}")
        density = float(row["density"])
        if not 0.0 <= density <= 1.0:
            raise Invalid(f"density {density} of {row['name']!r} is not in [0, 1]")


def read_layer_report(path: Path, then: str = "run the configuration again to rebuild it",
                      digest: str | None = None) -> list[dict] | None:
    """A per-layer density report (``masks.layers.csv``): every row names a layer, its shape,
    kept count and a density in [0, 1]; its bytes hashing to ``digest`` when given (a stored
    run's summary holds it: an edited density is caught). Rebuilt from the masks when its run
    is asked for again (``runner.masks_stage``)."""
    def check(rows):
        if digest is not None:
            check_file(path, digest)
        check_layer_report(rows)
    return read_valid(path, read_csv_rows, check, then)


def read_run_layer_report(rdir: Path, folder_hash: str, config_cls: type = RunConfig
                          ) -> list[dict] | None:
    """The layer report of the stored run in ``rdir``, if its summary is valid and vouches for
    it (``digests["layers"]``; a run without one has no report to show)."""
    summary = read_summary(rdir / paths.SUMMARY, folder_hash, config_cls)
    digest = (summary or {}).get("digests", {}).get("layers")
    return read_layer_report(rdir / paths.LAYERS, digest=digest) if digest else None


def check_state(state: Any, facts: ModelFacts) -> None:
    """``state`` is a state dict of the network of ``facts``: the same keys and shapes."""
    if not isinstance(state, dict) or set(state) != set(facts.state):
        raise Invalid("the weights are not those of this run's model")
    for key, shape in facts.state.items():
        if not isinstance(state[key], torch.Tensor) or tuple(state[key].shape) != shape:
            raise Invalid(f"{key!r} has the wrong shape")


def load_torch(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True)


def check_finite(tensors: Any, what: str) -> None:
    """Every floating-point tensor in ``tensors`` (nested dicts and lists) is finite."""
    if isinstance(tensors, torch.Tensor):
        if tensors.is_floating_point() and not bool(torch.isfinite(tensors).all()):
            raise Invalid(f"{what} holds NaN or infinite values")
    elif isinstance(tensors, dict):
        for key, value in tensors.items():
            check_finite(value, f"{what} {key!r}" if isinstance(key, str) else what)
    elif isinstance(tensors, (list, tuple)):
        for value in tensors:
            check_finite(value, what)


def check_training_state(state: Any, facts: ModelFacts, first: int, last: int,
                         path: Path) -> None:
    """A checkpoint or snapshot: model and optimizer state, and a step in [first, last]; its
    tensors finite and hashing to the digest written with them (``callbacks.save_training_state``:
    a flipped byte that makes a weight 1e25 is caught), the optimizer state and metric rows
    of the right form; its owner (inside what the digest covers) ``path``'s folder, the run or
    dense network it belongs to."""
    if not isinstance(state, dict) or not {"model", "optimizer", "step"} <= set(state):
        raise Invalid("not a training state (model, optimizer, step)")
    if "digest" not in state:  # never a check turned off by a missing key
        raise Invalid(f"it has no digest ({OLD_FILE}?)")
    body = {k: v for k, v in state.items() if k != "digest"}
    if tensor_digest(body) != state["digest"]:
        raise Invalid("its content does not hash to its digest (a changed byte)")
    check_owner(state.get("owner"), path)
    check_state(state["model"], facts)
    check_finite(state["model"], "weight")
    optimizer = state["optimizer"]
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("state"), dict) \
            or not isinstance(optimizer.get("param_groups"), list):
        raise Invalid("its optimizer state is not one (state, param_groups)")
    check_finite(optimizer["state"], "optimizer state")
    rows = state.get("rows", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise Invalid("its metric rows are not a list of rows")
    step = state["step"]
    if not isinstance(step, int) or not first <= step <= last:
        raise Invalid(f"step {step!r} is outside [{first}, {last}]")
    check_running(state.get("running"))


def check_running(running: Any) -> None:
    """A checkpoint inside an epoch: the epoch's sums so far (``callbacks.Checkpointer``), a
    finite loss sum and counts with 0 <= correct <= seen (None: at an epoch's end)."""
    if running is None:
        return
    ok = isinstance(running, dict) and set(running) == {"loss", "correct", "seen"} \
        and isinstance(running["loss"], float) and math.isfinite(running["loss"]) \
        and all(type(running[k]) is int for k in ("correct", "seen")) \
        and 0 <= running["correct"] <= running["seen"]
    if not ok:
        raise Invalid("its running sums of the epoch are not (loss, correct, seen)")


def read_training_state(path: Path, facts: ModelFacts, first: int, last: int) -> dict | None:
    """A run's checkpoint (``first``: where its training starts, ``last``: its end, the
    checkpoint written when training ended) or a dense snapshot (``first == last``: the step
    its file name says)."""
    return read_valid(path, load_torch,
                      lambda s: check_training_state(s, facts, first, last, path))


def read_weights(path: Path, facts: ModelFacts, digest: str) -> dict | None:
    """A state dict of the network of ``facts``: a stored run's trained weights (an iterative
    baseline's previous level), finite, hashing to ``digest`` (its run's summary stores it:
    the weights file holds a plain state dict, so its summary vouches for whose it is)."""
    def check(s):
        check_state(s, facts)
        check_finite(s, "weight")
        check_digest(s, digest)
    return read_valid(path, load_torch, check)


METRIC_COLUMNS = ("step", "epoch", "lr", "train_loss", "train_accuracy", "test_loss",
                  "test_accuracy", "seconds")


def check_metrics(rows: Any) -> None:
    """``metrics.csv``: one row per epoch, the columns of ``callbacks.MetricRows``, numbers."""
    if not rows:
        raise Invalid("no rows")
    for row in rows:
        if set(row) != set(METRIC_COLUMNS):
            raise Invalid(f"columns {sorted(row)}")
        for key in ("step", "epoch", "lr", "train_loss", "train_accuracy"):
            float(row[key])  # ValueError: quarantined


def check_run_config(value: Any, folder_hash: str, config_cls: type = RunConfig) -> None:
    """``config.json``: the run's config (hashing to its folder) and recipe."""
    if not isinstance(value, dict) or not {"config", "hash", "recipe"} <= set(value):
        raise Invalid("not a run description (config, hash, recipe)")
    if config_cls.from_dict(value["config"]).hash() != folder_hash or value["hash"] != folder_hash:
        raise Invalid(f"its config does not hash to the folder's {folder_hash}")


def run_file_digests(rdir: Path, summary: dict, masks: Masks | None,
                     weights: dict | None) -> dict:
    """What a summary stores of the files of its run in ``rdir`` (``RUN_FILES``): the digests of
    the masks and trained weights (of the tensors, as ``tensor_digest``) and of the bytes of its
    metric rows, layer report and ``config.json``, where the run has them."""
    digests = {"config": file_digest(rdir / paths.CONFIG)}
    if masks is not None:
        digests.update(masks=tensor_digest(dict(masks)), layers=file_digest(rdir / paths.LAYERS))
    if weights is not None:
        digests.update(weights=tensor_digest(weights), metrics=file_digest(rdir / paths.METRICS))
    return digests


def expected_files(summary: dict) -> set[str]:
    """The ``RUN_FILES`` keys a run of ``summary`` has: a finished run all, a diverged one its
    config and, if it had masks, its masks and layer report."""
    if summary["status"] == "finished":
        return set(RUN_FILES)
    return {"config"} | ({"masks", "layers"} if "masks" in summary["digests"] else set())


def check_file(path: Path, digest: str | None) -> None:
    if file_digest(path) != digest:
        raise Invalid(f"its bytes do not hash to {digest}, the digest its run's summary stored")


def stale_run_files(rdir: Path, summary: dict, config_cls: type = RunConfig) -> str | None:
    """What the files of the finished run in ``rdir`` need: None (they hold what its summary
    says: each hashes to the digest it stored, the masks are the run's own and keep its count),
    "rebuild" (``config.json`` or the layer report is invalid: rebuilt from the masks, no
    training) or "retrain" (masks, weights or metric rows are invalid, or the summary lacks
    a digest of one: the run is recomputed). An invalid file is quarantined."""
    stored, then = summary["digests"], "retraining the run"
    need, ok = expected_files(summary), True  # check_summary: each has its digest
    if "masks" in need:
        ok &= read_valid(rdir / paths.MASKS, load_masks,
                         lambda m: (check_digest(dict(m), stored["masks"]),
                                    _check_kept(m, summary)), then) is not None
    if "weights" in need:
        ok &= read_valid(rdir / paths.WEIGHTS, load_torch,
                         lambda s: (check_finite(s, "weight"),
                                    check_digest(s, stored["weights"])), then) is not None
        ok &= read_valid(rdir / paths.METRICS, read_csv_rows,
                         lambda rows: (check_file(rdir / paths.METRICS, stored["metrics"]),
                                       check_metrics(rows)), then) is not None
    if not ok:
        return "retrain"
    rebuilt = "rebuilding it from the run"
    ok = read_valid(rdir / paths.CONFIG, strict_json,
                    lambda v: (check_file(rdir / paths.CONFIG, stored["config"]),
                               check_run_config(v, summary["hash"], config_cls)),
                    rebuilt) is not None
    if "layers" in need:
        ok &= read_layer_report(rdir / paths.LAYERS, rebuilt, stored["layers"]) is not None
    return None if ok else "rebuild"


def _check_kept(masks: Masks, summary: dict) -> None:
    if masks.kept() != summary["kept"]:
        raise Invalid(f"{masks.kept()} weights kept, its summary says {summary['kept']}")
