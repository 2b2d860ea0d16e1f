"""The named experiments: registered methods only, shared runs, the paper grid as imp levels."""

import math
import sys
import tomllib

import numpy as np
import pandas as pd
import pytest

from pai_bench.sweeps import experiments
from pai_bench.cli.parser import main
from pai_bench.methods import METHODS, load_plugins
from pai_bench.pipeline.plan import make_plan
from pai_bench.analysis.results import verdicts
from pai_bench.sweeps.sweep import spec_from_dict


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


# --- Experiments a user can see and extend (issue 38, point 5) --------------------------------

PLUGIN = '''
from dataclasses import dataclass
from pai_bench.methods import Scorer


@dataclass
class Mine(Scorer):
    """A plugin scorer: |w|, as a researcher's new method would be."""

    name = "test_mine"
    needs_data = False

    def score(self, ctx):
        params = dict(ctx.model.named_parameters())
        return {n: params[n].detach().abs() for n in ctx.masks}
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A plugin module ``mine_plugin`` in the working folder (as a user writes one), not yet
    imported: ``--plugin mine_plugin`` registers ``test_mine``."""
    (tmp_path / "mine_plugin.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mine_plugin", raising=False)
    return "mine_plugin"


def families_of(name: str, method: str) -> set[str]:
    """The verdict families ``method`` appears in when experiment ``name`` (CPU scale, with
    ``method`` added) has run: every run finished, as the report would read them."""
    exp = experiments.EXPERIMENTS.get(name)
    configs = experiments.with_random_reference(experiments.configs(name, "cpu", (method,)))
    rng = np.random.default_rng(0)
    rows = []
    for c in configs:
        row = c.to_dict()
        row["method_args"] = ""
        rows.append({**row, "status": "finished", "test_accuracy": rng.uniform(0.3, 0.6)})
    v = verdicts(pd.DataFrame(rows), findings=exp.findings, margin_points=2.0)
    mine = (v["method"] == method) | v["reference"].str.startswith(method)
    return set(v.loc[mine, "family"])


# what each experiment asks of a new method at initialization: its findings that cover any
# method (not only the paper's named ones); never b (after-training baselines), c (named)
EXPECTED_FAMILIES = {"main": {"a", "e"}, "ablations": {"d", "invert"},
                     "noninferiority": {"d"}, "successors": {"a", "d", "e", "invert"},
                     "early": {"a", "a-early", "e"}}


@pytest.mark.parametrize("name", sorted(EXPECTED_FAMILIES))
def test_a_plugin_method_joins_every_family_it_belongs_to_and_no_other(name, plugin):
    load_plugins([plugin])
    assert families_of(name, "test_mine") == EXPECTED_FAMILIES[name]
    added = [c for c in experiments.configs(name, "cpu", ("test_mine",))
             if c.method == "test_mine"]
    base = experiments.configs(name, "cpu")
    assert set(experiments.configs(name, "cpu", ("test_mine",))) == set(base) | set(added)
    if name == "noninferiority":  # GraSP's inverted sweep is GraSP's finding (c) alone
        assert {c.check for c in added} == {"none", "shuffle", "reinit"}
        assert {c.seed for c in added} == set(experiments.NONINFERIORITY_SEEDS)


def test_reproduce_takes_a_plugin_method_from_the_command_line(plugin, tmp_path, monkeypatch,
                                                                capsys):
    ran = []
    monkeypatch.setattr(experiments, "run_plans",
                        lambda plans, *a, **k: ran.extend(p.config for p in plans) or [])
    monkeypatch.setattr(experiments.report, "write_report", lambda *a, **k: "tables")
    assert main(["reproduce", "main", "--plugin", plugin, "--methods", "test_mine",
                 "--results-dir", str(tmp_path / "r")]) == 0
    mine = [c for c in ran if c.method == "test_mine"]
    assert len(mine) == len(experiments.CPU_SEEDS) and {c.check for c in mine} == {"none"}
    assert len(ran) == len(experiments.configs("main", "cpu")) + len(mine)
    assert main(["reproduce", "main", "--methods", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_print_shows_the_sweeps_as_toml_files_that_run_the_same_runs(plugin, capsys):
    assert main(["reproduce", "ablations", "--print", "--plugin", plugin,
                 "--methods", "test_mine"]) == 0
    out = capsys.readouterr().out
    assert f"python -m pai_bench sweep --config FILE --plugin {plugin}" in out
    documents = out.split("# --- sweep ")[1:]
    specs = [spec_from_dict(tomllib.loads(doc.partition("\n")[2])) for doc in documents]
    printed = [c for spec in specs for c in spec.configs()]
    assert printed == experiments.configs("ablations", "cpu", ("test_mine",))
    assert any(spec.methods == ("test_mine",) for spec in specs)
