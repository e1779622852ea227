"""Both error measures (physics.error_measures) on planted differences: the factor between them is pinned."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from fhn_automl.learning.validation import final_full_metrics, validation_metrics
from fhn_automl.physics.error_measures import (ErrorSummary, UnknownErrorMeasureError, error_metrics,
                                               measure_keys)

# three points, two outputs (U, W): row sums 0.4, 1.0, 0.1; largest component 0.9
PLANTED = np.array([[0.1, 0.3], [0.9, 0.1], [0.05, 0.05]])


def test_the_code_measure_is_half_the_sum_mean_and_the_largest_component():
    metrics = error_metrics(PLANTED)
    assert metrics["mean_err"] == pytest.approx(0.5)            # (0.4 + 1.0 + 0.1) / 3
    assert metrics["max_err"] == pytest.approx(1.0)
    assert metrics["code_mean_err"] == pytest.approx(0.25)      # mean over 6 components = half of 0.5
    assert metrics["code_max_err"] == pytest.approx(0.9)
    assert metrics["code_mean_err"] == pytest.approx(metrics["mean_err"] / 2)


def test_numpy_torch_and_streamed_batches_agree():
    whole = error_metrics(PLANTED)
    assert error_metrics(torch.tensor(PLANTED)) == pytest.approx(whole)
    streamed = ErrorSummary().add(PLANTED[:1]).add(torch.tensor(PLANTED[1:])).add(PLANTED[:0]).metrics()
    assert streamed == pytest.approx(whole)


def test_empty_and_mismatched_batches():
    assert all(math.isnan(v) for v in ErrorSummary().metrics().values())
    with pytest.raises(ValueError, match="outputs"):
        ErrorSummary().add(PLANTED).add(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="points, outputs"):
        ErrorSummary().add(np.zeros(4))


def test_measure_names():
    assert measure_keys("sum") == ("mean_err", "max_err")
    assert measure_keys("code") == ("code_mean_err", "code_max_err")
    with pytest.raises(UnknownErrorMeasureError, match="'half'.*sum, code"):
        measure_keys("half")


class _Offset(nn.Module):
    """Answers the target plus a fixed offset per output: known errors in both measures."""

    def __init__(self, offset):
        super().__init__()
        self.offset = torch.tensor(offset)

    def forward(self, x):
        return x[:, :2] + self.offset


def test_validation_reports_both_measures_of_a_planted_model():
    x = torch.rand(50, 3)
    y = x[:, :2].clone()
    metrics = validation_metrics(_Offset([0.1, -0.3]), x, y)
    assert metrics["val_mean_err"] == pytest.approx(0.4)
    assert metrics["val_code_mean_err"] == pytest.approx(0.2)
    assert metrics["val_max_err"] == pytest.approx(0.4)
    assert metrics["val_code_max_err"] == pytest.approx(0.3)
    batches = [(x[:20].numpy(), y[:20].numpy()), (x[20:].numpy(), y[20:].numpy())]
    full = final_full_metrics(_Offset([0.1, -0.3]), batches, torch.device("cpu"))
    assert full["final_full_val_code_mean_err"] == pytest.approx(0.2)
    assert full["final_full_val_mean_err"] == pytest.approx(0.4) and full["final_full_val_points"] == 50
