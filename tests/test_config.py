"""Run configs: validation, and hashes that must never drift (they name stored results)."""

import pytest

from pai_bench.config import RunConfig, resolve_recipe, resolve_subsets
from pai_bench.errors import ConfigError
from pai_bench.recipes import CIFAR


def test_pinned_hashes():
    # If one of these changes, every stored result folder is orphaned: don't "fix" the pin,
    # fix the change (new fields need defaults, which the hash leaves out).
    assert RunConfig(method="magnitude").hash() == "7110ef28a1b0"  # sha256(b'{"method":"magnitude"}')[:12]
    assert RunConfig(method="snip", sparsity=0.98, seed=3).hash() == "64ec5607cb94"
    assert RunConfig(method="synflow", preset="smoke", method_args=(("rounds", 5),)).hash() \
        == "6dbbc8cad283"


def test_hash_ignores_defaults_and_names_every_non_default():
    assert RunConfig(method="random").hash() == RunConfig(method="random", seed=0).hash()
    base = RunConfig(method="random")
    for change in [dict(seed=1), dict(sparsity=0.5), dict(model="mlp"), dict(epochs=3),
                   dict(scope="layerwise"), dict(method_args=(("x", "1"),))]:
        assert RunConfig(method="random", **change).hash() != base.hash()
    # option values are compared as strings: 5 and "5" are the same run
    assert RunConfig(method="a", method_args=(("k", 5),)).hash() == \
        RunConfig(method="a", method_args=(("k", "5"),)).hash()


def test_roundtrip_through_dict():
    c = RunConfig(method="snip", sparsity=0.5, method_args=(("b", "2"), ("a", "1")))
    assert RunConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown config fields"):
        RunConfig.from_dict({"method": "snip", "colour": "red"})


@pytest.mark.parametrize("bad, match", [
    (dict(sparsity=1.0), "sparsity must be in \\[0, 1\\)"),
    (dict(sparsity=-0.1), "sparsity"),
    (dict(seed=-1), r"seed must be an integer in \[0, 4294967295\]"),
    # seeds past 2**32 - 1 could share streams (seed 0 and 2**63 - 1 did: one run twice)
    (dict(seed=2**63 - 1), r"seed must be an integer in \[0, 4294967295\]"),
    (dict(lr=float("inf")), "lr must be a finite number"),
    (dict(lr=1e308 * 10), "lr must be a finite number"),
    (dict(method_args=(("samples_per_class", "5"), ("samples_per_class", "6"))),
     "--method-arg samples_per_class is given 2 times"),
    (dict(preset="fast"), "valid presets: paper, smoke"),
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(rounds=0), "rounds must be a positive integer"),
    (dict(scope="per-layer"), "valid scopes"),
])
def test_bad_values_are_named(bad, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(method="random", **bad)


def test_recipe_resolution():
    r = resolve_recipe(RunConfig(method="random"), CIFAR)
    assert (r.batch_size, r.lr, r.epochs, r.milestones) == (128, 0.1, 160, (80, 120))
    r = resolve_recipe(RunConfig(method="random", preset="smoke", lr=0.05, batch_size=64), CIFAR)
    assert (r.epochs, r.milestones, r.lr, r.batch_size) == (2, (1.0, 1.5), 0.05, 64)
    r = resolve_recipe(RunConfig(method="random", epochs=16), CIFAR)
    assert r.milestones == (8.0, 12.0)
    assert resolve_subsets(RunConfig(method="random")) == (None, None)
    assert resolve_subsets(RunConfig(method="random", preset="smoke", subset=500))[0] == 500


def test_lr_schedule_values():
    spe = 10
    assert CIFAR.lr_at(0, spe) == 0.1 and CIFAR.lr_at(799, spe) == 0.1
    assert CIFAR.lr_at(800, spe) == pytest.approx(0.01)
    assert CIFAR.lr_at(1200, spe) == pytest.approx(0.001)
    from pai_bench.recipes import TINYIMAGENET
    assert TINYIMAGENET.lr_at(0, spe) == pytest.approx(0.2 / 50)
    assert TINYIMAGENET.lr_at(49, spe) == pytest.approx(0.2)
    assert TINYIMAGENET.lr_at(1000, spe) == pytest.approx(0.02)
