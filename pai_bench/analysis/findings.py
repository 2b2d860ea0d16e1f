"""The paper's findings as declared questions, and the verdict table that answers them.

Every comparison the report makes is one of three kinds, each on runs of one setting (every
field but the seed and the method's own pruning fields):

* ``check``: a sanity check against its unmodified method (d = check - original);
* ``random``: a method against random pruning at step 0 (d = method - random);
* ``after training``: a method at initialization against an after-training baseline (d =
  method - baseline).

A ``Finding`` says which comparisons it covers, the question they answer (``pai_bench.analysis.verdicts``)
and the family its p-values are Holm-adjusted in: one family per finding of the paper, across
every sparsity and network of the report, never one per table. The first finding that covers a
comparison answers it. The margin δ is the experiment's (``MARGIN_POINTS``) unless a finding
sets its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pai_bench.errors import ConfigError
from pai_bench.methods import METHODS
from pai_bench.analysis.verdicts import POWER, READINGS

COMPARISONS = ("check", "random", "after training")
METHOD_KINDS = ("pai", "after training", "any")  # a finding's ``methods``, or a tuple of names
PRUNE_AT = ("zero", "later", "any")
BUDGETS = ("equal", "matched", "any")  # a finding's ``budget``: the compared runs' (config.BUDGETS)
# δ in accuracy points per scale. CPU miniature: seeds differ by 1-3 points (3 seeds), so
# 2 points is the smallest effect worth calling; the paper's recipes: seeds differ by about
# 0.2-0.3 points on CIFAR-10, and 0.5 points is below every effect the paper reports.
MARGIN_POINTS = {"cpu": 2.0, "paper": 0.5}
# The paper's recipe: preset "paper" with none of these overridden (``paper_recipe``).
RECIPE_OVERRIDES = ("epochs", "batch_size", "lr", "subset", "test_subset", "width")


def after_training(method: str) -> bool:
    """Whether ``method`` prunes after training (a method not registered here: at init)."""
    return method in METHODS and METHODS.get(method).after_training


@dataclass(frozen=True)
class Finding:
    """One claim, asked of every comparison it covers.

    ``family``: the name Holm's adjustment groups by (findings may share one); ``question``:
    worse, better, not worse or equivalent; ``comparison``: check, random or after training;
    ``methods``: the compared methods, "pai", "after training", "any" or a tuple of names;
    ``checks``: the checks covered (``comparison="check"``; empty: every check); ``prune_at``:
    "zero", "later" (prune_at > 0) or "any"; ``margin_points``: δ in accuracy points (None: the
    experiment's); ``alpha``: the level (None: the table's); ``models``: the networks covered
    (empty: every one); ``budget``: the compared method's training budget, "equal",
    "matched" (``config.BUDGETS``) or "any".

    >>> Finding("b", "LTR is worse when shuffled", "worse", "check", methods=("ltr",),
    ...         checks=("shuffle",)).covers("check", "ltr", "shuffle", 0)
    True
    """

    family: str
    claim: str
    question: str
    comparison: str
    methods: str | tuple[str, ...] = "pai"
    checks: tuple[str, ...] = ()
    prune_at: str = "any"
    margin_points: float | None = None
    alpha: float | None = None
    models: tuple[str, ...] = ()
    budget: str = "any"

    def __post_init__(self):
        for name, value, valid in (("question", self.question, tuple(READINGS)),
                                   ("comparison", self.comparison, COMPARISONS),
                                   ("prune_at", self.prune_at, PRUNE_AT),
                                   ("budget", self.budget, BUDGETS)):
            if value not in valid:
                raise ConfigError(f"finding {self.family!r}: unknown {name} {value!r}; valid: "
                                  f"{', '.join(valid)}")
        if isinstance(self.methods, str) and self.methods not in METHOD_KINDS:
            raise ConfigError(f"finding {self.family!r}: methods must be one of "
                              f"{', '.join(METHOD_KINDS)} or a tuple of names, got "
                              f"{self.methods!r}")
        if self.margin_points is not None and not self.margin_points > 0:
            raise ConfigError(f"finding {self.family!r}: margin_points must be > 0, got "
                              f"{self.margin_points!r}")

    def covers(self, comparison: str, method: str, check: str, prune_at: int, *,
               model: str | None = None, budget: str = "equal") -> bool:
        if comparison != self.comparison or (self.checks and check not in self.checks):
            return False
        if (self.models and model not in self.models) or self.budget not in ("any", budget):
            return False
        if self.prune_at != "any" and (prune_at > 0) != (self.prune_at == "later"):
            return False
        if isinstance(self.methods, tuple):
            return method in self.methods
        return self.methods == "any" or after_training(method) == (self.methods != "pai")


SHUFFLE_REINIT = ("shuffle", "reinit")
# The paper's conv nets (experiments.PAPER_MODELS), for findings about them.
PAPER_CONV = ("cifar_resnet_20", "cifar_vgg_16", "tinyimagenet_resnet_18", "imagenet_resnet_50")
# The paper's findings (Frankle et al. 2021), first match first; the last ones catch what the
# paper does not state (other methods' inversion, a plugin's check) so that every comparison
# is answered.
PAPER_FINDINGS = (
    Finding("a", "magnitude after training and LTR beat every PaI method", "worse",
            "after training", prune_at="zero"),
    Finding("a-early", "PaI methods pruned after k steps stay below LTR", "worse",
            "after training", prune_at="later"),
    Finding("b", "after-training baselines (LTR) are worse shuffled or reinitialized", "worse",
            "check", methods="after training", checks=SHUFFLE_REINIT),
    Finding("c", "SNIP, SynFlow and magnitude are worse when inverted; GraSP is not worse",
            "worse", "check", methods=("snip", "synflow", "magnitude"), checks=("invert",)),
    Finding("c", "SNIP, SynFlow and magnitude are worse when inverted; GraSP is not worse",
            "not worse", "check", methods=("grasp",), checks=("invert",)),
    Finding("d", "every PaI method is not worse shuffled or reinitialized (within δ)",
            "not worse", "check", checks=SHUFFLE_REINIT),
    Finding("e", "PaI methods beat random pruning", "better", "random"),
    Finding("invert", "the other methods are worse when inverted (their ranking informs)",
            "worse", "check", methods="any", checks=("invert",)),
    Finding("other checks", "other checks leave accuracy unchanged (within ±δ)", "equivalent",
            "check", methods="any"),
)

# The objections to the paper and the question the coverage asked (``reproduce contested``),
# first match first. The networks: the MLP (LeNet-300-100), the vision transformer and the
# paper's conv nets (the CIFAR ResNet at CPU scale); "conv" below is every other network.
SHUFFLED = ("magnitude", "snip", "grasp", "synflow")
FC_AND_VIT = ("mlp", "cifar_vit")
CONTESTED_FINDINGS = (
    # (1) the objection's claim where it is made (fully-connected, and the transformer)...
    Finding("1 shuffle hurts (mlp, vit)", "shuffling a layer's mask hurts a fully-connected "
            "network or a transformer (the objection)", "worse", "check", methods=SHUFFLED,
            checks=("shuffle",), models=FC_AND_VIT),
    # ... and the paper's finding on the conv nets beside it
    Finding("1 shuffle (conv)", "shuffled masks are not worse on a conv net (the paper, "
            "within δ)", "not worse", "check", methods=SHUFFLED, checks=("shuffle",)),
    # (2) the after-training baselines against methods at initialization trained as long
    Finding("2 compute-matched", "trained for the epochs of magnitude after training (its "
            "dense training included), PaI methods are still worse than the after-training "
            "baselines", "worse", "after training", prune_at="zero", budget="matched"),
    Finding("2 equal epochs", "at equal sparse-training epochs, PaI methods are worse than the "
            "after-training baselines (the paper)", "worse", "after training", prune_at="zero",
            budget="equal", models=PAPER_CONV),
    # (3) magnitude at initialization against random pruning, every network and sparsity
    Finding("3 magnitude = random", "magnitude at initialization is random pruning (the "
            "objection): equivalent within ±δ", "equivalent", "random",
            methods=("magnitude",), budget="equal"),
    # (4) the paper's main comparison on the transformer
    Finding("4 vit: after training", "on the transformer, the after-training baselines beat "
            "every PaI method", "worse", "after training", prune_at="zero", budget="equal",
            models=("cifar_vit",)),
    Finding("4 vit: random", "on the transformer, PaI methods beat random pruning", "better",
            "random", budget="equal", models=("cifar_vit",)),
)


def select(*families: str) -> tuple[Finding, ...]:
    """The paper's findings of ``families``, in their order: what one experiment tests, so that
    each finding is judged in one report (``select("b", "c", "d", "invert")``)."""
    known = list(dict.fromkeys(f.family for f in PAPER_FINDINGS))
    for family in families:
        if family not in known:
            raise ConfigError(f"unknown finding {family!r}; valid findings: {', '.join(known)}")
    return tuple(f for f in PAPER_FINDINGS if f.family in families)


def with_margin(findings, margin_points: float) -> tuple[Finding, ...]:
    """``findings`` with δ = ``margin_points`` where they do not set their own."""
    return tuple(f if f.margin_points is not None
                 else dataclasses.replace(f, margin_points=margin_points) for f in findings)


def paper_recipe(runs) -> bool:
    """Whether every run follows the paper's recipe unchanged (preset paper, no override)."""
    if not len(runs) or "preset" not in runs.columns:
        return False
    overridden = [c for c in RECIPE_OVERRIDES if c in runs.columns]
    return bool((runs["preset"] == "paper").all() and runs[overridden].isna().all().all())


