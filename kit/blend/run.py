"""`kit blend`: members from the store -> blended OOF and test probabilities -> submission + report.

Blends from the store alone: each member's per-fold predictions, the folds (with labels) and the
copy of the sample submission kept there (the report's page also shows thumbnails of the images
the blend gets wrong, when the competition's images can be read, and notes itself in the store
for kit report: kit/html_report.py). Every blender is scored on the OOF rows by the same
folds the members were trained on: a blender that learns (weights, selection, a stacker) is fit
on k-1 folds and scores the held-out one, so no row is scored by a blender that saw its label.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.base import clone

from ..errors import BlendError, KitError, SubmissionError, did_you_mean
from ..paths import check_output, competition_inputs, submissions_dir
from ..progress import SILENT, Reporter
from ..html_report import Page, write_blend_page
from ..report import (classification_metrics, confident_errors, confusion_matrix, member_correlation, report_dir,
                      write_report)
from ..store import Store
from ..submit import read_outside_submission, submission_format, write_submission
from ..teacher import teacher_warnings
from ..tta import describe
from .base import Blender
from .members import check_compatible, filter_by_score, load_members, select_members
from .metrics import METRICS, check_metric
from .registry import blender_class, create_blender, list_blenders, parse_params

__all__ = ["BlendResult", "blend", "check_compatible", "cross_val_proba", "select_members"]


def _reads(key: str, doc: str) -> property:
    return property(lambda self: self.report[key], doc=doc)


@dataclass
class BlendResult:
    """What `blend` wrote: the submission, the report (what report.json holds; the tables are built
    from it) and the report's files. The other attributes read the report."""

    report: dict
    submission: Path
    report_files: list[Path] = field(default_factory=list)
    page: Page | None = None  # report.html: its path, size and the seconds it took

    competition = _reads("competition", "the competition blended")
    method = _reads("method", "the blender whose submission was written")
    metric = _reads("metric", "what chose it")
    member_metrics = _reads("members", "each member's OOF metrics, by name")
    blender_metrics = _reads("blenders", "every blender fitted, scored on OOF (nested where it learns)")
    fit_seconds = _reads("fit_seconds", "one fit on every OOF row, per blender")
    cv_seconds = _reads("cv_seconds", "scoring: the nested cross-validation, or one predict, per blender")
    learns = _reads("nested_cv", "which blenders were scored by nested CV")
    described = _reads("fitted", "the written blender's weights / selection, per member by name")
    dropped = _reads("dropped", "member -> why it was left out: unfinished, or by --min-cv / --top")

    @property
    def members(self) -> list[str]:
        return list(self.member_metrics)

    @property
    def blend_metrics(self) -> dict:
        return self.blender_metrics[self.method]


def cross_val_proba(blender: Blender, P: np.ndarray, y: np.ndarray, fold: np.ndarray,
                    on_fold: Callable[[], None] | None = None) -> np.ndarray:
    """The blender's OOF probabilities: fit on the other folds, predict each held-out fold."""
    if not blender.learns:
        return clone(blender).fit(P, y).predict_proba(P)
    out = np.zeros(P.shape[1:], dtype=float)
    for k in np.unique(fold):
        held = fold == k
        out[held] = clone(blender).fit(P[:, ~held], y[~held]).predict_proba(P[:, held])
        if on_fold:
            on_fold()
    return out


