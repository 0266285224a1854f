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
