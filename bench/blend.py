"""Benchmark of `kit blend`: fit times against the issue's targets, and accuracy against baselines.

    python bench/blend.py                  # 10 members x 50,000 rows x 10 classes, 5 folds
    python bench/blend.py --rows 5000      # a quick run

Writes a synthetic store (kit.blend.synthetic: members that share their hard rows and
look-alike classes, each with its own noise, bias and temperature), then runs `kit blend
--method all` on it through the library and prints:
  - time to fit: soft vote (target < 2 s), Caruana with 100 iterations (< 10 s), the LightGBM
    stacker's 5-fold nested CV (< 120 s), with each time's ratio to its target;
  - out-of-fold accuracy of kit's best blend (learning blenders scored by nested CV) against
    scikit-learn's StackingClassifier fed the same predictions (its default final estimator,
    LogisticRegression(), on the members' probabilities), scored by the same nested folds, and against the best member.
Timings depend on the machine's load: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.ensemble import StackingClassifier  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import PredefinedSplit, cross_val_predict  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from kit.blend import blend  # noqa: E402
from kit.blend.stacking import stack_features  # noqa: E402
from kit.blend.synthetic import make_members, write_store  # noqa: E402
from machine import describe, load_average  # noqa: E402

TARGETS = {"soft": 2.0, "caruana": 10.0, "lgbm": 120.0}  # seconds


class GivenPredictions(ClassifierMixin, BaseEstimator):
    """A 'model' for StackingClassifier whose predictions are already made: member `member`'s
    probabilities are columns of X. fit learns nothing, so the stack sees exactly kit's inputs."""

    def __init__(self, member: int = 0, n_classes: int = 2):
        self.member = member
        self.n_classes = n_classes

    def fit(self, X, y):
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X):
        return X[:, self.member * self.n_classes:(self.member + 1) * self.n_classes]

    def predict(self, X):
        return self.predict_proba(X).argmax(1)


def sklearn_stacking_oof(P: np.ndarray, y: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, float, int]:
    """StackingClassifier's OOF probabilities over the same folds (fit on k-1, predict the held-out one)."""
    n_members, _, n_classes = P.shape
    stack = StackingClassifier([(f"m{i}", GivenPredictions(i, n_classes)) for i in range(n_members)],
                               final_estimator=LogisticRegression(), stack_method="predict_proba")
    started = time.perf_counter()
    # one BLAS/OpenMP thread, as kit's logreg stacker runs: on a shared machine more threads spin
    with threadpool_limits(1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        oof = cross_val_predict(stack, stack_features(P), y, cv=PredefinedSplit(fold), method="predict_proba")
    not_converged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return oof, time.perf_counter() - started, not_converged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--method", default="all", help="blenders to run (default all)")
    args = parser.parse_args()

    print(f"before: {describe()}")
    y, fold, P, T = make_members(args.members, args.rows, n_test=args.rows // 5, n_classes=args.classes,
                                 n_folds=args.folds, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        store = write_store(Path(tmp) / "store", "bench", y, fold,
                            {f"m{i}": [(P[i], T[i])] for i in range(args.members)})
        started = time.perf_counter()
        result = blend(store, method=args.method, out=Path(tmp) / "sub.csv")  # Caruana: 100 iterations, its default
        total = time.perf_counter() - started

    print(f"\n{args.members} members x {args.rows} rows x {args.classes} classes, {args.folds} folds; "
          f"kit blend --method {args.method}: {total:.1f} s in all")
    print(f"{'blender':<10} {'fit s':>8} {'nested CV s':>12} {'OOF accuracy':>13} {'log loss':>9}")
    for name, m in result.blender_metrics.items():
        nested = f"{result.cv_seconds[name]:.2f}" if result.learns[name] else "-"
        print(f"{name:<10} {result.fit_seconds[name]:8.2f} {nested:>12} {m['accuracy']:13.4f} {m['log_loss']:9.4f}")

    print("\ntargets (time / target; under 1 is met):")
    measured = {"soft": ("soft vote: fit + predict the OOF rows", result.fit_seconds.get("soft", np.nan)
                         + result.cv_seconds.get("soft", np.nan)),
                "caruana": ("Caruana, 100 iterations: one fit on every OOF row", result.fit_seconds.get("caruana", np.nan)),
                "lgbm": (f"LightGBM stacker: {args.folds}-fold nested CV", result.cv_seconds.get("lgbm", np.nan))}
    for name, (what, seconds) in measured.items():
        if np.isnan(seconds):
            continue  # not among --method
        verdict = "met" if seconds < TARGETS[name] else "MISSED"
        print(f"  {what:<52} {seconds:8.2f} s  target {TARGETS[name]:5.0f} s  ratio {seconds / TARGETS[name]:.3f}  {verdict}")
    if "lgbm" in result.fit_seconds:
        print(f"  {'LightGBM stacker: nested CV + the final fit':<52} "
              f"{result.cv_seconds['lgbm'] + result.fit_seconds['lgbm']:8.2f} s")

    stack_oof, stack_seconds, not_converged = sklearn_stacking_oof(P, y, fold)
    stack_accuracy = float((stack_oof.argmax(1) == y).mean())
    best_member = max(result.member_metrics, key=lambda n: result.member_metrics[n]["accuracy"])
    member_accuracy = result.member_metrics[best_member]["accuracy"]
    kit_accuracy = result.blend_metrics["accuracy"]
    print("\nOOF accuracy on the same rows and folds (nested CV wherever a blender learns):")
    print(f"  kit's best blend (blend:{result.method}) {kit_accuracy:.4f}")
    print(f"  sklearn StackingClassifier, same predictions, defaults {stack_accuracy:.4f}  "
          f"({stack_seconds:.1f} s nested{f'; {not_converged} fits did not converge' if not_converged else ''})")
    print(f"  best single member ({best_member}) {member_accuracy:.4f}")
    print(f"  ratios: kit / StackingClassifier {kit_accuracy / stack_accuracy:.4f}, "
          f"kit / best member {kit_accuracy / member_accuracy:.4f}")
    print(f"\nafter: {load_average()}")


if __name__ == "__main__":
    main()
