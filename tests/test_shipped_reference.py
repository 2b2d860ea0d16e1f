"""The shipped reference file (``results/reference/cpu.csv``): every row is current, and it holds
the runs ``judge`` takes from it at the CPU scale, in both precisions ``precision="auto"``
resolves to, with the calibration's seeds."""

import dataclasses

import pandas as pd

from pai_bench import paths
from pai_bench.analysis.reference import read_reference
from pai_bench.sweeps import judge as judging


def test_every_shipped_row_is_current_and_judges_cpu_references_are_there(capsys):
    (shipped,) = paths.shipped_references()
    table = pd.read_csv(shipped)
    rows = read_reference(shipped)
    assert "stale" not in capsys.readouterr().err and len(rows) == len(table)  # none left out
    assert rows["machine"].notna().all() and rows["torch"].notna().all()
    design = judging.design_of("cpu")
    for precision in ("bf16", "fp32"):
        wanted = [dataclasses.replace(c, precision=precision).hash()
                  for s in judging.sweeps("snip", design) for c in s.configs()
                  if c.method in judging.REFERENCES]
        fixed = dataclasses.replace(design, run={**design.run, "precision": precision})
        wanted += [c.hash() for c in judging.calibration_runs(fixed)]
        missing = set(wanted) - set(rows["hash"])
        assert not missing, f"{precision}: {len(missing)} of {len(set(wanted))} runs missing"
