"""Benchmark of the HTML pages on a large store: how big they are, how long they take to write and to open.

    python bench/report.py                       # 30 models x 50,000 rows x 10 classes, 5 folds, 30 epochs
    python bench/report.py --models 5 --rows 5000 --keep /tmp/pages   # a quick run, pages kept

The store is SYNTHETIC, in a temporary folder: kit.blend.synthetic's members (made-up OOF and test
probabilities, no network trained), each fold with a made-up history.csv of --epochs epochs, laid out
exactly as kit train lays a store out. For the blend page's gallery each model's recipe.yaml names an
`npz` competition of random-noise 32x32 RGB images, one per row (the worst case for PNG thumbnails).

It then times, through the library as the commands run it:
  - the store's page (kit report): every model's table, curves and recipe, the 30 x 30 correlation map;
  - a blend's page (kit blend --method soft,caruana writes it; timed again on its own): scores, weights,
    per-class bars, confusion matrix, correlations and the gallery of the most confidently wrong rows;
and prints each page's size. With a Chromium installed (tests/browser.py finds it) each page is opened
headless: the page's own load event (performance.now() in its load handler: parsing, decoding every
embedded image, layout) and the browser process's wall time (including starting it, given for an empty
page too) are printed, and the page is checked for errors, requests outside the file and broken images.
--screenshots DIR keeps a full-page screenshot of each.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from kit import fileio  # noqa: E402
from kit.blend import blend  # noqa: E402
from kit.competition import load_competition, resolve_competition  # noqa: E402
from kit.blend.synthetic import make_members, write_store  # noqa: E402
from kit.html_report import write_blend_page, write_store_page  # noqa: E402
from kit.report import report_dir  # noqa: E402
from kit.store import RECIPE  # noqa: E402
from machine import describe, load_average  # noqa: E402
from tests.browser import check_page, find_chromium, load_time, screenshot  # noqa: E402

COMPETITION = "bench"


def write_images(folder: Path, n_train: int, n_test: int, seed: int = 0) -> dict:
    """train.npz / test.npz of random-noise 32x32 RGB images with the synthetic store's ids; the competition."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", images=rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
             labels=np.zeros(n_train, int), ids=np.array([f"r{i}" for i in range(n_train)]))
    np.savez(folder / "test.npz", images=rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
             ids=np.array([f"t{i}" for i in range(n_test)]))
    return {"name": COMPETITION, "layout": "npz", "root": str(folder), "sample_submission": None}


