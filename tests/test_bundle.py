"""`kit export` and `kit predict-bundle`: an inference bundle that writes, with no store and no
training data, the submission `kit blend` wrote.

Digits' sample submission is one label per row, so its bundle's CSV must equal the blend's byte for
byte; a probability format (one column per class) is compared to 1e-6, the CSV's last digit.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import kit.competition as competition_module
from kit.cli import app
from kit.competition import load_competition, resolve_competition
from kit.store import Store
from tests.conftest import write_recipe

runner = CliRunner()


def kit(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args):
    result = kit(*args)
    assert result.exit_code == 0, result.output
    return result


def refused(args, *expected, untouched: Path | None = None):
    """Exit 2, one line saying each of `expected`, no traceback; `untouched` left as it was."""
    before = _snapshot(untouched) if untouched is not None else None
    result = kit(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    text = " ".join(result.output.split())
    for part in expected:
        assert part in text, (part, text)
    if untouched is not None:
        assert _snapshot(untouched) == before
    return text


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


@pytest.fixture
def test_images(workdir):
    """Digits' test images as PNG files named by their ids (a pixel_csv competition: the id is the stem)."""
    data = load_competition(resolve_competition("digits"))
    folder = workdir / "test_images"
    folder.mkdir()
    for id_, image in zip(data.test_ids, data.test_images):
        Image.fromarray(image[..., 0]).save(folder / f"{id_}.png")
    return folder


def _cut_off(workdir, monkeypatch):
    """No store and no competition data from here on: deleted, and any attempt to open either fails."""
    shutil.rmtree(workdir / "store")
    shutil.rmtree(workdir / "data")
    monkeypatch.setenv("KIT_STORE", str(workdir / "no_store"))
    monkeypatch.setenv("KIT_DATA", str(workdir / "no_data"))

    def forbidden(*args, **kwargs):
        raise AssertionError("predict-bundle read the store or the competition's data")

    monkeypatch.setattr(Store, "__init__", forbidden)
    monkeypatch.setattr(competition_module, "load_competition", forbidden)


