"""Errors that name the parameter at fault and what it allows."""

from __future__ import annotations

import errno


class OneLine:
    """Shown as one line in Jupyter and Colab, as on the CLI: IPython prints what ``_render_traceback_`` returns
    instead of the traceback (the error says what is wrong and what is allowed; the call stack adds nothing)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ConfigError(OneLine, ValueError):
    """A setting is outside what is allowed.

    The message always reads ``<parameter>: <what was given> (<what is allowed>)`` so the CLI can print it as
    one line.
    """

    def __init__(self, parameter: str, given: object, allowed: str):
        self.parameter = parameter
        self.given = given
        self.allowed = allowed
        super().__init__(f"{parameter}: got {given!r}, allowed: {allowed}")


class DrawDiffers(ConfigError):
    """A compact file's frozen random weights (or Slot Machines' candidates, LaPerm's initial values), drawn again
    from the seed the file stores, are not the ones it was written with: PyTorch does not promise the same random
    numbers across releases and platforms. One line naming the file (once known), the layer, and the torch
    version and platform that wrote it and that drew here."""

    def __init__(self, layer: str, writer: str, reader: str, path: object = None, note: str = ""):
        self.layer, self.writer, self.reader, self.path, self.note = layer, writer, reader, path, note
        super().__init__("path", None if path is None else str(path),
                         "a compact file whose frozen weights this torch draws again as they were written")

    def in_file(self, path: object) -> DrawDiffers:
        """The same error, naming the file it came from."""
        return DrawDiffers(self.layer, self.writer, self.reader, path, self.note)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        return (f"{where}layer {self.layer!r}: the frozen random weights drawn again from the file's seed differ from "
                f"those it was written with (written with {self.writer}, drawn here with {self.reader}); load it with "
                f"the writer's torch, or export the network there (randweights export){self.note}")


class RunFailed(OneLine, RuntimeError):
    """A run whose result cannot be trusted: nothing was stored. Names the run and the reason (one line)."""

    def __init__(self, run_id: str, reason: str):
        self.run_id = run_id
        super().__init__(f"{run_id}: run failed: {reason}")


class DatasetNotFound(OneLine, FileNotFoundError):
    """A dataset is not on disk and could not (or may not) be downloaded."""


class DatasetDamaged(OneLine, ValueError):
    """A dataset file is on disk but cannot be read as what it should be (truncated, wrong format); names the file."""

    def __init__(self, path: object, problem: str):
        self.path = path
        super().__init__(f"{path}: damaged dataset file ({problem}); delete it and put a good copy in its place")


class DiskFull(OneLine, OSError):
    """A file could not be written because its disk (or quota) is full; names the file. Nothing partial is left:
    the write went to a temporary file, which is removed."""

    def __init__(self, path: object, strerror: str = "No space left on device"):
        self.path = path
        super().__init__(errno.ENOSPC, strerror, str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror} while writing it; nothing partial was left (free space, then run again)"


def check_choice(parameter: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ConfigError(parameter, value, "one of " + ", ".join(sorted(allowed)))


def check_range(parameter: str, value, low=None, high=None, low_open=False, high_open=False) -> None:
    """Check ``low <(=) value <(=) high``; ``None`` bounds are unbounded."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(parameter, value, f"a number in {left}{lo}, {hi}{right}")
