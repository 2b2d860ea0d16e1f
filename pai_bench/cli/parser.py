"""The command line: argument parsing only; ``pai_bench.cli.commands`` does the rest.

``run`` (one configuration), ``sweep`` (many), ``table``, ``plot``, ``reproduce`` (a paper
experiment) and ``list``. The flags of a run's settings are derived from the configuration's
fields (``pai_bench.config``): adding a field adds its flag, with its help, here. Library errors
become one message on stderr and exit code 2 (bad input, a path that cannot be written) or 1
(other failures).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path

from pai_bench.cli import commands
from pai_bench.config import RunConfig
from pai_bench.errors import ConfigError, DataNotFoundError, PaiBenchError, StorageError
from pai_bench.sweeps.executors import ExecutorOptions
from pai_bench.fields import choices_of, flag_of
from pai_bench.sweeps.experiments import EXPERIMENTS
from pai_bench.pipeline.export import FORMATS
from pai_bench.options import RunOptions, entry_default, option_fields
from pai_bench.sanity_checks import CHECKS
from pai_bench.signals import STOPPED, exit_code, stop_on_signals


def main(argv: list[str] | None = None) -> int:
    args = build_parser(prog=_prog()).parse_args(argv)
    _replace_unencodable(sys.stdout)
    with stop_on_signals():
        try:
            code = args.func(args)
            sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
            return code
        except (ConfigError, DataNotFoundError, StorageError) as e:
            return _fail(e, 2)
        except PaiBenchError as e:
            return _fail(e, 1)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (pai_bench.signals)
            print(f"pai-bench: {STOPPED}", file=sys.stderr)
            return exit_code(e)
        except BrokenPipeError:  # `pai-bench list | head -1`: the reader has all it wanted
            _silence_stdout()
            return 128 + signal.SIGPIPE


def _fail(e: Exception, code: int) -> int:
    print(f"pai-bench: error: {e}", file=sys.stderr)
    return code


def _replace_unencodable(stream) -> None:
    """A terminal or pipe whose encoding lacks a character the tables print (``±`` under
    LANG=C) gets ``?`` for it, not a UnicodeEncodeError after the work is done."""
    if hasattr(stream, "reconfigure"):
        stream.reconfigure(errors="replace")


def _silence_stdout() -> None:
    """After a broken pipe, the interpreter's final flush of stdout would fail again (and print
    "Exception ignored"): point stdout at /dev/null, as Python's documentation advises."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a test's captured stdout)
        pass


