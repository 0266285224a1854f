"""The own-model page's sentence on each accuracy (report.against_chance): above chance only past two binomial
standard errors of a guessing classifier on that many images; inside that band, "cannot be told from guessing"."""

from __future__ import annotations

import math
import re

import pytest

from randweights import report

BAND_500 = 2 * math.sqrt(0.1 * 0.9 / 500)  # ten classes, 500 images: 2.68 points


@pytest.mark.parametrize("accuracy, verdict", [
    (0.1 + BAND_500 + 0.002, "above chance"),
    (0.1 + BAND_500 - 0.002, "cannot be told from guessing"),
    (0.106, "cannot be told from guessing"),  # the page's Edge-Popup after two passes, once
    (0.082, "cannot be told from guessing"),  # the page's Slot Machine after one pass, once
    (0.1 - BAND_500 + 0.002, "cannot be told from guessing"),
    (0.1 - BAND_500 - 0.002, "below chance"),
    (0.32, "above chance"),
])
def test_against_chance_by_the_binomial_band(accuracy, verdict):
    text = report.against_chance(accuracy, 500, 10, "The mask")
    assert verdict in text
    assert text.startswith(f"The mask: {accuracy:.1%} of 500 test images against chance 10% ({100 * (accuracy - 0.1):+.1f} points")
    assert re.search(r"within ±2\.7 points of chance on 500 images", text)


def test_the_band_narrows_with_more_images():
    assert "cannot be told" in report.against_chance(0.12, 500, 10, "x")
    assert "above chance" in report.against_chance(0.12, 10000, 10, "x")  # band 0.6 points
    assert "cannot be told" in report.against_chance(0.54, 500, 2, "x")


@pytest.mark.parametrize("args, name", [((1.5, 500, 10), "accuracy"), ((-0.1, 500, 10), "accuracy"),
                                         ((0.5, 0, 10), "images"), ((0.5, 500, 1), "classes")])
def test_bad_input_names_the_parameter(args, name):
    with pytest.raises(ValueError, match=name):
        report.against_chance(*args, what="x")
