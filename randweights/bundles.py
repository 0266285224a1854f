"""Results bundles: the stored runs of a preset in one file, to hand to anyone who wants to build the book.

A bundle is a ``.tar.gz`` (or ``.zip``) holding ``manifest.json`` (preset, chapters, when and where it was made,
the SHA-256 of every file) and ``runs/<run_id>/`` for each run of the preset's plan that is stored: its
``record.json``, ``config.json``, the small analysis files beside them (``*.json``) and its compact subnetwork
file where the method wrote one (``*.rwc``, or the file the record names; ``max_compact_bits`` leaves out those
that really hold trained weights, such as a dense network's). ``model.pt`` travels only when asked for;
checkpoints never do.

Importing verifies each run before it touches the results folder: the record's own checksum and settings (the
run store's :func:`randweights.store.check_record`), its folder name against its run key, and every file against
the manifest. A run that fails is refused and named; the others are merged. A run already stored is kept as it
is: nothing computed is ever replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tarfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch

from . import plan, store
from ._version import __version__
from .config import from_dict
from .errors import ConfigError
from .fsutil import write_atomic
from .plan import Chapter

FORMAT = 1
MANIFEST = "manifest.json"
SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
COMPACT_SUFFIXES = (".rwc",)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check_name(out: Path) -> None:
    if not out.name.endswith(SUFFIXES):
        raise ConfigError("OUT", str(out), "a file name ending in " + ", ".join(SUFFIXES))


# ---------------------------------------------------------------------------------------------- export
def run_files(folder: Path, record: dict, models: bool = False, max_compact_bits: float | None = None) -> list[Path]:
    """The files of one run folder that a bundle carries (record last): the JSON files, the compact subnetwork
    file (unless it stores more than ``max_compact_bits`` bits per weight: a dense or finetuned network's file
    holds its trained weights, about 32 bits each) and, with ``models``, ``model.pt`` and every compact file."""
    bits = record.get("compact_bits_per_weight")
    compact_ok = models or max_compact_bits is None or bits is None or bits <= max_compact_bits
    named = {record.get("compact_file")} - {None}
    keep = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name == "record.json":
            continue
        is_compact = path.suffix in COMPACT_SUFFIXES or path.name in named
        if path.suffix == ".json" and not is_compact or is_compact and compact_ok or models and path.name == "model.pt":
            keep.append(path)
    return [*keep, folder / "record.json"]


def provenance(records: list[dict]) -> dict:
    """Where and with what the bundle was made, and what the runs were trained on."""
    git = store.provenance()
    return {
        "randweights_version": __version__,
        "git_commit": git.get("git_commit"),
        "git_dirty": git.get("git_dirty"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "made_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "trained_on": sorted({str(r.get("device")) for r in records}),
        "trained_with_torch": sorted({str(r.get("torch")) for r in records}),
    }


@dataclass
class ExportReport:
    path: Path
    runs: int
    missing: list[str]
    bytes: int

    def lines(self) -> list[str]:
        out = [f"[bundle] {self.path}: {self.runs} runs, {self.bytes / 1024:.1f} KiB"]
        if self.missing:
            out.append(f"[bundle] {len(self.missing)} runs of the plan are not stored and not in the bundle")
        return out


def export(preset: str, out: str | os.PathLike, chapters: Sequence[Chapter], root=None, only: Iterable[str] | None = None,
           models: bool = False, max_compact_bits: float | None = None) -> ExportReport:
    """Write the stored runs of ``preset`` (of ``chapters``, those named in ``only``, default all) into the bundle
    ``out``; see :func:`run_files` for what each run carries."""
    out = Path(out)
    _check_name(out)
    if max_compact_bits is not None and not max_compact_bits > 0:
        raise ConfigError("--max-compact-bits", max_compact_bits, "a number of bits per weight > 0")
    entries = plan.plan(preset, chapters, only)
    root = store.results_root(root)
    members: dict[str, bytes] = {}
    listed, records, missing = [], [], []
    for entry in entries:
        folder = root / entry.run_id
        record = store.load(entry.config, root)  # verified; a bad record is moved aside and left out
        if record is None or (models and entry.keep_model and not (folder / "model.pt").is_file()):
            missing.append(entry.run_id)
            continue
        files, run_members = {}, {}
        for path in run_files(folder, record, models, max_compact_bits):
            data = path.read_bytes()
            run_members[f"runs/{entry.run_id}/{path.name}"] = data
            files[path.name] = _sha256(data)
        recorded = {store.COMPACT: record.get("compact_sha256"), store.CONFIG: record.get("config_sha256")}
        damaged = [name for name, digest in recorded.items() if digest and name in files and files[name] != digest]
        if damaged:  # changed since the record was verified: never shipped with a fresh SHA-256
            store.log.warning(f"randweights: warning: {folder / damaged[0]}: its SHA-256 differs from its record's; "
                              f"run {entry.run_id} left out of the bundle")
            missing.append(entry.run_id)
            continue
        members.update(run_members)
        records.append(record)
        listed.append({**entry.row(), "files": files})
    manifest = {"format": FORMAT, "preset": preset, "chapters": [c.name for c in plan.select(chapters, only)], "runs": listed,
                "missing": missing, "provenance": provenance(records)}
    members = {MANIFEST: json.dumps(manifest, indent=1).encode(), **members}
    _write_archive(out, members)
    return ExportReport(out, len(listed), missing, out.stat().st_size)


def _write_archive(out: Path, members: dict[str, bytes]) -> None:
    """All of ``members`` into ``out``, atomically (a temporary file renamed at the end)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if out.name.endswith(".zip"):
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in members.items():
                    z.writestr(name, data)
        else:
            mode = "w" if out.name.endswith(".tar") else "w:gz"
            with tarfile.open(tmp, mode) as t:
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                    t.addfile(info, io.BytesIO(data))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- import
def read_archive(path: str | os.PathLike) -> dict[str, bytes]:
    """Every regular file of a bundle by its name; a name that leaves the bundle (absolute, ``..``) or a link is
    refused."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("FILE", str(path), "an existing bundle file (.tar.gz, .tar or .zip)")
    members: dict[str, bytes] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    members[_safe(info.filename)] = z.read(info)
        return members
    try:
        with tarfile.open(path) as t:
            for info in t.getmembers():
                if info.isdir():
                    continue
                if not info.isfile():
                    raise ConfigError("FILE", str(path), f"a bundle of plain files ({info.name} is a link or device)")
                members[_safe(info.name)] = t.extractfile(info).read()
    except tarfile.TarError as err:
        raise ConfigError("FILE", str(path), f"a bundle file (.tar.gz, .tar or .zip): {err}") from None
    return members


def _safe(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise ConfigError("FILE", name, "bundle members inside the bundle (no absolute paths, no '..')")
    return str(p)


@dataclass
class ImportReport:
    merged: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # already stored, identical
    kept: list[str] = field(default_factory=list)  # already stored, different: the stored one is kept
    refused: dict[str, str] = field(default_factory=dict)  # run_id -> why

    def lines(self) -> list[str]:
        out = [f"[bundle] merged {len(self.merged)}, already stored {len(self.present)}, "
               f"kept the stored version of {len(self.kept)}, refused {len(self.refused)}"]
        out += [f"[bundle] kept stored {run_id} (the bundle's record differs)" for run_id in self.kept]
        out += [f"[bundle] REFUSED {run_id}: {why}" for run_id, why in self.refused.items()]
        return out


def verify_run(run_id: str, files: dict[str, bytes], expected: dict[str, str] | None) -> str | None:
    """Why the run ``run_id`` of a bundle cannot be merged (None: it can)."""
    if "record.json" not in files:
        return "no record.json"
    try:
        record = json.loads(files["record.json"])
        cfg = from_dict(record["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return f"record does not parse ({type(err).__name__}: {err})"
    if cfg.run_id != run_id:
        return f"record holds the settings of run {cfg.run_id}"
    if "checksum" not in record:
        return "record has no checksum"
    problem = store.check_record(record, cfg)
    if problem is not None:
        return f"record: {problem}"
    if expected is None:
        return "not listed in the manifest"
    for name, data in files.items():
        if expected.get(name) != _sha256(data):
            return f"{name} differs from the manifest's checksum" if name in expected else f"{name} is not in the manifest"
    absent = sorted(set(expected) - set(files))
    return f"missing {', '.join(absent)}" if absent else None


def import_bundle(path: str | os.PathLike, root=None) -> ImportReport:
    """Merge a bundle into the results folder ``root``: verified runs are written (record last), refused runs
    are named with the reason, runs already stored are left as they are."""
    members = read_archive(path)
    if MANIFEST not in members:
        raise ConfigError("FILE", str(path), f"a randweights bundle (no {MANIFEST})")
    try:
        manifest = json.loads(members[MANIFEST])
        listed = {r["run_id"]: r["files"] for r in manifest["runs"]}
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError("FILE", str(path), f"a bundle with a readable {MANIFEST} ({type(err).__name__})") from None
    by_run: dict[str, dict[str, bytes]] = {}
    for name, data in members.items():
        parts = PurePosixPath(name).parts
        if len(parts) == 3 and parts[0] == "runs":
            by_run.setdefault(parts[1], {})[parts[2]] = data
    root = store.results_root(root)
    report = ImportReport()
    for run_id in sorted(set(by_run) | set(listed)):
        files = by_run.get(run_id, {})
        problem = verify_run(run_id, files, listed.get(run_id))
        if problem is not None:
            report.refused[run_id] = problem
            continue
        _merge(root / run_id, files, report, run_id)
    return report


def _merge(folder: Path, files: dict[str, bytes], report: ImportReport, run_id: str) -> None:
    stored = folder / "record.json"
    if stored.is_file():
        (report.present if stored.read_bytes() == files["record.json"] else report.kept).append(run_id)
        return
    for name, data in files.items():
        if name != "record.json" and not (folder / name).is_file():
            write_atomic(folder / name, data)
    write_atomic(stored, files["record.json"])  # last: a record means the run is complete
    report.merged.append(run_id)