def blend(store: Store, competition: str | None = None, models: list[str] | None = None, method: str = "soft",
          metric: str = "accuracy", out: Path | None = None, reporter: Reporter = SILENT, *,
          min_cv: float | None = None, top: int | None = None, split_seeds: bool = False,
          params: dict[str, dict] | list[str] | None = None, weights: str | list | dict | None = None,
          pick: str | None = None, folds: list[int] | None = None, full: bool = False,
          submissions: list[str | Path] | None = None) -> BlendResult:
    """Blend models of the store into a submission and its report.

    method: a blender's name, several comma-separated, or "all". params: {"caruana": {"iterations":
    200}} or the CLI's ["caruana.iterations=200", ...]. weights: the weighted vote's, one per member
    in order ([0.7, 0.3], "0.7,0.3") or by name ({"vgg": 0.7}, "vgg=0.7,resnet=0.3"; unnamed members
    get 0). pick: the blender to write instead of the best by `metric`. folds: blend only these folds
    (members trained on some folds only, as an expensive fine-tune often is): scored on their held-out
    rows, each member's test probabilities the mean of those folds' models. full: the test probabilities
    of members refit on every training image (kit train --full) come from the refit (the report says
    which); every score stays the folds' out-of-fold one. submissions: outside submission CSVs
    (probabilities or labels, made elsewhere) blended into the test predictions by an untrained
    blender; they have no OOF rows, so the blend's score is the kit members' part alone and the
    report says it is not cross-validated.
    """
    competition = store.pick_competition(competition, models=models)
    check_metric(metric)
    methods = list_blenders() if method == "all" else [m.strip() for m in method.split(",") if m.strip()]
    if not methods:
        raise BlendError(f"--method: expected a blender's name, several comma-separated, or all; got '{method}'")
    for name in methods:
        blender_class(name)  # an unknown name fails before any reading
    if isinstance(params, (list, tuple)):
        params = parse_params(list(params), methods)
    params = {name: dict(values) for name, values in (params or {}).items()}
    if pick is not None and pick not in methods:
        raise BlendError(f"--pick: '{pick}' is not among the blenders asked for ({', '.join(methods)})"
                         f"{did_you_mean(pick, methods)}")

    outside_files = [Path(p) for p in submissions or []]
    if outside_files:
        methods = _blenders_for_outside(methods, outside_files, explicit=method != "all", pick=pick)
        params = {name: values for name, values in params.items() if name in methods}

    if out is not None:  # a path kit must not write fails before any reading
        check_outputs(store, competition, Path(out))

    only_folds = None if folds is None else sorted(set(folds))
    if only_folds is not None:
        methods = _blenders_for_folds(methods, only_folds, explicit=method != "all")
    if only_folds is not None:  # against the folds file the models were trained on, before any fold is read
        folds_file = store.folds(store.manifest(competition, store.model_names(competition)[0]))
        outside = [k for k in only_folds if not 0 <= k < folds_file.n_folds]
        if outside:
            raise BlendError(f"--folds: {outside[0]} is not a fold of {folds_file.path} (0 to {folds_file.n_folds - 1})")
    names, unfinished = select_members(store, competition, models, only_folds)
    members, test_sources = load_members(store, competition, names, split_seeds, only_folds, full)
    check_compatible(members)
    warnings = tta_warnings(members) + teacher_warnings(store, competition, members)
    if full and not any(how.startswith("full") for how in test_sources.values()):
        warnings.append("--full: no member has a full refit (kit train RECIPE --full); the test predictions are "
                        "the fold models' averages")
    for warning in warnings:
        reporter.message(f"warning: {warning}")
    folds = store.folds(members[0].manifest)
    classes = members[0].classes
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[label] for label in folds.labels])
    fold_of, ids = folds.fold, folds.ids
    if only_folds is not None:  # the rows those folds held out: every member predicted them
        rows = np.isin(folds.fold, only_folds)
        y, fold_of, ids = y[rows], folds.fold[rows], folds.ids[rows]
        for m in members:
            m.oof = m.oof[rows]
    all_metrics = {m.name: classification_metrics(y, m.oof, classes) for m in members}
    kept, dropped = filter_by_score({n: v[metric] for n, v in all_metrics.items()}, metric, min_cv, top)
    dropped = {**unfinished, **dropped}
    members = [m for m in members if m.name in kept]
    member_metrics = {n: all_metrics[n] for n in kept}
    fmt = submission_format(store.sample_submission(competition), classes)
    outside = read_outside(outside_files, fmt, classes, members[0].test_ids, kept)
    for greedy in ("caruana", "hill"):  # greedy searches optimise the metric the run is judged by, unless told otherwise
        if greedy in methods:
            params.setdefault(greedy, {}).setdefault("metric", metric)
    if weights is not None:
        if "weighted" not in methods:
            raise BlendError("--weights: they are the weighted vote's; add --method weighted")
        params.setdefault("weighted", {})["weights"] = resolve_weights(weights, kept + list(outside))
    blenders = build_blenders(methods, params, explicit=method != "all")
    if pick is not None and pick not in blenders:
        raise BlendError(f"--pick: blend:{pick} needs {', '.join(blender_class(pick).required)} "
                         f"(e.g. --weights 0.7,0.3); --method all leaves it out without them")

    P_oof = np.stack([m.oof for m in members])
    P_test = np.stack([m.test for m in members] + [probs for probs, _ in outside.values()])
    if outside:
        # an untrained blender's fit reads only P's shape and its own parameters (weights), never y: the
        # test blend is fitted on the test rows of every member, kit's and the outside ones, with a
        # placeholder y; the scored one on the kit members' OOF rows alone, with their share of the weights
        for_test = {name: clone(b).fit(P_test, np.zeros(P_test.shape[1], dtype=int)) for name, b in blenders.items()}
        blenders = {name: kit_members_only(b, len(members), list(outside)) for name, b in blenders.items()}
    fitted, oof, fit_seconds, cv_seconds = fit_and_score(blenders, P_oof, y, fold_of, reporter)
    blender_metrics = {name: classification_metrics(y, probs, classes) for name, probs in oof.items()}
    if outside:
        fitted = for_test

    best = pick or best_blender(blender_metrics, metric)
    test_probs = fitted[best].predict_proba(P_test)
    out = Path(out) if out else check_outputs(store, competition, submissions_dir() / f"{competition}-{best}.csv")
    for path in outside_files:  # the submission must not overwrite one of its own inputs
        if Path(out).resolve() == path.resolve():
            raise BlendError(f"--out {out}: is the outside submission --submission {path}; write the blend elsewhere")
    submission = write_submission(out, fmt, members[0].test_ids, test_probs, classes)
    report = {"competition": competition, "method": best, "metric": metric, "picked": pick is not None,
              "folds": only_folds or list(range(folds.n_folds)), "partial": only_folds is not None,
              "members": member_metrics, "dropped": dropped, "blend": blender_metrics[best],
              "blenders": blender_metrics, "nested_cv": {n: b.learns for n, b in blenders.items()},
              "fit_seconds": fit_seconds, "cv_seconds": cv_seconds, "warnings": warnings,
              "tta": {m.name: m.manifest.tta for m in members},
              "test_predictions": {m.name: test_sources[m.name] for m in members},
              "params": fitted[best].get_params(),
              "fitted": name_members(fitted[best].describe(), kept + list(outside)),
              "outside": {p.name: {"file": str(p), "kind": outside[p.name][1]} for p in outside_files},
              "cross_validated": not outside,
              "confusion": confusion_matrix(y, oof[best], classes),
              "correlation": member_correlation(kept, P_oof), "submission": str(submission),
              "confident_errors": confident_errors(ids, y, oof[best], fold_of, classes)}
    folder = report_dir(out)
    files = write_report(folder, report)
    page = write_blend_page(folder, report, store, reporter)
    return BlendResult(report=report, submission=submission, report_files=files + [page.path], page=page)


