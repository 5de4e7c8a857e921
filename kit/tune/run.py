"""`kit tune`: search a recipe's `tune:` space with Optuna, each trial a model of the store scored by its k-fold CV.

    study = store/<competition>/tune/<recipe>/study.journal    Optuna's journal file storage
    trial n = store/<competition>/models/<recipe>-t<n>/         trained by kit.train.train_recipe

The driver (tune_recipe) asks the study for trials and tells it their results; running one trial is
the executor's job (run_trial: one trial's recipe trained through train_recipe, its completed folds'
score reported to the pruner after each fold). Trials run one at a time here; a parallel executor
(local processes, Ray) takes a TrialJob, which holds only plain values, and opens the study itself.

Resuming and sharing. While a process runs trial n it holds the lock tune/<recipe>/locks/t<n>.lock
(an OS lock: it dies with its process). A trial the study says is running but whose lock nobody
holds was left by a killed process: the next `kit tune` takes it up first, with the values it drew,
and train_recipe skips its finished folds and resumes its unfinished one from the checkpoint. Two
processes on one study ask for trials under tune/<recipe>/locks/study.lock, so they neither take
the same trial nor run more than --trials between them.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..errors import KitError, RecipeError, StoreError
from ..lock import exclusive, holder
from ..metrics import HEADLINE
from ..progress import SILENT, Reporter, counted
from ..recipe import load_recipe, read_recipe_file, recipe_from_dict
from ..store import BEST_RECIPE, STUDY, TUNE_SUMMARY, Store, trial_name
from .space import MISSING, PrunerConfig, Space, check_space, choice_label, inner, parse_space, sample

# states of a trial as kit tune names them (Optuna's COMPLETE, PRUNED, FAIL, RUNNING, WAITING)
COMPLETE, PRUNED, FAILED, RUNNING, QUEUED = "complete", "pruned", "failed", "running", "queued"


@dataclass(frozen=True)
class TrialJob:
    """One trial to run: plain values only, so that another process (a parallel executor) can run it."""

    study: str  # the study's name: the recipe's
    competition: str
    number: int
    trial_id: int
    recipe: dict  # the trial's recipe mapping (the file's own, with the drawn values), already checked
    source: str  # for messages: 'recipes/x.yaml (trial 3)'
    journal: str  # the study's journal file
    store: str
    metric: str
    pruner: dict  # PrunerConfig's fields
    device: str = "auto"
    # where the trial's (seed, fold) jobs run (kit/train/executors.py): serial, process or ray
    jobs_executor: str = "serial"
    workers: int | None = None
    address: str | None = None


@dataclass
class TrialOutcome:
    state: str  # COMPLETE, PRUNED or FAILED
    value: float | None  # complete: the CV on the metric; pruned: its completed folds' score (never ranked)
    folds_done: int
    folds: int
    seconds: float
    cv: dict | None = None  # complete: the headline metrics of its CV
    reason: str | None = None  # failed: why (a recipe error, a diverged run)


@dataclass
class TuneSummary:
    recipe: str
    competition: str
    metric: str
    folder: Path
    trials: list[dict]  # trial_rows: one per trial of the study, by number
    best: dict | None  # the best complete trial's row, with its recipe file
    importances: dict[str, float]
    files: list[Path]
    ran: int  # trials this process ran (new or taken up)
    seconds: float
    target: int  # --trials
    space: Space
    notes: list[str] = field(default_factory=list)
    table_shown: bool = False  # the reporter's last table of trials is the final one

    @property
    def best_recipe(self) -> Path:
        return self.folder / BEST_RECIPE

    @property
    def summary(self) -> Path:
        return self.folder / TUNE_SUMMARY


Executor = Callable[[TrialJob, Reporter], TrialOutcome]


def tune_recipe(recipe_path: str | Path, store: Store, trials: int, timeout: float | None = None,
                metric: str | None = None, device: str = "auto", reporter: Reporter = SILENT,
                executor: Executor | None = None, enqueue: list[dict] | None = None, jobs_executor: str = "serial",
                workers: int | None = None, address: str | None = None) -> TuneSummary:
    """Run the study of the recipe file's `tune:` space until it holds `trials` trials (finished, pruned or failed:
    a rerun after a kill runs only what is missing), starting no trial after `timeout` seconds.

    Every check (the recipe, the space's extremes loaded as recipes, --metric, --device, the study's recipe
    and competition) runs before the store is written to. `enqueue`: values ({path: value}) for the first
    trials of a new study, after the recipe's own. `executor`: runs one trial (default run_trial); `jobs_executor`,
    `workers`, `address`: where run_trial runs each trial's (seed, fold) jobs (kit train --executor)."""
    started = time.perf_counter()
    try:
        import optuna
    except ImportError:
        raise KitError("kit tune needs Optuna, which is not installed: pip install 'kit[tune]' (or optuna)") from None

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = Path(recipe_path)
    if trials < 1:
        raise KitError(f"--trials: expected at least 1 trial, got {trials}")
    if timeout is not None and timeout <= 0:
        raise KitError(f"--timeout: expected a positive duration, got {timeout:g} s")
    base = load_recipe(path)  # the recipe as kit train reads it: the hash the study belongs to
    raw = read_recipe_file(path)  # the file's mapping (with what it extends), which each trial's recipe is made from
    space = parse_space(raw.get("tune"), str(path))
    name, competition = base.name, base.competition_spec.name
    raw = {**raw, "name": name}
    chosen_metric = metric or space.options.metric
    if chosen_metric is not None and chosen_metric not in HEADLINE:
        from ..errors import did_you_mean

        raise KitError(f"--metric: '{chosen_metric}' is not one of {', '.join(HEADLINE)}"
                       f"{did_you_mean(chosen_metric, HEADLINE)}")
    _check_device(device, base)
    from ..train.executors import create_executor

    create_executor(jobs_executor, workers, address)  # a bad --executor option fails before the study opens
    check_space(space, raw, trial_name(name, 0))
    _check_enqueued(space, enqueue or [])
    folder = store.tune_dir(competition, name)
    journal = folder / STUDY
    existing = _existing_study(journal, name, base, competition, chosen_metric, space)
    metric = chosen_metric or (existing.user_attrs["metric"] if existing else "accuracy")
    _check_strays(store, competition, name, len(existing.trials) if existing else 0, folder)
    # ---- the checks are done: from here on the store is written to
    folder.mkdir(parents=True, exist_ok=True)
    study = _open_study(journal, name, metric, space)
    with exclusive(store.tune_lock(competition, name), f"study '{name}'", wait=True):
        # the sampler's seed: sampler.seed for the study's first process, one more for each later one (resumed, or
        # running beside it), so that a single run is reproducible and no two processes draw the same values
        processes = study.user_attrs.get("processes", 0)
        study.sampler = _sampler(space, space.options.sampler.seed + processes)
        study.set_user_attr("processes", processes + 1)
        if "base_hash" not in study.user_attrs:  # a new study: whose it is, and the first trials
            for key, value in {"base_hash": base.hash, "competition": competition, "metric": metric,
                               "recipe": str(path), "kit_version": __version__, "space": space.record()}.items():
                study.set_user_attr(key, value)
            first = [_recipe_values(space, raw)] if space.options.start_with_recipe else []
            for values in [v for v in first if v] + list(enqueue or []):
                study.enqueue_trial({p: _label(space, p, v) for p, v in values.items()})
        elif existing is not None and existing.user_attrs.get("space") != space.record():
            reporter.message(f"{name}: the search space changed since the study began; earlier trials are kept "
                             f"(TPE learns from those whose values the new space holds)")
    executor = executor or run_trial
    deadline = None if timeout is None else time.monotonic() + timeout
    ran = 0
    notes: list[str] = []
    shown = None  # the trials as the last table printed them
    reporter.start("tune", f"{name}: trials", total=trials)
    counted = min(trials, _counted(study))
    reporter.advance("tune", counted)
    try:
        while True:
            with contextlib.ExitStack() as claim:
                job = _next_job(study, space, raw, store, path, competition, name, metric, trials, deadline, device,
                                claim, reporter)
                if job is None:
                    break
                outcome = executor(replace(job, jobs_executor=jobs_executor, workers=workers, address=address),
                                   reporter)
                _tell(study, job, outcome)
            ran += 1
            reporter.advance("tune", min(trials, _counted(study)) - counted)
            counted = min(trials, _counted(study))
            rows = trial_rows(study, space, metric)
            reporter.table(*trials_table(rows, space, metric, name, trials, recent=True))
            shown = rows
            from .outputs import write_progress

            write_progress(store, competition, name, rows, space, metric)
    finally:
        reporter.finish("tune")
    if _counted(study) >= trials and not ran:
        notes.append(f"the study already holds {_counted(study)} trials (--trials {trials}); raise --trials to search "
                     f"further")
    elif deadline is not None and time.monotonic() >= deadline and _counted(study) < trials:
        notes.append(f"--timeout reached after {counted(ran, 'trial')}; the same command continues the "
                     f"study")
    running = [t.number for t in study.get_trials(deepcopy=False)
               if t.state == optuna.trial.TrialState.RUNNING]
    if running:
        notes.append(f"trial{'s' if len(running) > 1 else ''} {', '.join(map(str, running))} still running in another "
                     f"process (or left by a killed one: the next kit tune takes it up)")
    from .outputs import write_outputs

    rows = trial_rows(study, space, metric)
    shown_all = shown is not None and len(rows) <= 20 and [(r["number"], r["state"]) for r in shown] == \
        [(r["number"], r["state"]) for r in rows]
    best, importances, files = write_outputs(store, competition, name, study, rows, space, metric, path)
    return TuneSummary(recipe=name, competition=competition, metric=metric, folder=folder, trials=rows, best=best,
                       importances=importances, files=files, ran=ran, seconds=time.perf_counter() - started,
                       target=trials, space=space, notes=notes, table_shown=shown_all)