class Parser(argparse.ArgumentParser):
    """argparse's parser, but a bad value is one line: argparse's own names the flag, the
    value and the valid choices; its usage block (14-27 lines of every flag) hid it. Exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _prog() -> str:
    """How the user called us: ``python -m pai_bench`` or the installed ``pai-bench``."""
    return "python -m pai_bench" if Path(sys.argv[0]).name == "__main__.py" else "pai-bench"


def build_parser(config_cls: type = RunConfig,
                 prog: str = "python -m pai_bench") -> argparse.ArgumentParser:
    """The parser of every command; the run settings' flags come from ``config_cls``."""
    parser = Parser(prog=prog, description="Benchmark pruning at initialization.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="prune, train and evaluate one configuration")
    add_settings(run, config_cls, sweep=False)
    add_options(run, "run")
    run.add_argument("--masks", type=path, metavar="FILE",
                     help="train and evaluate these masks ({parameter name: bool tensor}, "
                          "torch.save or .safetensors) instead of a method's: --method masks, "
                          "the sparsity the file has")
    run.set_defaults(func=commands.run, config_cls=config_cls)

    sweep = sub.add_parser("sweep", help="methods x sparsities x seeds x checks, resumable")
    sweep.add_argument("--config", type=path, metavar="FILE.toml",
                       help="a TOML sweep file (see docs/running.md); flags override its values")
    add_settings(sweep, config_cls, sweep=True)
    add_options(sweep, "sweep")
    sweep.set_defaults(func=commands.sweep, config_cls=config_cls)

    repro = sub.add_parser("reproduce", help="run one of the paper's experiments")
    repro.add_argument("name", choices=EXPERIMENTS.names(), help="the experiment")
    repro.add_argument("--scale", choices=("paper", "cpu"), default="cpu",
                       help="paper: the paper's networks and recipes (GPU-days); cpu: the "
                            "miniature for 2 CPU cores (default: %(default)s)")
    repro.add_argument("--out", type=path,
                       help="tables and figures (default: <results-dir>/<scale>/<name>)")
    repro.add_argument("--methods", type=_list_of(str), default=(), metavar="METHOD,...",
                       help="add these methods (a plugin's with --plugin) to the experiment, "
                            "in every sweep whose findings compare them")
    repro.add_argument("--print", dest="show", action="store_true",
                       help="print the experiment's sweeps as TOML sweep files and the command "
                            "that runs them; run nothing")
    add_options(repro, "reproduce")
    repro.set_defaults(func=commands.reproduce)

    for name, func, text in (("table", commands.table, "tables of every run in a results folder "
                                                        "(and runs.csv: one row per run)"),
                             ("plot", commands.plot, "figures of every run in a results folder")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--results-dir", type=path, action="append", default=None,
                       help="where runs are stored (default: $PAI_BENCH_RESULTS, else "
                            "./results); repeat it to read several folders together")
        p.add_argument("--reference", type=path, action="append", default=[], metavar="FILE",
                       help="a reference file (`reference export`) read beside the folders; "
                            "repeatable; its stale rows are listed and left out")
        p.add_argument("--out", type=path, help="output folder (default: <results-dir>/report)")
        if name == "table":
            p.add_argument("--latex", action="store_true", help="also write LaTeX tables")
        else:
            p.add_argument("--layer-sparsity", type=float, default=None,
                           help="sparsity of the per-layer density figure (default: highest)")
        p.set_defaults(func=func)

    judge = sub.add_parser("judge", help="judge one method against the paper's questions: "
                                         "the runs they need, then a verdict card")
    judge.add_argument("--method", required=True,
                       help="the method (a plugin's with --plugin MODULE)")
    judge.add_argument("--level", choices=("quick", "full"), default="quick",
                       help="quick: the design's 5 seeds; full: also the seeds 'not worse "
                            "within δ' needs (default: %(default)s)")
    judge.add_argument("--scale", choices=("cpu", "paper"), default="cpu",
                       help="cpu: the CPU scale's setting at 90%% (default); paper: the paper's "
                            "networks, sparsities and seeds, the references trained where no "
                            "reference row has them")
    given = judge.add_mutually_exclusive_group()
    given.add_argument("--reference", type=path, action="append", metavar="FILE",
                       help="reference results (`reference export`): runs found there are not "
                            "trained again; repeatable (default: the shipped files, "
                            "results/reference/*.csv)")
    given.add_argument("--no-reference", action="store_true",
                       help="read no reference file: every reference run is trained here")
    judge.add_argument("--out", type=path,
                       help="the card's folder (default: <results-dir>/judge/<method>-<level>)")
    add_options(judge, "reproduce")
    judge.set_defaults(func=commands.judge)

    ref = sub.add_parser("reference", help="reference results: stored runs as one CSV file")
    actions = ref.add_subparsers(dest="action", required=True, help="what to do with them")
    ref_export = actions.add_parser("export", help="write every stored run of results folders "
                                                   "as one row of a reference file")
    ref_export.add_argument("results_dirs", type=path, nargs="+", metavar="RESULTS_DIR",
                            help="the results folders whose runs are written")
    ref_export.add_argument("--out", type=path, required=True, metavar="FILE",
                            help="the reference file (CSV), e.g. results/reference/cpu.csv")
    ref_export.set_defaults(func=commands.reference_export)

    exp = sub.add_parser("export", help="write a finished run's trained sparse network")
    exp.add_argument("run", type=path, help="the run's folder (results/runs/<method>-<hash>)")
    exp.add_argument("--format", choices=FORMATS.names(), default="prune",
                     help="prune: torch.nn.utils.prune's weight_orig/weight_mask pairs; "
                          "state_dict: the plain state dict (default: %(default)s)")
    exp.add_argument("--out", type=path, help="the file (default: <run>/model.<format>.pt)")
    exp.set_defaults(func=commands.export)

    lst = sub.add_parser("list", help="list the methods, baselines, checks, models and data sets")
    lst.add_argument("--plugin", dest="plugins", action="append", default=None,
                     metavar="MODULE[,MODULE]", help=_option("plugins").metadata["help"])
    lst.set_defaults(func=commands.list_all)
    return parser


def add_settings(p: argparse.ArgumentParser, config_cls: type, sweep: bool) -> None:
    """A flag per configuration field; for a sweep, a comma-separated list per axis field.

    Unset flags stay None, so the configuration's own defaults apply (and stay out of the
    hash)."""
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if meta.get("derived"):  # found by the entry point, never typed (data_digest)
            continue
        kind = meta.get("kind", str)
        help_text = meta.get("help", "").replace("%", "%%")
        default = meta.get("cli_default") or f.default
        if default is not dataclasses.MISSING and default not in (None, ()):
            help_text += f" (default: {default})"
        if f.name == "method_args":
            p.add_argument(meta["flag"], dest=f.name, action="append", default=[],
                           metavar="KEY=VALUE", help=help_text)
        elif kind is bool:  # a switch: given means true (never type=bool, where "False" is true)
            p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, action="store_true",
                           default=None, help=help_text)
        elif sweep and meta.get("axis"):
            p.add_argument("--" + meta["axis"].replace("_", "-"), dest=meta["axis"],
                           type=_list_of(kind), metavar=f"{f.name.upper()},...",
                           help=f"comma-separated values: {help_text}")
        else:  # a required field (the method) is checked by the command (run: or --masks)
            choices = CHECKS.names() if f.name == "check" else meta.get("choices")
            p.add_argument(flag_of(f), dest=f.name,
                           type=kind, choices=choices, default=None,
                           help=help_text + (" (required)" if f.default is dataclasses.MISSING
                                             else ""))


