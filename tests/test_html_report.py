"""The HTML pages: the store's (kit report) and each blend's (kit blend), what they show, that they need no
internet, and, in a real headless Chromium, that they load without errors with every plot and thumbnail
drawn (skipped, with the reason, where no Chromium is installed; .ci/run installs Debian's)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from kit.cli import app
from kit.plots import CURVE_POINTS, thin
from kit.report import confident_errors
from kit.store import Store

from .browser import check_page, find_chromium, screenshot

runner = CliRunner()
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
IMG = re.compile(r"<img [^>]*alt=\"([^\"]*)\"[^>]*src=\"data:image/png;base64,", re.I)


@pytest.fixture
def report_store(trained_store, _few_epochs_template) -> Path:
    """trained_store's two one-epoch models and few_epochs (6 epochs, TTA flip): same folds, same digits."""
    source = _few_epochs_template / "digits" / "models" / "few_epochs"
    shutil.copytree(source, trained_store / "digits" / "models" / "few_epochs")
    return trained_store


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def blend_page(workdir: Path, *args) -> Path:
    result = invoke("blend", "--method", "soft,caruana", "--pick", "caruana", "--out",
                    workdir / "submissions" / "digits-b.csv", *args)
    # where it is, how big, how long it took
    assert re.search(r"page: \S+report\.html \(\d[\d,]* KB, \d+\.\d s;", " ".join(result.output.split())), result.output
    return workdir / "submissions" / "digits-b.report" / "report.html"


def test_the_store_page_shows_every_model_its_folds_curves_and_recipe(report_store, workdir):
    result = invoke("report")
    page = workdir / "submissions" / "digits-store.html"
    assert f"page: {page}" in " ".join(result.output.split()), result.output
    text = page.read_text(encoding="utf-8")
    images = IMG.findall(text)
    for name in ("tiny_vgg", "tiny_resnet", "few_epochs"):
        assert f'id="m-{name}"' in text and f"learning curves of {name}" in images
        cv = Store(report_store).manifest("digits", name).cv
        assert f"{cv['accuracy']:.4f}" in text  # its CV, as model.json has it
    assert "correlation of the models" in images
    assert text.count("<summary>recipe") == 3 and "vgg_small" in text  # each recipe, collapsed
    assert "identity+hflip" in text  # few_epochs' TTA
    assert "No blend yet" in text
    assert not EXTERNAL.search(text), EXTERNAL.search(text)
    assert "<script src" not in text and "<link" not in text and "@import" not in text and "url(" not in text


def test_a_blend_writes_its_page_and_the_store_page_links_it(report_store, workdir):
    page = blend_page(workdir)
    text = page.read_text(encoding="utf-8")
    report = json.loads((page.parent / "report.json").read_text())
    images = IMG.findall(text)
    assert {"per-class precision, recall and F1", "confusion matrix", "correlation of the members"} <= set(images)
    assert "blend:caruana" in text and "blend:soft" in text and "times_selected" in text  # scores, weights
    assert "members differ in TTA" in text  # the blend's warning
    errors = report["confident_errors"]
    wrong = [r for r in errors["rows"]]
    assert errors["wrong"] >= len(wrong) > 0 and len(wrong) <= 48
    confidences = [r["confidence"] for r in wrong]
    assert confidences == sorted(confidences, reverse=True)  # most confident first
    thumbs = re.findall(r'<div class="card"><img class="(?:px)?" alt="([^"]+)"', text)
    assert thumbs == [r["id"] for r in wrong]  # every one drawn, from the digits' pixels
    assert f"true {wrong[0]['true']}" in text and f"pred {wrong[0]['predicted']}" in text
    assert not EXTERNAL.search(text)

    store_page = workdir / "submissions" / "digits-store.html"
    assert "3 models, 1 blend page linked" in " ".join(invoke("report").output.split())
    link = re.search(r'<a href="([^"#]+)">digits-b.csv</a>', store_page.read_text(encoding="utf-8"))
    assert link and (store_page.parent / unquote(link.group(1))).resolve() == page.resolve()


