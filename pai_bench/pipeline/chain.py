"""The prune-retrain chain of the iterative baselines (open_lth's ``lottery/runner.py``).

Level k of a baseline prunes the trained survivors of level k-1 (its ``Method.parent``), level 1
the shared dense network. Every level is one stored run, so the chain is the list of a run's
ancestors: the runner trains the missing ones, top level first, before the run itself
(``ancestors``), and this run then reads what it builds on from their stored files
(``previous_level``, ``trained_state``) and prices its whole chain (``level_masks``). Every file
is read through ``pai_bench.artifacts`` and validated against the plan's model facts.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from pai_bench import paths
from pai_bench.artifacts import read_masks, read_summary, read_weights
from pai_bench.config import RunConfig
from pai_bench.errors import RunError
from pai_bench.masks import Masks
from pai_bench.pipeline.plan import Plan
from pai_bench.pruning import keep_count


def ancestors(plan: Plan) -> list[RunConfig]:
    """The levels above ``plan``'s run, top level (pruned from the dense network) first."""
    found, config = [], plan.config
    while (config := plan.method.parent(config)) is not None:
        found.append(config)
    return found[::-1]


def level_masks(plan: Plan, results_dir: Path) -> list[Masks]:
    """The stored masks of the levels above ``plan``, top level first (for the chain's cost)."""
    found = []
    for config in ancestors(plan):
        masks = read_masks(paths.run_dir(results_dir, config) / paths.MASKS, plan.facts,
                           keep_count(plan.facts.total, config.density))
        if masks is not None:
            found.append(masks)
    return found


def _parent_files(plan: Plan, results_dir: Path) -> tuple[dict, Masks]:
    config = plan.method.parent(plan.config)
    rdir = paths.run_dir(results_dir, config)
    summary = read_summary(rdir / paths.SUMMARY, config.hash(), type(config))
    if summary is not None and summary["status"] != "finished":
        raise RunError(f"the previous level of this run, {rdir.name} (sparsity "
                       f"{config.sparsity}), {summary['status']}: it has no trained survivors "
                       f"to prune")
    # the summary vouches for the level's weights and masks (their digests): without a valid
    # one, they could be any run's
    state = masks = None
    if summary is not None:
        digests = summary["digests"]
        state = read_weights(rdir / paths.WEIGHTS, plan.facts, digests["weights"])
        masks = read_masks(rdir / paths.MASKS, plan.facts,
                           keep_count(plan.facts.total, config.density), digests["masks"])
    if state is None or masks is None:
        raise RunError(f"the previous level of this run, {rdir}, has no valid {paths.WEIGHTS} "
                       f"or {paths.MASKS} (it did not finish, or they were invalid); run this "
                       f"configuration again to train that level")
    return state, masks


def previous_level(plan: Plan, dense, results_dir: Path) -> tuple[nn.Module, Masks | None]:
    """The trained network ``plan``'s run prunes and its survivors (None: every weight): the
    dense network (``dense``: its ``pai_bench.pipeline.dense.DenseRun``), or the previous level's
    stored run."""
    model = plan.build_model()
    if plan.method.parent(plan.config) is None:
        model.load_state_dict(dense.state_at(plan.total_steps))
        return model, None
    state, masks = _parent_files(plan, results_dir)
    model.load_state_dict(state)
    return model, masks


def trained_state(plan: Plan, dense, results_dir: Path) -> dict:
    """The trained weights of the level above ``plan``: the previous level's, or the dense
    network's final ones."""
    if plan.method.parent(plan.config) is None:
        return dense.state_at(plan.total_steps)
    return _parent_files(plan, results_dir)[0]
