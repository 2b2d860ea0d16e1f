"""What several test files share (importable as ``helpers``: pytest puts ``tests/`` on the path)."""

import torch

from pai_bench.pipeline import runner
from pai_bench.training.train import Callback


def cudnn_flags_at_training(monkeypatch) -> list[tuple[bool, bool]]:
    """A list that gets cuDNN's (benchmark, deterministic) flags each time a run starts
    training: what the device set-up left them at (``pai_bench.device``)."""
    seen = []
    real = runner.train

    def spy(*args, **kwargs):
        seen.append((torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic))
        return real(*args, **kwargs)
    monkeypatch.setattr(runner, "train", spy)
    return seen


class StopAt(Callback):
    """Interrupts training after step ``step``, as a user's Ctrl-C would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            raise KeyboardInterrupt