def _blenders_for_folds(methods: list[str], folds: list[int], explicit: bool) -> list[str]:
    """The blenders that can be scored on `folds`: a learning one needs two folds at least (fit on one,
    score the other); asked for by name on one fold it is refused, in --method all it is left out."""
    if len(folds) > 1:
        return methods
    learning = [m for m in methods if blender_class(m).learns]
    if learning and explicit:
        raise BlendError(f"--folds: blender '{learning[0]}' learns from the OOF rows, so its score needs two "
                         f"folds at least (fit on one, scored on another); give more folds or an averaging "
                         f"blender (soft, geomean, hard)")
    kept = [m for m in methods if m not in learning]
    return kept


def _blenders_for_outside(methods: list[str], files: list[Path], explicit: bool, pick: str | None) -> list[str]:
    """The blenders that can take outside submissions: those that learn nothing from the OOF rows
    (an outside submission has none). Asked for by name, a learning blender is refused; in --method
    all it is left out."""
    learning = [m for m in methods if blender_class(m).learns]
    untrained = ", ".join(m for m in list_blenders() if not blender_class(m).learns)
    if learning and (explicit or pick in learning):
        name = pick if pick in learning else learning[0]
        raise BlendError(f"--submission {files[0]}: an outside submission has no out-of-fold predictions, so "
                         f"blender '{name}', which learns from them, cannot use it; use one that does not learn "
                         f"({untrained})")
    names = [f.name for f in files]
    repeated = [n for n in names if names.count(n) > 1]
    if repeated:  # the file name is the member's name in the report and in --weights
        raise BlendError(f"--submission: two files are named '{repeated[0]}'; expected distinct file names "
                         f"(each names its member in the report and in --weights)")
    return [m for m in methods if m not in learning]


