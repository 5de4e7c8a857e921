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
CompetitionOption = Annotated[Optional[str], typer.Option(
    "--competition", "-c", help="Competition in the store (needed only when it holds several).")]


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
            error("interrupted; finished folds are kept in the store, rerun the same command to continue")
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@exits_cleanly
def train(
    recipes: Annotated[list[Path], typer.Argument(help="Recipe YAML files, trained one after the other.")],
    force: Annotated[bool, typer.Option("--force", help="Retrain folds that are already in the store.")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, or cuda:N.")] = "auto",
    store: StoreOption = Path("store"),
):
    """Train each recipe k-fold and write its out-of-fold and test predictions to the store.

    Finished folds are skipped, so rerunning after a crash only trains what is missing.

    Example: [bold]kit train recipes/digits/vgg_small.yaml recipes/digits/resnet_small.yaml[/bold]
    """
    from .console import RichReporter
    from .recipe import load_recipe
    from .store import Store
    from .train import train_recipe

    loaded = [load_recipe(p) for p in recipes]  # every recipe checked before any training starts
    names = [r.name for r in loaded]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise KitError(f"two recipes are both named '{dup}'; give one a different name: field")
    summaries = []
    for recipe in loaded:
        console.print(f"[bold]training[/bold] {recipe.name} ({recipe.model.arch}, {recipe.cv.folds} folds, "
                      f"{recipe.train.epochs} epochs, seeds {recipe.train.seeds})")
        s = train_recipe(recipe, Store(store), RichReporter(), force=force, device=device)
        summaries.append(s)
        console.print(f"[green]{s.model}[/green]: CV accuracy {s.cv['accuracy']:.4f}, log loss {s.cv['log_loss']:.4f}, "
                      f"{s.folds_trained} folds trained, {s.folds_skipped} skipped, {s.seconds:.1f} s")
    if len(summaries) > 1:
        console.print(make_table("trained", ["model", "accuracy", "log_loss", "macro_f1", "seconds"],
                                 [[s.model, s.cv["accuracy"], s.cv["log_loss"], s.cv["macro_f1"], s.seconds]
                                  for s in summaries]))


@app.command()
@exits_cleanly
def blend(
    models: Annotated[Optional[list[str]], typer.Option(
        "--models", "-m", help="Members by name or glob (repeatable); default: every finished model.")] = None,
    method: Annotated[str, typer.Option(
        help="Blender: soft, hard, lgbm; several comma-separated, or all (the best by --metric is written).")] = "soft",
    metric: Annotated[str, typer.Option(help="What picks the best blender: accuracy, log_loss or macro_f1.")] = "accuracy",
    out: Annotated[Optional[Path], typer.Option(help="Submission path (default submissions/COMPETITION-METHOD.csv).")] = None,
    competition: CompetitionOption = None,
    store: StoreOption = Path("store"),
):
    """Blend models from the store into a submission, with a per-class report beside it.

    Reads only the store: no images, no weights. Stackers are scored by cross-validation on the
    out-of-fold predictions, so every score in the table is honest.

    Example: [bold]kit blend --method all[/bold]   or   [bold]kit blend -m 'vgg*' -m resnet_small --method lgbm[/bold]
    """
    from .blend import blend as run_blend
    from .console import RichReporter
    from .store import Store

    result = run_blend(Store(store), competition, models, method, metric, out, RichReporter())
    _print_blend(result)


def _print_blend(result) -> None:
    rows = [[name, "member", m["accuracy"], m["log_loss"], m["macro_f1"], ""] for name, m in result.member_metrics.items()]
    rows += [[f"blend:{name}", "blend (nested CV)" if name == "lgbm" else "blend", m["accuracy"], m["log_loss"],
              m["macro_f1"], result.fit_seconds[name]] for name, m in result.blender_metrics.items()]
    highlight = len(result.member_metrics) + list(result.blender_metrics).index(result.method)
    console.print(make_table(f"{result.competition}: out-of-fold scores", ["model", "kind", "accuracy", "log_loss",
                                                                          "macro_f1", "fit s"], rows, highlight))
    blend_metrics = result.blend_metrics
    columns = ["class", "precision", "recall", "f1", "support"] + list(result.member_metrics)
    per_class = [[c["class"], c["precision"], c["recall"], c["f1"], c["support"]]
                 + [result.member_metrics[n]["per_class"][i]["f1"] for n in result.member_metrics]
                 for i, c in enumerate(blend_metrics["per_class"])]
    for avg, v in blend_metrics["averages"].items():
        per_class.append([f"{avg} avg", v["precision"], v["recall"], v["f1"], v["support"]]
                         + [result.member_metrics[n]["averages"][avg]["f1"] for n in result.member_metrics])
    console.print(make_table(f"blend:{result.method} per class, out of fold (then each member's F1)", columns, per_class))
    if result.described:
        console.print(f"fitted: {result.described}")
    console.print(f"report: {', '.join(str(p) for p in result.report_files)}")
    console.print(f"[bold green]submission:[/bold green] {result.submission}")


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
            cv = m.get("cv") or {}
            rows.append([name, m.get("arch", "?"), m.get("status", "?"), f"{m.get('n_folds')}x{len(m.get('seeds', []))}",
                         cv.get("accuracy", "-"), cv.get("log_loss", "-"), cv.get("macro_f1", "-")])
        rows.sort(key=lambda r: -r[4] if isinstance(r[4], float) else 1)
        console.print(make_table(f"{comp} ({s.competition_dir(comp)})", ["model", "arch", "status", "folds x seeds",
                                                                        "accuracy", "log_loss", "macro_f1"], rows))


@app.command()
@exits_cleanly
def zoo(
    timm_pattern: Annotated[Optional[str], typer.Option(
        "--timm", help="List timm's models whose names match this pattern (fnmatch, e.g. '*resnet*').")] = None,
    pretrained: Annotated[bool, typer.Option(
        "--pretrained", help="With --timm: only models with published weights, one line per weights tag.")] = False,
):
    """List the architectures a recipe's model.arch can name: the scratch nets, and timm's.

    Parameter counts are for 10 classes, 3 channels, 32 px inputs and the default parameters.

    Example: [bold]kit zoo[/bold]   or   [bold]kit zoo --timm 'convnext*' --pretrained[/bold]
    """
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


@app.command()
@exits_cleanly
def score(
    submission: Annotated[Path, typer.Argument(help="The submission CSV to score.")],
    solution: Annotated[Optional[Path], typer.Option(help="The solution CSV (id, label).")] = None,
    competition: Annotated[str, typer.Option("--competition", "-c",
                                             help="Built-in competition whose solution to use.")] = "digits",
):
    """Score a submission against the competition's solution, as the leaderboard would.

    Example: [bold]kit score submissions/digits-soft.csv[/bold]
    """
    from .competition import BUILTIN, load_competition, resolve_competition
    from .submit import score_submission

    if solution is None:
        if competition not in BUILTIN:
            raise KitError(f"--solution: required for competition '{competition}' (only built-in competitions "
                           f"know their solution: {', '.join(BUILTIN)})")
        spec = resolve_competition(competition)
        solution = load_competition(spec).solution
    metrics = score_submission(submission, solution)
    rows = [[c["class"], c["precision"], c["recall"], c["f1"], c["support"]] for c in metrics["per_class"]]
    console.print(make_table(f"{submission} against {solution}", ["class", "precision", "recall", "f1", "support"], rows))
    console.print(f"[bold]accuracy {metrics['accuracy']:.4f}[/bold]  macro F1 {metrics['macro_f1']:.4f}"
                  + (f"  log loss {metrics['log_loss']:.4f}" if metrics["kind"] == "probabilities" else ""))


def main() -> None:
    app()
