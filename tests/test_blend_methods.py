"""Each blender on hand-made probabilities where the answer is known, and the contract they share."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score

from kit.blend import create_blender, list_blenders, parse_params
from kit.blend.metrics import macro_f1_of
from kit.blend.run import cross_val_proba
from kit.blend.stacking import meta_features
from kit.errors import BlendError
from tests.blend_fixtures import noisy, one_hot

RNG = np.random.default_rng(0)
Y = RNG.integers(0, 3, 300)
P3 = np.stack([one_hot(Y, 3), noisy(Y, 3, 0.6, RNG), noisy(Y, 3, 0.4, RNG)])  # a perfect member, two weaker
PARAMS = {"weighted": {"weights": [1, 2, 3]}, "lgbm": {"n_estimators": 20}}


@pytest.mark.parametrize("name", list_blenders())
def test_every_blender_keeps_the_contract(name):
    blender = create_blender(name, **PARAMS.get(name, {}))
    with pytest.raises(BlendError, match="not fitted yet"):
        blender.predict_proba(P3)
    assert blender.fit(P3, Y) is blender
    probs = blender.predict_proba(P3[:, :50])
    assert probs.shape == (50, 3) and (probs >= 0).all() and np.allclose(probs.sum(1), 1)
    assert isinstance(blender.describe(), dict)
    assert clone(blender).get_params() == blender.get_params()
    with pytest.raises(BlendError, match="fitted on 3 members x 3 classes, got 2 x 3"):
        blender.predict_proba(P3[:2])


def test_soft_vote_breaks_exact_ties_by_class_index_whatever_the_member_order():
    P = np.array([[[0.5, 0.1, 0.4]], [[0.3, 0.1, 0.6]]])  # means 0.4, 0.1, 0.5 -> class 2; then a tie
    tie = np.array([[[0.2, 0.4, 0.4]], [[0.2, 0.4, 0.4]]])
    for stack, expected in ((P, 2), (tie, 1)):
        for order in ([0, 1], [1, 0]):
            assert create_blender("soft").fit(stack[order], np.array([0])).predict(stack[order]).tolist() == [expected]


def test_weighted_vote_needs_weights():
    with pytest.raises(BlendError, match="weighted: needs weights"):
        create_blender("weighted").fit(P3, Y)
    assert np.allclose(create_blender("weighted", weights=[2, 0, 0]).fit(P3, Y).predict_proba(P3), P3[0])


def test_geometric_mean_is_the_renormalised_product():
    P = np.array([[[0.5, 0.5]], [[0.9, 0.1]]])  # sqrt(.45) : sqrt(.05) = 3 : 1
    assert np.allclose(create_blender("geomean").fit(P, np.array([0])).predict_proba(P), [[0.75, 0.25]])


def test_rank_average_ignores_each_members_scale():
    # member 1 is member 0 squeezed towards 0.5: the same order, so the same ranks
    P = np.array([[[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]],
                  [[0.6, 0.4], [0.5, 0.5], [0.3, 0.7]]])
    probs = create_blender("rank").fit(P, np.zeros(3, int)).predict_proba(P)
    assert np.allclose(probs, [[0.75, 0.25], [0.5, 0.5], [0.25, 0.75]])


def test_optimized_weights_find_the_known_optimum():
    # symmetric members: each is right where the other is wrong, so half and half is best
    P = np.array([[[0.8, 0.2], [0.8, 0.2]], [[0.2, 0.8], [0.2, 0.8]]])
    y = np.array([0, 1])
    assert np.allclose(create_blender("optimized").fit(P, y).weights_, [0.5, 0.5], atol=1e-4)
    # with a perfect member present, it takes (almost) all the weight, and the log loss beats every member's
    opt = create_blender("optimized").fit(P3, Y)
    assert opt.weights_[0] > 0.99 and opt.converged_
    assert np.isclose(opt.weights_.sum(), 1) and (opt.weights_ >= 0).all()


@pytest.mark.parametrize("metric", ["accuracy", "log_loss", "macro_f1"])
def test_caruana_gives_a_perfect_member_all_the_weight(metric):
    selection = create_blender("caruana", metric=metric, iterations=20).fit(P3[[1, 0, 2]], Y)
    assert selection.weights_.tolist() == [0.0, 1.0, 0.0]
    assert selection.describe()["times_selected"] == [0, 1, 0]


def test_caruana_selects_with_replacement_from_a_sorted_start():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 500)
    P = np.stack([noisy(y, 4, acc, rng, confidence=c) for acc, c in ((0.7, 0.9), (0.65, 0.5), (0.6, 0.4), (0.3, 0.5))])
    start = create_blender("caruana", iterations=0, init_size=2).fit(P, y)
    assert start.weights_.tolist() == [0.5, 0.5, 0.0, 0.0]  # the two best alone, once each
    grown = create_blender("caruana", iterations=30, metric="log_loss").fit(P, y)
    assert grown.counts_.max() > 1  # a member chosen more than once
    assert np.isclose(grown.weights_.sum(), 1) and grown.weights_[3] == 0


def test_caruana_bagging_averages_bags_reproducibly():
    bagged = create_blender("caruana", n_bags=6, bag_fraction=0.5, iterations=10).fit(P3, Y)
    again = create_blender("caruana", n_bags=6, bag_fraction=0.5, iterations=10).fit(P3, Y)
    assert np.isclose(bagged.weights_.sum(), 1) and np.array_equal(bagged.weights_, again.weights_)
    assert 0 < bagged.weights_[0] < 1  # the bags without the perfect member put weight elsewhere


def test_caruana_rejects_bad_parameters():
    with pytest.raises(BlendError, match="caruana.metric: 'auc' is not one of accuracy, log_loss, macro_f1"):
        create_blender("caruana", metric="auc").fit(P3, Y)
    with pytest.raises(BlendError, match="caruana.bag_fraction: expected a fraction in"):
        create_blender("caruana", n_bags=2, bag_fraction=1.5).fit(P3, Y)


def test_fast_macro_f1_matches_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 200)
    pred = np.stack([rng.integers(0, 4, 200), y, np.where(y == 4, 0, y)])  # class 4 never predicted
    expected = [f1_score(y, p, average="macro", labels=range(5), zero_division=0) for p in pred]
    assert np.allclose(macro_f1_of(y, pred, 5), expected)


@pytest.mark.parametrize("name", ["lgbm", "logreg"])
def test_stacker_nested_score_is_below_its_in_sample_score_on_noise(name):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    P = rng.dirichlet(np.ones(3), size=(4, 400))  # members that know nothing
    fold = np.arange(400) % 5
    stacker = create_blender(name)
    in_sample = (stacker.fit(P, y).predict(P) == y).mean()
    nested = (cross_val_proba(stacker, P, y, fold).argmax(1) == y).mean()
    assert nested < in_sample and nested < 0.45  # chance is 1/3


def test_logreg_stacker_undoes_a_permuted_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    P = np.stack([one_hot((y + 1) % 3, 3), one_hot(rng.integers(0, 3, 300), 3)])
    assert (cross_val_proba(create_blender("logreg"), P, y, np.arange(300) % 3).argmax(1) == y).mean() > 0.99


@pytest.mark.parametrize("name", ["lgbm", "logreg"])
def test_balanced_class_weight_lifts_the_rare_class(name):
    rng = np.random.default_rng(2)
    y = (rng.random(600) < 0.1).astype(int)  # class 1 is rare
    signal = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.3, 600), 0.01, 0.99)  # weak evidence
    P = np.stack([np.column_stack([1 - signal, signal])] * 2)
    fold = np.arange(600) % 3

    def rare_recall(**params):
        return (cross_val_proba(create_blender(name, **params), P, y, fold).argmax(1)[y == 1] == 1).mean()

    assert rare_recall(class_weight="balanced") > rare_recall() + 0.1
    with pytest.raises(BlendError, match=f"{name}.class_weight: expected null or 'balanced'"):
        create_blender(name, class_weight="heavy").fit(P, y)


def test_meta_features_are_entropies_and_agreement():
    P = np.array([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    meta = meta_features(P)
    assert meta.shape == (2, 3 + 2)
    assert np.allclose(meta[:, :3], [[0, 0, 0], [np.log(2), 0, 0]], atol=1e-5)
    assert np.allclose(meta[:, 4], [2 / 3, 2 / 3])  # two of three members agree with the soft vote
    with_meta = create_blender("lgbm", meta=True, n_estimators=10).fit(P3, Y)
    assert "meta_features_share" in with_meta.describe()


def test_parameters_are_checked_by_name_and_type():
    with pytest.raises(BlendError, match="'caruana' has no parameter 'iteration' \\(did you mean 'iterations'\\?\\)"):
        create_blender("caruana", iteration=5)
    with pytest.raises(BlendError, match="--param caruana.iterations: expected int like 100, got 'many'"):
        create_blender("caruana", iterations="many")
    assert create_blender("lgbm", learning_rate=1).learning_rate == 1.0  # an int where a float goes


def test_parse_params_targets_one_blender_or_every_one_that_has_the_key():
    methods = ["soft", "caruana", "logreg", "lgbm"]
    assert parse_params(["caruana.iterations=5", "class_weight=balanced", "lgbm.meta=true"], methods) == {
        "caruana": {"iterations": 5}, "logreg": {"class_weight": "balanced"},
        "lgbm": {"class_weight": "balanced", "meta": True}}
    assert parse_params(["weighted.weights=[0.7, 0.3]"], ["weighted"]) == {"weighted": {"weights": [0.7, 0.3]}}
    for bad, message in (("iterations", "expected KEY=VALUE"), ("depth=3", "no blender in --method"),
                         ("cruana.metric=accuracy", "unknown blender 'cruana' \\(did you mean 'caruana'"),
                         ("hard.x=1", "blender 'hard' is not among --method")):
        with pytest.raises(BlendError, match=message):
            parse_params([bad], methods)
