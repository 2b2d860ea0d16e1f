"""Figures: `plot` writes every figure as PNG and PDF, and each one shows what it says it shows."""

from pathlib import Path

import matplotlib.colors
import matplotlib.image
import pytest

from pai_bench.analysis import plots
from pai_bench.cli.parser import main
from pai_bench.analysis.results import load_runs

SWEEP = ["--model", "mlp", "--dataset", "synthetic", "--batch-size", "32", "--subset", "320",
         "--test-subset", "100", "--epochs", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plots")
    assert main(["sweep", "--methods", "random,magnitude_after_training", "--sparsities", "0.5,0.9",
                 "--seeds", "0,1", "--checks", "none,shuffle", *SWEEP,
                 "--results-dir", str(root)]) == 0
    assert main(["sweep", "--methods", "random,magnitude", "--sparsities", "0.9", "--seeds", "0,1",
                 "--prune-at", "0,5", *SWEEP, "--results-dir", str(root)]) == 0
    return root


@pytest.fixture
def figures(monkeypatch):
    """Capture each figure as it is saved, keyed by file stem, and still write it to disk."""
    captured = {}
    save = plots._save

    def spy(fig, out_dir, name):
        captured[name] = fig
        return save(fig, out_dir, name)

    monkeypatch.setattr(plots, "_save", spy)
    return captured


def legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_writes_every_figure_in_png_and_pdf(results, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["plot", "--results-dir", str(results), "--out", str(out)]) == 0
    stems = {"accuracy_vs_sparsity_mlp", "checks_mlp", "pruning_early_mlp",
             "layer_density_mlp_0.9"}
    assert {p.name for p in out.iterdir()} == {f"{s}.{e}" for s in stems for e in ("png", "pdf")}
    for stem in stems:
        image = matplotlib.image.imread(out / f"{stem}.png")
        assert image.shape[0] > 300 and image.shape[1] > 300
        assert (image[..., :3] < 0.5).any()  # something dark was drawn, not a blank canvas
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")


def test_accuracy_figure_has_a_line_per_method_and_the_dense_reference(results, tmp_path,
                                                                       figures):
    runs = load_runs(results)
    plots.accuracy_vs_sparsity(runs, tmp_path)
    ax = figures["accuracy_vs_sparsity_mlp"].axes[0]
    assert legend_labels(ax) == ["magnitude", "magnitude_after_training", "random",
                                 "dense (mean ± std)"]
    assert ax.get_xscale() == "log" and ax.xaxis_inverted()  # weights remaining, decreasing
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "50"]
    # the plotted means are the seed means of the unmodified runs pruned at step 0
    base = runs[(runs["check"] == "none") & (runs["method"] == "random") & (runs["prune_at"] == 0)]
    expected = 100 * base.groupby("sparsity")["test_accuracy"].mean().sort_index()
    line = next(c.lines[0] for c in ax.containers if c.get_label() == "random")
    assert list(line.get_ydata()) == pytest.approx(list(expected))
    # two sparsities: markers with error bars, no line drawn between them
    assert all(c.lines[0].get_linestyle() == "None" for c in ax.containers)
    assert not [line for line in ax.get_lines() if line.get_linestyle() not in ("None", "")
                and len(line.get_xdata()) > 1 and line.get_label() in ("random", "magnitude")]


