"""Choosing members (--min-cv, --top, seeds apart), refusing members that do not line up, and
what `blend` writes: the submission of the best or picked blender and its report."""

import json

import numpy as np
import pytest

from kit.blend import blend
from kit.blend.members import filter_by_score
from kit.errors import BlendError, StoreError
from tests.blend_fixtures import store_of_accuracies, synthetic_store

ACCURACIES = {"weak": 0.45, "fair": 0.7, "good": 0.8, "best": 0.92}


@pytest.fixture(autouse=True)
def no_plots(request, monkeypatch):
    """Drawing the PNGs takes about a second a blend; only tests named *plots* draw them."""
    if "plots" not in request.node.name:
        monkeypatch.setattr("kit.report.plot_matrix", lambda path, *args, **kwargs: path)


def test_filter_by_score_keeps_the_right_members_in_their_order():
    accuracy = {"a": 0.90, "b": 0.95, "c": 0.91, "d": 0.80}
    assert filter_by_score(accuracy, "accuracy", min_cv=0.91)[0] == ["b", "c"]
    assert filter_by_score(accuracy, "accuracy", top=2)[0] == ["b", "c"]
    kept, dropped = filter_by_score(accuracy, "accuracy", min_cv=0.85, top=2)
    assert kept == ["b", "c"] and set(dropped) == {"a", "d"}
    assert "accuracy 0.8000 < --min-cv 0.85" in dropped["d"] and "ranks 3, beyond --top 2" in dropped["a"]
    log_loss = {"a": 0.30, "b": 0.20, "c": 0.50}  # lower is better
    assert filter_by_score(log_loss, "log_loss", min_cv=0.35)[0] == ["a", "b"]
    assert filter_by_score(log_loss, "log_loss", top=1)[0] == ["b"]
    with pytest.raises(BlendError, match="--min-cv 0.99: keeps no member; the best accuracy is 0.9500 \\(b\\)"):
        filter_by_score(accuracy, "accuracy", min_cv=0.99)
    with pytest.raises(BlendError, match="--top: expected a positive number"):
        filter_by_score(accuracy, "accuracy", top=0)


def test_min_cv_and_top_choose_members_from_the_store(tmp_path):
    store, _, _ = store_of_accuracies(tmp_path / "store", ACCURACIES)
    result = blend(store, min_cv=0.6, out=tmp_path / "s.csv")
    assert result.members == ["best", "fair", "good"] and list(result.dropped) == ["weak"]
    assert blend(store, top=2, out=tmp_path / "s.csv").members == ["best", "good"]
    result = blend(store, metric="log_loss", top=1, out=tmp_path / "s.csv")
    assert result.members == ["best"] and set(result.dropped) == {"weak", "fair", "good"}
    report = json.loads((tmp_path / "s.report" / "report.json").read_text())
    assert list(report["members"]) == ["best"] and set(report["dropped"]) == {"weak", "fair", "good"}


def test_seeds_are_averaged_or_kept_apart(tmp_path):
    store, y, members = store_of_accuracies(tmp_path / "store", {"net": 0.8}, seeds=3)
    averaged = blend(store, out=tmp_path / "a.csv")
    assert averaged.members == ["net"]
    apart = blend(store, split_seeds=True, method="caruana", out=tmp_path / "b.csv")
    assert apart.members == ["net@s0", "net@s1", "net@s2"]
    for seed, name in enumerate(apart.members):
        expected = (members["net"][seed][0].argmax(1) == y).mean()
        assert apart.member_metrics[name]["accuracy"] == pytest.approx(expected)
    mean_oof = np.mean([oof.astype(np.float32) for oof, _ in members["net"]], axis=0)  # as the store keeps them
    assert averaged.member_metrics["net"]["accuracy"] == pytest.approx((mean_oof.argmax(1) == y).mean())
    assert set(apart.described["weights"]) == set(apart.members)  # weights shown by member name


def _edit_manifest(store, name, **changes):
    path = store.model_dir("syn", name) / "model.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("key, what", [("test_ids_hash", "test ids"), ("classes", "classes"),
                                       ("data_fingerprint", "competition data")])
