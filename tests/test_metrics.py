"""The one log loss (scikit-learn's argument order, Kaggle's clipping) and the headline metrics."""

import numpy as np
import pytest
from sklearn.metrics import log_loss as sklearn_log_loss

from kit.blend.metrics import METRICS
from kit.metrics import HEADLINE, log_loss, log_loss_of
from kit.report import classification_metrics
from tests.blend_fixtures import synthetic_store


def test_log_loss_is_sklearns_with_kaggles_clipping():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), 200).astype(np.float32)
    y = rng.integers(0, 4, 200)
    assert log_loss(y, probs) == pytest.approx(sklearn_log_loss(y, probs, labels=range(4)), rel=1e-5)
    assert log_loss(y, probs) == pytest.approx(float(log_loss_of(probs[np.arange(200), y])), rel=1e-6)
    certain_and_wrong = np.eye(4, dtype=np.float32)[(y + 1) % 4]  # clipped, not infinite
    assert log_loss(y, certain_and_wrong) == pytest.approx(-np.log(1e-15), rel=1e-3)
    batch = np.stack([probs[np.arange(200), y], np.full(200, 0.5)])  # two candidates at once
    assert log_loss_of(batch) == pytest.approx([log_loss(y, probs), np.log(2)], rel=1e-6)


def test_one_list_of_headline_metrics(tmp_path):
    assert METRICS is HEADLINE and list(HEADLINE) == ["accuracy", "log_loss", "macro_f1"]
    store, y, P = synthetic_store(tmp_path / "store")
    cv = store.manifest("syn", "m0").cv
    assert list(cv) == list(HEADLINE)
    assert cv == pytest.approx({k: classification_metrics(y, P[0], [str(c) for c in range(5)])[k] for k in HEADLINE})


def test_heat_map_numbers_are_dark_on_light_cells_and_light_on_dark_ones():
    # CIFAR-10's 541 dogs taken for cats beside a diagonal of 4,500: above the matrix's mean (which once chose
    # black text), yet drawn dark purple in viridis, so its number must be white
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    from kit.report import cell_text_colours

    counts = np.full((10, 10), 50.0)
    np.fill_diagonal(counts, 4500.0)
    counts[5, 3] = 541.0
    assert counts[5, 3] > counts.mean()
    colours = cell_text_colours(colormaps["viridis"](Normalize(0, 4500)(counts)))
    assert colours[5, 3] == "white" and (colours[np.eye(10, dtype=bool)] == "black").all()
    assert (colours[~np.eye(10, dtype=bool)] == "white").all()
    greys = cell_text_colours(colormaps["gray"](np.array([[0.0, 0.3], [0.7, 1.0]])))
    assert greys.tolist() == [["white", "white"], ["black", "black"]]
