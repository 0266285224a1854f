"""``randweights plan``, ``randweights sweep`` and ``randweights bundle``: the commands for running at scale.

Kept apart from :mod:`randweights.cli` so that module only adds these parsers and dispatches to :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from . import bundles, env, plan, sweeps
from .chapters import CHAPTERS
from .config import check_device
from .errors import ConfigError, check_range

COMMANDS = ("plan", "sweep", "bundle")


def preset_help() -> str:
    """``--preset``'s help: the presets every chapter declares, and those only some do (with ``--only``)."""
    common = plan.presets(CHAPTERS)
    extra = [f"{p} (--only {c.name})" for c in CHAPTERS for p in c.presets if p not in common]
    return "one of " + ", ".join([*common, *extra])


def add_parsers(sub) -> None:
    """Add the subcommands to ``sub`` (the main parser's subparsers)."""
    plan_ = sub.add_parser("plan", help="list every run a preset makes (per chapter and figure), without training")
    plan_.add_argument("--preset", required=True, help=preset_help())
    plan_.add_argument("--only", action="append", default=None, metavar="CHAPTER", help="a chapter; repeatable")
    plan_.add_argument("--json", action="store_true", help="one JSON list of runs on stdout")
    plan_.add_argument("--dry-run", action="store_true", help="one optimizer step of each distinct recipe (on --device)")
    plan_.add_argument("--device", default="cpu", help="the dry run's device: cpu (default), cuda, cuda:N or mps")
    plan_.add_argument("--real-data", action="store_true", help="dry run on the first images of each real dataset "
                       "whose files are present (the real loaders), synthetic images otherwise")
    _add_sweep(sub)
    _add_bundle(sub)


def _add_sweep(sub) -> None:
    sweep = sub.add_parser("sweep", help="train every run of a plan through an executor (local processes, Dask, Slurm)")
    sweep.add_argument("--preset", required=True, help=preset_help())
    sweep.add_argument("--only", action="append", default=None, metavar="CHAPTER", help="a chapter; repeatable")
    sweep.add_argument("--executor", default="local", help="local (default), dask or slurm")
    sweep.add_argument("--workers", type=int, default=None, help="local: worker processes, one GPU each where there "
                       "are several (default 1); dask: workers of the LocalCluster started when --scheduler is not "
                       "given (default 2); slurm: jobs in flight at a time (default 256)")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS", help="dask: an existing scheduler, e.g. tcp://host:8786")
    sweep.add_argument("--partition", default=None, help="slurm: the partition")
    sweep.add_argument("--gpus-per-job", type=int, default=None, help="slurm: GPUs per job (default 1)")
    sweep.add_argument("--time-limit", type=int, default=None, metavar="MINUTES", help="slurm: per job (default 1440)")
    sweep.add_argument("--logs", default=None, help="slurm: folder for submitit's job files (default <results>/.submitit)")
    sweep.add_argument("--retries", type=int, default=1, help="times a failed run is submitted again (default 1; allowed: 0 or more)")
    sweep.add_argument("--results", default=None, help="results folder, shared by every worker (default $RANDWEIGHTS_RESULTS or results/)")
    sweep.add_argument("--device", default=None, help="auto (default: CUDA when the worker has it), cpu, cuda")


def _add_bundle(sub) -> None:
    bundle = sub.add_parser("bundle", help="export the stored runs of a preset into one file, or import one")
    verbs = bundle.add_subparsers(dest="verb", required=True, parser_class=type(bundle))
    export = verbs.add_parser("export", help="write the stored runs of a preset (records, configs, provenance, compact files)")
    export.add_argument("--preset", required=True, help=preset_help())
    export.add_argument("--only", action="append", default=None, metavar="CHAPTER", help="a chapter; repeatable")
    export.add_argument("--models", action="store_true", help="also the model weights (model.pt) of runs that keep them")
    export.add_argument("--max-compact-bits", type=float, default=None, metavar="BITS",
                        help="leave out compact files storing more than BITS bits per weight (dense and finetuned "
                        "networks store about 32), and so the runs whose records hold those files' SHA-256; "
                        "default: every compact file, so every chapter renders from the bundle without training")
    export.add_argument("--results", default=None, help="results folder (default $RANDWEIGHTS_RESULTS or results/)")
    export.add_argument("out", metavar="OUT", help="the bundle to write: NAME.tar.gz, NAME.tar or NAME.zip")
    imp = verbs.add_parser("import", help="merge a bundle into the results folder, verifying every record",
                           description="Merge a bundle into the results folder. Verified means damage is detected "
                           "(checksums of every record and file); tampering is not: whoever made the bundle wrote its "
                           "checksums. Check the file against the SHA-256 its author published (sha256sum -c) first.")
    imp.add_argument("file", metavar="FILE", help="a bundle written by `randweights bundle export`")
    imp.add_argument("--results", default=None, help="results folder (default $RANDWEIGHTS_RESULTS or results/)")
    imp.add_argument("--max-member-mb", type=float, default=bundles.MAX_MEMBER_BYTES / 2**20, metavar="MIB",
                     help="refuse a bundle with a member that unpacks to more (default 1024)")
    imp.add_argument("--max-total-mb", type=float, default=bundles.MAX_TOTAL_BYTES / 2**20, metavar="MIB",
                     help="refuse a bundle that unpacks to more in all (default 16384)")


