"""``randweights plan``, ``randweights sweep`` and ``randweights bundle``: the commands for running at scale.

Kept apart from :mod:`randweights.cli` so that module only adds these parsers and dispatches to :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import ConfigError

COMMANDS = ("plan",)


def add_parsers(sub) -> None:
    """Add the subcommands to ``sub`` (the main parser's subparsers)."""
    plan = sub.add_parser("plan", help="list every run a preset makes (per chapter and figure), without training")
    plan.add_argument("--preset", required=True, help="smoke, quick or full")
    plan.add_argument("--only", action="append", default=None, metavar="CHAPTER", help="a chapter; repeatable")
    plan.add_argument("--json", action="store_true", help="one JSON list of runs on stdout")
    plan.add_argument("--dry-run", action="store_true", help="one optimizer step of each distinct recipe on the CPU")


def run(args: argparse.Namespace) -> int:
    """Dispatch one of :data:`COMMANDS`; bad input raises ConfigError (the CLI prints it, exit code 2)."""
    if args.command == "plan":
        return _plan(args)
    raise ConfigError("command", args.command, "one of " + ", ".join(COMMANDS))


def _plan(args) -> int:
    from . import plan

    entries = plan.plan(args.preset, args.only)
    if args.json and not args.dry_run:
        print(json.dumps([e.row() for e in entries], indent=1))
        return 0
    if not args.dry_run:
        print("\n".join(plan.summary_lines(entries)))
        return 0
    out = sys.stderr if args.json else sys.stdout
    print(f"dry run: {len(entries)} runs of preset {args.preset!r}, one step per distinct recipe on the CPU", file=out, flush=True)
    results = plan.dry_run(entries, device="cpu", log=lambda line: print(line, file=out, flush=True))
    failed = [r for r in results if not r.ok]
    if args.json:
        print(json.dumps([{"method": r.config.method.name, "arch": r.config.model.arch, "dataset": r.config.data.dataset,
                           "run_id": r.config.run_id, "runs": r.runs, "ok": r.ok, "error": r.error, "seconds": round(r.seconds, 3)}
                          for r in results], indent=1))
    print(f"dry run: {len(results) - len(failed)} of {len(results)} recipes ok, {len(failed)} failed", file=out)
    return 1 if failed else 0
