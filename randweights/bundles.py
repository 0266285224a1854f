"""Results bundles: the stored runs of a preset in one file, to hand to anyone who wants to build the book.

A bundle is a ``.tar.gz`` (or ``.zip``) holding ``manifest.json`` (preset, chapters, when and where it was made,
the SHA-256 of every file) and ``runs/<run_id>/`` for each run of the preset's plan that is stored: its
``record.json``, ``config.json``, the small analysis files beside them (``*.json``) and its compact subnetwork
file where the method wrote one (``*.rwc``, or the file the record names). By default every compact file
travels, so every chapter rebuilds the trained networks it reads from the bundle alone
(:func:`randweights.runs.load_network`), without training; ``max_compact_bits`` leaves out those that really hold
trained weights, such as a dense network's: a run whose record holds that file's SHA-256 is then left out whole
(without its file the record would read as damaged), and a run recorded before records held it travels without
the file; the export names the runs left out, and the runs carried without the network a chapter reads. ``model.pt`` travels only when asked for; checkpoints never do.

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
import re
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import env, plan, runs, store
from ._version import __version__
from .config import from_dict
from .errors import ConfigError, DiskFull
from .fsutil import copy_atomic
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
    file (by default always; with ``max_compact_bits``, unless it stores more bits per weight: a dense or
    finetuned network's file holds its trained weights, about 32 bits each) and, with ``models``, ``model.pt`` and
    every compact file."""
    bits = record.get("compact_bits_per_weight")
    compact_ok = models or max_compact_bits is None or bits is None or bits <= max_compact_bits
    named = {record.get("compact_file")} - {None}
    keep = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name not in MEMBER_FILES or path.name == "record.json":
            continue  # only the files an import accepts (no checkpoint, lock or stray file)
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
    without_network: list[str] = field(default_factory=list)  # carried, but not the network a chapter reads
    left_out: list[str] = field(default_factory=list)  # stored, left out with their compact files (max_compact_bits)

    def lines(self) -> list[str]:
        out = [f"[bundle] {self.path}: {self.runs} runs, {self.bytes / 1024:.1f} KiB"]
        if self.missing:
            out.append(f"[bundle] {len(self.missing)} runs of the plan are not stored and not in the bundle")
        if self.left_out:
            out.append(f"[bundle] {len(self.left_out)} runs left out: their compact files hold more bits per weight than "
                       f"--max-compact-bits, and their records hold those files' SHA-256 (a record without its file "
                       f"reads as damaged)")
        if self.without_network:
            out.append(f"[bundle] {len(self.without_network)} runs are carried without the network a chapter reads "
                       f"(compact file or model.pt), so those chapters cannot render from the bundle alone: "
                       f"{', '.join(self.without_network)}")
        return out


def carries_network(entry: plan.Entry, names: Iterable[str]) -> bool:
    """Whether a run whose bundle files are ``names`` carries what its chapters read: the network
    (:func:`randweights.runs.load_network`: compact file or ``model.pt``) for ``keep_model``, the compact file
    for ``reads_compact``."""
    names = set(names)
    has_compact = runs.COMPACT_FILE in names
    return (not entry.keep_model or has_compact or store.MODEL in names) and (not entry.reads_compact or has_compact)


