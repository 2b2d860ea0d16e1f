"""The named experiments: registered methods only, shared runs, the paper grid as imp levels."""

import math

import pytest

from pai_bench.sweeps import experiments
from pai_bench.methods import METHODS
from pai_bench.pipeline.plan import make_plan


@pytest.mark.parametrize("scale", ["cpu", "paper"])
@pytest.mark.parametrize("name", experiments.EXPERIMENTS.names())
def test_every_run_of_every_experiment_is_a_valid_plan(name, scale):
    runs = experiments.configs(name, scale)
    assert runs and len(set(runs)) == len(runs)
    for config in {c for c in runs if c.model == runs[0].model}:
        assert config.method in METHODS
        make_plan(config)  # every name and option checked


def test_the_successors_share_mains_runs_at_cpu_scale_and_join_it_at_paper_scale():
    main = set(experiments.configs("main", "cpu"))
    successors = experiments.configs("successors", "cpu")
    assert not {c.method for c in main} & set(experiments.SUCCESSORS)  # CPU: their own report
    shared = [c for c in successors if c.method not in experiments.SUCCESSORS
              and c.sparsity == 0.9]
    assert shared and all(c in main for c in shared)  # stored once, read by both reports
    assert {c.sparsity for c in successors if c.check == "none"} == {0.5, 0.9}
    assert {c.check for c in successors} == set(experiments.CHECKS)
    ablations = set(experiments.configs("ablations", "cpu"))
    noninferiority = experiments.configs("noninferiority", "cpu")
    first = [c for c in noninferiority if c.seed in experiments.CPU_SEEDS]
    assert first and all(c in ablations for c in first)  # its first seeds are ablations' runs
    for name in ("main", "ablations"):  # and at paper scale, beside imp
        methods = {c.method for c in experiments.configs(name, "paper")}
        assert methods >= {*experiments.SUCCESSORS, "imp"}


def test_the_paper_grid_is_levels_of_one_imp_chain():
    runs = [c for c in experiments.configs("main", "paper")
            if c.method == "imp" and c.model == "cifar_resnet_20" and c.seed == 0]
    imp = make_plan(runs[0]).method
    levels = {round(math.log(c.density) / math.log(0.8)): imp.levels(c) for c in runs}
    assert all(k == level for k, level in levels.items())  # each grid point is level k exactly
    for c in runs:
        parent = imp.parent(c)
        k = imp.levels(c)
        assert (parent is None) == (k == 1)
        if parent is not None:
            assert imp.levels(parent) == k - 1 and parent.density > c.density
