import json

import numpy as np
import pandas as pd
import pytest

from kit.blend import blend, create_blender
from kit.blend.run import cross_val_proba
from kit.errors import BlendError, StoreError
from kit.store import Store
from tests.blend_fixtures import one_hot


def test_soft_vote_is_the_mean_and_weights_shift_it():
    P = np.array([[[0.8, 0.2]], [[0.2, 0.8]], [[0.6, 0.4]]])
    assert np.allclose(create_blender("soft").fit(P, np.array([0])).predict_proba(P), [[1.6 / 3, 1.4 / 3]])
    weighted = create_blender("soft", weights=[0, 1, 1]).fit(P, np.array([0]))
    assert np.allclose(weighted.predict_proba(P), [[0.4, 0.6]])
    with pytest.raises(BlendError, match="weights: expected 3 non-negative numbers"):
        create_blender("soft", weights=[1, -1, 1]).fit(P, np.array([0]))


def test_hard_vote_takes_the_majority_even_against_confidence():
    # two members say class 1 weakly, one says class 0 very confidently: the majority wins
    P = np.array([[[0.45, 0.55]], [[0.45, 0.55]], [[0.99, 0.01]]])
    vote = create_blender("hard").fit(P, np.array([0]))
    assert vote.predict(P).tolist() == [1]
    assert create_blender("soft").fit(P, np.array([0])).predict(P).tolist() == [0]


def test_hard_vote_breaks_ties_by_mean_probability_then_class_order():
    P = np.array([[[0.6, 0.4, 0.0]], [[0.0, 0.9, 0.1]]])  # one vote each for 0 and 1; mean favours 1
    assert create_blender("hard").fit(P, np.array([0])).predict(P).tolist() == [1]
    P = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])  # exact tie everywhere: the lower class index
    assert create_blender("hard").fit(P, np.array([0])).predict(P).tolist() == [0]


def test_stacker_learns_a_member_that_is_right_only_when_permuted():
    # member 0 always predicts (true + 1) % 3: useless to voting, perfect for a stacker
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    P = np.stack([one_hot((y + 1) % 3, 3), one_hot(rng.integers(0, 3, 600), 3)])
    fold = np.arange(600) % 5
    assert (cross_val_proba(create_blender("soft"), P, y, fold).argmax(1) == y).mean() < 0.5
    assert (cross_val_proba(create_blender("lgbm"), P, y, fold).argmax(1) == y).mean() > 0.99


def test_unknown_blender_lists_the_known():
    with pytest.raises(BlendError, match="unknown blender 'sofft' \\(did you mean 'soft'\\?\\); known: soft, hard, weighted, geomean, "
                                        "rank, optimized, caruana, hill, logreg, lgbm, or all"):
        create_blender("sofft")


def test_blend_writes_submission_and_report(trained_store, workdir):
    result = blend(Store(trained_store), method="all")
    assert result.members == ["tiny_resnet", "tiny_vgg"]
    # every blender but the weighted vote, which needs --weights
    assert set(result.blender_metrics) == {"soft", "hard", "geomean", "rank", "optimized", "caruana", "hill", "logreg",
                                     "lgbm"}
    assert "skipped" not in json.loads(result.report_files[0].read_text())
    sub = pd.read_csv(result.submission, dtype=str)
    sample = pd.read_csv(workdir / "data" / "digits" / "sample_submission.csv", dtype=str)
    assert list(sub.columns) == list(sample.columns) and list(sub["id"]) == list(sample["id"])
    assert set(sub["label"]) <= {str(i) for i in range(10)}
    report = json.loads((result.submission.parent / f"{result.submission.stem}.report" / "report.json").read_text())
    assert report["method"] == result.method and set(report["members"]) == {"tiny_vgg", "tiny_resnet"}
    assert len(report["blend"]["per_class"]) == 10
    assert np.array(report["confusion"]).sum() == report["blend"]["averages"]["macro"]["support"]
    for name in ("per_class.csv", "summary.md", "confusion.png", "correlation.png"):
        assert (result.report_files[0].parent / name).is_file()


def test_models_option_picks_members_by_glob(trained_store):
    assert blend(Store(trained_store), models=["*vgg"]).members == ["tiny_vgg"]
    with pytest.raises(StoreError, match="no model 'tiny_vg' .*did you mean 'tiny_vgg'"):
        blend(Store(trained_store), models=["tiny_vg"])


def test_members_on_different_folds_are_refused(trained_store):
    manifest_path = trained_store / "digits" / "models" / "tiny_vgg" / "model.json"
    other = trained_store / "digits" / "models" / "other"
    import shutil

    shutil.copytree(manifest_path.parent, other)
    manifest = json.loads((other / "model.json").read_text())
    manifest.update(name="other", folds_hash="0123456789abcdef")
    (other / "model.json").write_text(json.dumps(manifest))
    # manifests are compared before any file is read; alone, 'other' is checked against its folds file
    with pytest.raises(BlendError, match="models 'other' and 'tiny_resnet' were trained on different folds"):
        blend(Store(trained_store))
    with pytest.raises(StoreError, match="the folds changed since 'other' was trained"):
        blend(Store(trained_store), models=["other"])
    manifest.update(folds_hash=json.loads(manifest_path.read_text())["folds_hash"], test_ids_hash="ffff")
    (other / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(BlendError, match="trained on different test ids"):
        blend(Store(trained_store))


def test_store_with_several_competitions_asks_for_one(trained_store):
    (trained_store / "mnist" / "models").mkdir(parents=True)
    with pytest.raises(StoreError, match=r"several competitions \(digits, mnist\); choose one with --competition"):
        blend(Store(trained_store))