def recipe_text(name: str, competition: dict, epochs: int) -> str:
    """A recipe.yaml as kit train stores it (the page shows it; the gallery reads its competition)."""
    lines = [f"# synthetic member {name} (bench/report.py): no network was trained", "competition:"]
    lines += [f"  {k}: {'null' if v is None else v}" for k, v in competition.items()]
    lines += ["model: {arch: synthetic}", "cv: {folds: 5, seed: 0}", f"train: {{epochs: {epochs}, batch_size: 64}}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30, help="made-up epochs per fold, drawn as learning curves")
    parser.add_argument("--keep", type=Path, help="copy the two pages here")
    parser.add_argument("--screenshots", type=Path, help="write a full-page screenshot of each page here")
    args = parser.parse_args()

    print(f"before: {describe()}")
    print(f"SYNTHETIC store: {args.models} models x {args.rows:,} rows x {args.classes} classes, {args.folds} folds, "
          f"{args.epochs} made-up epochs per fold; made-up predictions, no network trained; in a temporary folder")
    with tempfile.TemporaryDirectory(prefix="kit-bench-report-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        y, fold, P, T = make_members(args.models, args.rows, n_test=args.rows // 5, n_classes=args.classes,
                                     n_folds=args.folds, seed=0)
        names = [f"m{i:02d}" for i in range(args.models)]
        store = write_store(tmp / "store", COMPETITION, y, fold, {n: [(P[i], T[i])] for i, n in enumerate(names)},
                            epochs=args.epochs)
        competition = write_images(tmp / "data", args.rows, args.rows // 5)
        fingerprint = load_competition(resolve_competition(competition, "bench/report.py")).fingerprint
        for name in names:  # as if trained on these images: their recipe names them, their manifest has their hash
            fileio.write_text(store.model_dir(COMPETITION, name) / RECIPE, recipe_text(name, competition, args.epochs))
            manifest = store.manifest(COMPETITION, name)
            store.write_manifest(manifest.model_copy(update={"data_fingerprint": fingerprint}))
        print(f"store written in {time.perf_counter() - started:.1f} s")

        out = tmp / "submissions"
        result = blend(store, method="soft,caruana", out=out / "blend.csv")
        cpu = {}
        started = time.process_time()
        again = write_blend_page(report_dir(out / "blend.csv"), result.report, store)  # the page on its own
        cpu["blend"] = time.process_time() - started
        started = time.process_time()
        store_page = write_store_page(store, COMPETITION, out / f"{COMPETITION}-store.html")  # linking the blend
        cpu["store"] = time.process_time() - started
        pages = {"store page (kit report)": store_page, f"blend page (blend:{result.method})": again}

        print(f"\n{'page':<30} {'size':>10} {'write s':>8} {'CPU s':>7} {'images':>7}")
        for (what, page), seconds in zip(pages.items(), (cpu["store"], cpu["blend"])):
            text = page.path.read_text(encoding="utf-8")
            print(f"{what:<30} {page.bytes / 2**20:8.2f} MB {page.seconds:8.2f} {seconds:7.2f} {text.count('<img '):7d}")
        print("  (write s: wall clock; CPU s: this process's CPU time, which a busy machine does not inflate)")
        print(f"  (kit blend --method soft,caruana itself, page included: fit {sum(result.fit_seconds.values()):.1f} s, "
              f"nested CV {sum(result.cv_seconds.values()):.1f} s)")

        browser = find_chromium()
        if browser is None:
            print("\nno Chromium or Chrome installed (apt-get install chromium): the pages are not opened in a browser")
        else:
            empty = tmp / "empty.html"
            empty.write_text("<!DOCTYPE html><html><head><title>empty</title></head><body></body></html>", encoding="utf-8")
            base = load_time(browser, empty)
            print(f"\nheadless {browser}: an empty page takes {base['wall_s']:.2f} s of browser wall time "
                  f"({base['cpu_s']:.2f} CPU s, starting it)")
            print(f"{'page':<30} {'load event ms':>14} {'browser wall s':>15} {'CPU s':>7}  check")
            for what, page in pages.items():
                timed = load_time(browser, page.path)
                checked = check_page(browser, page.path)
                broken = [i["alt"] for i in checked["images"]
                          if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
                verdict = ("ok: no error, nothing fetched from outside, "
                           f"{len(checked['images'])} images drawn, page {checked['height']:,} px tall"
                           if not (checked["errors"] or checked["external"] or broken)
                           else f"PROBLEM: errors {checked['errors']}, outside {checked['external']}, broken {broken}")
                print(f"{what:<30} {timed['load_ms']:14.0f} {timed['wall_s']:15.2f} {timed['cpu_s']:7.2f}  {verdict}")
                if args.screenshots:
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    shot = screenshot(browser, page.path, args.screenshots / f"bench-{page.path.stem}.png",
                                      height=min(checked["height"], 16_000))
                    print(f"  screenshot {shot} ({shot.stat().st_size / 1024:,.0f} KB)")
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(store_page.path, args.keep / store_page.path.name)
            shutil.copytree(again.path.parent, args.keep / again.path.parent.name, dirs_exist_ok=True)
            print(f"pages kept in {args.keep}/ (the store page's blend link points into the deleted temporary store)")
    print(f"\nafter: {load_average()}")


if __name__ == "__main__":
    main()
