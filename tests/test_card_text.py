"""What the verdict card says per question: what its seeds could and could not detect, and how
many would settle an inconclusive row; its level; the method's scoring time and training cost."""

import json

import pandas as pd

import pai_bench

from pai_bench.analysis.card_text import cost_line, level_line, question_lines


def row(**kw) -> dict:
    base = dict(family="d", comparison="check", check="shuffle", reference="mine, unmodified",
                question="not worse", reading="inconclusive", difference=-0.005, margin=0.02,
                detectable_difference=0.035, seeds=5, seeds_reference=5, seeds_to_settle=12)
    return {**base, **kw}


def test_each_question_says_what_its_seeds_could_and_could_not_detect():
    lines = question_lines(pd.DataFrame([
        row(),  # not worse: 3.5 points detectable at δ = 2: only a true +1.5 or more is shown
        row(detectable_difference=0.015, reading="not worse (within δ)", seeds_to_settle=None,
            check="reinit"),
        row(family="e", comparison="random", check="none", reference="random",
            question="better", reading="inconclusive", difference=-0.01,
            detectable_difference=0.021, seeds_to_settle=pd.NA),
        row(family="a", comparison="after training", check="none", reference="ltr",
            question="worse", reading="worse", difference=-0.08, detectable_difference=0.024,
            seeds_to_settle=None)]))
    assert lines[0] == (
        "- **d**, shuffle against unmodified, 'not worse': inconclusive (-0.50 points); could "
        "show 'not worse' only if the true difference is +1.50 points or more; a check that "
        "changes nothing could not be shown (5 / 5 seeds, 80% power); 12 seeds per group would "
        "settle it, if the observed difference is the truth.")
    assert "-0.50 points or more; a check that changes nothing is shown" in lines[1]
    assert "would settle" not in lines[1]
    assert lines[2].startswith("- **e**, against random, 'better': inconclusive (-1.00 points)")
    assert "a true advantage of 2.10 points or more; a smaller one could go unseen" in lines[2]
    assert "no number of seeds would settle it" in lines[2]
    assert "'worse': worse (-8.00 points); could detect a true deficit of 2.40 points" in lines[3]


def test_the_card_states_its_level_and_what_the_method_cost():
    assert level_line("quick", 5, 15).startswith("Level: **quick**, the design's 5 seeds")
    assert "need 15 seeds" in level_line("quick", 5, 15)
    assert "with the 15 seeds" in level_line("full", 5, 15)
    mine = pd.DataFrame(dict(scoring_seconds=[0.5, 1.5], seconds=[10.0, 12.0],
                             train_macs=[1e9, 1e9], test_accuracy=[0.8, 0.9],
                             effective_sparsity=[0.9, 0.92], machine=["CPU A", "CPU A"]))
    line = cost_line(mine, 0.9)
    assert line.startswith("Cost (mean over 2 seed(s), on CPU A): scoring 1.00 s per seed")
    assert "training 11.0 s per run, 1e+09 training MACs" in line
    assert "effective sparsity 91.00% (nominal 90%" in line
    assert "scoring time not recorded" in cost_line(mine.drop(columns="scoring_seconds"), 0.9)


def test_a_runs_summary_records_the_scoring_time_of_the_masks_it_reads(tmp_path):
    """Scored once per seed, reported by every run reading the masks (the card's scoring time)."""
    tiny = dict(model="mlp", dataset="synthetic", epochs=1, batch_size=32, subset=128,
                test_subset=50, sparsity=0.8, method="snip", results_dir=tmp_path,
                device="cpu", log=lambda *a: None)
    first = pai_bench.run(check="none", **tiny)
    shuffled = pai_bench.run(check="shuffle", **tiny)
    (masks,) = (tmp_path / "masks").iterdir()
    stored = json.loads((masks / "scoring.json").read_text())
    assert stored["seconds"] > 0 and stored["machine"]
    assert first["scoring_seconds"] == shuffled["scoring_seconds"] == stored["seconds"]
    runs = pai_bench.load_runs(tmp_path)
    assert runs["scoring_seconds"].tolist() == [stored["seconds"]] * 2
