"""pai-bench: a benchmark suite for pruning neural networks at initialization."""
