"""After-training baselines (magnitude pruning after training, lottery-ticket rewinding): issue 4."""
