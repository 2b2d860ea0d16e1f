"""Options of a run that are not part of its identity: where and how it executes.

``RunConfig`` (``pai_bench.config``) says *what* a run is; ``RunOptions`` says where its files go,
which device and threads it uses, what it logs and prints. Like open_lth's ``Platform``, the
options are one frozen value, declared once, with their help, by the fields' one declaration
(``pai_bench.fields.field``, ``identity=False``; a setting is the same with ``identity=True``),
and handed down whole: the CLI flags of ``run``, ``sweep`` and ``reproduce``
(``pai_bench.cli.parser.add_options``) and the keyword arguments of ``pai_bench.run`` / ``sweep`` /
``reproduce`` are derived from these fields, so an option cannot be forgotten by one entry
point. ``pai_bench.sweeps.executors.ExecutorOptions``, declared
with the same ``option`` fields, are the options of a sweep's executor: how many runs at once,
and where.

No option changes a run's numbers but one: two runs of one config with different options share
one result folder (the device and precision that do matter are resolved into the config first,
``pai_bench.precision``; the data root's content enters it as ``data_digest`` where the data
set's name does not fix it, ``pai_bench.pipeline.prepare``). The exception is the CPU thread count,
which changes a CPU run's last digits: it is recorded with each run and said when a stored
result's differs (docs/identity.md).

Example::

    options = RunOptions(results_dir=Path("results"), device="cpu", eval_every=0)
    runner.execute(config, options.resolved())
    dataclasses.replace(options, device="cuda:1")      # a worker bound to the second GPU
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from pai_bench import paths
from pai_bench.training.callbacks import LOGGERS
from pai_bench.data import default_cache_dir, resolve_data_root
from pai_bench.device import resolve_device
from pai_bench.errors import ConfigError
from pai_bench.filekinds import kind
from pai_bench.fields import ENTRIES, choices_of, field, flag_of  # noqa: F401 (ENTRIES kept here)

# The most threads or worker processes a flag may ask for: above any machine's cores, below
# what the OS (or torch's C int) overflows on (--threads 2**64 was a ValueError traceback).
MAX_THREADS = 4096


def option(default: Any, help: str, **meta):
    """An option field: ``fields.field`` with ``identity=False`` (not part of a run's name).
    ``flag``: the CLI flag (default ``--field-name``); ``kind``: how the CLI value is parsed;
    ``choices``: a callable giving the valid values (registries fill late); ``repeat``: a
    repeatable flag collected into a tuple (comma-separated values split); ``entry_defaults``:
    per-entry defaults (``reproduce`` evaluates only at the end); ``minimum``/``maximum``: the
    smallest/largest valid integer; ``switch``: for a bool, the flag that sets it to the
    opposite of its default (``--no-progress``); ``python_only``: no CLI flag (a callable)."""
    return field(default, help, identity=False, **meta)


@dataclass(frozen=True)
class RunOptions:
    """Where and how runs execute; none of it is part of a run's identity."""

    results_dir: Path | None = option(
        None, kind=Path, help="where runs are stored (default: $PAI_BENCH_RESULTS, else "
                              "./results)")
    data_root: Path | None = option(
        None, kind=Path, help="data folder (default: $PAI_BENCH_DATA, else ./data)")
    cache_dir: Path | None = option(
        None, kind=Path, help="decoded-image cache (default: $PAI_BENCH_CACHE, else "
                              "~/.cache/pai_bench)")
    device: str = option("auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    threads: int | None = option(
        None, kind=int, minimum=1, maximum=MAX_THREADS,
        help="torch CPU threads of a run (default: torch's for run, 1 per worker for sweeps)")
    plugins: tuple[str, ...] = option(
        (), flag="--plugin", repeat=True,
        help="import these modules first (from the working folder too), registering the "
             "methods they define (repeatable, MODULE[,MODULE])")
    progress: bool = option(True, switch="--no-progress", help="no progress bars")
    eval_every: int = option(
        1, kind=int, minimum=0, entry_defaults={"reproduce": 0},
        help="evaluate the test set every K epochs into metrics.csv; 0: only at the end")
    checkpoint_every: float = option(
        60.0, kind=float, minimum=0,
        help="seconds of training between checkpoints (written at the next step, and when "
             "training ends); 0: at the end of every epoch")
    loggers: tuple[str, ...] = option(
        (), flag="--logger", repeat=True, choices=LOGGERS.names,
        help="also log the epoch metrics there (tensorboard: <run>/tensorboard/, needs pip "
             "install -e '.[tensorboard]'); repeatable")
    log: Callable[[str], Any] | None = option(
        print, python_only=True, help="where a run's lines go (None: nowhere)")

    def __post_init__(self):
        check_options(self)

    def say(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def resolved(self) -> "RunOptions":
        """Every default made concrete: folders from the environment, ``auto`` to a device
        (a ConfigError when the device asked for is not here)."""
        cache_dir = Path(self.cache_dir or default_cache_dir())
        if kind(cache_dir) not in (None, "a folder"):  # a cache never written is only slow:
            # say so once, at the start, not as a warning per split
            raise ConfigError(f"--cache-dir {cache_dir} is {kind(cache_dir)}, not a folder")
        return dataclasses.replace(
            self, results_dir=Path(self.results_dir or paths.default_results_dir()),
            data_root=resolve_data_root(self.data_root), cache_dir=cache_dir,
            device=str(resolve_device(self.device)))

    def for_worker(self, device: str | None = None) -> "RunOptions":
        """What a run in another process gets: no bars, no lines (the sweep prints one line per
        run), its own device when it is bound to a GPU slot."""
        return dataclasses.replace(self, progress=False, log=None,
                                   device=device if device is not None else self.device)


def check_options(options) -> None:
    """ConfigError naming the first option whose value is out of range or not a choice."""
    for f in dataclasses.fields(options):
        value, meta = getattr(options, f.name), f.metadata
        if value is None or meta["python_only"]:
            continue
        label = flag_of(f)
        if meta["kind"] is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{label} must be an integer, got {value!r}")
        if meta["kind"] is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
            raise ConfigError(f"{label} must be a finite number, got {value!r}")
        high = meta["maximum"]
        if high is not None and value > high:
            raise ConfigError(f"{label} must be at most {high}, got {value!r}")
        low = meta["minimum"]
        if low is not None and value < low:
            what = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f">= {low}") \
                if meta["kind"] is int else f">= {low}"
            raise ConfigError(f"{label} must be {what}, got {value!r}")
        if meta["repeat"] and not isinstance(value, tuple):
            raise ConfigError(f"{label} takes a tuple of names, got {value!r}")
        valid = choices_of(f)
        for item in (value if meta["repeat"] else (value,)):
            if valid is not None and item not in valid:
                raise ConfigError(f"unknown {label} value {item!r}; valid: {', '.join(valid)}")


def option_fields(cls: type, entry: str) -> list[dataclasses.Field]:
    """The options of ``cls`` that entry point ``entry`` ("run", "sweep", "reproduce") takes."""
    return [f for f in dataclasses.fields(cls) if entry in f.metadata["entries"]]


def entry_default(f: dataclasses.Field, entry: str) -> Any:
    return f.metadata["entry_defaults"].get(entry, f.default)


def from_kwargs(cls: type, entry: str, values: dict[str, Any]):
    """``cls`` from the keyword arguments an entry point was given (the rest at that entry's
    defaults); values that are not its options are refused, naming the valid ones."""
    fields = {f.name: f for f in option_fields(cls, entry)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"unknown option {sorted(unknown)[0]!r}; valid: "
                          f"{', '.join(fields)}")
    kwargs = {n: entry_default(f, entry) for n, f in fields.items()}
    for name, value in values.items():
        if fields[name].metadata["repeat"] and isinstance(value, (list, str)):
            value = (value,) if isinstance(value, str) else tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def split_kwargs(kwargs: dict[str, Any], *classes: type) -> list[dict[str, Any]]:
    """``kwargs`` split by which of ``classes`` declares each name; the rest last."""
    parts: list[dict[str, Any]] = [{} for _ in classes] + [{}]
    for key, value in kwargs.items():
        i = next((i for i, c in enumerate(classes)
                  if key in {f.name for f in dataclasses.fields(c)}), len(classes))
        parts[i][key] = value
    return parts


__all__ = ["RunOptions", "option", "check_options", "option_fields", "from_kwargs", "split_kwargs",
           "entry_default"]