def export(preset: str, out: str | os.PathLike, chapters: Sequence[Chapter], root=None, only: Iterable[str] | None = None,
           models: bool = False, max_compact_bits: float | None = None) -> ExportReport:
    """Write the stored runs of ``preset`` (of ``chapters``, those named in ``only``, default all) into the bundle
    ``out``; see :func:`run_files` for what each run carries. With ``max_compact_bits``, a run whose compact file
    is over the limit and whose record holds the file's SHA-256 is left out (:attr:`ExportReport.left_out`)."""
    out = Path(out)
    _check_name(out)
    if max_compact_bits is not None and not max_compact_bits > 0:
        raise ConfigError("--max-compact-bits", max_compact_bits, "a number of bits per weight > 0")
    entries = plan.plan(preset, chapters, only)
    root = store.results_root(root)
    members: dict[str, bytes] = {}
    listed, records, missing, without_network, left_out = [], [], [], [], []
    for entry in entries:
        folder = root / entry.run_id
        record = store.load(entry.config, root)  # verified; a bad record is moved aside and left out
        if record is None:
            missing.append(entry.run_id)
            continue
        carried = run_files(folder, record, models, max_compact_bits)
        if record.get("compact_sha256") and store.COMPACT not in {p.name for p in carried}:
            # the record holds its compact file's SHA-256: without the file it would read as damaged
            left_out.append(entry.run_id)
            continue
        files, run_members = {}, {}
        for path in carried:
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
        if not carries_network(entry, files):
            without_network.append(entry.run_id)
    manifest = {"format": FORMAT, "preset": preset, "chapters": [c.name for c in plan.select(chapters, only)], "runs": listed,
                "missing": missing, "left_out": left_out, "provenance": provenance(records)}
    members = {MANIFEST: json.dumps(manifest, indent=1).encode(), **members}
    _write_archive(out, members)
    return ExportReport(out, len(listed), missing, out.stat().st_size, without_network, left_out)


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
RUN_FILES = frozenset({store.RECORD, store.CONFIG, runs.COMPACT_FILE, store.MODEL})  # what a run folder holds
ANALYSIS_FILES = frozenset({"locality.json", "ablation.json"})  # per-run analysis caches (chapter fcn_to_cnn)
MEMBER_FILES = RUN_FILES | ANALYSIS_FILES  # the only file names a bundle may carry under runs/<run_id>/
MAX_MEMBER_BYTES = 1 << 30  # 1 GiB: no member may unpack to more (a model.pt of the full preset is ~100 MB)
MAX_TOTAL_BYTES = 16 << 30  # 16 GiB unpacked in all
MAX_JSON_BYTES = 64 << 20  # manifest, records, configs and analysis files are parsed in memory: 64 MiB each
MAX_MEMBERS = 100_000
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # <method>-<12 hex digits>: no dots, slashes or colons
_CHUNK = 1 << 20
_ALLOWED_NAMES = f"{MANIFEST} or runs/<run_id>/<file> with <file> one of {', '.join(sorted(MEMBER_FILES))}"
_KIND = "a bundle file (.tar.gz, .tar or .zip written by `randweights bundle export`)"


@dataclass(frozen=True)
class Member:
    """One member of a bundle, streamed to a staging file (never held in memory whole)."""

    name: str
    path: Path  # the staged copy (named by its index, never by the member's name)
    size: int
    sha256: str

    def read(self) -> bytes:
        return self.path.read_bytes()


