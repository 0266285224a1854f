"""``randweights train``, ``randweights reproduce`` and ``randweights export``.

The ``train`` flags are generated from the typed configs: every field of DataConfig, ModelConfig, TrainConfig and
of each method's config becomes ``--field-name`` (a field may choose its flag with ``metadata={"flag": ...}``).
A flag that the chosen method does not have is an error, as is any value its config rejects: one line on stderr
naming the parameter and what is allowed, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from . import cli_scale, compact, env, methods, runs, sweeps
from ._version import __version__
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, method_config_class
from .errors import ConfigError, DatasetDamaged, DatasetNotFound, DiskFull, RunFailed
from .fsutil import DISK_FULL
from .reproduce import NoCheckout, reproduce

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but errors are one line (``randweights: error: ...``) and exit code 2."""

    def error(self, message):
        sys.stderr.write(f"randweights: error: {message}\n")
        sys.exit(2)


def flag_of(f: dataclasses.Field) -> str:
    return "--" + f.metadata.get("flag", f.name).replace("_", "-")


def _value_type(annotation) -> type:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def _allowed(cls, f: dataclasses.Field, kind: type) -> str:
    """What the config accepts for ``f``, read from its own validation: build it with a value it must reject."""
    probes = {str: "\x00?", int: -(10**18), float: -1e300}  # values every range check rejects
    if kind not in probes:
        return ""
    try:
        cls(**{f.name: probes[kind]})
    except ConfigError as err:
        return err.allowed
    except (TypeError, ValueError):
        return ""
    return ""


def _default_text(cls, f: dataclasses.Field) -> str:
    value = f.default if f.default is not dataclasses.MISSING else None
    if value is None:
        return "none"
    if value == "":
        return "empty"
    return str(value)


def field_help(cls, f: dataclasses.Field, kind: type) -> str:
    """The field's ``metadata["help"]`` with its default and the values its config accepts."""
    parts = [f.metadata.get("help", f.name.replace("_", " "))]
    extra = f"default: {_default_text(cls, f)}"
    allowed = _allowed(cls, f, kind)
    if allowed:
        extra += f"; allowed: {allowed}"
    return f"{parts[0]} ({extra})".replace("%", "%%")


def _add_fields(parser, cls, seen: dict[str, type], group=None) -> list[str]:
    """Add a flag per field of ``cls`` to ``group`` (or ``parser``); return the flags another group already has."""
    hints = typing.get_type_hints(cls)
    target = group if group is not None else parser
    shared = []
    for f in dataclasses.fields(cls):
        flag = flag_of(f)
        kind = _value_type(hints[f.name])
        if flag in seen:
            if seen[flag] is not kind:
                raise TypeError(f"{flag} has two types: {seen[flag]} and {kind}")
            shared.append(f"{flag}: {field_help(cls, f, kind)}")
            continue
        seen[flag] = kind
        kw = {"dest": flag[2:].replace("-", "_"), "default": argparse.SUPPRESS, "help": field_help(cls, f, kind)}
        if kind is bool:
            target.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            target.add_argument(flag, type=kind, metavar=kind.__name__.upper(), **kw)
    return shared