def test_bundles_of_four_blends_write_the_blends_csv_byte_for_byte_without_the_store(
        trained_store, workdir, test_images, monkeypatch):
    # a re-predicted member (its weights are its source's) and a full refit (seed0/full's weights)
    ok("repredict", "tiny_vgg", "--tta", "flip")
    ok("train", write_recipe(workdir / "recipes", "tiny_resnet",
                             model={"arch": "resnet_small", "params": {"widths": [8, 16]}}), "--full")
    blends = {
        "soft": ["-m", "tiny_resnet", "-m", "tiny_vgg+tta-flip", "--method", "soft"],
        "caruana": ["-m", "tiny_vgg", "-m", "tiny_resnet", "--method", "caruana", "--full"],
        "logreg": ["-m", "tiny_vgg", "-m", "tiny_resnet", "--method", "logreg"],
        "lgbm": ["-m", "tiny_vgg", "-m", "tiny_resnet", "--method", "lgbm"],
    }
    for name, args in blends.items():
        ok("blend", *args, "--out", f"subs/{name}.csv")
        # named by the CSV, the report folder or report.json alike
        source = {"soft": f"subs/{name}.csv", "caruana": f"subs/{name}.report",
                  "logreg": f"subs/{name}.report/report.json", "lgbm": f"subs/{name}.csv"}[name]
        result = ok("export", source, "--out", f"bundles/{name}")
        assert "reproduces" in result.output and "byte for byte" in " ".join(result.output.split())

    soft = json.loads(Path("bundles/soft/bundle.json").read_text())
    # the derived member's weights are its source's, copied beside it; fold.json vouches for weights.pt alone
    assert [m["model"] for m in soft["members"]] == ["tiny_resnet", "tiny_vgg+tta-flip"]
    assert sorted(p.name for p in Path("bundles/soft/models/tiny_vgg/seed0/fold0").iterdir()) == ["fold.json", "weights.pt"]
    assert not Path("bundles/soft/models/tiny_vgg/model.json").exists()
    caruana = json.loads(Path("bundles/caruana/bundle.json").read_text())
    runs = {m["name"]: m["runs"] for m in caruana["members"]}
    assert runs == {"tiny_vgg": ["seed0/fold0", "seed0/fold1"], "tiny_resnet": ["seed0/full"]}
    assert caruana["submission_format"]["answer"] == "labels"
    # every file but bundle.json listed with its sha256; no pickle
    for name in blends:
        listed = json.loads(Path(f"bundles/{name}/bundle.json").read_text())["files"]
        on_disk = {p.relative_to(f"bundles/{name}").as_posix() for p in Path(f"bundles/{name}").rglob("*") if p.is_file()}
        assert set(listed) == on_disk - {"bundle.json"}
        assert not [f for f in on_disk if f.endswith((".pkl", ".pickle", ".joblib"))]
    assert Path("bundles/lgbm/blender/lgbm.txt").is_file() and Path("bundles/logreg/blender/logreg.npz").is_file()
    assert json.loads(Path("bundles/caruana/blender.json").read_text())["arrays"]["weights_"]["dtype"] == "float64"

    _cut_off(workdir, monkeypatch)
    for name in blends:
        result = ok("predict-bundle", f"bundles/{name}", test_images, "--out", f"out/{name}.csv", "--device", "cpu")
        assert "the competition's test set, in the sample submission's order" in " ".join(result.output.split())
        assert Path(f"out/{name}.csv").read_bytes() == Path(f"subs/{name}.csv").read_bytes(), name
        assert Path(f"bundles/{name}/reference_submission.csv").read_bytes() == Path(f"subs/{name}.csv").read_bytes()

    # python -m kit.bundle is the same command, in a process that imports nothing of the test's
    done = subprocess.run([sys.executable, "-m", "kit.bundle", "bundles/logreg", str(test_images), "--out",
                           "out/module.csv", "--device", "cpu"], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    assert Path("out/module.csv").read_bytes() == Path("subs/logreg.csv").read_bytes()


def test_a_probability_format_is_reproduced_to_the_csvs_last_digit(trained_store, workdir, test_images, monkeypatch):
    sample = trained_store / "digits" / "sample_submission.csv"
    ids = pd.read_csv(sample, dtype=str)["id"]
    classes = Store(trained_store).classes("digits")
    pd.DataFrame({"id": ids, **{c: 0.1 for c in classes}}).to_csv(sample, index=False)  # a log-loss competition
    ok("blend", "-m", "tiny_vgg", "-m", "tiny_resnet", "--method", "optimized", "--out", "subs/p.csv")
    ok("export", "subs/p.csv", "--out", "bundle")
    assert json.loads(Path("bundle/bundle.json").read_text())["submission_format"]["answer"] == "probabilities"
    _cut_off(workdir, monkeypatch)
    ok("predict-bundle", "bundle", test_images, "--out", "p.csv", "--device", "cpu")
    ours, blend = pd.read_csv("p.csv"), pd.read_csv("subs/p.csv")
    assert list(ours.columns) == list(blend.columns) == ["id", *classes]
    assert ours["id"].tolist() == blend["id"].tolist()
    assert np.abs(ours[classes].to_numpy() - blend[classes].to_numpy()).max() <= 1e-6 + 1e-12


def test_bad_bundles_and_exports_are_refused_in_one_line(trained_store, workdir, test_images):
    ok("blend", "-m", "tiny_vgg", "-m", "tiny_resnet", "--method", "caruana", "--out", "subs/c.csv")
    ok("export", "subs/c.csv", "--out", "bundle")

    # a changed file: named, exit 2, no submission written
    weights = Path("bundle/models/tiny_vgg/seed0/fold1/weights.pt")
    kept = weights.read_bytes()
    weights.write_bytes(kept[:-1] + bytes([kept[-1] ^ 1]))
    refused(["predict-bundle", "bundle", test_images, "--out", "out.csv"],
            "bundle/models/tiny_vgg/seed0/fold1/weights.pt: changed since the bundle was exported")
    assert not Path("out.csv").exists()
    weights.write_bytes(kept)
    blender = Path("bundle/blender.json")
    blender.write_text(blender.read_text().replace('"iterations": 100', '"iterations": 101'))
    refused(["predict-bundle", "bundle", test_images, "--out", "out.csv"], "bundle/blender.json: changed")
    refused(["predict-bundle", "subs", test_images], "subs: no bundle.json: not a kit bundle")

    # a non-empty folder, a bundle without --force; --force replaces only a bundle
    Path("notes").mkdir()
    Path("notes/keep.txt").write_text("mine")
    refused(["export", "subs/c.csv", "--out", "notes", "--force"], "notes: --out: a folder that is not empty",
            untouched=workdir / "notes")
    refused(["export", "subs/c.csv", "--out", "bundle"], "bundle: --out: already holds a bundle", "--force replaces it",
            untouched=workdir / "bundle")
    ok("export", "subs/c.csv", "--out", "bundle", "--force")
    ok("predict-bundle", "bundle", test_images, "--out", "out.csv", "--device", "cpu")
    assert Path("out.csv").read_bytes() == Path("subs/c.csv").read_bytes()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".")]  # no staging folder left

    # unknown blends; a blend the store no longer reproduces; an embeddings head
    refused(["export", "subs/nothing.csv", "--out", "b2"], "subs/nothing.csv: no blend report")
    refused(["export", "--out", "b2"], "give the blend's submission CSV")
    refused(["export", "-m", "tiny_vg", "--out", "b2"], "no model 'tiny_vg'", "did you mean 'tiny_vgg'")
    csv = Path("subs/c.csv").read_text().splitlines()
    label = csv[5].split(",")
    Path("subs/c.csv").write_text("\n".join(csv[:5] + [f"{label[0]},{(int(label[1]) + 1) % 10}"] + csv[6:]) + "\n")
    refused(["export", "subs/c.csv", "--out", "b2"], "subs/c.csv: line 6: the blender refit", "nothing written")
    manifest_path = trained_store / "digits" / "models" / "tiny_resnet" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "predict": {**manifest["predict"], "head": "logreg"}}))
    refused(["export", "-m", "tiny_vgg", "-m", "tiny_resnet", "--out", "b2"], "member 'tiny_resnet' is a logreg head")
    assert not Path("b2").exists() and not [p for p in workdir.iterdir() if p.name.startswith(".")]

    # -m: plain models by the soft vote; reference_submission.csv is what the store's predictions make
    manifest_path.write_text(json.dumps(manifest))
    ok("export", "-m", "tiny_*", "--out", "b3")
    ok("predict-bundle", "b3", test_images, "--out", "m.csv", "--device", "cpu")
    assert Path("m.csv").read_bytes() == Path("b3/reference_submission.csv").read_bytes()
    ok("blend", "-m", "tiny_resnet", "-m", "tiny_vgg", "--method", "soft", "--out", "subs/s.csv")
    assert Path("m.csv").read_bytes() == Path("subs/s.csv").read_bytes()