def test_members_that_do_not_line_up_are_refused(tmp_path, key, what):
    store, _, _ = synthetic_store(tmp_path / "store")
    _edit_manifest(store, "m1", **{key: ["x", "y", "z", "w", "v"] if key == "classes" else "other"})
    with pytest.raises(BlendError, match=f"models 'm0' and 'm1' were trained on different {what}"):
        blend(store, out=tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()
    assert blend(store, models=["m0", "m2"], out=tmp_path / "s.csv").members == ["m0", "m2"]


def test_members_on_other_folds_are_refused(tmp_path):
    store, _, _ = synthetic_store(tmp_path / "store")
    _edit_manifest(store, "m2", folds_hash="0123456789abcdef")
    # manifests are compared before any file is read; alone, m2 is checked against its folds file
    with pytest.raises(BlendError, match="models 'm0' and 'm2' were trained on different folds"):
        blend(store, out=tmp_path / "s.csv")
    with pytest.raises(StoreError, match="the folds changed since 'm2' was trained"):
        blend(store, models=["m2"], out=tmp_path / "s.csv")


def test_all_writes_the_best_unless_one_is_picked(tmp_path):
    store, _, _ = synthetic_store(tmp_path / "store")
    result = blend(store, method="soft,hard,caruana", metric="log_loss", out=tmp_path / "best.csv")
    scores = {n: m["log_loss"] for n, m in result.blender_metrics.items()}
    assert result.method == min(scores, key=scores.get) and result.learns == {"soft": False, "hard": False,
                                                                                "caruana": True}
    picked = blend(store, method="soft,hard,caruana", pick="hard", out=tmp_path / "hard.csv")
    assert picked.method == "hard"
    report = json.loads((tmp_path / "hard.report" / "report.json").read_text())
    assert report["method"] == "hard" and report["picked"] is True
    with pytest.raises(BlendError, match="--pick: 'lgbm' is not among the blenders asked for"):
        blend(store, method="soft,hard", pick="lgbm", out=tmp_path / "x.csv")


def test_weights_by_position_or_name(tmp_path):
    store, _, P = synthetic_store(tmp_path / "store")
    by_name = blend(store, method="weighted", weights="m2=3,m0=1", out=tmp_path / "a.csv")
    assert by_name.described["weights"] == {"m0": 0.25, "m1": 0.0, "m2": 0.75}
    by_position = blend(store, method="weighted", weights=[1, 0, 3], out=tmp_path / "b.csv")
    assert by_position.blender_metrics["weighted"]["log_loss"] == by_name.blender_metrics["weighted"]["log_loss"]
    for weights, message in (("m9=1", "'m9' is not a member"), ("1,2", "2 given for 3 members"),
                             ("a,b,c", "expected numbers like 0.7,0.3")):
        with pytest.raises(BlendError, match=message):
            blend(store, method="weighted", weights=weights, out=tmp_path / "c.csv")
    with pytest.raises(BlendError, match="--weights: they are the weighted vote's; add --method weighted"):
        blend(store, method="soft", weights="1,1,1", out=tmp_path / "c.csv")
    all_with_weights = blend(store, method="all", weights="1,1,1", params={"lgbm": {"n_estimators": 10}},
                             out=tmp_path / "d.csv")
    assert "weighted" in all_with_weights.blender_metrics


def test_report_holds_the_plots_the_summary_and_the_fitted_weights(tmp_path):
    store, _, _ = synthetic_store(tmp_path / "store")
    result = blend(store, method="caruana", params=["caruana.iterations=15"], out=tmp_path / "s.csv")
    folder = tmp_path / "s.report"
    assert [p.name for p in result.report_files] == ["report.json", "per_class.csv", "confusion.png",
                                                     "correlation.png", "summary.md", "report.html"]
    for png in ("confusion.png", "correlation.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((folder / "report.json").read_text())
    assert np.array(report["confusion"]).sum() == 600
    corr = np.array(report["correlation"]["matrix"])
    assert corr.shape == (3, 3) and np.allclose(np.diag(corr), 1) and np.allclose(corr, corr.T)
    assert report["params"]["iterations"] == 15 and set(report["fitted"]["weights"]) == {"m0", "m1", "m2"}
    summary = (folder / "summary.md").read_text()
    for fragment in ("| **blend:caruana** | **nested CV** |", "| member | weights | times_selected |",
                     "![Confusion matrix of the blend](confusion.png)", "| macro avg |"):
        assert fragment in summary