def read_outside(files: list[Path], fmt, classes: list[str], test_ids: np.ndarray,
                 kit_names: list[str]) -> dict[str, tuple[np.ndarray, str]]:
    """Each outside submission, checked against the sample submission (kit.submit.read_outside_submission),
    as {file name: (test probabilities in the kit members' test id order, "probabilities" or "labels")}."""
    row_of = {id_: i for i, id_ in enumerate(fmt.ids)}
    order = [row_of.get(str(t)) for t in test_ids]
    outside = {}
    for path in files:
        if path.name in kit_names:
            raise BlendError(f"--submission {path}: its file name '{path.name}' is also a kit member's name; "
                             f"rename the file")
        probs, kind = read_outside_submission(path, fmt, classes)
        if None in order:  # the store's own test ids and its sample submission disagree
            raise SubmissionError(f"the members' test ids are not the sample submission's (e.g. "
                                  f"'{test_ids[order.index(None)]}'), so {path} cannot be lined up with them")
        outside[path.name] = (probs[order], kind)
    return outside


def kit_members_only(blender: Blender, n_kit: int, outside: list[str]) -> Blender:
    """The blender as it scores the OOF rows, where only the first `n_kit` members (kit's) exist: given
    weights keep the kit members' share (normalised again when fitted)."""
    weights = blender.get_params().get("weights")
    if weights is None:
        return blender
    kit_part = list(weights)[:n_kit]
    if not sum(float(w) for w in kit_part) > 0:
        raise BlendError(f"{blender.method_name}.weights: the kit members' weights are all 0, so the blend has no "
                         f"out-of-fold part to score; give a kit member a weight (outside: {', '.join(outside)})")
    return clone(blender).set_params(weights=kit_part)


def check_outputs(store: Store, competition: str, out: Path) -> Path:
    """`out`, refused (WriteError) when it, or the report folder beside it, is a path kit must not write:
    inside the store, one of the competition's own files (its sample submission, its solution, ...) or
    a folder (for the report: a file)."""
    try:
        inputs = competition_inputs(store.competition_spec(competition))
    except KitError:  # a store made without recipes (a synthetic one) records no competition files
        inputs = {}
    check_output(out, "--out", store=store.root, inputs=inputs)
    check_output(report_dir(out), "--out's report folder", store=store.root, inputs=inputs, folder=True)
    return out


def tta_warnings(members: list) -> list[str]:
    """A warning when members were predicted with different test-time augmentation. Each member's OOF and
    test rows went through the same views, so the blend stays consistent; but the members' scores (what
    --top, --min-cv and the weights go by) then compare model and TTA together."""
    records = {m.name: m.manifest.tta for m in members}
    if len({json.dumps(r, sort_keys=True) for r in records.values()}) <= 1:
        return []
    return ["members differ in TTA (" + "; ".join(f"{n}: {describe(r)}" for n, r in records.items())
            + "); each member's OOF and test predictions went through its own views alike, but the members' "
              "scores compare model and TTA together; give them the same tta to compare the models alone"]