def run_trial(job: TrialJob, reporter: Reporter = SILENT) -> TrialOutcome:
    """The default executor: train the trial's recipe k-fold through train_recipe on the competition's stored
    folds, reporting the completed folds' score to the study's pruner after each fold. A pruned trial stops
    there, its model left unfinished (kit blend skips it); a finished fold is never trained again."""
    import optuna

    from ..train import train_recipe
    from ..train.executors import create_executor
    from ..train.run import FoldDone

    started = time.perf_counter()
    study = optuna.load_study(study_name=job.study, storage=journal_storage(job.journal),
                              sampler=optuna.samplers.RandomSampler(), pruner=make_pruner(PrunerConfig(**job.pruner)))
    trial = optuna.trial.Trial(study, job.trial_id)
    reported = set(study._storage.get_trial(job.trial_id).intermediate_values)
    store = Store(job.store)
    recipe = recipe_from_dict(job.recipe, source=job.source)
    progress = {"done": 0, "total": len(recipe.train.seeds) * recipe.cv.folds, "value": None}

    def on_fold(event: FoldDone) -> None:
        value = completed_score(store, event.competition, event.model, event.done, job.metric)
        step = len(event.done) - 1
        progress.update(done=len(event.done), total=event.total, value=value)
        if step not in reported:  # a taken-up trial reported its earlier folds already
            trial.report(value, step)
        if len(event.done) < event.total and trial.should_prune():
            raise optuna.TrialPruned(f"{job.metric} {value:.4f} after {len(event.done)} of {event.total} folds")

    try:
        summary = train_recipe(recipe, store, reporter=_TrialReporter(reporter), device=job.device, on_fold=on_fold,
                               executor=create_executor(job.jobs_executor, job.workers, job.address))
    except optuna.TrialPruned:
        return TrialOutcome(PRUNED, progress["value"], progress["done"], progress["total"],
                            time.perf_counter() - started)
    except RecipeError as exc:  # the run diverged (NaN), or the recipe failed a check only training makes
        return TrialOutcome(FAILED, None, progress["done"], progress["total"], time.perf_counter() - started,
                            reason=str(exc))
    cv = {k: summary.cv[k] for k in HEADLINE}
    return TrialOutcome(COMPLETE, cv[job.metric], summary.folds_trained + summary.folds_skipped,
                        summary.folds_trained + summary.folds_skipped, time.perf_counter() - started, cv=cv)