def check_caps(max_member_bytes: int, max_total_bytes: int) -> None:
    for name, value in (("max_member_bytes", max_member_bytes), ("max_total_bytes", max_total_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(name, value, "a whole number of bytes >= 1")


def read_archive(path: str | os.PathLike, staging: str | os.PathLike, max_member_bytes: int = MAX_MEMBER_BYTES,
                 max_total_bytes: int = MAX_TOTAL_BYTES) -> dict[str, Member]:
    """Every member of the bundle ``path`` by name, each streamed into a file of the folder ``staging``.

    Checked while streaming, before anything is written outside ``staging``: member names must be
    ``manifest.json`` or ``runs/<run_id>/<file>`` with ``<file>`` one of :data:`MEMBER_FILES` (anything else,
    such as ``..``, absolute or Windows-style paths, ``checkpoint.pt`` or ``.lock``, is refused by name), members
    must be plain files (no links or devices) that appear once, and none may unpack to more than
    ``max_member_bytes`` (all of them together: ``max_total_bytes``). A tar is recognized before a zip (an
    uncompressed tar of compact files, which are zips themselves, ends like a zip). Any violation, an empty,
    truncated or garbage file: one :class:`ConfigError`."""
    path, staging = Path(path), Path(staging)
    check_caps(max_member_bytes, max_total_bytes)
    if not path.is_file():
        raise ConfigError("FILE", str(path), "an existing " + _KIND)
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise ConfigError("FILE", str(path), _KIND + "; this file is empty")
    if _is_tar(path):  # first: an uncompressed tar of compact files (zips themselves) ends like a zip
        reader = _read_tar
    elif zipfile.is_zipfile(path):
        reader = _read_zip
    else:
        raise ConfigError("FILE", str(path), _KIND + "; this file is neither a tar nor a zip")
    members: dict[str, Member] = {}
    budget = [max_total_bytes]

    def add(name: str, source, is_file: bool) -> None:
        if len(members) >= MAX_MEMBERS:
            raise ConfigError("FILE", str(path), f"a bundle of at most {MAX_MEMBERS} members")
        if not is_file:
            raise ConfigError("FILE", name, "bundle members that are plain files (this one is a link, device or other)")
        if name in members:
            raise ConfigError("FILE", name, "bundle members that appear once (this one appears twice)")
        cap = min(max_member_bytes, MAX_JSON_BYTES) if name.endswith(".json") else max_member_bytes
        members[name] = _stream(name, source, staging / str(len(members)), cap, budget)

    reader(path, add)
    return members


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (*_DAMAGED, OSError):
        return False


def _member_name(name: str, is_dir: bool) -> bool:
    """Whether ``name`` is a member a bundle may hold (False: a folder entry to skip); else ConfigError."""
    parts = name.rstrip("/").split("/") if is_dir else name.split("/")
    if is_dir and (parts == ["runs"] or len(parts) == 2 and parts[0] == "runs" and _RUN_ID.fullmatch(parts[1])):
        return False
    if not is_dir and (name == MANIFEST or len(parts) == 3 and parts[0] == "runs" and _RUN_ID.fullmatch(parts[1])
                       and parts[2] in MEMBER_FILES):
        return True
    raise ConfigError("FILE", name, f"bundle members named {_ALLOWED_NAMES} (nothing was imported)")


def _stream(name: str, source, dest: Path, cap: int, budget: list[int]) -> Member:
    """Copy the file object ``source`` to ``dest`` in chunks, refusing it as soon as it passes ``cap`` bytes or
    the total ``budget`` left; returns the staged member with its size and SHA-256."""
    digest, size = hashlib.sha256(), 0
    with open(dest, "wb") as out:
        while True:
            chunk = source.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                raise ConfigError("FILE", name, f"bundle members of at most {cap} bytes unpacked (this one is larger; "
                                  "see max_member_bytes / --max-member-mb)")
            if size > budget[0]:
                raise ConfigError("FILE", name, "bundles unpacking to at most max_total_bytes in all (--max-total-mb); "
                                  "this member passes it")
            digest.update(chunk)
            out.write(chunk)
    budget[0] -= size
    return Member(name, dest, size, "sha256:" + digest.hexdigest())


_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def _read_tar(path: Path, add) -> None:
    try:
        with tarfile.open(path, "r:*") as t:
            for info in t:
                if _member_name(info.name, info.isdir()):
                    source = t.extractfile(info) if info.isfile() else None
                    add(info.name, source, info.isfile())
    except (*_DAMAGED, OSError) as err:
        if isinstance(err, (ConfigError, DiskFull)):
            raise
        raise ConfigError("FILE", str(path), f"{_KIND}; this one is damaged or not one ({type(err).__name__}: {err})") from None


def _read_zip(path: Path, add) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if _member_name(info.filename, info.is_dir()):
                    is_link = stat.S_ISLNK(info.external_attr >> 16)
                    with z.open(info) as source:
                        add(info.filename, source, not is_link)
    except (*_DAMAGED, OSError) as err:
        if isinstance(err, (ConfigError, DiskFull)):
            raise
        raise ConfigError("FILE", str(path), f"{_KIND}; this one is damaged or not one ({type(err).__name__}: {err})") from None


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


def verify_run(run_id: str, files: dict[str, Member], expected: dict[str, str] | None) -> str | None:
    """Why the run ``run_id`` of a bundle cannot be merged (None: it can). Detects damage, not tampering: see
    :func:`import_bundle`."""
    if store.RECORD not in files:
        return f"no {store.RECORD}"
    try:
        record = json.loads(files[store.RECORD].read())
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
    if record.get("compact_file") not in (None, runs.COMPACT_FILE):  # a record field is never used as a path
        return f"record names the compact file {record.get('compact_file')!r}; allowed: {runs.COMPACT_FILE} or none"
    if not isinstance(expected, dict):
        return "not listed in the manifest"
    strange = sorted(str(name) for name in expected if name not in MEMBER_FILES)
    if strange:
        return f"the manifest lists {strange[0]!r}; allowed: {', '.join(sorted(MEMBER_FILES))}"
    for name, member in files.items():
        if expected.get(name) != member.sha256:
            return f"{name} differs from the manifest's checksum" if name in expected else f"{name} is not in the manifest"
    absent = sorted(set(expected) - set(files))
    return f"missing {', '.join(absent)}" if absent else None


def import_bundle(path: str | os.PathLike, root=None, max_member_bytes: int = MAX_MEMBER_BYTES,
                  max_total_bytes: int = MAX_TOTAL_BYTES) -> ImportReport:
    """Merge a bundle into the results folder ``root``: verified runs are written (record last), refused runs
    are named with the reason, runs already stored are left as they are.

    The bundle is streamed into a staging folder of the system's temporary directory first (:func:`read_archive`:
    only the file names a run folder holds, plain files, at most ``max_member_bytes`` each and
    ``max_total_bytes`` in all); a bundle that breaks any rule is refused whole, in one line, before the results
    folder is touched. File names are the bundle's, checked; no record field is ever used as a path.

    **What "verified" means.** Each record's checksum, its settings against its folder name, and every file
    against the SHA-256 the manifest lists: this detects *damage* (a truncated download, flipped bits, a file
    edited by hand without care). It does not detect *tampering*: whoever made the bundle wrote the checksums,
    so a bundle with forged numbers and recomputed checksums passes. Import bundles from people you trust, and
    check the bundle file against the SHA-256 its author published elsewhere (``sha256sum -c``) before
    importing it."""
    check_caps(max_member_bytes, max_total_bytes)
    root = env.results_path(root)
    with tempfile.TemporaryDirectory(prefix="randweights-import-") as staging:
        members = read_archive(path, staging, max_member_bytes, max_total_bytes)
        if MANIFEST not in members:
            raise ConfigError("FILE", str(path), f"a randweights bundle (no {MANIFEST})")
        try:
            manifest = json.loads(members[MANIFEST].read())
            listed = {str(r["run_id"]): r["files"] for r in manifest["runs"]}
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError("FILE", str(path), f"a bundle with a readable {MANIFEST} ({type(err).__name__})") from None
        by_run: dict[str, dict[str, Member]] = {}
        for name, member in members.items():
            if name != MANIFEST:
                _, run_id, file = name.split("/")
                by_run.setdefault(run_id, {})[file] = member
        report = ImportReport()
        for run_id in sorted(set(by_run) | set(listed)):
            problem = verify_run(run_id, by_run.get(run_id, {}), listed.get(run_id))
            if problem is not None:
                report.refused[run_id] = problem
            elif not _RUN_ID.fullmatch(run_id):  # only listed in the manifest, with a name no run has
                report.refused[run_id] = "not a run name"
            else:
                _merge(root / run_id, by_run[run_id], report, run_id)
    return report


def _merge(folder: Path, files: dict[str, Member], report: ImportReport, run_id: str) -> None:
    stored = folder / store.RECORD
    if stored.is_file():
        (report.present if stored.read_bytes() == files[store.RECORD].read() else report.kept).append(run_id)
        return
    for name, member in files.items():
        if name != store.RECORD and not (folder / name).is_file():
            copy_atomic(member.path, folder / name)
    copy_atomic(files[store.RECORD].path, stored)  # last: a record means the run is complete
    report.merged.append(run_id)
