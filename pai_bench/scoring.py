"""Drive a scorer: one round or an iterative schedule, from a model to ``Masks``.

The caller's model is never modified: scoring happens on a private copy whose weights are
restored from the original, with the current masks applied, before every round, so a scorer may
change parameters, modes and gradients freely, and a stale ``.grad`` left by earlier training can
never leak into a score (the reference code leaks it into GraSP and SynFlow, docs/protocol.md).

Scoring runs on ``SCORING_THREADS`` torch CPU threads, whatever the caller's setting, so that
the same seed gives the same masks on any machine and any ``--threads`` (``fixed_threads``).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Mapping

import torch
from torch import nn

from pai_bench.errors import ConfigError, PaiBenchError, ScoreError
from pai_bench.methods.base import Scorer, ScoringContext
from pai_bench.masks import Masks, apply_
from pai_bench.models import prunable_names
from pai_bench.pruning import check_scores, exponential_schedule, fixed_layer_masks, threshold
from pai_bench.errors import Diverged
from pai_bench.signals import raised_by_code


# torch intra-op CPU threads while scoring. One: on CPUs every reduction then adds in one order.
SCORING_THREADS = 1


@contextmanager
def fixed_threads(threads: int = SCORING_THREADS):
    """Run the block on ``threads`` torch CPU threads, then restore the caller's count.

    Why: a CPU reduction (the batch sum of a convolution's weight gradient, a matrix product) is
    cut into one partial sum per thread, and float addition is not associative, so scores on 1
    and on 2 threads differed in their last bits. A threshold at 98% sparsity falls among many
    near-equal scores, and ProsPr's 3 SGD steps or 60 rounds of iterative SNIP amplify the bits
    into different masks (issue 25, #13). With the thread count fixed, every sum has one order.
    The cost is scoring time on a many-core CPU (docs/protocol.md); training keeps its threads.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@fixed_threads()  # a new context for every call (contextlib's ContextDecorator)
def compute_masks(scorer: Scorer, model: nn.Module, *, density: float, generator: torch.Generator,
                  num_classes: int, input_shape: tuple[int, int, int], data=None,
                  rounds: int | None = None, scope: str = "global", current: Masks | None = None,
                  lowest: bool = False, device: torch.device | str = "cpu") -> Masks:
    """Prune ``model`` to ``density`` with ``scorer`` in ``rounds`` rounds (exponential schedule).

    After round k the density is ``density ** (k / rounds)``; masks are applied between rounds and
    weights pruned in one round are never brought back, unless the scorer ``revives`` them
    (FORCE): then every round ranks all the weights of the starting masks. ``rounds=None`` means
    the method's own ``scorer.default_rounds`` (1, or 100 for SynFlow). ``lowest`` keeps the
    weights the method ranks lowest (the inversion check). Same seed, same masks, on any number
    of CPU threads: the scoring runs on ``SCORING_THREADS`` (``fixed_threads``).
    """
    rounds = scorer.default_rounds if rounds is None else rounds
    work = copy.deepcopy(model).to(device)
    masks = current if current is not None else Masks.ones_like(work, prunable_names(work))
    # The caller's weights with the current masks applied, kept apart from the scorer's copy.
    # Masks only shrink, so re-applying each new mask keeps it equal to original ⊙ masks, and
    # one state copy restores ``work`` (cheaper than restoring, then masking, the f64 SynFlow
    # network: the masks would be converted to float64 every round).
    pruned = copy.deepcopy(work)
    apply_(pruned, masks)
    start, original = masks, None
    if scorer.revives:  # the values every round may bring back: before any round's mask
        params = dict(pruned.named_parameters())
        original = {n: params[n].detach().clone() for n in masks}
    for d in exponential_schedule(density, rounds):
        with torch.no_grad():
            work.load_state_dict(pruned.state_dict())
        work.zero_grad(set_to_none=True)
        work.train()
        # the scorer's own copy of the masks: one that zeroes or edits them changes nothing
        ctx = ScoringContext(model=work, masks=Masks(masks), data=data, num_classes=num_classes,
                             input_shape=input_shape, generator=generator,
                             device=torch.device(device), density=d, original=original)
        ranked = start if scorer.revives else masks
        scores = checked_scores(scorer, scored(scorer, ctx), ranked)
        layer_densities = scorer.layer_densities(ranked, d)
        if layer_densities is None:
            masks = threshold(scope, scores, d, ranked, lowest=lowest)
        else:  # the method fixes each layer's density itself; scope does not apply
            masks = fixed_layer_masks(scores, layer_densities, d, ranked, lowest=lowest)
        if scorer.revives:  # restore the values of revived weights, then prune
            with torch.no_grad():
                for n, p in pruned.named_parameters():
                    if n in original:
                        p.copy_(original[n])
        apply_(pruned, masks)
    return masks


def _who(scorer: Scorer) -> str:
    return f"scorer {scorer.name!r} ({type(scorer).__module__}.{type(scorer).__qualname__})"


def scored(scorer: Scorer, ctx: ScoringContext) -> Mapping[str, torch.Tensor]:
    """``scorer.score(ctx)``; an exception of the scorer's own (a plugin's bug: tensors of two
    devices, a shape error) becomes one ``ScoreError`` line naming the scorer, the suite's own
    errors (``Diverged``, ``ScoreError``) pass unchanged. A ``sys.exit`` or a ``raise
    KeyboardInterrupt`` in the scorer is such a bug too (it would end the whole process, or a
    whole sweep, silently); a real Ctrl-C passes (``signals.raised_by_code``)."""
    try:
        return scorer.score(ctx)
    except (PaiBenchError, Diverged):
        raise
    except KeyboardInterrupt as e:
        if not raised_by_code(e):
            raise
        raise ScoreError(f"{_who(scorer)} raised KeyboardInterrupt while scoring") from None
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure of plugin code, one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ScoreError(f"{_who(scorer)} failed while scoring: {type(e).__name__}: {first}") from e


def checked_scores(scorer: Scorer, scores, masks: Masks) -> Mapping[str, torch.Tensor]:
    """``scores``, if they are what ``Scorer.score`` promises: a dict with one real-valued
    (floating-point or integer) tensor of its parameter's shape for every name of ``masks``
    and no other, and no NaN or infinite value. Otherwise a ConfigError naming the scorer and
    what is wrong, before any mask is made from them (a plugin's bug, caught for every method
    here, once; coverage, shapes and finite values by ``pruning.check_scores``, the pure
    functions' own check)."""
    who = _who(scorer)
    if not isinstance(scores, Mapping):
        kind = "None" if scores is None else f"a {type(scores).__name__}"
        raise ConfigError(f"{who} returned {kind}; score() must return a dict "
                          f"{{parameter name: score tensor}} for every prunable parameter")
    for name, s in scores.items():
        if not isinstance(s, torch.Tensor):
            raise ConfigError(f"{who} returned a {type(s).__name__} for {name!r}; a score must "
                              f"be a tensor of the parameter's shape")
        if s.dtype == torch.bool or s.is_complex():
            raise ConfigError(f"{who} returned {s.dtype} scores for {name!r}; scores must be "
                              f"real numbers (a floating-point or integer tensor) to rank")
    try:  # coverage, shapes and finite values: the check the pruning functions make
        check_scores(scores, masks)
    except ScoreError as e:
        raise ConfigError(f"{who}: {e}") from None
    return scores