def default_margin_points(runs) -> float:
    """The margin of runs whose experiment declares none: the paper scale's for runs of the
    paper's recipe, the CPU scale's for anything shrunk."""
    return MARGIN_POINTS["paper" if paper_recipe(runs) else "cpu"]


def answers_no_question(comparison: str, method: str, check: str) -> bool:
    """Whether the comparison is a check that leaves its method what it was (random pruning
    shuffled, reinitialized or inverted is random pruning again: ``Method.unchanged_by``): it
    answers no question, and a Holm family holding it would only raise its other p-values."""
    return (comparison == "check" and method in METHODS
            and check in METHODS.get(method).unchanged_by)


def first_covering(findings, comparison: str, method: str, check: str, prune_at: int, *,
                   model: str | None = None, budget: str = "equal") -> Finding | None:
    """The first of ``findings`` that covers the comparison; None where none does or where it
    answers no question (``answers_no_question``)."""
    if answers_no_question(comparison, method, check):
        return None
    return next((f for f in findings if f.covers(comparison, method, check, prune_at,
                                                 model=model, budget=budget)), None)


CAPTION = (
    "Each comparison answers its finding's question about d = compared - reference (accuracy "
    "points): worse (d < 0), better (d > 0), not worse (d > -δ) or equivalent (-δ < d < δ), "
    "by Welch's t-test (unequal variances), one-sided, or two one-sided tests (TOST) for "
    "equivalence. p (Holm): adjusted by Holm's method within the finding's family, across the "
    "whole report. reading: the claim when p (Holm) < α; else its opposite when the data lie "
    "wholly on the far side of the null (worse by more than δ for not worse, better for worse, "
    "worse for better, different beyond ±δ for equivalent: the one-sided test of that side, "
    "for different both sides with the smaller p doubled), its p (opposite, Holm) < α, "
    "adjusted within the same family; else inconclusive (neither is shown, which is no "
    "evidence either way: see CI, detectable, seeds to settle). Checks that leave their "
    "method what it was (random pruning shuffled, reinitialized or inverted) answer no "
    "question and are in no family. CI: the "
    "two-sided 1 - 2α Welch interval, whose bounds are the one-sided 1 - α bounds the tests "
    "use (unadjusted). detectable: the smallest true distance from the null's boundary (|d|; "
    f"d + δ for not worse; δ - |d| for equivalent) that these seeds detect with {POWER:.0%} "
    "power at level α/m. seeds to settle (inconclusive rows): seeds per group that would give "
    f"the claim {POWER:.0%} power at α/m if the observed difference and SD were the true ones; "
    "never: the observed difference lies on the null's side.")


def caption(table) -> str:
    """The verdict table's caption: the tests, and each family's question, margin, level, size
    and claim, read from the table itself (so it cannot disagree with the rows)."""
    families = []
    for family, g in table.groupby("family", sort=False):
        margins = "/".join(f"{100 * m:g}" for m in sorted(g["margin"].unique()))
        alphas = "/".join(f"{a:g}" for a in sorted(g["alpha"].unique()))
        questions = "/".join(q for q in READINGS if q in set(g["question"]))
        claims = "; ".join(dict.fromkeys(g["claim"]))
        families.append(f"{family} ({questions}; δ = {margins} points; α = {alphas}; "
                        f"m = {len(g)}): {claims}")
    return CAPTION + " Families: " + ". ".join(families) + "."
