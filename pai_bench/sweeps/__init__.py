"""Many runs: ``sweep`` (specs from TOML and flags, pending runs, progress), ``executors`` (where
runs execute: local processes; ``ray_executor``: a Ray cluster), ``worker`` (one run in whatever
process), ``experiments`` (the paper's named experiments and ``reproduce``)."""