def completed_score(store: Store, competition: str, model: str, done: list[tuple[int, int]], metric: str) -> float:
    """`metric` on the out-of-fold rows of a model's finished (seed, fold) runs: the score its completed folds show."""
    from ..report import classification_metrics

    manifest = store.manifest(competition, model)
    folds = store.folds(manifest)
    index = {c: i for i, c in enumerate(manifest.classes)}
    y = np.array([index[label] for label in folds.labels])
    labels, probs = [], []
    for seed in sorted({s for s, _ in done}):
        ks = sorted(k for s, k in done if s == seed)
        oof = store.assemble(manifest, seeds=[seed], folds=ks).oof
        held = np.isin(folds.fold, ks)
        labels.append(y[held])
        probs.append(oof[held])
    return float(classification_metrics(np.concatenate(labels), np.concatenate(probs), manifest.classes)[metric])


class _TrialReporter(Reporter):
    """A trial's training: its progress bars and news, not every fold's table of epochs (the trials table says it)."""

    def __init__(self, inner_reporter: Reporter):
        self.inner = inner_reporter

    def start(self, key, description, total):
        self.inner.start(key, description, total)

    def advance(self, key, steps=1, description=None):
        self.inner.advance(key, steps, description)

    def finish(self, key):
        self.inner.finish(key)

    def message(self, text):
        self.inner.message(text)


