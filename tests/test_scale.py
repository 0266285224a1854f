"""Running at scale: sweeps on a real Dask LocalCluster and on submitit's local executor, then the chapter built
from the stored records without training; bundles exported, imported into an empty results folder, and refused
where a record was edited."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from randweights import bundles, chapters, plan, reproduce, store, stored, sweeps
from randweights.chapters import CHAPTERS

ROOT = Path(__file__).resolve().parents[1]
CHAPTER, PRESET = "edge_popup", "smoke"


def trainings(results: Path) -> list[dict]:
    log = results / store.TRAININGS_LOG
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def planned_ids() -> set[str]:
    return {e.run_id for e in plan.plan(PRESET, CHAPTERS, [CHAPTER])}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A scratch copy of book/ and notebooks/ to execute chapters into."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_build", "chapters", "_toc.yml"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    return root


def execute_without_training(repo: Path, results: Path) -> dict:
    """Execute the chapter at the smoke preset with training off; return the executed notebook."""
    saved = {k: os.environ.get(k) for k in ("RANDWEIGHTS_RESULTS", stored.TRAIN_ENV)}
    os.environ.update({"RANDWEIGHTS_RESULTS": str(results), stored.TRAIN_ENV: "0"})
    try:
        out = reproduce.execute(CHAPTER, repo, PRESET)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    return nb


def text_outputs(nb: dict) -> list[str]:
    out = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            # a table (pandas Styler) is compared by its HTML: its text/plain is only a memory address
            value = data.get("text/html", data.get("text/plain"))
            out.append(o.get("text") if o.get("output_type") == "stream" else json.dumps(value))
    return out


def check_swept(results: Path, summary: sweeps.Summary) -> None:
    """Every planned run has a verified record, and each was trained exactly once."""
    ids = planned_ids()
    assert summary.failed == [] and set(summary.outcomes) == ids
    for entry in plan.plan(PRESET, CHAPTERS, [CHAPTER]):
        assert store.load(entry.config, results) is not None
    counts = Counter(t["run_id"] for t in trainings(results))
    assert set(counts) == ids and set(counts.values()) == {1}
    assert stored.chapter_coverage(chapters.get(CHAPTER), PRESET, results).complete


@pytest.fixture(scope="module")
def dask_results(tmp_path_factory, repo):
    """The chapter's smoke plan swept on a real Dask LocalCluster (2 worker processes), then the chapter executed
    with training off: (results, summary, trainings before the notebook, executed notebook)."""
    pytest.importorskip("distributed")
    from conftest import require_dataset

    require_dataset("mnist")
    results = tmp_path_factory.mktemp("dask-results")
    executor = sweeps.DaskExecutor(workers=2)
    try:
        assert len(executor.client.scheduler_info()["workers"]) == 2
        summary = sweeps.run_plan(plan.configs(PRESET, CHAPTERS, [CHAPTER]), executor, root=results)
    finally:
        executor.shutdown()
    before = trainings(results)
    return results, summary, before, execute_without_training(repo, results)


@pytest.mark.slow
def test_dask_local_cluster_sweeps_a_chapter_then_the_chapter_builds_without_training(dask_results):
    results, summary, before, nb = dask_results
    check_swept(results, summary)
    assert summary.count("trained") == len(planned_ids())
    assert len({t["pid"] for t in before}) == 2  # both worker processes trained runs
    assert trainings(results) == before  # the notebook trained nothing
    assert not [c for c in nb["cells"] if stored.NOTE_TAG in c["metadata"].get("tags", [])]


@pytest.mark.slow
def test_submitit_local_executor_sweeps_a_chapter_then_the_chapter_builds_without_training(tmp_path, repo, mnist):
    """The same plan through submitit's local executor (two jobs at a time, each a process of its own)."""
    pytest.importorskip("submitit")
    results = tmp_path / "results"
    executor = sweeps.SubmititExecutor(tmp_path / "jobs", cluster="local", max_jobs=2)
    try:
        summary = sweeps.run_plan(plan.configs(PRESET, CHAPTERS, [CHAPTER]), executor, root=results)
    finally:
        executor.shutdown()
    check_swept(results, summary)
    assert summary.count("trained") == len(planned_ids())
    before = trainings(results)
    assert os.getpid() not in {t["pid"] for t in before}  # every run trained in a job
    execute_without_training(repo, results)
    assert trainings(results) == before


@pytest.mark.slow
def test_a_bundle_renders_the_same_chapter_in_an_empty_results_folder(dask_results, repo, tmp_path):
    results, _, _, reference = dask_results
    report = bundles.export(PRESET, tmp_path / "smoke.tar.gz", CHAPTERS, root=results, only=[CHAPTER])
    assert report.runs == len(planned_ids()) and report.missing == []
    empty = tmp_path / "empty"
    imported = bundles.import_bundle(tmp_path / "smoke.tar.gz", root=empty)
    assert sorted(imported.merged) == sorted(planned_ids()) and imported.refused == {}
    compact = [p.relative_to(results) for p in results.glob("*/*.rwc")]  # the compact subnetwork files travel too
    assert compact and all((empty / p).read_bytes() == (results / p).read_bytes() for p in compact)
    nb = execute_without_training(repo, empty)
    assert trainings(empty) == []
    assert text_outputs(nb) == text_outputs(reference)


def _rewrite(bundle: Path, out: Path, edit) -> None:
    """Copy a tar.gz bundle, passing each member's (name, bytes) through ``edit``."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w:gz") as dst:
        members = {m.name: src.extractfile(m).read() for m in src.getmembers() if m.isfile()}
        for name, data in edit(members).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


@pytest.mark.slow
def test_a_bundle_with_one_edited_record_is_merged_without_it(dask_results, tmp_path):
    results = dask_results[0]
    bundles.export(PRESET, tmp_path / "good.tar.gz", CHAPTERS, root=results, only=[CHAPTER])
    victim = sorted(planned_ids())[0]

    def edit(members: dict[str, bytes]) -> dict[str, bytes]:
        name = f"runs/{victim}/record.json"
        record = json.loads(members[name])
        record["test_accuracy"] = 0.99  # a better number, typed in by hand
        members[name] = json.dumps(record, indent=1).encode()
        manifest = json.loads(members[bundles.MANIFEST])  # the manifest updated too: only the record's own checksum can tell
        for run in manifest["runs"]:
            if run["run_id"] == victim:
                run["files"]["record.json"] = bundles._sha256(members[name])
        members[bundles.MANIFEST] = json.dumps(manifest).encode()
        return members

    _rewrite(tmp_path / "good.tar.gz", tmp_path / "edited.tar.gz", edit)
    empty = tmp_path / "empty"
    report = bundles.import_bundle(tmp_path / "edited.tar.gz", root=empty)
    assert list(report.refused) == [victim] and "checksum" in report.refused[victim]
    assert sorted(report.merged) == sorted(planned_ids() - {victim})
    assert not (empty / victim).exists()
    coverage = stored.chapter_coverage(chapters.get(CHAPTER), PRESET, empty)
    assert (coverage.present, coverage.total) == (len(planned_ids()) - 1, len(planned_ids()))