def test_checks_figure_over_sparsities_and_at_one_sparsity(results, tmp_path, figures):
    runs = load_runs(results)
    plots.checks_per_method(runs, tmp_path)
    fig = figures["checks_mlp"]
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["magnitude_after_training", "random"]
    assert legend_labels(visible[0]) == ["original", "shuffle", "dense (mean ± std)"]

    plots.checks_per_method(runs[runs["sparsity"] == 0.9], tmp_path)  # one sparsity: grouped
    ax = figures["checks_mlp"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["magnitude_after_training", "random"]
    assert legend_labels(ax) == ["original", "shuffle", "random pruning (± std)",
                                 "dense (mean ± std)"]


def test_layer_density_figure_names_every_prunable_layer(results, tmp_path, figures):
    runs = load_runs(results)
    plots.layer_densities(results, runs, 0.9, tmp_path)
    ax = figures["layer_density_mlp_0.9"].axes[0]
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == ["fc1", "fc2", "fc3"]
    assert legend_labels(ax) == ["magnitude", "magnitude_after_training", "random"]
    # random pruning keeps about the same density in every layer; the plot shows the report's
    random = next(line for line in ax.get_lines() if line.get_label() == "random")
    assert ax.get_yscale() == "log"
    assert all(abs(d - 10) < 3 for d in random.get_ydata()[:-1])


def test_pruning_early_figure_has_a_line_per_method_over_the_pruning_steps(results, tmp_path,
                                                                           figures):
    runs = load_runs(results)
    plots.pruning_early(runs, tmp_path)
    fig = figures["pruning_early_mlp"]
    assert [ax.get_title() for ax in fig.axes] == ["10% weights remaining"]  # only 0.9 has steps
    ax = fig.axes[0]
    assert legend_labels(ax) == ["magnitude", "random", "random pruning (± std)",
                                 "dense (mean ± std)"]
    magnitude = next(c.lines[0] for c in ax.containers if c.get_label() == "magnitude")
    assert list(magnitude.get_xdata()) == [0, 5]
    early = runs[(runs["method"] == "magnitude") & (runs["prune_at"] == 5)]
    assert magnitude.get_ydata()[1] == pytest.approx(100 * early["test_accuracy"].mean())


def colours(ax, method) -> set:
    """The colours ``method`` is drawn in on ``ax`` (error-bar containers and lines)."""
    found = {matplotlib.colors.to_hex(c.lines[0].get_color()) for c in ax.containers
             if c.get_label() == method}
    found |= {matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()
              if line.get_label() == method}
    return found


def test_a_method_has_one_colour_in_every_figure(results, tmp_path, figures):
    runs = load_runs(results)
    plots.accuracy_vs_sparsity(runs, tmp_path)
    plots.pruning_early(runs, tmp_path)
    plots.layer_densities(results, runs, 0.9, tmp_path)
    accuracy = figures["accuracy_vs_sparsity_mlp"].axes[0]
    early = figures["pruning_early_mlp"].axes[0]
    layers = figures["layer_density_mlp_0.9"].axes[0]
    for method in ("random", "magnitude"):
        expected = {matplotlib.colors.to_hex(plots.method_style(method)[0])}
        assert colours(accuracy, method) == colours(early, method) == colours(layers, method) \
            == expected
    # a plugin without a style gets one from its name: the same in every run of the suite
    assert plots.method_style("my_plugin") == plots.method_style("my_plugin")
    assert plots.method_style("random") != plots.method_style("magnitude")


def test_latex_tables_escape_special_characters(results, tmp_path):
    from pai_bench.analysis.table import build_tables, write_tables
    tables = build_tables(results)
    tables["accuracy"]["method"] = tables["accuracy"]["method"].replace(
        "random", "rand_om & 100% sure")
    write_tables(tables, tmp_path, latex=True)
    texs = sorted(tmp_path.glob("*.tex"))
    assert {p.stem for p in texs} == {"accuracy", "dense", "verdicts", "matching"}
    for tex in texs:
        body = tex.read_text()
        lines = body.splitlines()[3:-2]  # header and rows, between \toprule and \bottomrule
        for line in lines:
            cells = line.removesuffix(r"\\").split(" & ")  # the cell separators
            for cell in cells:
                for char in "_%&":
                    assert cell.count(char) == cell.count("\\" + char), (tex.name, cell)
    assert r"rand\_om \& 100\% sure" in (tmp_path / "accuracy.tex").read_text()
    assert r"accuracy (\%)" in (tmp_path / "accuracy.tex").read_text()


def test_holm_adjustment_equals_a_hand_computation():
    from pai_bench.analysis.results import holm
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> max(0.06, .04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_verdicts_read_the_adjusted_p(results):
    from pai_bench.analysis.results import verdicts
    v = verdicts(load_runs(results))
    assert {"question", "margin", "alpha", "family", "seeds", "seeds_reference", "p_value",
            "p_adjusted", "reading", "detectable_difference", "seeds_to_settle"} <= set(v.columns)
    assert (v["p_adjusted"] >= v["p_value"]).all()
    assert (v["p_opposite_adjusted"] >= v["p_opposite"]).all()
    assert set(v["reading"]) <= {"worse", "better", "not worse (within δ)",
                                 "equivalent (within ±δ)", "worse by more than δ",
                                 "different (beyond ±δ)", "inconclusive"}
    assert all((r == "inconclusive") == (p >= a and po >= a) for r, p, po, a in
               zip(v["reading"], v["p_adjusted"], v["p_opposite_adjusted"], v["alpha"]))
    # every comparison the report makes: checks, methods against random and after training
    assert set(v["comparison"]) == {"check", "random", "after training"}
    checks = v[v["comparison"] == "check"]
    # random pruning shuffled is random pruning again: it answers no question
    assert set(zip(checks["method"], checks["question"])) == {
        ("magnitude_after_training", "worse")}


def test_runs_csv_has_one_row_per_stored_run(results, tmp_path):
    assert main(["table", "--results-dir", str(results), "--out", str(tmp_path)]) == 0
    import pandas as pd
    table = pd.read_csv(tmp_path / "runs.csv")
    stored = list(results.glob("runs/*/summary.json"))
    assert len(table) == len(stored) == 22
    assert len(set(table["hash"])) == len(table)
    assert {"method", "sparsity", "seed", "lr", "test_accuracy", "train_macs"} <= set(table)


@pytest.mark.parametrize("n", [1, 2, 4, 13, 30])
def test_side_by_side_offsets_stay_inside_the_axis_margins(n):
    offsets = plots._offsets(n)
    assert len(set(offsets)) == n and sum(offsets) == pytest.approx(n)  # distinct, centred
    assert all(0.8 - 1e-12 <= o <= 1.2 + 1e-12 for o in offsets)  # inside 1/1.3 .. 1.3
    if n <= 4:
        assert offsets[1:] == [] or offsets[1] - offsets[0] == pytest.approx(0.06)
