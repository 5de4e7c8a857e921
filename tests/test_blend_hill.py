"""Hill climbing with negative weights: on hand-made OOF where subtracting a member is the right
answer, its parameters, and `kit blend --method hill` on the digits store."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from kit.blend import create_blender
from kit.blend.run import cross_val_proba
from kit.cli import app
from kit.errors import BlendError
from kit.metrics import log_loss
from tests.blend_fixtures import noisy, one_hot

runner = CliRunner()


def biased_members(n=2000, n_classes=4, bias_share=0.4, seed=0):
    """Members B, C, D where the best blend needs a negative weight on C.

    T, right on 85% of the rows, is never a member: B is T mixed with a bias member C that is
    confident in a random class on every row, B = (1 - c) T + c C, so (B - c C) / (1 - c) = T
    exactly. C alone is worse than chance. Among non-negative weights, C can only hurt: the loss of
    w B + (1 - w) C is convex in w and its slope at w = 1 is -(1 - mean(q_C / q_B)) < 0 (q: the
    probability of the true class), so the convex optimum gives C no weight. D is a weak honest
    member, so the blend has something to add as well as something to subtract."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    truth_like = noisy(y, n_classes, 0.85, rng, confidence=0.9)
    bias = one_hot(rng.integers(0, n_classes, n), n_classes, confidence=0.85)
    mixed = (1 - bias_share) * truth_like + bias_share * bias
    return np.stack([mixed, bias, noisy(y, n_classes, 0.6, rng)]), y


def test_hill_climbing_subtracts_the_bias_member_and_beats_every_non_negative_blend():
    P, y = biased_members()
    hill = create_blender("hill").fit(P, y)
    non_negative = create_blender("hill", allow_negative=False).fit(P, y)
    optimized = create_blender("optimized").fit(P, y)  # the exact best non-negative weighted mean
    losses = {"hill": log_loss(y, hill.predict_proba(P)), "non_negative": log_loss(y, non_negative.predict_proba(P)),
              "optimized": log_loss(y, optimized.predict_proba(P)),
              "best member": min(log_loss(y, p) for p in P)}
    print(losses, hill.describe())
    assert hill.weights_[1] < 0 and hill.weights_[0] > 1  # B - c C, as the construction says
    assert np.isclose(hill.weights_.sum(), 1) and (non_negative.weights_ >= 0).all()
    assert optimized.weights_[1] < 1e-6  # the convex optimum gives the bias nothing, as the docstring proves
    # measured: hill 0.498, non-negative 0.727, optimized 0.727, best member (B) 0.786
    assert losses["hill"] < losses["non_negative"] - 0.1 and losses["hill"] < losses["optimized"] - 0.1
    assert losses["hill"] < losses["best member"] - 0.1
    probs = hill.predict_proba(P)
    assert (probs > 0).all() and np.allclose(probs.sum(1), 1)  # clipped and renormalised: valid probabilities


def test_hill_climbing_is_scored_by_nested_cv_and_still_wins_there():
    P, y = biased_members()
    fold = np.arange(len(y)) % 4
    hill, caruana = (log_loss(y, cross_val_proba(create_blender(name), P, y, fold)) for name in ("hill", "caruana"))
    assert create_blender("hill").learns
    print({"hill nested CV": hill, "caruana nested CV": caruana})
    assert hill < caruana - 0.1  # measured 0.500 vs 0.728


def test_hill_climbing_starts_from_the_best_member_and_stops_when_nothing_improves():
    P, y = biased_members()
    alone = create_blender("hill", max_iter=0).fit(P, y)
    assert alone.weights_.tolist() == [1.0, 0.0, 0.0] and alone.describe()["moves"] == 0  # B: the best alone
    capped = create_blender("hill", max_iter=3).fit(P, y)
    assert capped.describe()["moves"] == 3 and capped.describe()["stopped"] == "max_iter"
    free = create_blender("hill").fit(P, y)
    assert free.describe()["stopped"].startswith("no move improved") and 3 < free.describe()["moves"] < 200
    # a perfect member alone cannot be improved on accuracy: no move is taken
    y3 = np.arange(30) % 3
    perfect = np.stack([one_hot((y3 + 1) % 3, 3), one_hot(y3, 3)])
    fitted = create_blender("hill", metric="accuracy").fit(perfect, y3)
    assert fitted.weights_.tolist() == [0.0, 1.0] and fitted.describe()["moves"] == 0


@pytest.mark.parametrize("params, fragment", [
    ({"step": 0.0}, "hill.step: expected a number in (0, 1), got 0.0"),
    ({"step": 1.0}, "hill.step: expected a number in (0, 1), got 1.0"),
    ({"tolerance": -1.0}, "hill.tolerance: expected a number >= 0, got -1.0"),
    ({"max_iter": -2}, "hill.max_iter: expected an integer >= 0, got -2"),
    ({"metric": "auc"}, "hill.metric: 'auc' is not one of accuracy, log_loss, macro_f1"),
    ({"eps": 0.0}, "hill.eps: expected a small positive number below 0.01, got 0.0"),
])
def test_bad_hill_parameters_are_refused(params, fragment):
    P, y = biased_members(n=40)
    with pytest.raises(BlendError) as caught:
        create_blender("hill", **params).fit(P, y)
    assert fragment in str(caught.value)


def test_kit_blend_method_hill_on_digits_shows_the_signed_weights(trained_store, workdir):
    result = runner.invoke(app, ["blend", "--method", "hill,caruana", "--metric", "log_loss", "--pick", "hill",
                                 "--out", "hill.csv"])
    assert result.exit_code == 0, result.output
    assert "blend:hill fitted" in result.output and "weights" in result.output
    report = json.loads((workdir / "hill.report" / "report.json").read_text())
    assert report["method"] == "hill" and report["nested_cv"]["hill"] is True
    weights = report["fitted"]["weights"]
    assert set(weights) == {"tiny_vgg", "tiny_resnet"} and np.isclose(sum(weights.values()), 1)
    summary = (workdir / "hill.report" / "summary.md").read_text()
    assert "| **blend:hill** | **nested CV** |" in summary and "| member | weights |" in summary
    assert (workdir / "hill.csv").read_text().startswith("id,label\n")
    print({name: {k: round(report["blenders"][name][k], 4) for k in ("accuracy", "log_loss")}
           for name in ("hill", "caruana")}, weights)


@pytest.mark.parametrize("param, fragment", [
    ("hill.step=0", "hill.step: expected a number in (0, 1), got 0.0"),
    ("hill.allow_negative=maybe", "--param hill.allow_negative: expected bool like True, got 'maybe'"),
])
def test_bad_hill_parameters_on_the_command_line_are_one_line(trained_store, workdir, param, fragment):
    result = runner.invoke(app, ["blend", "--method", "hill", "-p", param, "--out", "bad.csv"])
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (workdir / "bad.csv").exists() and not (workdir / "bad.report").exists()
