"""The one declaration of a field, for settings and options alike (open_lth's ``Platform`` is an
``Hparams``): ``field(default, help, identity=...)``.

A run's settings (``config.RunConfig``: *what* the run is) and its options
(``options.RunOptions``, ``executors.ExecutorOptions``: *where and how* it executes) are frozen
dataclasses whose fields carry one metadata schema, declared here; ``config.setting`` and
``options.option`` are this function with ``identity`` set. ``identity``: the field is part of
the run's name (``RunConfig.hash``: its non-default identity fields); an option is not, and
changes no number but the CPU thread count, which each run records (docs/identity.md). From the
schema come the CLI flags (``cli.add_settings``, ``cli.add_options``), the TOML keys and the
keyword arguments of the Python API.

Example::

    @dataclass(frozen=True)
    class MyOptions:
        workers: int = field(1, "runs at once", identity=False, kind=int, minimum=1)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

ENTRIES = ("run", "sweep", "reproduce")  # the entry points that run runs


def field(default: Any, help: str, *, identity: bool, kind: Callable = str,
          flag: str | None = None, choices: tuple | Callable[[], list[str]] | None = None,
          minimum: float | None = None, maximum: float | None = None,
          group: str | None = None, axis: str | None = None, positive: bool = False,
          cli_default: Any = None, sparse_only: bool = False, derived: bool = False,
          repeat: bool = False, entry_defaults: dict[str, Any] | None = None,
          entries: tuple[str, ...] = ENTRIES, switch: str | None = None,
          python_only: bool = False) -> dataclasses.Field:
    """A field of a settings or options dataclass. Shared: ``identity`` (part of the run's
    name), ``help``, ``kind`` (str, int, float or bool: how a CLI or TOML value is read),
    ``flag`` (default ``--field-name``), ``choices`` (a tuple, or a callable for registries that
    fill late), ``minimum``, ``maximum``. A setting's: ``group`` (``config.GROUPS``), ``axis``
    (its plural when a sweep varies it), ``positive``, ``cli_default`` (the entry points'
    default where it differs from the stored one), ``sparse_only``, ``derived`` (found by the
    entry point, no flag: the data's fingerprint). An option's: ``repeat`` (a repeatable flag
    collected into a tuple), ``entry_defaults`` (per entry point), ``entries`` (the entry points
    that take it), ``switch`` (a bool's flag setting it to the opposite of its default),
    ``python_only`` (no flag: a callable). ``default`` ``dataclasses.MISSING``: required."""
    meta = dict(identity=identity, help=help, kind=kind, flag=flag, choices=choices,
                minimum=minimum, maximum=maximum, group=group, axis=axis, positive=positive,
                cli_default=cli_default, sparse_only=sparse_only, derived=derived,
                repeat=repeat, entry_defaults=entry_defaults or {}, entries=entries,
                switch=switch, python_only=python_only)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def identity_fields(cls: type) -> list[str]:
    """The names of ``cls``'s fields that are part of a run's identity."""
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("identity")]


def flag_of(f: dataclasses.Field) -> str:
    """The CLI flag of field ``f``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def choices_of(f: dataclasses.Field) -> list | None:
    """The valid values of field ``f`` (a registry's names read now), or None: any."""
    choices = f.metadata.get("choices")
    return list(choices()) if callable(choices) else list(choices) if choices else None


__all__ = ["ENTRIES", "field", "identity_fields", "flag_of", "choices_of"]