def test_the_gallery_says_why_when_the_images_cannot_be_read_and_the_blend_still_succeeds(report_store, workdir,
                                                                                         monkeypatch):
    import kit.competition
    from kit.errors import DataError

    def gone(*args, **kwargs):
        raise DataError("data/digits/train.csv: no such file")

    monkeypatch.setattr(kit.competition, "load_competition", gone)
    text = blend_page(workdir).read_text(encoding="utf-8")
    assert "No thumbnails: data/digits/train.csv: no such file" in text
    assert '<div class="card">' not in text and "p(true)" in text  # the rows as a table instead
    assert (workdir / "submissions" / "digits-b.csv").is_file()


def test_a_blend_of_some_folds_says_so_on_its_page(report_store, workdir):
    text = blend_page(workdir, "--folds", "0,1").read_text(encoding="utf-8")
    assert "Blended on folds 0, 1 only" in text


def test_large_stores_stay_light_curves_thinned_and_the_gallery_capped():
    history = pd.DataFrame({"epoch": np.arange(1, 5001), "val_loss": np.linspace(2, 1, 5000)})
    thinned = thin(history, keep=[1234])
    assert len(thinned) <= CURVE_POINTS + 1 and 1235 in set(thinned["epoch"])
    assert thinned["epoch"].iloc[0] == 1 and thinned["epoch"].iloc[-1] == 5000
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), 50_000)
    y = rng.integers(0, 10, 50_000)
    errors = confident_errors(np.arange(50_000).astype(str), y, probs, np.zeros(50_000, int), list("abcdefghij"))
    assert len(errors["rows"]) == 48 and errors["wrong"] == int((probs.argmax(1) != y).sum())


def test_report_refuses_to_write_into_the_store(report_store, workdir):
    result = runner.invoke(app, ["report", "--out", str(report_store / "digits" / "x.html")])
    assert result.exit_code == 2 and "inside the prediction store" in result.output


BROWSER = find_chromium()


@pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome installed (apt-get install chromium; .ci/run "
                                            "installs it), so the pages are not rendered in a browser")
def test_both_pages_render_in_a_headless_browser_without_errors(report_store, workdir, tmp_path):
    """Real Chromium: each page loads with no script error and no request outside the file, every image
    (plots, thumbnails) decodes to a picture, the sortable table's script runs; and a screenshot of each
    is taken (copied to $KIT_SCREENSHOTS when set, to be looked at)."""
    blend = blend_page(workdir)
    invoke("report")
    store_page = workdir / "submissions" / "digits-store.html"
    shots = Path(os.environ.get("KIT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for page, least in ((store_page, 4), (blend, 4)):  # store: 3 curves + correlation; blend: 3 plots + thumbnails
        checked = check_page(BROWSER, page)
        assert checked["errors"] == [], checked["errors"]
        assert checked["external"] == [], checked["external"]
        assert len(checked["images"]) >= least, checked["images"]
        broken = [i["alt"] for i in checked["images"] if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
        assert broken == [], broken
        assert checked["sorted"], "no sortable table was clicked"
        plots = [i for i in checked["images"] if i["width"] >= 400]  # the plots, as opposed to 8 px thumbnails
        assert len(plots) >= 3
        shot = screenshot(BROWSER, page, shots / f"{'store' if page == store_page else 'blend'}.png",
                          height=min(checked["height"], 8000))
        from PIL import Image

        with Image.open(shot) as picture:
            assert picture.size == (1280, min(checked["height"], 8000))
            colours = len(set(picture.convert("RGB").resize((160, 160)).getdata()))
        assert colours > 50, "the screenshot is (nearly) blank"


def test_thumbnails_keep_small_images_small_and_shrink_large_ones():
    import base64
    import io

    from PIL import Image

    from kit.html_report import THUMB_SIDE, thumbnail

    for pixels, side, cls in ((np.zeros((8, 8, 1), np.uint8), 8, "px"),
                              (np.full((300, 200, 3), 200, np.uint8), THUMB_SIDE, "")):
        uri, got = thumbnail(pixels)
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as picture:
            assert max(picture.size) == side and got == cls
