"""The FCN-to-CNN chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

import pytest
from conftest import check_smoke_notebook

pytestmark = pytest.mark.slow  # executes notebooks / builds the book: not in the `-m "not slow"` unit loop


@pytest.fixture
def cifar10():
    from conftest import require_dataset

    require_dataset("cifar10")


def test_fcn_to_cnn_notebook_smoke(smoke_chapters, cifar10):
    check_smoke_notebook(smoke_chapters("fcn_to_cnn"), 10)  # P1-P9 and the shuffled gallery