# ---- the study

def journal_storage(path: str | Path):
    """Optuna's journal file storage: an append-only file of JSON lines, written under a lock file, that any
    number of processes on the machine (or on a shared file system) read and append to."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = str(path)
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def make_pruner(cfg: PrunerConfig):
    import optuna

    if cfg.name == "none":
        return optuna.pruners.NopPruner()
    # steps are completed (seed, fold) runs, 0-based: min_folds folds before the first possible prune
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.min_folds - 1)


def _sampler(space: Space, seed: int):
    import optuna

    # constant liar: another process's running trials count as bad ones, so that it and this one draw apart
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=space.options.sampler.startup_trials,
                                      constant_liar=True)


def _open_study(journal: Path, name: str, metric: str, space: Space):
    import optuna

    return optuna.create_study(study_name=name, storage=journal_storage(journal), load_if_exists=True,
                               direction="maximize" if HEADLINE[metric] else "minimize",
                               sampler=_sampler(space, space.options.sampler.seed),
                               pruner=make_pruner(space.options.pruner))


def _existing_study(journal: Path, name: str, base, competition: str, metric: str | None, space: Space):
    """The study already in the store (None when there is none), refused when it is another recipe's or
    competition's, optimises another metric, or drew a field from a kind of range the space no longer has."""
    if not journal.is_file() or journal.stat().st_size == 0:
        return None
    import optuna
    from optuna.distributions import check_distribution_compatibility

    try:
        summaries = optuna.get_all_study_summaries(journal_storage(journal))
    except Exception as exc:  # a journal that does not read back
        raise StoreError(f"{journal}: not a study kit tune can read ({type(exc).__name__}: {exc}); move it away to "
                         f"start a new study") from None
    if not any(s.study_name == name for s in summaries):
        return None
    study = optuna.load_study(study_name=name, storage=journal_storage(journal))
    attrs = study.user_attrs
    fresh = "give the recipe another name: for a new study, or delete the folder to start this one over"
    if attrs.get("competition") not in (None, competition):
        raise StoreError(f"{journal}: the study of competition '{attrs['competition']}', not of '{competition}' "
                         f"({base.source}'s); {fresh}")
    if attrs.get("base_hash") not in (None, base.hash):
        raise StoreError(f"{journal}: a study of another recipe: it began from {attrs.get('recipe', 'a recipe')} with "
                         f"hash {attrs['base_hash']}, and {base.source} outside tune: is now {base.hash} (changed "
                         f"since, or another recipe of the same name); {fresh}")
    if metric is not None and attrs.get("metric") not in (None, metric):
        raise KitError(f"--metric: the study of '{name}' ({journal}) optimises {attrs['metric']}, not {metric}; its "
                       f"trials' scores cannot be compared across metrics: tune with --metric {attrs['metric']}, or "
                       f"{fresh}")
    by_name = {p.path: p for p in space.params}
    for trial in study.get_trials(deepcopy=False):
        for param, old in trial.distributions.items():
            if param not in by_name:
                continue
            new = _distribution(by_name[param])
            try:
                check_distribution_compatibility(old, new)
            except ValueError as exc:
                raise RecipeError(f"{base.source}: tune.{param}: drawn as {old} by trial {trial.number} of the study, "
                                  f"now {new}: {exc}; keep the field's kind and choices, or {fresh}") from None
    return study


