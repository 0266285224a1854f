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


class NoCheckout(FileNotFoundError):
    """``reproduce`` needs the notebooks and the book sources, which a ``pip install`` does not bring."""


def source_url() -> str:
    """The repository address, read from the package metadata ([project.urls] in pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("randweights").get_all("Project-URL") or []
    except PackageNotFoundError:
        urls = []
    found = dict(u.split(", ", 1) for u in urls if ", " in u)
    return found.get("Source", found.get("Homepage", "the randweights repository"))


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder (from ``start`` or the working directory upwards) holding notebooks/ and book/."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "book" / "_config.yml").is_file():
            return folder
    raise NoCheckout(
        f"no randweights checkout (notebooks/ and book/_config.yml) at or above {here}; get the notebooks with "
        f"`git clone {source_url()}` and run there, or pass --root DIR"
    )


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
        extra_arguments=QUIET_KERNEL,
    )
    hide_setup_cells(out)
    return out


# The kernel's own log (not the notebook's output): its "running over TCP without encryption" warning is about a
# kernel on this machine talking to papermill over localhost, printed once per chapter.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]
HIDDEN_TAGS = ("parameters", "injected-parameters")


def hide_setup_cells(path: Path) -> None:
    """Tag the ``parameters`` cell and papermill's injected one ``remove-cell``: the book shows neither (the page
    states its preset in words)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if any(t in tags for t in HIDDEN_TAGS) and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
    if changed:
        nbformat.write(nb, path)


def toc_files(root: Path) -> list[str]:
    """The pages ``book/_toc.yml`` lists (``file:`` entries), in book order."""
    import re

    text = (root / "book" / "_toc.yml").read_text()
    return re.findall(r"^\s*-?\s*(?:file|root):\s*(\S+)", text, flags=re.M)


def build_book(root: Path) -> int:
    """``jupyter-book build book -W -n --keep-going`` with the committed ``book/_toc.yml``; its output is passed
    through line by line, less the kernel's "running over TCP without encryption" notices (pages that execute at
    build time start a local kernel)."""
    launcher = "import sys; from jupyter_book.cli.main import main; sys.exit(main())"
    cmd = [sys.executable, "-c", launcher, "build", str(root / "book"), "-W", "-n", "--keep-going"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    for line in proc.stdout:
        if KERNEL_NOTICE not in line:
            sys.stdout.write(line)
    return proc.wait()


KERNEL_NOTICE = "Kernel is running over TCP without encryption"


def say(message: str) -> None:
    """One progress line, printed (and flushed) as it happens."""
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {message}", flush=True)


def reproduce(preset: str = "quick", only: list[str] | None = None, build: bool = True, device: str | None = None, root: Path | None = None) -> int:
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
    failures, timings = [], {}
    for number, name in enumerate(names, 1):
        start = time.perf_counter()
        say(f"{name} ({number}/{len(names)}, preset {preset}): started")
        try:
            execute(name, root, preset, device)
        except Exception as err:  # noqa: BLE001 - report and go on with the next notebook
            failures.append(f"{name}: {type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
        timings[name] = time.perf_counter() - start
        status = "FAILED" if failures and failures[-1].startswith(name + ":") else "done"
        say(f"{name} ({number}/{len(names)}): {status} in {timings[name]:.0f} s; {sum(timings.values()):.0f} s so far")
    for name, seconds in timings.items():
        status = "FAILED" if any(f.startswith(name + ":") for f in failures) else "ok"
        print(f"[reproduce] {name:16s} {preset:6s} {seconds:7.1f} s  {status}")
    if build:
        say("building the book")
        code = build_book(root)
        if code != 0:
            failures.append(f"book build exited {code}")
        else:
            print(f"[reproduce] book: {root / 'book' / '_build' / 'html' / 'index.html'}")
    for failure in failures:
        print(f"[reproduce] FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0
