"""Why the fold rule matters: a student's CV taught by the rule, and by the usual fold-averaged teacher.

    python bench/teacher_rule.py                                   # the memorisation demonstration alone
    python bench/teacher_rule.py --recipe recipes/digits/vgg_small_pseudo.yaml --store store

1. The demonstration (always; about a minute). Random images with random labels, 5 folds, and a test
   set that holds a copy of every training image (Kaggle test sets hold duplicates). Nothing can be
   learnt, so an honest held-out accuracy is chance (0.5). The teacher is a member whose fold-k model
   memorised its training rows: certain (one-hot, the true label) on their test copies, undecided (0.5)
   on the copies of fold k's held-out rows. Pseudo-labels at threshold 0.75 then come
     - by the rule (kit/teacher.py): from fold k's teacher, so only the copies of the student's own
       training rows pass, and the student's fold-k score stays at chance;
     - fold-averaged (the usual recipe): 4 of 5 fold models memorised each held-out row, so its copy's
       average is 0.9 on its true label and passes; the student learns fold k's held-out labels
       through their copies, and its CV rises toward 1.0, a score that means nothing.
2. With --recipe (a student recipe with a teacher: section): trains it by the rule, then the same
   recipe fold-averaged (`<name>-naive`: pseudo-labels from the fold-averaged test predictions, soft
   targets from every fold's models) and without its teacher (`<name>-plain`, unless --plain names a
   model of the store that is that recipe), into --store, and prints their CVs beside the teacher's
   members' and the teacher blend's. Models already in the store are not trained again.

The naive variant exists only here, as a subclass of kit's Teacher: kit itself has no switch for it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kit.train.run as train_run  # noqa: E402
from kit.recipe import load_recipe, read_recipe_file, recipe_from_dict  # noqa: E402
from kit.store import Store  # noqa: E402
from kit.teacher import Teacher  # noqa: E402
from kit.train import train_recipe  # noqa: E402


class FoldAverageTeacher(Teacher):
    """The usual recipe, which breaks the rule: every fold taught by the fold average of the teacher's
    models (and a learning blender fitted on every OOF row), as a refit is."""

    def teach(self, fold, *args, **kwargs):
        return super().teach(None, *args, **kwargs)


def train_naive(recipe, store: Store):
    original = train_run.Teacher
    train_run.Teacher = FoldAverageTeacher
    try:
        return train_recipe(recipe, store)
    finally:
        train_run.Teacher = original


def renamed(recipe_path: Path, name: str, drop_teacher: bool = False):
    data = read_recipe_file(recipe_path)
    data["name"] = name
    if drop_teacher:
        data.pop("teacher", None)
    return recipe_from_dict(data, source=f"{recipe_path} (as {name})")


def demonstration(n: int = 300, folds: int = 5, epochs: int = 40) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        labels = np.array(["a", "b"])[rng.integers(0, 2, n)]
        copy_of = rng.permutation(n)  # test row j is training row copy_of[j]
        (root / "mem").mkdir()
        np.savez(root / "mem" / "train.npz", images=images, labels=labels, ids=np.array([f"r{i}" for i in range(n)]))
        np.savez(root / "mem" / "test.npz", images=images[copy_of], ids=np.array([f"t{i}" for i in range(n)]))
        base = {"competition": {"name": "mem", "layout": "npz", "root": str(root / "mem"), "sample_submission": None},
                "model": {"arch": "vgg_small", "params": {"widths": [32, 64], "dropout": 0.0}},
                "cv": {"folds": folds, "seed": 0},
                "train": {"epochs": epochs, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.005}}}
        store = Store(root / "store")
        # the memorising teacher: a trained member's fold files, its test predictions replaced
        train_recipe(recipe_from_dict({**base, "name": "memo", "train": {**base["train"], "epochs": 1}}), store)
        split = store.folds(store.manifest("mem", "memo"))
        truth = np.eye(2, dtype=np.float32)[(labels == "b").astype(int)]
        for k in range(folds):
            fold_dir = store.fold_dir("mem", "memo", 0, k)
            oof, test_ids = np.load(fold_dir / "oof.npz"), np.load(fold_dir / "test.npz")["ids"]
            seen = (split.fold[copy_of] != k)[:, None]
            store.write_fold("mem", "memo", 0, k, oof_ids=oof["ids"], oof=oof["probs"], test_ids=test_ids,
                             test=np.where(seen, truth[copy_of], 0.5).astype(np.float32), history=[],
                             weights=(fold_dir / "weights.pt").read_bytes(),
                             record=json.loads((fold_dir / "fold.json").read_text()))
        student = {**base, "teacher": {"members": ["memo"], "pseudo_labels": {"threshold": 0.75}}}
        out = {}
        for name, train in (("rule", train_recipe), ("naive", train_naive)):
            started = time.perf_counter()
            summary = train(recipe_from_dict({**student, "name": name}), store)
            rows = [store.fold_dir("mem", name, 0, k) for k in range(folds)]
            taught = [json.loads((d / "fold.json").read_text())["teacher"]["pseudo_labels"]["rows"] for d in rows]
            out[name] = {"cv": summary.cv["accuracy"], "pseudo_rows": taught, "seconds": time.perf_counter() - started}
        return out


def real_recipe(path: Path, store: Store, plain: str | None) -> list[tuple[str, str, float, float]]:
    from kit.blend import blend

    recipe = load_recipe(path)
    competition = recipe.competition_spec.name
    rows = []
    for member in recipe.teacher.members:
        m = store.manifest(competition, member)
        rows.append((member, "teacher member", m.cv["accuracy"], m.cv["log_loss"]))
    with tempfile.TemporaryDirectory() as tmp:
        result = blend(store, competition, models=recipe.teacher.members, method=recipe.teacher.method,
                       out=Path(tmp) / "teacher.csv")
        metrics = result.blend_metrics
        rows.append((f"blend:{recipe.teacher.method}", "the teacher (nested CV)", metrics["accuracy"],
                     metrics["log_loss"]))
    variants = [(recipe, "by the fold rule", train_recipe),
                (renamed(path, f"{recipe.name}-naive"), "fold-averaged teacher (leaks)", train_naive)]
    if plain is None:
        variants.append((renamed(path, f"{recipe.name}-plain", drop_teacher=True), "no teacher", train_recipe))
    for variant, what, train in variants:
        started = time.perf_counter()
        summary = train(variant, store)
        rows.append((variant.name, what + f" ({time.perf_counter() - started:.0f} s)", summary.cv["accuracy"],
                     summary.cv["log_loss"]))
    if plain is not None:
        m = store.manifest(competition, plain)
        rows.append((plain, "no teacher (the same recipe, in the store)", m.cv["accuracy"], m.cv["log_loss"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, help="a student recipe (with a teacher: section)")
    parser.add_argument("--store", type=Path, default=Path("store"))
    parser.add_argument("--plain", help="a model of the store that is the recipe without its teacher")
    parser.add_argument("--skip-demonstration", action="store_true")
    args = parser.parse_args()
    if not args.skip_demonstration:
        demo = demonstration()
        print("memorising teacher, random labels, test = copies of the training images (chance 0.5):")
        for name, r in demo.items():
            print(f"  {name:6s} CV accuracy {r['cv']:.4f}  pseudo-labelled rows per fold {r['pseudo_rows']}  "
                  f"({r['seconds']:.0f} s)")
    if args.recipe is not None:
        print(f"{args.recipe}:")
        print(f"  {'model':28s} {'what':46s} {'accuracy':>9s} {'log loss':>9s}")
        for name, what, acc, ll in real_recipe(args.recipe, Store(args.store), args.plain):
            print(f"  {name:28s} {what:46s} {acc:9.4f} {ll:9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