def _distribution(param):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if param.kind == "choice":
        return CategoricalDistribution(param.labels)
    if param.kind == "int":
        return IntDistribution(int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return FloatDistribution(float(param.low), float(param.high), step=param.step, log=param.kind == "log_uniform")


def _check_strays(store: Store, competition: str, name: str, known: int, folder: Path) -> None:
    """Trial models the study does not know (from an earlier study whose folder was deleted) would be taken for
    new trials' models: refused, before anything trains."""
    pattern = re.compile(re.escape(name) + r"-t(\d+)")
    strays = [m for m in store.model_names(competition)
              if (hit := pattern.fullmatch(m)) and int(hit.group(1)) >= known]
    if strays:
        raise StoreError(f"{store.model_dir(competition, strays[0])}: a trial model that the study in {folder} does not "
                         f"know ({len(strays)} such: {', '.join(strays[:3])}{', ...' if len(strays) > 3 else ''}), "
                         f"left by an earlier study of '{name}'; delete those models, or give the recipe another name:")


def _check_device(device: str, base) -> None:
    from ..train.device import pick_device

    pick_device(device, base.train.precision, base.train.memory_format)


def _recipe_values(space: Space, raw: dict) -> dict:
    """The recipe's own value of each field that the space can draw it as (trial 0 of a new study)."""
    values = {}
    for param in space.params:
        value = inner(raw, param.path)
        if value is not MISSING and param.contains(value):
            values[param.path] = value
    return values


def _check_enqueued(space: Space, enqueue: list[dict]) -> None:
    by_path = {p.path: p for p in space.params}
    for values in enqueue:
        for path, value in values.items():
            if path not in by_path or not by_path[path].contains(value):
                raise KitError(f"enqueue: {path} = {value!r} is not a value tune: can draw")


def _label(space: Space, path: str, value):
    param = next(p for p in space.params if p.path == path)
    return choice_label(value) if param.kind == "choice" else value


def _counted(study) -> int:
    """The trials that count toward --trials: every one asked for (finished, pruned, failed or running)."""
    from optuna.trial import TrialState

    return sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))


