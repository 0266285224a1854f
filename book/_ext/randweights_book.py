"""Sphinx hooks of the randweights book: the footer names the authors, the content licence and the build.

The footer is written when the build starts: the commit of the checkout the book is built from (``git describe``;
``$RANDWEIGHTS_COMMIT`` where there is no git, e.g. a copy) and the date of the build, in UTC.
"""

from __future__ import annotations

import datetime
import os
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


def setup(app):
    app.connect("config-inited", _set_footer)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
