"""Bundles from strangers: only the file names a run folder holds, plain files, streamed with a size cap (a
decompression bomb is refused), tar before zip, damaged or garbage files in one line, record fields never paths."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import require_dataset

from randweights import bundles, make_config, runs, store
from randweights.errors import ConfigError

TINY = dict(subset=100, epochs=1, batch_size=50, arch="mlp-256-256", width=0.25)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """One tiny stored dense run (record, config, compact file) in its own results folder."""
    require_dataset("mnist")
    root = tmp_path_factory.mktemp("results")
    cfg = make_config("dense", **TINY)
    runs.get_or_run(cfg, root=root)
    assert (root / cfg.run_id / runs.COMPACT_FILE).is_file()
    return root, cfg


def _members(root: Path, cfg) -> dict[str, bytes]:
    """The members ``bundle export`` writes for the one stored run, with a matching manifest."""
    folder = root / cfg.run_id
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name in bundles.RUN_FILES}
    manifest = {"format": 1, "preset": "x", "chapters": [], "missing": [], "provenance": {},
                "runs": [{"run_id": cfg.run_id, "files": {n: bundles._sha256(d) for n, d in files.items()}}]}
    return {bundles.MANIFEST: json.dumps(manifest).encode(), **{f"runs/{cfg.run_id}/{n}": d for n, d in files.items()}}


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz", link: str | None = None) -> Path:
    with tarfile.open(path, mode) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            t.addfile(info)
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "randweights.cli", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar", ".zip"])
def test_each_archive_kind_imports_a_run_with_its_compact_file(stored_run, tmp_path, suffix):
    root, cfg = stored_run
    bundle = tmp_path / f"one{suffix}"
    members = _members(root, cfg)
    _zip(bundle, members) if suffix == ".zip" else _tar(bundle, members, "w" if suffix == ".tar" else "w:gz")
    if suffix == ".tar":  # an uncompressed tar of compact files (zips) ends like a zip: tar must be recognized first
        assert zipfile.is_zipfile(bundle)
    imported = bundles.import_bundle(bundle, root=tmp_path / "r")
    assert imported.merged == [cfg.run_id] and not imported.refused
    for name in (store.RECORD, store.CONFIG, runs.COMPACT_FILE):
        assert (tmp_path / "r" / cfg.run_id / name).read_bytes() == (root / cfg.run_id / name).read_bytes()
    assert runs.load_network(cfg, root=tmp_path / "r") is not None


BAD_NAMES = [
    "runs/{id}/C:\\Users\\Public\\evil.bat",
    "..\\..\\x",
    "runs/{id}/..\\..\\x.json",
    "/etc/evil.json",
    "../outside.json",
    "runs/../../x.json",
    "runs/{id}/checkpoint.pt",
    "runs/{id}/.lock",
    "runs/{id}/notes.txt",
    "runs/{id}/sub/record.json",
    "runs/C:/record.json",
    "runs/a.b/record.json",
    "runs//record.json",
    "x/{id}/record.json",
    "manifest.json/",
    "runs/{id}/record.json\n",
    "./manifest.json",
]


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
@pytest.mark.parametrize("bad", BAD_NAMES)
def test_a_member_name_no_run_folder_holds_refuses_the_bundle_by_name(stored_run, tmp_path, bad, kind):
    root, cfg = stored_run
    name = bad.format(id=cfg.run_id)
    members = {**_members(root, cfg), name: b"{}"}
    bundle = _zip(tmp_path / "b.zip", members) if kind == "zip" else _tar(tmp_path / "b.tar.gz", members)
    with pytest.raises(ConfigError) as err:
        bundles.import_bundle(bundle, root=tmp_path / "r")
    assert repr(name) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


def test_links_and_repeated_members_are_refused(stored_run, tmp_path):
    root, cfg = stored_run
    members = _members(root, cfg)
    link = f"runs/{cfg.run_id}/model.pt"
    with pytest.raises(ConfigError, match="link"):
        bundles.import_bundle(_tar(tmp_path / "l.tar.gz", members, link=link), root=tmp_path / "r")
    twice = tmp_path / "twice.tar"
    _tar(twice, members, "w")
    with tarfile.open(twice, "a") as t:
        info = tarfile.TarInfo(f"runs/{cfg.run_id}/record.json")
        info.size = 2
        t.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(ConfigError, match="twice"):
        bundles.import_bundle(twice, root=tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_decompression_bomb_is_refused_in_one_line(stored_run, tmp_path, kind):
    root, cfg = stored_run
    members = {**_members(root, cfg), f"runs/{cfg.run_id}/model.pt": bytes(64 << 20)}  # 64 MiB of zeros
    bundle = _zip(tmp_path / "bomb.zip", members) if kind == "zip" else _tar(tmp_path / "bomb.tar.gz", members)
    assert bundle.stat().st_size < 1 << 20  # well under a megabyte on disk
    with pytest.raises(ConfigError, match="at most 4194304 bytes") as err:
        bundles.import_bundle(bundle, root=tmp_path / "r", max_member_bytes=4 << 20)
    assert "model.pt" in str(err.value)
    with pytest.raises(ConfigError, match="in all"):
        bundles.import_bundle(bundle, root=tmp_path / "r", max_total_bytes=8 << 20)
    assert not (tmp_path / "r").exists()
    done = _cli("bundle", "import", str(bundle), "--results", str(tmp_path / "r"), "--max-member-mb", "4")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "model.pt" in done.stderr, done.stderr
    for bad in ("0", "-1", "nan"):
        done = _cli("bundle", "import", str(bundle), "--results", str(tmp_path / "r"), "--max-member-mb", bad)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "max-member-mb" in done.stderr, done.stderr


def test_empty_garbage_and_truncated_bundles_are_one_line_exit_2(stored_run, tmp_path):
    root, cfg = stored_run
    good = _tar(tmp_path / "good.tar.gz", _members(root, cfg)).read_bytes()
    files = {"empty.tar.gz": b"", "garbage.tar.gz": b"\x00garbage" * 100, "garbage.zip": b"PK\x03\x04" + b"x" * 300,
             "truncated.tar.gz": good[: len(good) // 2], "notgz.tar.gz": gzip.compress(b"not a tar" * 100),
             "folder.tar.gz": None}
    for name, data in files.items():
        path = tmp_path / name
        path.mkdir() if data is None else path.write_bytes(data)
        with pytest.raises(ConfigError, match="FILE"):
            bundles.import_bundle(path, root=tmp_path / "r")
        done = _cli("bundle", "import", str(path), "--results", str(tmp_path / "r"))
        assert done.returncode == 2 and done.stderr.startswith("randweights: error: FILE") and done.stderr.count("\n") == 1, (name, done.stderr)
    assert not (tmp_path / "r").exists()


def test_a_record_field_is_never_used_as_a_path(stored_run, tmp_path):
    root, cfg = stored_run
    members = _members(root, cfg)
    name = f"runs/{cfg.run_id}/record.json"
    record = json.loads(members[name])
    record["compact_file"] = "../../evil.rwc"
    record["checksum"] = store.checksum(record)  # whoever makes a bundle can recompute every checksum
    members[name] = json.dumps(record).encode()
    manifest = json.loads(members[bundles.MANIFEST])
    manifest["runs"][0]["files"]["record.json"] = bundles._sha256(members[name])
    members[bundles.MANIFEST] = json.dumps(manifest).encode()
    report = bundles.import_bundle(_tar(tmp_path / "b.tar.gz", members), root=tmp_path / "r")
    assert "compact file '../../evil.rwc'" in report.refused[cfg.run_id]
    assert not (tmp_path / "r" / cfg.run_id).exists() and not (tmp_path / "evil.rwc").exists()


def test_a_manifest_listing_other_files_refuses_the_run(stored_run, tmp_path):
    root, cfg = stored_run
    members = _members(root, cfg)
    manifest = json.loads(members[bundles.MANIFEST])
    manifest["runs"][0]["files"]["checkpoint.pt"] = "sha256:00"
    members[bundles.MANIFEST] = json.dumps(manifest).encode()
    report = bundles.import_bundle(_tar(tmp_path / "b.tar.gz", members), root=tmp_path / "r")
    assert "checkpoint.pt" in report.refused[cfg.run_id] and not (tmp_path / "r" / cfg.run_id).exists()


def test_the_analysis_files_a_bundle_may_carry_are_those_the_chapters_write_beside_a_record():
    source = (ROOT / "randweights" / "chapters" / "fcn_to_cnn.py").read_text()
    assert set(re.findall(r'_cached\(record, "([^"]+)"', source)) == set(bundles.ANALYSIS_FILES)
    assert bundles.RUN_FILES == {"record.json", "config.json", "compact.rwc", "model.pt"}


def test_verified_is_explained_as_damage_not_tampering():
    doc = bundles.import_bundle.__doc__
    assert "damage" in doc and "tampering" in doc and "sha256sum" in doc
    readme = (ROOT / "README.md").read_text()
    assert "sha256sum" in readme and "tampering" in readme


def _documented_signing_commands() -> list[str]:
    """The bash block of book/scale.md's "Damage and tampering" section, one command per line."""
    section = (ROOT / "book" / "scale.md").read_text().split("### Damage and tampering", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


@pytest.mark.skipif(not all(shutil.which(t) for t in ("ssh-keygen", "sha256sum")), reason="needs OpenSSH and coreutils")
def test_the_documented_signature_check_passes_a_signed_bundle_and_refuses_a_changed_one(stored_run, tmp_path):
    root, cfg = stored_run
    author, reader = tmp_path / "author", tmp_path / "reader"
    author.mkdir()
    _tar(author / "full.tar.gz", _members(root, cfg))
    commands = _documented_signing_commands()
    cli = f"{shlex.quote(sys.executable)} -m randweights.cli"
    env = {**os.environ, "RANDWEIGHTS_RESULTS": str(reader / "results"), "PYTHONPATH": str(ROOT)}

    def run(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", line.replace("randweights ", cli + " ", 1) if line.startswith("randweights ") else line],
                              cwd=author, capture_output=True, text=True, env=env)

    for line in commands:
        done = run(line)
        assert done.returncode == 0, (line, done.stderr)
    assert (reader / "results" / cfg.run_id / store.RECORD).is_file()  # imported after both checks passed
    checks = [line for line in commands if line.startswith(("sha256sum -c", "ssh-keygen -Y verify"))]
    assert len(checks) == 2
    data = bytearray((author / "full.tar.gz").read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (author / "full.tar.gz").write_bytes(bytes(data))
    for line in checks:
        assert run(line).returncode != 0, line