def _next_job(study, space: Space, raw: dict, store: Store, path: Path, competition: str, name: str, metric: str,
              trials: int, deadline: float | None, device: str, claim: contextlib.ExitStack,
              reporter: Reporter) -> TrialJob | None:
    """The next trial this process runs, its lock held in `claim`: a trial a killed process left, else a new one
    while the study has fewer than `trials` and the deadline has not passed; None when there is nothing to do.
    A new trial whose drawn recipe fails kit's checks is told failed, and the next one asked for."""
    import optuna
    from optuna.trial import TrialState

    if deadline is not None and time.monotonic() >= deadline:
        return None
    with exclusive(store.tune_lock(competition, name), f"study '{name}'", wait=True):
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            lock = store.tune_lock(competition, name, frozen.number)
            if holder(lock) is None:  # its process is gone: take it up, with the values it drew
                claim.enter_context(exclusive(lock, f"trial {frozen.number} of study '{name}'"))
                trial = optuna.trial.Trial(study, frozen._trial_id)
                reporter.message(f"{name}: taking up trial {frozen.number}, left running by a stopped kit tune "
                                 f"(its finished folds are kept)")
                try:
                    return _job(study, trial, space, raw, store, path, competition, name, metric, device)
                except RecipeError as exc:  # its values make a recipe kit refuses now (a range narrowed since)
                    _fail_before_training(study, trial, exc, name, reporter)
                    claim.close()
        while _counted(study) < trials:
            trial = study.ask()
            claim.enter_context(exclusive(store.tune_lock(competition, name, trial.number),
                                          f"trial {trial.number} of study '{name}'"))
            try:
                job = _job(study, trial, space, raw, store, path, competition, name, metric, device)
            except RecipeError as exc:  # a combination check_space could not try: this trial fails, not the study
                _fail_before_training(study, trial, exc, name, reporter)
                claim.close()
                continue
            same = next((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                         if t.params == trial.params and "duplicate_of" not in t.user_attrs), None)
            if same is None:
                return job
            # TPE drew a finished trial's values again (a small discrete space): its score, not a second model
            for key in ("cv", "folds_done", "folds"):
                if key in same.user_attrs:
                    trial.set_user_attr(key, same.user_attrs[key])
            trial.set_user_attr("duplicate_of", same.number)
            trial.set_user_attr("model", same.user_attrs.get("model", trial_name(name, same.number)))
            trial.set_user_attr("seconds", 0.0)
            study.tell(trial, same.value)
            reporter.message(f"{name}: trial {trial.number} drew the values of trial {same.number}: told its score, "
                             f"nothing trained")
            claim.close()
    return None


def _fail_before_training(study, trial, exc: RecipeError, name: str, reporter: Reporter) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("reason", str(exc))
    study.tell(trial.number, state=TrialState.FAIL)
    reporter.message(f"{name}: trial {trial.number} failed before training: {exc}")


def _job(study, trial, space: Space, raw: dict, store: Store, path: Path, competition: str, name: str,
         metric: str, device: str) -> TrialJob:
    recipe, chosen = sample(space, raw, trial)
    model = trial_name(name, trial.number)
    recipe["name"] = model
    source = f"{path} (trial {trial.number})"
    recipe_from_dict(recipe, source=source)  # every drawn recipe is checked before it trains
    if "recipe" not in trial.user_attrs:
        trial.set_user_attr("model", model)
        trial.set_user_attr("recipe", json.loads(json.dumps(recipe)))
    return TrialJob(study=name, competition=competition, number=trial.number, trial_id=trial._trial_id,
                    recipe=recipe, source=source, journal=str(store.tune_dir(competition, name) / STUDY),
                    store=str(store.root), metric=metric, pruner=space.options.pruner.model_dump(), device=device)


def _tell(study, job: TrialJob, outcome: TrialOutcome) -> None:
    from optuna.trial import TrialState

    storage, trial_id = study._storage, job.trial_id
    before = storage.get_trial(trial_id).user_attrs.get("seconds", 0.0)
    attrs = {"seconds": before + outcome.seconds, "folds_done": outcome.folds_done, "folds": outcome.folds}
    if outcome.cv is not None:
        attrs["cv"] = outcome.cv
    if outcome.reason is not None:
        attrs["reason"] = outcome.reason
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
    if outcome.state == COMPLETE:
        study.tell(job.number, outcome.value)
    else:
        study.tell(job.number, state=TrialState.PRUNED if outcome.state == PRUNED else TrialState.FAIL)


# ---- the trials as rows

_STATES = {"COMPLETE": COMPLETE, "PRUNED": PRUNED, "FAIL": FAILED, "RUNNING": RUNNING, "WAITING": QUEUED}


