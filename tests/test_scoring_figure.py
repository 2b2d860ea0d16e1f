"""The scoring-cost figure script reads pytest-benchmark's JSON (benchmarks/scoring_figure.py)."""

import csv
import json
import runpy
import sys
from pathlib import Path

import matplotlib.image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scoring_figure.py"


def test_scoring_figure_writes_one_row_per_network_and_method(tmp_path, monkeypatch):
    def bench(model, method, median, rounds):
        return dict(name=f"test_compute_masks[{model}-{method}]",
                    params=dict(model_name=model, method=method),
                    stats=dict(median=median), extra_info=dict(rounds=rounds))
    data = dict(benchmarks=[bench("cifar_resnet_20", "snip", 0.2345, 1),
                            bench("cifar_vgg_16", "synflow", 15.6, 100),
                            dict(name="test_global_threshold[iterative]", params={},
                                 stats=dict(median=1.0), extra_info={})])
    (tmp_path / "b.json").write_text(json.dumps(data))
    monkeypatch.setattr(sys, "argv", ["scoring_figure.py", str(tmp_path / "b.json"),
                                      str(tmp_path / "out")])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    rows = list(csv.DictReader(open(tmp_path / "out" / "scoring.csv")))
    assert [(r["network"], r["method"], r["seconds"], r["rounds"]) for r in rows] == \
        [("cifar_resnet_20", "snip", "0.234", "1"), ("cifar_vgg_16", "synflow", "15.6", "100")]
    assert matplotlib.image.imread(tmp_path / "out" / "scoring.png").shape[1] > 1000  # 2 panels
