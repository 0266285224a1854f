"""Every RANDWEIGHTS_* variable is read in randweights.env, with one yes/no rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from randweights import env
from randweights.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[1] / "randweights"


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), (" YES ", True), ("on", True),
                                             ("0", False), ("False", False), ("no", False), ("off", False)])
def test_one_yes_no_rule_for_every_flag(monkeypatch, value, expected):
    for name in (env.TRAIN, env.KEEP_CHECKPOINTS):
        monkeypatch.setenv(name, value)
    assert env.training_allowed() is expected and env.keep_checkpoints() is expected
    monkeypatch.setenv(env.PROGRESS, value)
    monkeypatch.setenv(env.DOWNLOAD, value)
    assert env.progress_mode() is expected and env.download_mode() is expected


def test_unset_or_empty_is_the_default_and_auto_is_none(monkeypatch):
    monkeypatch.delenv(env.TRAIN, raising=False)
    monkeypatch.setenv(env.KEEP_CHECKPOINTS, "")
    monkeypatch.setenv(env.PROGRESS, "auto")
    assert env.training_allowed() is True and env.keep_checkpoints() is False and env.progress_mode() is None


def test_anything_else_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv(env.TRAIN, "maybe")
    with pytest.raises(ConfigError, match="^RANDWEIGHTS_TRAIN: got 'maybe', allowed: 1/true/yes/on or 0/false/no/off$"):
        env.training_allowed()


def test_no_other_module_reads_the_environment():
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "env.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("RANDWEIGHTS_"):
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value}")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("getenv",):
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno} getenv")
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get"
                    and getattr(getattr(node.func, "value", None), "attr", "") == "environ"):
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno} os.environ.get")
    assert readers == []


def _readme_variables() -> dict[str, list[str]]:
    """The README's table of environment variables: {name: [default, meaning]}."""
    text = (PACKAGE.parent / "README.md").read_text()
    section = text.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| `RANDWEIGHTS_")]
    return {cells[0].strip().strip("`"): [c.strip() for c in cells[1:]] for cells in rows}


def test_the_readme_table_lists_exactly_the_variables_env_defines(monkeypatch):
    tree = ast.parse((PACKAGE / "env.py").read_text())
    defined = {node.value.value for node in ast.walk(tree)
               if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
               and isinstance(node.value.value, str) and node.value.value.startswith("RANDWEIGHTS_")}
    table = _readme_variables()
    assert set(table) == defined == set(env.VARIABLES)
    assert all(len(cells) == 2 and all(cells) for cells in table.values())  # a default and a meaning each
    for name in env.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # the defaults the table states are the ones env returns when nothing is set
    assert table[env.DATA][0].startswith(f"`{env.data_dir()}`") and table[env.RESULTS][0] == f"`{env.results_dir()}`"
    assert float(table[env.LOCK_NOTE][0]) == env.lock_note_seconds()
    assert (table[env.TRAIN][0], table[env.KEEP_CHECKPOINTS][0]) == (("yes" if env.training_allowed() else "no"),
                                                                      ("yes" if env.keep_checkpoints() else "no"))
    assert env.download_mode() is None and env.progress_mode() is None
    assert table[env.DOWNLOAD][0] == table[env.PROGRESS][0] == "auto"
