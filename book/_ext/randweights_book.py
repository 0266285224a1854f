"""Sphinx hooks of the randweights book: the footer names the authors, the content licence and the build; each
executed chapter is read as the book's page (:func:`randweights.reproduce.book_page`: numbered captions, citations,
figure references), while the notebook itself stays as Jupyter and Colab show it; the execution status page gets
its table (:func:`randweights.reproduce.status_markdown`).

The footer is written when the build starts: the commit of the checkout the book is built from (``git describe``;
``$RANDWEIGHTS_COMMIT`` where there is no git, e.g. a copy) and the date of the build, in UTC.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from pathlib import Path

AUTHORS = "The randweights developers"
LICENCE = (
    'Text and figures: <a href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a>; '
    "code: MIT (LICENSE in the repository)"
)


def build_commit(folder: Path) -> str:
    """The short commit (with ``-dirty`` for uncommitted changes) of the checkout holding ``folder``."""
    if os.environ.get("RANDWEIGHTS_COMMIT"):
        return os.environ["RANDWEIGHTS_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            cwd=folder, capture_output=True, text=True, timeout=20, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "no git commit (a copy outside a checkout)"
    return out.stdout.strip()


def footer_html(folder: Path, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return (
        f"<p>By {AUTHORS}. {LICENCE}.<br/>"
        f"Built from commit <code>{build_commit(folder)}</code> on {now:%Y-%m-%d %H:%M} UTC.</p>"
    )


def _set_footer(app, config) -> None:
    options = dict(config.html_theme_options or {})
    options["extra_footer"] = footer_html(Path(app.srcdir))
    config.html_theme_options = options


_LITERAL = re.compile(r"(``.*?``|`[^`]*`)")


def plain_text_docstring(lines: list[str]) -> None:
    """Our docstrings are plain text with ````code```` spans, not reStructuredText: outside literals, ``|d|`` is
    a norm (not a substitution) and ``*args`` a star (not emphasis). Escape both, in place."""
    for i, line in enumerate(lines):
        parts = _LITERAL.split(line)
        for j in range(0, len(parts), 2):  # even parts are outside literals
            text = parts[j].replace("|", "\\|")
            text = re.sub(r"\*\*(?=\w)(?!.*?\w\*\*)", r"\\*\\*", text)  # **kwargs, not **bold**
            if text.count("*") % 2 or "**" not in text:
                text = re.sub(r"(?<![*\\])\*(?=[A-Za-z_(])", r"\\*", text)
            parts[j] = text
        lines[i] = "".join(parts)


def qualify_error_names(lines: list[str]) -> None:
    """``:class:`ConfigError``` -> ``:class:`~randweights.errors.ConfigError```: the errors are documented once,
    in randweights.errors, and modules that import them refer to them by their short names."""
    from randweights import errors

    names = [n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)]
    for i, line in enumerate(lines):
        for n in names:
            line = line.replace(f":class:`{n}`", f":class:`~randweights.errors.{n}`")
            line = line.replace(f":exc:`{n}`", f":exc:`~randweights.errors.{n}`")
        lines[i] = line


def _escape_docstring(app, what, name, obj, options, lines) -> None:
    for i, line in enumerate(lines):  # ``# `` (a literal ending in a space) is not reST: drop the space
        lines[i] = re.sub(r"``(.+?)``", lambda m: "``" + m.group(1).strip() + "``", line)
    plain_text_docstring(lines)
    qualify_error_names(lines)


def _chapter_as_book_page(app, docname, source) -> None:
    if not docname.startswith("chapters/") or Path(app.env.doc2path(docname)).suffix != ".ipynb":
        return
    import nbformat

    from randweights import reproduce

    nb = nbformat.reads(source[0], as_version=4)
    reproduce.book_page(nb, docname)
    source[0] = nbformat.writes(nb)


STATUS_PAGE = "status"
STATUS_MARKER = "<!-- randweights: execution status -->"


def _status_table(app, docname, source) -> None:
    """The status page's table, from the statuses ``randweights reproduce`` left beside the executed chapters."""
    if docname != STATUS_PAGE:
        return
    from randweights import reproduce

    source[0] = source[0].replace(STATUS_MARKER, reproduce.status_markdown(Path(app.srcdir).parent))


def _status_always_read(app, env, added, changed, removed) -> list[str]:
    """The status page is read at every build: its table changes when a chapter is executed, its source does not."""
    return [STATUS_PAGE] if STATUS_PAGE in env.found_docs else []


def setup(app):
    app.connect("config-inited", _set_footer)
    app.connect("source-read", _chapter_as_book_page)
    app.connect("source-read", _status_table)
    app.connect("env-get-outdated", _status_always_read)
    app.connect("autodoc-process-docstring", _escape_docstring)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