def run(args: argparse.Namespace) -> int:
    """Dispatch one of :data:`COMMANDS`; bad input raises ConfigError (the CLI prints it, exit code 2)."""
    if args.command == "plan":
        return _plan(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "bundle":
        return _bundle(args)
    raise ConfigError("command", args.command, "one of " + ", ".join(COMMANDS))


def _plan(args) -> int:
    entries = plan.plan(args.preset, CHAPTERS, args.only)
    if (args.real_data or args.device != "cpu") and not args.dry_run:
        raise ConfigError("--real-data" if args.real_data else "--device", args.real_data if args.real_data else args.device,
                          "only with --dry-run")
    check_device(args.device)
    if args.json and not args.dry_run:
        print(json.dumps([e.row() for e in entries], indent=1))
        return 0
    if not args.dry_run:
        print("\n".join(plan.summary_lines(entries)))
        return 0
    out = sys.stderr if args.json else sys.stdout
    images = "real images where present" if args.real_data else "synthetic images"
    print(f"dry run: {len(entries)} runs of preset {args.preset!r}, one step per distinct recipe on {args.device}, {images}",
          file=out, flush=True)
    results = plan.dry_run(entries, device=args.device, log=lambda line: print(line, file=out, flush=True),
                           real_data=args.real_data)
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps([{"method": r.config.method.name, "arch": r.config.model.arch, "dataset": r.config.data.dataset,
                           "run_id": r.config.run_id, "runs": r.runs, "ok": r.ok, "error": r.error, "seconds": round(r.seconds, 3),
                           "data": r.facts.get("data")}
                          for r in results], indent=1))
    print(f"dry run: {len(results) - len(failed)} of {len(results)} recipes ok, {len(failed)} failed", file=out)
    return 1 if failed else 0


def _sweep(args) -> int:
    # every option on its own first, then the plan, then (once, before any executor starts) the device, the
    # results folder and every network's size: nothing is printed, made or submitted before all of them hold
    sweeps.check_executor_options(args.executor, args.workers, args.scheduler, args.partition, args.gpus_per_job,
                                  args.time_limit, args.logs)
    check_range("--retries", args.retries, low=0)
    entries = plan.plan(args.preset, CHAPTERS, args.only)  # bad preset / chapter: ConfigError before anything starts
    results = env.results_path(args.results, "--results")
    made = not results.exists()
    root = sweeps.check_plan([e.config for e in entries], results, args.device, here=args.executor == "local")
    folder = Path(args.logs) if args.logs else root / ".submitit"
    try:
        executor = sweeps.make_executor(args.executor, args.workers, args.scheduler, args.partition, args.gpus_per_job,
                                        args.time_limit, folder)
    except ConfigError:  # e.g. slurm on a machine without it: leave no empty results folder behind
        if made and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        raise
    print(f"[sweep] {len(entries)} runs of preset {args.preset!r} into {root} on {args.executor}", flush=True)
    try:
        summary = sweeps.run_plan([e.config for e in entries], executor, root=root, device=args.device,
                               keep_model={e.run_id for e in entries if e.keep_model}, retries=args.retries,
                               log=lambda line: print(line, flush=True))
    finally:
        executor.shutdown()
    print("\n".join(summary.lines()), flush=True)
    return 1 if summary.failed else 0


def _bundle(args) -> int:
    if args.verb == "export":
        bundles._check_name(Path(args.out))  # the bundle's name first, as before
        bits = args.max_compact_bits
        if bits is not None and not (math.isfinite(bits) and bits > 0):
            raise ConfigError("--max-compact-bits", bits, "a number of bits per weight > 0")
        plan.plan(args.preset, CHAPTERS, args.only)  # bad preset / chapter before the results folder is looked at
        root = env.results_path(args.results, "--results")
        if not root.is_dir():  # a file or a missing folder would give an empty bundle
            raise ConfigError("--results", str(root), "an existing results folder holding stored runs")
        report = bundles.export(args.preset, args.out, CHAPTERS, root=root, only=args.only, models=args.models,
                                max_compact_bits=args.max_compact_bits)
        print("\n".join(report.lines()))
        return 0
    caps = {}
    for flag, name in (("--max-member-mb", "max_member_mb"), ("--max-total-mb", "max_total_mb")):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(flag, value, "a number of MiB > 0")
        caps[flag] = max(1, int(value * 2**20))
    report = bundles.import_bundle(args.file, root=env.results_path(args.results, "--results"),
                                   max_member_bytes=caps["--max-member-mb"], max_total_bytes=caps["--max-total-mb"])
    print("\n".join(report.lines()))
    return 1 if report.refused else 0
