"""Choosing the members of a blend, as competitors do: by name or glob, by score, the top N, and a
recipe's seeds averaged into one member or kept apart."""

from __future__ import annotations

import dataclasses
import fnmatch

from ..errors import BlendError
from ..store import Manifest, Member, Store, why_unfinished
from .metrics import METRICS


def select_members(store: Store, competition: str, patterns: list[str] | None,
                   folds: list[int] | None = None) -> tuple[list[str], dict[str, str]]:
    """Finished models matching any of `patterns` (names or globs; every model when None) and, for
    each unfinished model a glob or the default matched, why it is left out. A model named
    exactly must be finished: load_member says why it is not. `folds`: finished means those folds are."""
    known = store.model_names(competition)
    chosen, named = [], set()
    for pattern in patterns or ["*"]:
        hits = [m for m in known if fnmatch.fnmatchcase(m, pattern)]
        if not hits and patterns:
            store.manifest(competition, pattern)  # raises the 'no model ... did you mean' error
        if pattern in known:
            named.add(pattern)
        chosen += [m for m in hits if m not in chosen]
    kept, dropped = [], {}
    for name in chosen:
        unfinished = None if name in named else why_unfinished(store.model_dir(competition, name),
                                                               store.manifest(competition, name), folds)
        if unfinished:
            dropped[name] = unfinished
        else:
            kept.append(name)
    if not kept:
        raise BlendError(f"{store.competition_dir(competition)}: no finished model to blend"
                         + (f" ({'; '.join(f'{n} {why}' for n, why in dropped.items())})" if dropped
                            else "; run kit train first"))
    return kept, dropped


def load_members(store: Store, competition: str, names: list[str], split_seeds: bool = False,
                 folds: list[int] | None = None, full: bool = False) -> tuple[list[Member], dict[str, str]]:
    """Each model as one member (its seeds averaged), or with `split_seeds` one member per seed,
    named `model@s<seed>` (a model trained with one seed keeps its name). Their manifests are checked
    to line up (check_manifests) before any fold file is read.

    `full`: a member's test probabilities are those of its refit on every training image (kit train
    --full, each of its seeds refit) in place of its fold models' average; its OOF stays the folds'.
    -> the members, and where each one's test probabilities come from (member -> description)."""
    check_manifests({name: store.manifest(competition, name) for name in names})
    members = []
    for name in names:
        seeds = store.manifest(competition, name).seeds if split_seeds else []
        if len(seeds) < 2:  # load_member refuses an unfinished model
            members.append(store.load_member(competition, name, folds=folds))
            continue
        # one member per seed, each seed's files read once
        members += [dataclasses.replace(store.load_member(competition, name, seeds=[s], folds=folds),
                                        name=f"{name}@s{s}")
                    for s in seeds]
    sources = {}
    for member in members:
        seeds = [int(member.name.rsplit("@s", 1)[1])] if "@s" in member.name else member.manifest.seeds
        refit = store.full_test(member.manifest, seeds) if full else None
        if refit is None:
            sources[member.name] = "fold average" + (" (no full refit: kit train --full)" if full else "")
            continue
        member.test, records = refit
        sources[member.name] = (f"full refit ({len(records)} seed{'s' if len(records) > 1 else ''}, "
                                f"{records[0]['epochs']} epochs on {records[0]['train_rows']:,} images)")
    return members, sources


def check_compatible(members: list[Member]) -> None:
    """Members must share data, folds, classes and test ids, or their rows do not line up."""
    check_manifests({m.name: m.manifest for m in members})


def check_manifests(manifests: dict[str, Manifest]) -> None:
    """check_compatible on the members' manifests (name -> manifest), before their files are read."""
    (first, reference), *others = manifests.items()
    for name, manifest in others:
        for key, what in (("data_fingerprint", "competition data"), ("folds_hash", "folds"),
                          ("classes", "classes"), ("test_ids_hash", "test ids")):
            ours, theirs = getattr(reference, key), getattr(manifest, key)
            if theirs != ours:
                raise BlendError(f"models '{first}' and '{name}' were trained on different {what} "
                                 f"({ours!s:.40} vs {theirs!s:.40}); "
                                 f"retrain one of them on the other's or blend them apart")


def filter_by_score(scores: dict[str, float], metric: str, min_cv: float | None = None,
                    top: int | None = None) -> tuple[list[str], dict[str, str]]:
    """Members kept (in their original order) and, for each one dropped, why.

    `min_cv` keeps members scoring at least that well on `metric` (at most, for log loss); `top`
    then keeps the best N of those. Ties keep the member listed first."""
    higher = METRICS[metric]
    if top is not None and top < 1:
        raise BlendError(f"--top: expected a positive number of members, got {top}")
    dropped = {}
    if min_cv is not None:
        for name, s in scores.items():
            if (s < min_cv) if higher else (s > min_cv):
                dropped[name] = f"{metric} {s:.4f} {'<' if higher else '>'} --min-cv {min_cv}"
    ranked = sorted((n for n in scores if n not in dropped), key=lambda n: -scores[n] if higher else scores[n])
    if top is not None:
        for rank, name in enumerate(ranked[top:], start=top + 1):
            dropped[name] = f"{metric} {scores[name]:.4f} ranks {rank}, beyond --top {top}"
    kept = [n for n in scores if n not in dropped]
    if not kept:  # only --min-cv can drop them all: --top keeps at least one of those it ranks
        best = max(scores, key=lambda n: scores[n] if higher else -scores[n])
        raise BlendError(f"--min-cv {min_cv}: keeps no member; the best {metric} is {scores[best]:.4f} ({best})")
    return kept, dropped