SECTION_TITLES = {
    "data": "data (which images)",
    "model": "model (which network)",
    "train": "train (how to optimize)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="randweights", description="Neural networks without trained weight values.")
    parser.add_argument("--version", action="version", version=f"randweights {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = sub.add_parser(
        "train",
        help="train one configuration (or return its stored record); prints JSON",
        description="Train one configuration, or return its stored record; prints one JSON record. Flags are "
        "grouped by section (data, model, train) and by method; a method's flags are allowed only with that "
        "--method.",
    )
    train.add_argument("--method", required=True, help="the method to train; one of: " + ", ".join(methods.NAMES))
    train.add_argument("--results", default=None, help="results folder (default: $RANDWEIGHTS_RESULTS or results/)")
    train.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    seen: dict[str, type] = {}
    for name, cls in SECTIONS.items():
        _add_fields(train, cls, seen, train.add_argument_group(SECTION_TITLES[name]))
    for name in methods.NAMES:
        cls = methods.get(name).config
        group = train.add_argument_group(f"method {name}", _first_line(cls))
        shared = _add_fields(train, cls, seen, group)
        if shared:
            group.description = ((group.description or "") + " Also takes, as above: " + "; ".join(shared)).strip()

    rep = sub.add_parser("reproduce", help="execute the notebooks with papermill and build the book")
    rep.add_argument("--preset", default="quick", help="smoke, quick (default), full, or a preset the chosen chapters declare")
    rep.add_argument("--only", action="append", default=None, metavar="NAME", help="a notebook name; repeatable")
    rep.add_argument("--no-build", action="store_true", help="execute only; do not build the book")
    rep.add_argument("--device", default=None, help="auto (default), cpu, cuda, ...")
    rep.add_argument("--root", default=None, metavar="DIR", help="the checkout holding notebooks/ and book/ "
                     "(default: the working directory or a folder above it)")
    rep.add_argument("--train-missing", action=argparse.BooleanOptionalAction, default=None,
                     help="train runs that are not stored (default: yes, except --preset full without CUDA, which builds "
                     "the chapters from stored records and says on each page how many runs it has)")
    rep.add_argument("--workers", type=int, default=1, metavar="N",
                     help="train each chapter's missing runs in N processes first, the cores shared among them (default "
                     "1: inside the notebook); `make book` uses 2, about 1.4x faster on a 2-core CPU")
    rep.add_argument("--figure", default=None, metavar="NAME", help="draw this one book figure again (its files under "
                     "book/figures/<chapter>/: PNG, SVG and the rows it plots as CSV), training only what the chapter's "
                     "cells up to it read; the name under each figure in the book; no page replaced, no book built")
    cli_scale.add_parsers(sub)
    _add_export(sub)
    return parser


def _add_export(sub) -> None:
    exp = sub.add_parser("export", help="write a stored network as a plain state dict, safetensors or ONNX file",
                         description="Write the subnetwork of a stored run (or of a compact .rwc file) as a plain "
                         "network that PyTorch or an ONNX runtime loads without randweights: masks and selections are "
                         "multiplied into ordinary weights. The file is read back before it is written and must "
                         "compute the same outputs (exactly; ONNX within 1e-4 under onnxruntime). Prints one JSON line.")
    exp.add_argument("source", metavar="RUN_OR_FILE", help="a run id or run folder under the results folder, or a compact file (.rwc)")
    exp.add_argument("out", metavar="OUT", help="the file to write: NAME.pt or NAME.pth (state dict), NAME.safetensors or NAME.onnx")
    exp.add_argument("--format", default=None, help="state_dict, safetensors or onnx (default: from OUT's suffix)")
    exp.add_argument("--force", action="store_true", help="replace OUT if it exists (default: refuse)")
    exp.add_argument("--results", default=None, help="results folder (default: $RANDWEIGHTS_RESULTS or results/)")


def _first_line(cls) -> str | None:
    """The first paragraph of a config's own docstring (dataclasses write ``Name(field, ...)`` when it has none)."""
    doc = (cls.__doc__ or "").strip()
    if not doc or doc.startswith(cls.__name__ + "("):
        return None
    return " ".join(doc.split("\n\n")[0].split()).replace("``", "")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Route each given flag to the section that owns it; reject flags the method does not have."""
    given = {k: v for k, v in vars(args).items() if k not in ("command", "method", "results", "device")}
    method_cls = method_config_class(args.method)  # unknown method -> ConfigError("method", ...)
    owners = {"method": method_cls, **SECTIONS}
    values: dict[str, dict] = {name: {} for name in owners}
    for dest, value in given.items():
        owner = next((n for n, cls in owners.items() if dest in {f.metadata.get("flag", f.name) for f in dataclasses.fields(cls)}), None)
        if owner is None:
            flag = "--" + dest.replace("_", "-")
            raise ConfigError(flag, value, f"no such setting for --method {args.method}; leave {flag} out")
        field_name = next(f.name for f in dataclasses.fields(owners[owner]) if f.metadata.get("flag", f.name) == dest)
        values[owner][field_name] = value
    return RunConfig(
        method=method_cls(**values["method"]),
        data=DataConfig(**values["data"]),
        model=ModelConfig(**values["model"]),
        train=TrainConfig(**values["train"]),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command in cli_scale.COMMANDS:
            return cli_scale.run(args)
        if args.command == "export":
            return _export(args)
        root = Path(args.root) if args.root else None
        return reproduce(preset=args.preset, only=args.only, build=not args.no_build, device=args.device, root=root,
                         train_missing=args.train_missing, workers=args.workers, figure=args.figure)
    except (ConfigError, DatasetNotFound, NoCheckout, DatasetDamaged) as err:
        sys.stderr.write(f"randweights: error: {err}\n")
        return 2
    except runs.RunMissing as err:  # RANDWEIGHTS_TRAIN=0 and the run is not stored: one line, nothing trained
        sys.stderr.write(f"randweights: error: {err}\n")
        return 1
    except (RunFailed, compact.ExportFailed) as err:  # not bad input: the run itself failed (nothing stored), one line
        sys.stderr.write(f"randweights: error: {err}\n")
        return 1
    except OSError as err:  # a full disk anywhere: one line naming the file (atomic writes leave nothing partial)
        if not isinstance(err, DiskFull) and err.errno not in DISK_FULL:
            raise
        shown = err if isinstance(err, DiskFull) else DiskFull(err.filename or "a file", err.strerror or "No space left on device")
        sys.stderr.write(f"randweights: error: {shown}\n")
        return 1
    except KeyboardInterrupt:  # Ctrl-C: no traceback; every finished run is stored, the next call resumes
        sys.stderr.write("randweights: interrupted\n")
        return 130


def _train(args) -> int:
    cfg = config_from_args(args)
    root = env.results_path(args.results, "--results")  # "--results=" would mean the working directory
    sweeps.check_fits(cfg)  # --width 1e6: one line before any data loads
    # get_or_run checks the device and the results folder before loading data, and removes the folders it made
    # when the run fails (missing or damaged data, a setting the data cannot meet): bad input writes nothing
    record = runs.get_or_run(cfg, root=root, device=args.device)
    print(json.dumps(record))
    return 0


def _export(args) -> int:
    """``randweights export RUN_OR_FILE OUT``: bad input (no such run or file, a suffix or format not allowed, an
    existing OUT without --force) is one line, exit 2, nothing written."""
    out = Path(args.out)
    fmt = compact.format_of(out, args.format)
    if out.is_dir() or ((out.exists() or out.is_symlink()) and not args.force):
        raise ConfigError("OUT", str(out), "a file name that does not exist yet (or --force to replace a file)")
    source = Path(args.source)
    if source.suffix.lower() != compact.SUFFIX and not source.is_file():
        folder = source if source.is_dir() else env.results_path(args.results, "--results") / args.source
        source = folder / runs.COMPACT_FILE
        if not source.is_file():
            where = "" if folder.is_dir() else f" (no run folder {folder})"
            raise ConfigError("RUN_OR_FILE", args.source, f"a compact file (.rwc), or a run id or run folder holding "
                                                          f"{runs.COMPACT_FILE}{where}")
    print(json.dumps(compact.export_file(source, out, fmt)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
