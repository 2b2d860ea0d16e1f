"""The one training loop (``train``: steps, evaluation, the masks re-applied after every
optimizer step) and what hooks into it (``callbacks``: checkpoints, metric rows, loggers)."""
