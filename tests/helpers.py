"""What several test files share (importable as ``helpers``: pytest puts ``tests/`` on the path)."""

from pai_bench.training.train import Callback


class StopAt(Callback):
    """Interrupts training after step ``step``, as a user's Ctrl-C would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            raise KeyboardInterrupt
