"""``randweights train`` and ``randweights reproduce``.

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

from . import cli_scale
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import ConfigError, DatasetDamaged, DatasetNotFound
from .methods import METHODS, method_config_class

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


def _add_fields(parser, cls, seen: dict[str, type]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = flag_of(f)
        kind = _value_type(hints[f.name])
        if flag in seen:
            if seen[flag] is not kind:
                raise TypeError(f"{flag} has two types: {seen[flag]} and {kind}")
            continue
        seen[flag] = kind
        kw = {"dest": flag[2:].replace("-", "_"), "default": argparse.SUPPRESS}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            parser.add_argument(flag, type=kind, metavar=kind.__name__.upper(), **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="randweights", description="Neural networks without trained weight values.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = sub.add_parser("train", help="train one configuration (or return its stored record); prints JSON")
    train.add_argument("--method", required=True, help="one of: " + ", ".join(METHODS))
    train.add_argument("--results", default=None, help="results folder (default $RANDWEIGHTS_RESULTS or results/)")
    train.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, ...")
    seen: dict[str, type] = {}
    for cls in SECTIONS.values():
        _add_fields(train, cls, seen)
    for name in METHODS:
        _add_fields(train, method_config_class(name), seen)

    rep = sub.add_parser("reproduce", help="execute the notebooks with papermill and build the book")
    rep.add_argument("--preset", default="quick", choices=("smoke", "quick", "full"))
    rep.add_argument("--only", action="append", default=None, metavar="NAME", help="a notebook name; repeatable")
    rep.add_argument("--no-build", action="store_true", help="execute only; do not build the book")
    rep.add_argument("--device", default=None)
    rep.add_argument("--train-missing", action=argparse.BooleanOptionalAction, default=None,
                     help="train runs that are not stored (default: yes, except --preset full without CUDA, which builds "
                     "the chapters from stored records and says on each page how many runs it has)")
    cli_scale.add_parsers(sub)
    return parser


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
        from .reproduce import reproduce

        return reproduce(preset=args.preset, only=args.only, build=not args.no_build, device=args.device,
                         train_missing=args.train_missing)
    except (ConfigError, DatasetNotFound, DatasetDamaged) as err:
        sys.stderr.write(f"randweights: error: {err}\n")
        return 2
    except KeyboardInterrupt:  # Ctrl-C: no traceback; every finished run is stored, the next call resumes
        sys.stderr.write("randweights: interrupted\n")
        return 130


def _train(args) -> int:
    from . import runs

    cfg = config_from_args(args)
    # get_or_run checks the device and the results folder before loading data, and removes the folders it made
    # when the run fails (missing or damaged data, a setting the data cannot meet): bad input writes nothing
    record = runs.get_or_run(cfg, root=args.results, device=args.device)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
