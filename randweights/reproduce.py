"""Execute the chapter notebooks with papermill into ``book/chapters/`` and build the Jupyter Book.

One failing notebook does not stop the others; the summary names every failure and the call returns 1.
Notebooks run with the repository as working directory, ``RANDWEIGHTS_RESULTS=<repo>/results`` (so a rerun
reuses every stored run) and progress bars off.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

# Book order. A chapter joins the book once its notebook exists in notebooks/.
CHAPTERS = ["edge_popup", "slot_machines", "laperm", "fcn_to_cnn", "empirical_size"]
KERNEL = "python3"


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder (from ``start`` or the working directory upwards) holding notebooks/ and book/."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "book" / "_config.yml").is_file():
            return folder
    raise FileNotFoundError(f"no randweights checkout (notebooks/ and book/_config.yml) at or above {here}")


def available_chapters(root: Path) -> list[str]:
    return [name for name in CHAPTERS if (root / "notebooks" / f"{name}.ipynb").is_file()]


def execute(name: str, root: Path, preset: str, device: str | None = None) -> Path:
    """Run ``notebooks/<name>.ipynb`` with papermill into ``book/chapters/<name>.ipynb``."""
    import papermill

    out = root / "book" / "chapters" / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    parameters = {"preset": preset}
    if device:
        parameters["device"] = device
    papermill.execute_notebook(
        str(root / "notebooks" / f"{name}.ipynb"),
        str(out),
        parameters=parameters,
        kernel_name=KERNEL,
        cwd=str(root),
        progress_bar=False,
        log_output=False,
    )
    return out


def write_toc(root: Path) -> list[str]:
    """Write ``book/_toc.yml`` for the intro and every executed chapter, in book order."""
    done = [n for n in CHAPTERS if (root / "book" / "chapters" / f"{n}.ipynb").is_file()]
    lines = ["format: jb-book", "root: intro", "parts:", "  - caption: Papers", "    chapters:"]
    lines += [f"      - file: chapters/{n}" for n in done]
    lines += ["  - caption: Reference", "    chapters:", "      - file: references"]
    (root / "book" / "_toc.yml").write_text("\n".join(lines) + "\n")
    return done


def build_book(root: Path) -> int:
    write_toc(root)
    launcher = "import sys; from jupyter_book.cli.main import main; sys.exit(main())"
    cmd = [sys.executable, "-c", launcher, "build", str(root / "book"), "-W", "-n", "--keep-going"]
    return subprocess.call(cmd)


def reproduce(preset: str = "quick", only: list[str] | None = None, build: bool = True, device: str | None = None, root: Path | None = None,
              train_missing: bool | None = None) -> int:
    """Execute the chapters and build the book. ``train_missing``: train runs that are not stored (default: yes,
    except ``full`` without CUDA, which builds from stored records and notes incomplete chapters on their page)."""
    from . import coverage
    root = repo_root(root)
    names = available_chapters(root)
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            from .errors import ConfigError

            raise ConfigError("--only", ",".join(unknown), "one of " + ", ".join(names))
        names = [n for n in names if n in only]
    os.environ.setdefault("RANDWEIGHTS_RESULTS", str(root / "results"))
    os.environ["RANDWEIGHTS_PROGRESS"] = "0"
    train = coverage.should_train(preset, device, train_missing)
    os.environ[coverage.TRAIN_ENV] = "1" if train else "0"
    failures, timings = [], {}
    for name in names:
        start = time.perf_counter()
        try:
            execute(name, root, preset, device)
        except Exception as err:  # noqa: BLE001 - report and go on with the next notebook
            failures.append(f"{name}: {type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
        timings[name] = time.perf_counter() - start
        page = root / "book" / "chapters" / f"{name}.ipynb"
        if not train and page.is_file() and name in coverage.plan.available_chapters():
            stored = coverage.chapter_coverage(name, preset)
            if coverage.note_page(page, stored):
                print(f"[reproduce] {name}: {stored.present} of {stored.total} runs stored; page notes it", file=sys.stderr)
    for name, seconds in timings.items():
        status = "FAILED" if any(f.startswith(name + ":") for f in failures) else "ok"
        print(f"[reproduce] {name:16s} {preset:6s} {seconds:7.1f} s  {status}")
    if build:
        code = build_book(root)
        if code != 0:
            failures.append(f"book build exited {code}")
        else:
            print(f"[reproduce] book: {root / 'book' / '_build' / 'html' / 'index.html'}")
    for failure in failures:
        print(f"[reproduce] FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0