def trial_rows(study, space: Space, metric: str) -> list[dict]:
    """One row per trial of the study, by number: its state, score (CV for complete trials only), folds, values."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = _STATES.get(t.state.name, t.state.name.lower())
        copy_of = t.user_attrs.get("duplicate_of")
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        rows.append({"number": t.number, "model": t.user_attrs.get("model", trial_name(study.study_name, t.number)),
                     "state": state, "duplicate_of": copy_of, "value": t.value if state == COMPLETE else None,
                     "partial": last if state != COMPLETE else None,
                     "folds_done": t.user_attrs.get("folds_done", len(t.intermediate_values)),
                     "folds": t.user_attrs.get("folds"), "seconds": t.user_attrs.get("seconds"),
                     "params": dict(t.params), "cv": t.user_attrs.get("cv"), "reason": t.user_attrs.get("reason"),
                     "recipe": t.user_attrs.get("recipe")})
    return rows


def best_row(rows: list[dict], metric: str) -> dict | None:
    """The best complete trial (a pruned trial's partial score is never ranked with complete ones); ties: the first."""
    complete = [r for r in rows if r["state"] == COMPLETE and r["value"] is not None]
    if not complete:
        return None
    sign = -1 if HEADLINE[metric] else 1
    return min(complete, key=lambda r: (sign * r["value"], r["number"]))


def short_names(space: Space) -> dict[str, str]:
    """Each field's shortest trailing part of its path that no other field ends in (lr, widths, epochs)."""
    names = {}
    for p in space.params:
        parts = p.path.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(q.path != p.path and (q.path == tail or q.path.endswith("." + tail)) for q in space.params):
                break
        names[p.path] = tail
    return names


def trials_table(rows: list[dict], space: Space, metric: str, name: str, target: int, recent: bool = False):
    """(title, columns, rows, highlight) of the trials for Reporter.table; `recent`: past 20 trials, only the
    best 5 and the last 10."""
    short = short_names(space)
    best = best_row(rows, metric)
    shown = rows
    if recent and len(rows) > 20:
        ranked = sorted([r for r in rows if r["state"] == COMPLETE], key=lambda r: r["value"],
                        reverse=HEADLINE[metric])[:5]
        keep = {r["number"] for r in ranked} | {r["number"] for r in rows[-10:]}
        shown = [r for r in rows if r["number"] in keep]
    columns = ["trial", "state", f"{metric} CV", "folds", *short.values(), "seconds"]
    table = []
    for r in shown:
        state = r["state"]
        if state == PRUNED and r["partial"] is not None:  # its completed folds' score, apart from the CV column
            state = f"pruned {r['partial']:.4f}"
        elif state == FAILED and r["reason"]:
            state = "failed: " + _why(r["reason"])
        elif r["duplicate_of"] is not None:
            state = f"= trial {r['duplicate_of']}"
        folds = f"{r['folds_done']}/{r['folds']}" if r["folds"] else str(r["folds_done"] or "-")
        values = [_cell(r["params"].get(p.path, "-")) for p in space.params]
        model = r["model"] if r["duplicate_of"] is None else f"t{r['number']}"
        table.append([model, state, r["value"] if r["value"] is not None else "-", folds, *values,
                      round(r["seconds"], 1) if r["seconds"] is not None else "-"])
    counts = {s: sum(r["state"] == s for r in rows) for s in (COMPLETE, PRUNED, FAILED, RUNNING)}
    told = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    more = f"; best 5 and last 10 of {len(rows)} shown" if shown is not rows else ""
    pruned = "; pruned: their completed folds' score, not ranked" if counts[PRUNED] else ""
    title = (f"{name}: trials ({told} of {target}; {metric}, {'higher' if HEADLINE[metric] else 'lower'} is better"
             f"{pruned}{more})")
    highlight = next((i for i, r in enumerate(shown) if best is not None and r["number"] == best["number"]), None)
    return title, columns, table, highlight


def _cell(value):
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


def _why(reason: str) -> str:
    """A failed trial's reason, short: the part after the trial's file and seed/fold prefixes."""
    text = reason.split("): ", 1)[-1]
    return text if len(text) <= 60 else text[:57] + "..."


def parse_duration(text: str) -> float:
    """'2h', '30m', '90s', '1h30m', '1.5h' or plain seconds ('600') -> seconds."""
    spelled = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", spelled):
        return float(spelled)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", spelled)
    if not parts or "".join(n + u for n, u in parts) != spelled:
        raise KitError(f"--timeout: '{text}' is not a duration; give e.g. 2h, 30m, 90s, 1h30m or seconds (600)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)

