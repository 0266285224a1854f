"""`randweights reproduce` never publishes a broken chapter: execution goes to a temporary file, a failed chapter
keeps its last good page under a warning, and Ctrl-C stops cleanly (summary, no traceback, exit 130) with the
pages as they were; the next call resumes from the stored runs. With a tiny notebook fixture and real kernels."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from randweights import reproduce
from randweights.chapters import NAMES

FIXTURE = Path(__file__).parent / "fixtures" / "notebooks" / "tiny_chapter.ipynb"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A checkout with two chapters (named like the first two of the book), both the tiny fixture notebook."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "book" / "_config.yml").write_text("title: test\n")
    for name in NAMES[:2]:
        shutil.copy(FIXTURE, root / "notebooks" / f"{name}.ipynb")
    monkeypatch.delenv("RANDWEIGHTS_RESULTS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return root


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _banner(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in _cells(path) if reproduce.FAILED_TAG in c["metadata"].get("tags", [])]


def test_a_failed_chapter_keeps_its_last_good_page_under_a_warning(repo, monkeypatch, capsys, mnist):
    name = NAMES[0]
    page = reproduce.chapter_path(repo, name)
    monkeypatch.setenv("TINY_CHAPTER_MODE", "ok")
    assert reproduce.reproduce(preset="smoke", only=[name], build=False, root=repo) == 0
    good = _cells(page)
    assert not _banner(page) and any(o.get("name") == "stdout" for c in good for o in c.get("outputs", []))

    monkeypatch.setenv("TINY_CHAPTER_MODE", "fail")
    capsys.readouterr()
    assert reproduce.reproduce(preset="smoke", only=[name], build=False, root=repo) == 1
    out, err = capsys.readouterr()
    assert f"{name}" in out and "FAILED" in out
    assert f"FAILED {name}: ValueError: deliberate failure of the tiny chapter" in err
    cells = _cells(page)
    banner = _banner(page)
    assert len(banner) == 1 and cells[0]["metadata"]["tags"] == [reproduce.FAILED_TAG]  # at the top
    assert "{warning}" in banner[0] and "ValueError: deliberate failure of the tiny chapter" in banner[0]
    assert "last execution that succeeded" in banner[0]
    assert cells[1:] == good  # the last good page, unchanged below the warning
    assert not list(page.parent.glob(".*"))  # no temporary file left

    assert reproduce.reproduce(preset="smoke", only=[name], build=False, root=repo) == 1  # fails again: one banner
    assert len(_banner(page)) == 1 and _cells(page)[1:] == good

    monkeypatch.setenv("TINY_CHAPTER_MODE", "ok")
    assert reproduce.reproduce(preset="smoke", only=[name], build=False, root=repo) == 0
    assert not _banner(page)  # a good execution replaces the page


def test_a_chapter_that_never_ran_gets_a_short_page_saying_so(repo, monkeypatch):
    name = NAMES[0]
    monkeypatch.setenv("TINY_CHAPTER_MODE", "fail")
    assert reproduce.reproduce(preset="smoke", only=[name], build=False, root=repo) == 1
    cells = _cells(reproduce.chapter_path(repo, name))
    assert ["".join(c["source"]) for c in cells][0] == "# Tiny chapter"
    assert len(cells) == 2 and "No execution of this chapter has succeeded yet" in "".join(cells[1]["source"])
    assert all(c["cell_type"] == "markdown" for c in cells)


def test_ctrl_c_stops_cleanly_keeps_the_previous_chapter_and_the_next_call_resumes(repo, tmp_path, mnist):
    first, second = NAMES[:2]
    page = reproduce.chapter_path(repo, first)
    page.parent.mkdir(parents=True)
    shutil.copy(FIXTURE, page)  # stands for the last good page of the chapter
    previous = page.read_bytes()
    marker = tmp_path / "one-run-stored"
    env = {**os.environ, "TINY_CHAPTER_MODE": "hang", "TINY_CHAPTER_MARKER": str(marker), "RANDWEIGHTS_PROGRESS": "0"}
    # a foreground command: SIGINT handled even when pytest itself runs as a background job (which ignores it)
    proc = subprocess.Popen([sys.executable, "-m", "randweights.cli", "reproduce", "--preset", "smoke", "--no-build"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and not marker.exists() and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()[1]
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    assert f"{first}" in out and "INTERRUPTED" in out and f"not run: {second}" in out
    assert "run the same command again to resume" in err
    assert page.read_bytes() == previous  # the page is as it was: no half-executed chapter
    assert not list(page.parent.glob(".*")) and not reproduce.chapter_path(repo, second).exists()
    records = sorted((repo / "results").glob("*/record.json"))
    assert len(records) == 1
    stamp = records[0].stat().st_mtime_ns

    env["TINY_CHAPTER_MODE"] = "ok"
    done = subprocess.run([sys.executable, "-m", "randweights.cli", "reproduce", "--preset", "smoke", "--no-build"],
                          cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((repo / "results").glob("*/record.json"))) == 3
    assert records[0].stat().st_mtime_ns == stamp  # the stored run was reused, not retrained
    assert page.read_bytes() != previous and reproduce.chapter_path(repo, second).is_file()


ORPHANED_TASKS = """
import asyncio, gc, sys
from nbclient.exceptions import DeadKernelError
from randweights import reproduce
from randweights.chapters import NAMES
if sys.argv[1] == "quiet":
    reproduce.quiet_orphaned_kernel_tasks()
    reproduce.quiet_orphaned_kernel_tasks()

async def dead():
    raise DeadKernelError("Kernel died")

async def other():
    raise ValueError("a real bug")

async def main():
    tasks = [asyncio.ensure_future(dead()), asyncio.ensure_future(other())]  # never awaited, as on Ctrl-C
    await asyncio.sleep(0.05)
    tasks.clear()
    gc.collect()

asyncio.run(main())
gc.collect()
"""


@pytest.mark.parametrize("mode", ["loud", "quiet"])
def test_an_orphaned_dead_kernel_task_prints_no_traceback_and_other_task_errors_still_do(mode):
    err = subprocess.run([sys.executable, "-c", ORPHANED_TASKS, mode], capture_output=True, text=True).stderr
    assert "ValueError: a real bug" in err  # real errors are never hidden
    assert ("DeadKernelError" in err) == (mode == "loud")
    assert err.count("Traceback") == (2 if mode == "loud" else 1)