def add_options(p: argparse.ArgumentParser, entry: str) -> None:
    """A flag per option of ``entry`` ("run", "sweep", "reproduce"): the ``RunOptions`` and,
    for the sweeps, the ``ExecutorOptions`` (``pai_bench.options``). Unset flags stay None, so
    ``commands.options_from_args`` applies the entry's defaults."""
    for cls in (RunOptions, ExecutorOptions):
        for f in option_fields(cls, entry):
            meta = f.metadata
            if meta["python_only"]:
                continue
            flag = flag_of(f)
            help_text = meta["help"].replace("%", "%%")
            default = entry_default(f, entry)
            if meta["switch"]:
                p.add_argument(meta["switch"], dest=f.name, action="store_const",
                               const=not f.default, default=None, help=help_text)
                continue
            if default not in (None, ()):
                help_text += f" (default: {default})"
            choices = choices_of(f)
            if meta["repeat"]:
                p.add_argument(flag, dest=f.name, action="append", default=None,
                               choices=choices, help=help_text,
                               metavar=f.name.upper().rstrip("S") if choices is None else None)
            else:
                kind = path if meta["kind"] is Path else meta["kind"]
                p.add_argument(flag, dest=f.name, type=kind, default=None,
                               choices=choices, help=help_text,
                               metavar=f.name.upper() if choices is None else None)


def _option(name: str):
    return next(f for f in option_fields(RunOptions, "run") if f.name == name)


def path(text: str) -> Path:
    """A path flag's value; an empty one is refused (``Path("")`` is the working folder: a
    ``--results-dir "$UNSET"`` would write there)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return Path(text)


def _list_of(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, "
                                             f"got {text!r}") from None
    parse.__name__ = f"list of {kind.__name__}"
    return parse
