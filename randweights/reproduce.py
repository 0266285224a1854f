"""Execute the chapter notebooks with papermill into ``book/chapters/`` and build the Jupyter Book.

One failing notebook does not stop the others; the summary names every failure and the call returns 1.
Notebooks run with the repository as working directory, ``RANDWEIGHTS_RESULTS=<repo>/results`` (so a rerun
reuses every stored run) and progress bars off.

A broken chapter is never published: each notebook executes into a temporary file that replaces
``book/chapters/<name>.ipynb`` only when every cell ran. A chapter that fails keeps its last good page, with a
warning at its top that the latest execution failed and why (with no good page yet, a short page says so).
Ctrl-C stops cleanly: the summary of what ran, no traceback, exit code 130; the page being executed is left as
it was, and the next call resumes from the stored runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import chapters, colab, env, plan, plots, runs, store, stored, sweeps
from .chapters import CHAPTERS
from .config import check_device
from .errors import ConfigError

KERNEL = "python3"


class NoCheckout(FileNotFoundError):
    """``reproduce`` needs the notebooks and the book sources, which a ``pip install`` does not bring."""


def source_url() -> str:
    """The repository address (``[project.urls] Repository``, read by ``randweights.colab.repository_url``)."""
    try:
        return colab.repository_url()
    except LookupError:
        return "the randweights repository"


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


def book_results() -> Path:
    """The results folder a book page reads: ``$RANDWEIGHTS_RESULTS`` (set by :func:`reproduce` for the build), else
    ``results/`` of the checkout around the working directory (a page runs in ``book/``)."""
    if env.RESULTS not in os.environ:
        try:
            return repo_root() / "results"
        except NoCheckout:
            pass
    return env.results_dir()


def headline_table():
    """The first page's table: every chapter's headline numbers, the paper's beside ours at ``full`` (stored runs of
    :func:`book_results` only; nothing trains)."""
    return chapters.headline_table(("full",), book_results())


def claims_table():
    """The first page's summary: every chapter's "What this chapter reproduces" rows at ``quick`` and ``full``
    (stored runs of the book's results folder)."""
    return chapters.claims_table(("quick", "full"), book_results())


def available_chapters(root: Path) -> list[str]:
    """The names of :data:`randweights.chapters.CHAPTERS` (book order) whose notebook is in ``root``."""
    return [c.name for c in CHAPTERS if (root / c.notebook).is_file()]


def chapter_path(root: Path, name: str) -> Path:
    return root / "book" / "chapters" / f"{name}.ipynb"


class _OrphanedKernelTasks(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for nbclient's ``DeadKernelError``, and nothing else.

    On Ctrl-C the kernel is shut down while nbclient's cell task still waits on it; that task then fails with
    ``DeadKernelError`` that nobody awaits, and asyncio prints its traceback when the task is collected. A kernel
    that dies during a normal run raises in papermill instead (reported as the chapter's failure), never here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (type(error).__name__ == "DeadKernelError" and "never retrieved" in record.getMessage())


def quiet_orphaned_kernel_tasks() -> None:
    """Install ``_OrphanedKernelTasks`` on the ``asyncio`` logger (once)."""
    log = logging.getLogger("asyncio")
    if not any(isinstance(f, _OrphanedKernelTasks) for f in log.filters):
        log.addFilter(_OrphanedKernelTasks())


def _kernel_pids() -> list[int]:
    """Our child processes that lead their own process group: the notebook kernels jupyter_client started (each in
    a new session). Read from /proc; empty where there is none (the caller then falls back to KeyboardInterrupt)."""
    me, pids = os.getpid(), []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
            pid = int(entry.parent.name)
            if int(fields[1]) == me and os.getpgid(pid) == pid:
                pids.append(pid)
        except (OSError, IndexError, ValueError):
            continue
    return pids


class _InterruptKernel:
    """While a chapter executes, the first Ctrl-C interrupts the notebook's kernel, as Jupyter's interrupt button
    does (SIGINT to the kernel's process group): the running cell stops with ``KeyboardInterrupt`` and papermill
    returns in order, with no exception raised inside its event loop (which could leave it hanging or printing
    tracebacks). A second Ctrl-C, or no kernel found, raises ``KeyboardInterrupt`` here, as Python does.
    ``pressed`` says whether Ctrl-C came; the SIGINT handler is restored on exit (main thread only). A process
    that inherited SIGINT ignored (a background job of a script) keeps ignoring it."""

    def __enter__(self):
        self.pressed, self._previous = False, None
        try:
            if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
                self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: signals are not ours to handle
            pass
        return self

    def _handle(self, signum, frame):
        kernels = [] if self.pressed else _kernel_pids()
        self.pressed = True
        if not kernels:
            raise KeyboardInterrupt
        for pid in kernels:
            try:
                os.killpg(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def __exit__(self, *exc) -> bool:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def execute(name: str, root: Path, preset: str, device: str | None = None) -> Path:
    """Run ``notebooks/<name>.ipynb`` with papermill into a temporary file that replaces
    ``book/chapters/<name>.ipynb`` only on success; on failure or interruption the chapter is left untouched."""
    import papermill

    quiet_orphaned_kernel_tasks()
    out = chapter_path(root, name)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{name}.executing-*.ipynb"):  # left by a killed earlier call
        stale.unlink(missing_ok=True)
    tmp = out.with_name(f".{name}.executing-{os.getpid()}.ipynb")
    parameters = {"preset": preset}
    if device:
        parameters["device"] = device
    try:
        with _InterruptKernel() as ctrl_c:
            papermill.execute_notebook(
                str(root / "notebooks" / f"{name}.ipynb"),
                str(tmp),
                parameters=parameters,
                kernel_name=KERNEL,
                cwd=str(root),
                progress_bar=False,
                log_output=False,
                shutdown_kernel="immediate",  # no interrupt sent to a busy kernel on Ctrl-C (it would print a traceback)
                extra_arguments=QUIET_KERNEL,
            )
        if ctrl_c.pressed:  # the notebook caught the interrupt and finished: still not a page to publish
            raise KeyboardInterrupt
        hide_setup_cells(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# The kernel's own log (not the notebook's output): its "running over TCP without encryption" warning is about a
# kernel on this machine talking to papermill over localhost, printed once per chapter.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]
HIDDEN_TAGS = ("parameters", "injected-parameters")


LOCAL_BADGE = "../_static/colab-badge.svg"  # the book's own copy, so a page read offline loads every image


SHOW_CODE_TAG = "show-code"  # a code cell a reader learns from: the book keeps it, collapsed; every other code cell
# is the page's bookkeeping (its outputs, the figures, tables and sentences, are the page) and its input is hidden
CAPTION_TAG = "figure-caption"  # a markdown cell right after a figure's cell: its caption
# References in a notebook are plain Markdown links, which Jupyter and Colab show as such; the book turns them into
# its own references: a citation of references.bib, a numbered figure, another page of the book.
BOOK_LINKS = (
    (re.compile(r"\[[^\]]*\]\(#cite:([tp]):([\w,-]+)\)"), r"{cite:\1}`\2`"),  # [Ramanujan et al. (2020)](#cite:t:key)
    (re.compile(r"\[[^\]]*\]\(#(fig-[\w-]+)\)"), r"{numref}`\1`"),  # [the figure below](#fig-name)
    (re.compile(r"\[([^\]]+)\]\(\.\./book/([\w/-]+)\.md\)"), r"{doc}`\1 <../\2>`"),  # [notes](../book/page.md): its text kept
    (re.compile(r"\]\(\.\./book/(figures/[\w./-]+)\)"), r"](../\1)"),  # a figure's CSV: a download from the page
)


def book_links(text: str) -> str:
    """``text`` with a notebook's Markdown links to citations, figures and book pages as the book's roles."""
    for pattern, role in BOOK_LINKS:
        text = pattern.sub(role, text)
    return text


def hide_setup_cells(path: Path) -> None:
    """Tag the ``parameters`` cell and papermill's injected one ``remove-cell``: the book shows neither (the page
    states its preset in words). The Colab badge points at the book's local image instead of Colab's server.
    Everything else of the executed chapter stays as Jupyter and Colab show it; :func:`book_page` turns it into
    the book's page when the book is built."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if any(t in tags for t in HIDDEN_TAGS) and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
        if cell.cell_type == "markdown" and colab.BADGE_IMAGE in cell.source:
            cell.source = cell.source.replace(colab.BADGE_IMAGE, LOCAL_BADGE)
            changed = True
    if changed:
        nbformat.write(nb, path)


def book_page(nb, name: str = "notebook") -> None:
    """Turn an executed chapter (an ``nbformat`` notebook, changed in place) into the book's page; the book's
    Sphinx extension calls it as it reads each chapter, so the notebook on disk stays as Jupyter shows it.

    A figure's caption (the markdown cell tagged ``figure-caption`` right after the figure's cell, a paragraph
    under the figure in Jupyter and Colab) becomes the caption of the numbered figure (``mystnb.figure.caption``
    of the figure's cell, beside its ``name``) and its own cell is hidden, so the book shows it once, under
    "Fig. n". Every code cell's input is hidden (its outputs are the page) except in a cell tagged ``show-code``,
    kept collapsed. Links to citations, figures and pages become the book's references (:func:`book_links`), in the
    text and in the sentences shown as Markdown outputs; a markdown cell tagged ``important`` (a blockquote)
    becomes an "important" box. ValueError (naming ``name``) for a caption cell that follows no figure."""
    for before, cell in zip([None, *nb.cells], nb.cells):
        tags = cell.metadata.setdefault("tags", [])
        if cell.cell_type == "code" and not {"remove-cell", "remove-input", "hide-input"} & set(tags):
            tags.append("hide-input" if SHOW_CODE_TAG in tags else "remove-input")
        if cell.cell_type == "markdown" and "important" in tags and not cell.source.startswith(":::"):
            body = "\n".join(line[2:] if line.startswith("> ") else line.lstrip(">") for line in cell.source.splitlines())
            cell.source = f":::{{important}}\n{body}\n:::"
        if cell.cell_type == "markdown":
            cell.source = book_links(cell.source)
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/markdown")
            if isinstance(text, str):
                output["data"]["text/markdown"] = book_links(text)
        if cell.cell_type == "markdown" and CAPTION_TAG in tags and "remove-cell" not in tags:
            figure = (before or {}).get("metadata", {}).get("mystnb", {}).get("figure")
            if before is None or before.cell_type != "code" or not isinstance(figure, dict):
                raise ValueError(f"{name}: a {CAPTION_TAG} cell must follow the cell of its figure "
                                 "(a code cell with mystnb.figure metadata)")
            figure["caption"] = cell.source.strip() + "".join(f"\n\n{book_links(line)}" for line in figure_provenance(before))
            tags.append("remove-cell")


def figure_provenance(cell) -> list[str]:
    """The provenance line(s) a figure's cell carries in its image output's metadata (:func:`randweights.plots.figure`);
    the book shows them under the figure's caption (its legend)."""
    found = []
    for output in cell.get("outputs", []):
        line = output.get("metadata", {}).get(plots.PROVENANCE_KEY, {}).get("provenance")
        if isinstance(line, str):
            found.append(line)
    return found


FAILED_TAG = "randweights-execution-failed"


def failure_reason(err: BaseException) -> str:
    """One line: ``ValueError: what went wrong`` (the notebook's own error where papermill reports one)."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:
        text = f"{ename}: {evalue}" if evalue else ename
    else:
        lines = str(err).strip().splitlines()
        text = f"{type(err).__name__}: {lines[-1]}" if lines else type(err).__name__
    return " ".join(text.split())[:500]


def _interrupted(err: BaseException) -> bool:
    return isinstance(err, KeyboardInterrupt) or getattr(err, "ename", None) == "KeyboardInterrupt"


def mark_failed(name: str, root: Path, preset: str, reason: str) -> None:
    """Keep the last good page of a failed chapter under a warning saying the latest execution failed and why;
    with no good page, write a short page saying so. Written atomically; the source notebook is not touched."""
    import nbformat

    out = chapter_path(root, name)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if out.is_file():
        nb = nbformat.read(str(out), as_version=4)
        nb.cells = [c for c in nb.cells if FAILED_TAG not in c.get("metadata", {}).get("tags", [])]
        note = "This page shows the last execution that succeeded; its numbers may be out of date."
    else:
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": KERNEL, "display_name": "Python 3", "language": "python"}})
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {chapter_title(root, name)}")]
        note = "No execution of this chapter has succeeded yet, so it has no results to show."
    banner = (
        f"```{{warning}}\nThe latest execution of this chapter failed (preset `{preset}`, {when}):\n"
        f"`{reason.replace('`', chr(39))}`.\n{note} Run `{env.command(f'reproduce --only {name} --preset {preset}', root)}` to retry.\n```"
    )
    cell = nbformat.v4.new_markdown_cell(banner, metadata={"tags": [FAILED_TAG]})
    nb.cells.insert(1 if not out.is_file() else 0, cell)
    tmp = out.with_name(f".{name}.failed-{os.getpid()}.ipynb")
    try:
        nbformat.write(nb, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def chapter_title(root: Path, name: str) -> str:
    """The first ``# `` heading of the chapter's source notebook (else its name)."""
    try:
        cells = json.loads((root / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        for cell in cells:
            for line in "".join(cell["source"]).splitlines() if cell["cell_type"] == "markdown" else []:
                if line.startswith("# "):
                    return line[2:].strip()
    except (OSError, ValueError, KeyError):
        pass
    return name.replace("_", " ").capitalize()


def toc_files(root: Path) -> list[str]:
    """The pages ``book/_toc.yml`` lists (``file:`` entries), in book order."""
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


class RunProgress:
    """While a chapter executes: one line each time its count of stored runs changes (at most every ``every``
    seconds): run i of N, minutes elapsed, and an estimate of the time left, from the pace of the runs this call
    has trained, weighted by each run's planned optimizer steps (:func:`randweights.plan.planned_steps`), so a
    chapter whose quick MLP runs come first does not promise its conv nets' minutes too low. Reads the store only
    (a record appears when a run finishes), in a background thread."""

    def __init__(self, chapter: plan.Chapter, preset: str, results: Path, every: float = 30.0, out=None):
        self.name = chapter.name
        entries = plan.plan(preset, [chapter])
        self.ids = [entry.run_id for entry in entries]
        self.steps = {entry.run_id: _steps(entry.config) for entry in entries}
        self.results = results
        self.every = every
        self.out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def stored_ids(self) -> set[str]:
        return {rid for rid in self.ids if (self.results / rid / "record.json").is_file()}

    def stored(self) -> int:
        return len(self.stored_ids())

    def line(self, done: set[str], at_start: set[str], seconds: float) -> str:
        """``edge_popup: run 12 of 80 stored, 5.2 min, about 20 min left`` (no estimate before a run finishes)."""
        total = len(self.ids)
        text = f"{self.name}: run {len(done)} of {total} stored, {seconds / 60:.1f} min"
        trained = sum(self.steps[rid] for rid in done - at_start)
        left = sum(self.steps[rid] for rid in self.ids if rid not in done)
        if trained > 0 and left > 0:
            text += f", about {seconds / trained * left / 60:.0f} min left"
        return text

    def _watch(self) -> None:
        start, at_start = time.perf_counter(), self.stored_ids()
        last = at_start
        while not self._stop.wait(self.every):
            done = self.stored_ids()
            if done != last:
                last = done
                line = self.line(done, at_start, time.perf_counter() - start)
                if self.out is None:
                    say(line)
                else:
                    print(line, file=self.out, flush=True)

    def __enter__(self):
        if self.ids:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return False


def _steps(cfg) -> int:
    """A run's planned optimizer steps (from the datasets' published sizes), at least 1: a run of no step still
    takes its setup."""
    return max(1, plan.planned_steps(cfg))


def missing_entries(chapter: plan.Chapter, preset: str, results: Path) -> list[plan.Entry]:
    """The chapter's planned runs whose record (or, where the chapter reads the network, whose network) is not
    stored in ``results``."""
    missing = []
    for entry in plan.plan(preset, [chapter]):
        folder = results / entry.run_id
        record = runs.stored_record(entry.run_id, results)
        if record is None or (entry.keep_model and not runs.has_network(record, folder)):
            missing.append(entry)
    return missing


def train_missing_runs(chapter: plan.Chapter, preset: str, results: Path, workers: int, device: str | None = None) -> None:
    """Train the chapter's missing runs in ``workers`` processes (the machine's cores shared out among them) before
    its notebook reads them: on a 2-core CPU two processes of one thread each train small networks about 1.4x
    faster than one of two threads (``benchmarks/workers.py``). A run that fails here is left to the notebook,
    which trains it again and reports it. Nothing to do with one worker or fewer than two missing runs."""
    missing = missing_entries(chapter, preset, results)
    if workers < 2 or len(missing) < 2:
        return
    say(f"{chapter.name}: training {len(missing)} runs in {workers} processes first")
    with sweeps.local_executor(workers, threads=sweeps.threads_per_worker(workers)) as pool:
        summary = sweeps.run_plan([e.config for e in missing], pool, root=results, device=device, retries=0,
                                  keep_model={e.run_id for e in missing if e.keep_model})
    for outcome in summary.failed:
        say(f"{chapter.name}: {outcome.run_id} failed in a worker ({outcome.error}); the notebook trains it")


def check_workers(workers) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError("workers", workers, "a whole number of processes, 1 or more")


# ---------------------------------------------------------------------------------------------- one figure
FIGURE_CALL = re.compile(r'plots\.figure\(.*?"(\w+)", "(\w+)"')  # plots.figure(<fig>, "name", "chapter", ...)


def book_figures(root: Path, chapter: str) -> list[str]:
    """The names of the book figures a chapter's notebook draws (its cells with ``mystnb.figure`` metadata), in page
    order: the names ``--figure`` takes and the figure files' names under ``book/figures/<chapter>/``."""
    cells = json.loads((root / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    names = []
    for cell in cells:
        if cell["cell_type"] == "code" and "figure" in cell["metadata"].get("mystnb", {}):
            names += [name for name, _ in FIGURE_CALL.findall("".join(cell["source"]))]
    return names


def figure_chapter(root: Path, chapters_: list[str], figure: str) -> str:
    """The chapter (of ``chapters_``) whose notebook draws book figure ``figure``; a ConfigError on ``--figure``
    naming the figures of those chapters otherwise."""
    allowed = []
    for chapter in chapters_:
        names = book_figures(root, chapter)
        if figure in names:
            return chapter
        allowed += names
    raise ConfigError("--figure", figure, f"one of {', '.join(allowed)}" if allowed else "none: the chosen chapters draw no figure")


DISPLAY_ONLY = {"plots": {"book_table", "show"}, "report": {"md", "compact_sizes"}}  # calls that only show something


def display_only(source: str) -> bool:
    """Whether a code cell only shows something (one call of :data:`DISPLAY_ONLY`, its value the cell's output):
    ``--figure`` skips it, since no later cell reads what it shows."""
    import ast

    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    if len(body) != 1 or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Call):
        return False
    func = body[0].value.func
    return (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.attr in DISPLAY_ONLY.get(func.value.id, set()))


def figure_notebook(root: Path, chapter: str, figure: str):
    """The chapter's notebook up to and including the cell that draws ``figure``, less the cells before it that only
    show something (:func:`display_only`): what drawing that figure needs, and no more of the page."""
    import nbformat

    nb = nbformat.read(str(root / "notebooks" / f"{chapter}.ipynb"), as_version=4)
    kept = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        drawn = [name for name, _ in FIGURE_CALL.findall(cell.source)] if "figure" in cell.metadata.get("mystnb", {}) else []
        if figure in drawn:
            kept.append(cell)
            break
        if not display_only(cell.source):
            kept.append(cell)
    nb.cells = kept
    return nb


def redraw_figure(chapter: str, figure: str, root: Path, preset: str, device: str | None = None) -> int:
    """Draw book figure ``figure`` of ``chapter`` again at ``preset``: the chapter's cells up to that figure
    (:func:`figure_notebook`) run with papermill, with ``$RANDWEIGHTS_ONLY_FIGURE`` set so that only this figure's
    files are written (``book/figures/<chapter>/<figure>.png``, ``.svg`` and ``.csv``: the image and the rows it
    plots). The runs it reads are trained where missing (as the chapter would), or read from the store. The book
    page is not replaced. Returns 0, or 1 (one line naming the failure)."""
    import nbformat
    import papermill

    quiet_orphaned_kernel_tasks()
    start = time.perf_counter()
    say(f"{chapter}: drawing {figure} (preset {preset})")
    folder = root / "book" / "figures" / chapter
    tmp_dir = root / "book" / "chapters"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    source = tmp_dir / f".{chapter}.{figure}-{os.getpid()}.ipynb"
    out = source.with_name(source.stem + ".out.ipynb")
    parameters = {"preset": preset, **({"device": device} if device else {})}
    previous = env.only_figure()
    os.environ[env.ONLY_FIGURE] = figure
    try:
        nbformat.write(figure_notebook(root, chapter, figure), str(source))
        with _InterruptKernel():
            papermill.execute_notebook(str(source), str(out), parameters=parameters, kernel_name=KERNEL, cwd=str(root),
                                       progress_bar=False, log_output=False, shutdown_kernel="immediate",
                                       extra_arguments=QUIET_KERNEL)
    except (Exception, KeyboardInterrupt) as err:  # one line, as a chapter's failure is; Ctrl-C: no traceback
        if _interrupted(err):
            print(f"[reproduce] interrupted: {figure} not drawn; every finished run is stored", file=sys.stderr)
            return 130
        print(f"[reproduce] FAILED {chapter}: {figure}: {failure_reason(err)}", file=sys.stderr)
        return 1
    finally:
        source.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        if previous is None:
            os.environ.pop(env.ONLY_FIGURE, None)
        else:
            os.environ[env.ONLY_FIGURE] = previous
    written = [folder / f"{figure}{suffix}" for suffix in (".png", ".svg", ".csv")]
    shown = ", ".join(str(p.relative_to(root)) for p in written if p.is_file())
    say(f"{chapter}: {figure} drawn in {time.perf_counter() - start:.0f} s: {shown}")
    return 0


# ---------------------------------------------------------------------------------------------- execution status
STATUS_SUFFIX = ".status.json"  # beside each executed page: book/chapters/<name>.status.json


@dataclass(frozen=True)
class ChapterStatus:
    """The latest execution of a chapter by :func:`reproduce`: its preset, runs stored (at the end) of those its plan
    has, runs trained by this execution, seconds it took, when it finished (UTC), the code that executed it
    (:func:`randweights.store.code_label`), whether it succeeded, and whether it trained at all (``trained``
    false: rendered from stored runs only, as from an imported bundle)."""

    chapter: str
    preset: str
    stored: int
    planned: int
    new_runs: int
    seconds: float
    finished: str
    code: str
    ok: bool
    trained: bool

    @classmethod
    def measure(cls, chapter: plan.Chapter, preset: str, seconds: float, ok: bool, trained: bool,
                stored_before: int | None, results: Path) -> ChapterStatus:
        ids = [entry.run_id for entry in plan.plan(preset, [chapter])]
        stored_now = sum((results / rid / "record.json").is_file() for rid in ids)
        return cls(chapter.name, preset, stored_now, len(ids), max(0, stored_now - (stored_now if stored_before is None else stored_before)),
                   round(seconds, 1), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   store.code_label(store.provenance()), ok, trained)

    def row(self) -> dict:
        """The status page's row."""
        if self.trained:
            source = f"trained where missing: {self.new_runs} new run{'s' if self.new_runs != 1 else ''}"
        else:
            source = "stored runs only, no training (an imported bundle or earlier runs)"
        return {"chapter": self.chapter, "preset": self.preset, "runs stored": f"{self.stored} of {self.planned}",
                "execution time": _duration(self.seconds), "executed": self.finished, "code": self.code,
                "runs from": source, "status": "ok" if self.ok else "failed (last good page kept)"}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def write_status(root: Path, status: ChapterStatus) -> Path:
    """Write ``status`` as ``book/chapters/<chapter>.status.json`` (atomically)."""
    path = root / "book" / "chapters" / f"{status.chapter}{STATUS_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(dataclasses.asdict(status), indent=1))
    os.replace(tmp, path)
    return path


def read_statuses(root: Path) -> list[ChapterStatus]:
    """The execution status of every chapter (book order) that :func:`reproduce` has executed in ``root``."""
    out = []
    for chapter in CHAPTERS:
        path = root / "book" / "chapters" / f"{chapter.name}{STATUS_SUFFIX}"
        try:
            out.append(ChapterStatus(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return out


def status_markdown(root: Path) -> str:
    """The book's execution status table (Markdown), from :func:`read_statuses`; a sentence when no chapter has been
    executed."""
    statuses = read_statuses(root)
    if not statuses:
        return f"No chapter has been executed in this checkout yet (`{env.command('reproduce', root)}` does it)."
    rows = [s.row() for s in statuses]
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in header) + " |" for r in rows]
    return "\n".join(lines)


def reproduce(preset: str = "quick", only: list[str] | None = None, build: bool = True, device: str | None = None, root: Path | None = None,
              train_missing: bool | None = None, workers: int = 1, figure: str | None = None) -> int:
    """Execute the chapters and build the book. ``preset``: one that every chapter run declares (a chapter's own,
    such as ``full-cifar10``, with ``only``). ``train_missing``: train runs that are not stored (default: yes,
    except ``full`` without CUDA, which builds from stored records and notes incomplete chapters on their page).
    ``workers``: train each chapter's missing runs in this many processes before its notebook runs
    (:func:`train_missing_runs`); 1 trains them inside the notebook. ``figure``: draw that one book figure again
    (:func:`redraw_figure`) instead of executing the chapters; no page is replaced and no book is built.

    Each chapter executed leaves its execution status beside its page (:func:`write_status`), which the book's
    status page tabulates."""
    check_device(device)
    check_workers(workers)
    plan.check_preset(preset, plan.select(CHAPTERS, only))  # the settings first, then where the checkout is
    root = repo_root(root)
    names = available_chapters(root)
    chosen = plan.select([c for c in CHAPTERS if c.name in names], only)
    plan.check_preset(preset, chosen)
    names = [c.name for c in chosen]
    if figure is not None:
        name = figure_chapter(root, names, figure)  # a ConfigError before anything is written
        env.set_default(env.RESULTS, str(root / "results"))
        env.set_flag(env.PROGRESS, False)
        env.set_flag(env.TRAIN, stored.should_train(preset, device, train_missing))
        return redraw_figure(name, figure, root, preset, device)
    env.set_default(env.RESULTS, str(root / "results"))
    env.set_flag(env.PROGRESS, False)
    train = stored.should_train(preset, device, train_missing)
    env.set_flag(env.TRAIN, train)
    failures, timings, interrupted = [], {}, None
    for number, name in enumerate(names, 1):
        start = time.perf_counter()
        say(f"{name} ({number}/{len(names)}, preset {preset}): started")
        stored_before = None
        try:
            with RunProgress(chosen[number - 1], preset, Path(os.environ[env.RESULTS])) as progress:
                stored_before = progress.stored()
                if train:
                    train_missing_runs(chosen[number - 1], preset, Path(os.environ[env.RESULTS]), workers, device)
                execute(name, root, preset, device)
        except (Exception, KeyboardInterrupt) as err:  # report and go on with the next notebook; stop on Ctrl-C
            if _interrupted(err):
                interrupted = name
                timings[name] = time.perf_counter() - start
                break
            reason = failure_reason(err)
            failures.append(f"{name}: {reason}")
            mark_failed(name, root, preset, reason)
        timings[name] = time.perf_counter() - start
        failed_here = bool(failures) and failures[-1].startswith(name + ":")
        write_status(root, ChapterStatus.measure(chosen[number - 1], preset, timings[name], not failed_here, train,
                                                 stored_before, Path(os.environ[env.RESULTS])))
        page = root / "book" / "chapters" / f"{name}.ipynb"
        if not train and page.is_file():
            coverage = stored.chapter_coverage(chosen[number - 1], preset)
            if stored.note_page(page, coverage):
                print(f"[reproduce] {name}: {coverage.present} of {coverage.total} runs stored; page notes it", file=sys.stderr)
        status = "FAILED" if failures and failures[-1].startswith(name + ":") else "done"
        say(f"{name} ({number}/{len(names)}): {status} in {timings[name]:.0f} s; {sum(timings.values()):.0f} s so far")
    for name, seconds in timings.items():
        failed = any(f.startswith(name + ":") for f in failures)
        status = "INTERRUPTED" if name == interrupted else "FAILED (last good page kept, with a warning)" if failed else "ok"
        print(f"[reproduce] {name:16s} {preset:6s} {seconds:7.1f} s  {status}")
    if interrupted is not None:
        skipped = names[names.index(interrupted) + 1 :]
        if skipped:
            print(f"[reproduce] not run: {', '.join(skipped)}")
        print("[reproduce] interrupted: the chapter pages are as they were and every finished run is stored; "
              "run the same command again to resume", file=sys.stderr)
        return 130
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