def fit_and_score(blenders: dict[str, Blender], P: np.ndarray, y: np.ndarray, fold: np.ndarray,
                  reporter: Reporter = SILENT) -> tuple[dict, dict, dict, dict]:
    """Each blender fitted on every OOF row, and its OOF probabilities: from nested CV when it
    learns, else from that fit. -> (fitted, oof probabilities, fit seconds, scoring seconds)."""
    fitted, oof, fit_seconds, cv_seconds = {}, {}, {}, {}
    n_folds = len(np.unique(fold))
    reporter.start("blend", f"blending {len(P)} members",
                   total=sum(n_folds + 1 if b.learns else 1 for b in blenders.values()))
    try:
        for name, blender in blenders.items():
            reporter.advance("blend", 0, description=f"blending {len(P)} members: {name}")
            started = time.perf_counter()
            fitted[name] = clone(blender).fit(P, y)
            fit_seconds[name] = time.perf_counter() - started
            reporter.advance("blend")
            started = time.perf_counter()
            if blender.learns:
                oof[name] = cross_val_proba(blender, P, y, fold, on_fold=lambda: reporter.advance("blend"))
            else:
                oof[name] = fitted[name].predict_proba(P)
            cv_seconds[name] = time.perf_counter() - started
    finally:
        reporter.finish("blend")
    return fitted, oof, fit_seconds, cv_seconds


def build_blenders(methods: list[str], params: dict[str, dict], explicit: bool) -> dict[str, Blender]:
    """The blenders asked for, with their parameters. `--method all` means every blender that can be
    fitted: one that lacks a required parameter (the weighted vote without --weights) is not part of
    it, rather than a row of the table saying so; named explicitly, it fails when fitted."""
    unknown = [name for name in params if name not in methods]
    if unknown:
        raise BlendError(f"--param: blender '{unknown[0]}' is not among --method ({', '.join(methods)})")
    blenders = {}
    for name in methods:
        given = params.get(name, {})
        if not explicit and any(p not in given for p in blender_class(name).required):
            continue
        blenders[name] = create_blender(name, **given)
    return blenders


def best_blender(blender_metrics: dict[str, dict], metric: str) -> str:
    """The best by `metric`, then by log loss; the first listed on a full tie."""
    sign = -1 if METRICS[metric] else 1
    return min(blender_metrics, key=lambda n: (sign * blender_metrics[n][metric], blender_metrics[n]["log_loss"]))


def resolve_weights(weights: str | list | dict, names: list[str]) -> list[float]:
    """Weights given in member order or by member name -> one number per member, in order."""
    if isinstance(weights, str):
        parts = [p.strip() for p in weights.split(",") if p.strip()]
        if parts and all("=" in p for p in parts):
            weights = {k.strip(): v for k, _, v in (p.partition("=") for p in parts)}
        else:
            weights = parts
    try:
        if isinstance(weights, dict):
            for name in weights:
                if name not in names:
                    raise BlendError(f"--weights: '{name}' is not a member{did_you_mean(name, names)}; "
                                     f"members: {', '.join(names)}")
            return [float(weights.get(name, 0.0)) for name in names]
        values = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise BlendError(f"--weights: expected numbers like 0.7,0.3 or NAME=0.7,NAME=0.3, got {weights!r}") from None
    if len(values) != len(names):
        raise BlendError(f"--weights: {len(values)} given for {len(names)} members ({', '.join(names)}); "
                         f"give one per member in this order, or NAME=WEIGHT pairs")
    return values


def name_members(described: dict, names: list[str]) -> dict:
    """Lists with one value per member -> {member: value}, for the report and the terminal."""
    return {k: dict(zip(names, v)) if isinstance(v, list) and len(v) == len(names) else v
            for k, v in described.items()}
