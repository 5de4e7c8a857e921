"""HTML pages that open anywhere, with no internet: one for the store (kit report) and one for each
blend (kit blend writes report.html beside its report files).

Each page is one self-contained file: the CSS and the little script (sortable tables) are inline, no
font or script comes from elsewhere, and every plot and thumbnail is an embedded PNG. The store's
page lists every model with its CV, per-fold scores, times, TTA and recipe, its learning curves
(every fold in one plot, from each fold's history.csv), the members' correlation heat map and a link
to each blend's page. A blend's page has its score table, what it fitted (the weights), per-class
precision/recall/F1 of each member and the blend side by side, the confusion matrix, and the
held-out images it gets most confidently wrong, thumbnails from the competition's decoded images.

Big stores stay light: curves are thinned to kit.plots.CURVE_POINTS epochs, the gallery holds
GALLERY_SIZE images, charts show at most CHART_MEMBERS members and CHART_CLASSES classes, and no
table has a row per image. Every file is read through kit.store.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, fileio
from .errors import KitError
from .metrics import HEADLINE, log_loss
from .paths import check_output, competition_inputs, submissions_dir
from .plots import learning_curves_png, per_class_png
from .progress import SILENT, Reporter, counted, fmt
from .report import (fitted_table, matrix_png, member_correlation, outside_note, per_class_table, score_table)
from .store import Manifest, Store, why_unfinished
from .tta import describe

PAGE = "report.html"  # a blend's page, in its report folder
GALLERY_SIZE = 48  # the blend's most confidently wrong held-out images shown (kit.report.confident_errors keeps as many)
THUMB_SIDE = 96  # pixels: a larger image is shrunk to this side; a smaller one kept and drawn larger
CHART_MEMBERS = 8  # members in the per-class chart beside the blend (the best by macro F1)
CHART_CLASSES = 30  # classes in the per-class chart (the blend's worst by F1)


@dataclass
class Page:
    """A page written: where, how big, how long it took."""

    path: Path
    bytes: int
    seconds: float
    models: int = 0
    blends: int = 0
    notes: list[str] = field(default_factory=list)


# ---- HTML pieces

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1280px;
padding:1rem 1.5rem 3rem;color:#1b1f24;line-height:1.4}
h1{font-size:1.5rem;margin:.2rem 0 .3rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de;
padding-bottom:.2rem}h3{font-size:1.05rem;margin:1.6rem 0 .4rem}
.meta{color:#57606a;font-size:.9rem}.warn{background:#fff8c5;border:1px solid #d4a72c;padding:.4rem .6rem;
border-radius:4px}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}th,td{border:1px solid #d0d7de;padding:.2rem .45rem;
text-align:right;white-space:nowrap}th{background:#f6f8fa;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left}td.wrap{white-space:normal;overflow-wrap:anywhere;min-width:12rem;max-width:24rem}tr.best td{font-weight:600;background:#dafbe1}
table.sortable th{cursor:pointer}table.sortable th:hover{background:#eaeef2}
img.plot{max-width:100%;height:auto;display:block;margin:.4rem 0}img.matrix{max-width:100%}
details{margin:.3rem 0}summary{cursor:pointer;color:#0969da}pre{background:#f6f8fa;padding:.6rem;overflow:auto;
font-size:.8rem;max-height:30rem}
.gallery{display:flex;flex-wrap:wrap;gap:.6rem}.card{width:120px;font-size:.75rem;border:1px solid #d0d7de;
border-radius:4px;padding:.3rem;text-align:center}.card img{width:96px;height:96px;object-fit:contain;
background:#000}.card img.px{image-rendering:pixelated}.card .no{width:96px;height:96px;margin:auto;
background:#eaeef2;display:flex;align-items:center;justify-content:center;color:#57606a}
.card .meta{font-size:inherit}.t{color:#1a7f37}.p{color:#cf222e}nav a{margin-right:.8rem}
"""

# click a column's header to sort by it (numbers by value, then text); a cell's data-v holds its sort key
SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th').forEach(function (th, i) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === 'asc' ? -1 : 1;
      th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      function key(row) {
        var cell = row.cells[i], v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
        var n = parseFloat(v);
        return isNaN(n) ? [1, v] : [0, n];
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x[0] - y[0] || (x[1] > y[1] ? 1 : x[1] < y[1] ? -1 : 0)) * dir;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image(png: bytes, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" alt="{esc(alt)}" src="{data_uri(png)}">'


def cell(value, column: str = "") -> str:
    """A table cell: numbers right-aligned with the terminal's formatting and their value as sort key."""
    if value is None or value == "":
        return '<td data-v="">-</td>' if value is None else "<td></td>"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        wrap = " wrap" if len(str(value)) > 32 else ""  # a long TTA list, scores per fold: wrapped, not the rest
        return f'<td class="text{wrap}">{esc(value)}</td>'
    return f'<td data-v="{float(value)!r}">{esc(fmt(float(value) if isinstance(value, np.floating) else value, column))}</td>'


def table(columns: list[str], rows: list[list], highlight: int | None = None, sortable: bool = False,
          raw: set[int] = frozenset()) -> str:
    """An HTML table; `raw`: column indices whose cells are HTML already (links)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td class="text">{v}</td>' if j in raw else cell(v, columns[j]) for j, v in enumerate(row))
        body.append(f'<tr{" class=best" if i == highlight else ""}>{cells}</tr>')
    return (f'<table{" class=sortable" if sortable else ""}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def document(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body)
            + f"\n<script>{SCRIPT}</script></body></html>\n")


def generated() -> str:
    return (f"written {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by kit {__version__}")


def write_page(path: Path, text: str, started: float, **extra) -> Page:
    data = text.encode("utf-8")
    fileio.write_bytes(path, data)
    return Page(path=path, bytes=len(data), seconds=time.perf_counter() - started, **extra)


def link(target: Path, page: Path) -> str:
    """A relative href from `page` to `target`: the two stay linked when their folders move together."""
    rel = os.path.relpath(Path(target).resolve(), Path(page).resolve().parent)
    return urllib.parse.quote(Path(rel).as_posix())


# ---- the store's page

@dataclass
class ModelView:
    """What the store's page shows of one model, read once."""

    name: str
    manifest: Manifest
    runs: list[tuple[int, int]]  # finished (seed, fold)
    records: dict[tuple[int, int], dict]
    fold_scores: dict[int, dict]  # fold -> accuracy, log_loss, rows (seed-averaged OOF, TTA included)
    scores: dict | None  # accuracy, log_loss, macro_f1 over the finished folds' rows
    oof: np.ndarray | None  # seed-averaged OOF of a complete model (for the correlations)
    unfinished: str | None
    problem: str | None = None


def headline(y: np.ndarray, probs: np.ndarray, n_classes: int) -> dict:
    """Accuracy, log loss and macro F1 (as kit.report.classification_metrics has them), in NumPy alone:
    the store's page need not import scikit-learn."""
    predicted = probs.argmax(1)
    tp = np.bincount(y[predicted == y], minlength=n_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * tp / (np.bincount(predicted, minlength=n_classes) + np.bincount(y, minlength=n_classes)))
    return {"accuracy": float((predicted == y).mean()), "log_loss": log_loss(y, probs), "macro_f1": float(f1.mean())}


def read_model(store: Store, competition: str, name: str, labels: dict | None = None) -> ModelView:
    """`labels`: a cache {(folds file, classes): (folds, class index per row)} shared by the models."""
    manifest = store.manifest(competition, name)
    runs = store.done_runs(manifest)
    records = {run: store.fold_record(manifest, *run) or {} for run in runs}
    unfinished = why_unfinished(store.model_dir(competition, name), manifest)
    folds_done = [k for k in range(manifest.n_folds) if all((s, k) in runs for s in manifest.seeds)]
    view = ModelView(name, manifest, runs, records, {}, None, None, unfinished)
    if not folds_done:
        return view
    member = store.assemble(manifest, folds=folds_done, with_test=False)
    key = (manifest.folds_file, tuple(manifest.classes))
    if labels is None or key not in labels:
        folds = store.folds(manifest)
        index = {c: i for i, c in enumerate(manifest.classes)}
        found = (folds, np.array([index[label] for label in folds.labels]))
        if labels is None:
            labels = {}
        labels[key] = found
    folds, y = labels[key]
    for k in folds_done:
        rows = folds.fold == k
        view.fold_scores[k] = {"accuracy": float((member.oof[rows].argmax(1) == y[rows]).mean()),
                               "log_loss": log_loss(y[rows], member.oof[rows]), "rows": int(rows.sum())}
    held = np.isin(folds.fold, folds_done)
    metrics = manifest.cv if manifest.complete and manifest.cv else headline(y[held], member.oof[held],
                                                                              len(manifest.classes))
    view.scores = {k: metrics[k] for k in HEADLINE}
    if manifest.complete:
        view.oof = member.oof
    return view


def curves_for(store: Store, view: ModelView) -> tuple[bytes | None, str]:
    """The model's learning curves (every finished fold and seed in one plot), or None and why not."""
    derived = view.manifest.derived_from
    if derived is not None:
        return None, (f"re-predicted from {derived.source} with TTA {describe(derived.tta)}: nothing was trained, "
                      f"its curves are {derived.source}'s")
    runs = []
    seeds = len(view.manifest.seeds) > 1
    for seed, k in view.runs:
        history = store.history(view.manifest, seed, k)
        if history is not None and len(history):
            best = view.records.get((seed, k), {}).get("best_epoch")
            runs.append((f"seed {seed} fold {k}" if seeds else f"fold {k}", history, best))
    if not runs:
        return None, "no history.csv in its folds (a synthetic member, or no fold finished yet)"
    epochs = max(len(h) for _, h, _ in runs)
    if epochs == 1 and view.manifest.predict is not None and view.manifest.predict.head is not None:
        return None, (f"an estimator head ({view.manifest.predict.head}) fitted at once, one 'epoch' per fold: no "
                      f"curve; the table has its scores")
    return learning_curves_png(runs, f"{view.name}: {len(runs)} run{'s' * (len(runs) > 1)}, up to {epochs} epochs"), ""


def model_row(view: ModelView) -> list:
    m, s = view.manifest, view.scores or {}
    per_fold = " ".join(f"{view.fold_scores[k]['accuracy']:.4f}" for k in sorted(view.fold_scores))
    seconds = sum(float(r.get("seconds") or 0) for r in view.records.values())
    status = m.status if not view.problem else "unreadable"
    return [view.name, m.arch, status, f"{len(view.runs)}/{m.n_folds * len(m.seeds)}", s.get("accuracy"),
            s.get("log_loss"), s.get("macro_f1"), per_fold or "-", seconds if view.records else None,
            describe(m.tta)]


MODEL_COLUMNS = ["model", "arch", "status", "runs done", "accuracy", "log_loss", "macro_f1", "accuracy per fold",
                 "seconds", "TTA"]


def model_section(store: Store, view: ModelView) -> str:
    m = view.manifest
    out = [f'<h3 id="{esc(anchor(view.name))}">{esc(view.name)}</h3>']
    facts = [f"arch {m.arch}", f"{m.n_folds} folds x {len(m.seeds)} seed{'s' * (len(m.seeds) > 1)}",
             f"TTA {describe(m.tta)}"]
    if m.image_size:
        facts.append(f"input {m.image_size} px")
    if m.finished:
        facts.append(f"finished {m.finished}")
    if m.teacher is not None:
        facts.append(f"teacher: blend:{m.teacher.method} of {', '.join(m.teacher.members)}")
    full = store.full_seeds(m) if m.derived_from is None else []
    if full:
        facts.append(f"refit on every image (kit train --full): seed{'s' * (len(full) > 1)} {', '.join(map(str, full))}")
    out.append(f'<p class="meta">{esc("; ".join(facts))}</p>')
    if view.problem:
        out.append(f'<p class="warn">{esc(view.problem)}</p>')
        return "\n".join(out)
    if view.unfinished:
        out.append(f'<p class="warn">{esc(view.name)} {esc(view.unfinished)}</p>')
    if view.scores:
        scope = "" if m.complete else f" (folds {', '.join(map(str, sorted(view.fold_scores)))} only)"
        out.append(f"<p>CV{esc(scope)}: accuracy <b>{view.scores['accuracy']:.4f}</b>, log loss "
                   f"{view.scores['log_loss']:.4f}, macro F1 {view.scores['macro_f1']:.4f}</p>")
    rows = []
    for seed, k in view.runs:
        r = view.records[(seed, k)]
        history_len = len(r["history"]) if isinstance(r.get("history"), list) else None
        score = view.fold_scores.get(k, {})
        rows.append([seed, k, r.get("best_epoch"), history_len, r.get("val_loss"), r.get("val_acc"),
                     score.get("accuracy"), score.get("log_loss"), r.get("seconds"),
                     "yes" if r.get("stopped_early") else ""])
    if rows:
        out.append(table(["seed", "fold", "best epoch", "epochs", "val_loss", "val_acc", "OOF accuracy",
                          "OOF log_loss", "seconds", "stopped early"], rows))
    png, why = curves_for(store, view)
    out.append(image(png, f"learning curves of {view.name}") if png else f'<p class="meta">{esc(why)}</p>')
    recipe = store.recipe_text(m.competition, view.name)
    if recipe:
        hashed = f" ({esc(m.recipe_hash)})" if m.recipe_hash else ""
        out.append(f"<details><summary>recipe{hashed}</summary><pre>{esc(recipe)}</pre></details>")
    return "\n".join(out)


def anchor(name: str) -> str:
    return "m-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def store_page_path(competition: str) -> Path:
    return submissions_dir() / f"{competition}-store.html"


def write_store_page(store: Store, competition: str | None = None, out: Path | None = None,
                     reporter: Reporter = SILENT) -> Page:
    """kit report: the store's page for one competition (the store's only one, or `competition`)."""
    started = time.perf_counter()
    competition = store.pick_competition(competition)
    out = Path(out) if out is not None else store_page_path(competition)
    try:
        inputs = competition_inputs(store.competition_spec(competition))
    except KitError:
        inputs = {}
    check_output(out, "--out", store=store.root, inputs=inputs)
    names = store.model_names(competition)
    views, broken, labels = [], [], {}
    reporter.start("report", f"{competition}: reading {len(names)} models", total=len(names) * 2)
    try:
        for name in names:
            try:
                views.append(read_model(store, competition, name, labels))
            except KitError as exc:  # a damaged model is told on the page, the others still shown
                try:
                    views.append(ModelView(name, store.manifest(competition, name), [], {}, {}, None, None, None,
                                           problem=str(exc)))
                except KitError:
                    broken.append(f"<h3>{esc(name)}</h3><p class=warn>{esc(exc)}</p>")
            reporter.advance("report")
        sections = []
        for view in views:
            try:
                sections.append(model_section(store, view))
            except KitError as exc:
                sections.append(f"<h3>{esc(view.name)}</h3><p class=warn>{esc(exc)}</p>")
            reporter.advance("report")
    finally:
        reporter.finish("report")

    ranked = sorted(views, key=lambda v: -(v.scores or {}).get("accuracy", -1))
    body = [f"<h1>{esc(competition)}: the store</h1>",
            f'<p class="meta">{esc(store.competition_dir(competition))}; {len(views)} models; {esc(generated())}</p>',
            '<nav><a href="#models">models</a><a href="#blends">blends</a><a href="#correlation">correlation</a>'
            '<a href="#curves">each model</a></nav>']
    rows = [model_row(v) for v in ranked]
    for row in rows:
        row[0] = f'<a href="#{esc(anchor(row[0]))}">{esc(row[0])}</a>'
    body += ['<h2 id="models">Models</h2>',
             '<p class="meta">Out-of-fold scores (CV), best first; click a column to sort. A model still training '
             "shows the folds it has finished.</p>",
             table(MODEL_COLUMNS, rows, sortable=True, raw={0})]
    blends, missing = blend_rows(store, competition, out)
    body.append('<h2 id="blends">Blends</h2>')
    if blends:
        body.append(table(["blend page", "method", "accuracy", "log_loss", "macro_f1", "members", "written"], blends,
                          sortable=True, raw={0}))
    else:
        body.append('<p class="meta">No blend yet: kit blend writes one, with its page beside its submission.</p>')
    if missing:
        body.append(f'<p class="meta">{counted(missing, "earlier blend")} whose page is gone not listed.</p>')
    body.append('<h2 id="correlation">Correlation of the finished models</h2>')
    complete = [v for v in views if v.oof is not None]
    if len(complete) >= 2:
        corr = member_correlation([v.name for v in complete], np.stack([v.oof for v in complete]))
        body.append(image(matrix_png(corr["matrix"], corr["members"], "finished models' OOF probabilities: Pearson "
                                     "correlation", "", "", fmt="{:.3f}"), "correlation of the models", cls="plot matrix"))
        body.append('<p class="meta">Models near 1 make the same predictions and add little to each other in a '
                    "blend.</p>")
    else:
        body.append('<p class="meta">Needs two finished models.</p>')
    body += ['<h2 id="curves">Each model: folds, learning curves, recipe</h2>',
             '<p class="meta">In each fold\'s table, val_loss and val_acc are the best epoch\'s on the held-out fold '
             "(one view); OOF are the stored held-out predictions (with the model's TTA, seeds averaged), what CV "
             "and blending score. The curves draw training (dashed) and validation (solid) per epoch, one colour "
             "per fold, the best epoch as a dot.</p>"] + sections + broken
    return write_page(out, document(f"{competition}: kit store", body), started, models=len(views) + len(broken),
                      blends=len(blends))


def blend_rows(store: Store, competition: str, page: Path) -> tuple[list[list], int]:
    """The blends written for the competition whose page still exists, newest first, and how many are gone."""
    rows, missing = [], 0
    for record in reversed(store.blend_records(competition)):
        target = record.get("page")
        if not target or not Path(target).is_file():
            missing += 1
            continue
        scores = record.get("scores") or {}
        rows.append([f'<a href="{esc(link(Path(target), page))}">{esc(Path(record["submission"]).name)}</a>',
                     f"blend:{record.get('method')}", scores.get("accuracy"), scores.get("log_loss"),
                     scores.get("macro_f1"), len(record.get("members") or []), record.get("written", "")])
    return rows, missing


# ---- a blend's page

def write_blend_page(folder: Path, report: dict, store: Store | None = None, reporter: Reporter = SILENT) -> Page:
    """report.html in a blend's report folder (beside confusion.png and correlation.png, which it embeds),
    from `report` (what report.json holds); thumbnails from the competition's images when `store` can
    name them. The blend is noted in the store so that kit report links the page."""
    started = time.perf_counter()
    folder = Path(folder)
    path = folder / PAGE
    method, competition = report["method"], report["competition"]
    chosen = "picked with --pick" if report["picked"] else f"the best by {report['metric']}"
    body = [f"<h1>{esc(competition)}: blend:{esc(method)}</h1>",
            f'<p class="meta">submission {esc(report["submission"])} ({esc(chosen)}); {esc(generated())}</p>',
            f"<p>{counted(len(report['members']), 'member')}: {esc(', '.join(report['members']))}. Scores are on the "
            "out-of-fold rows; blenders that learn are scored by nested cross-validation over the members' folds."
            "</p>"]
    if report.get("partial"):  # kit blend --folds: the members' other folds are not in any number below
        on = report["folds"]
        body.append(f'<p class="warn">Blended on fold{"s" * (len(on) > 1)} {", ".join(map(str, on))} only '
                    "(kit blend --folds): every score, the confusion matrix and the gallery are of those folds' "
                    "held-out rows.</p>")
    for name, why in report["dropped"].items():
        body.append(f'<p class="meta">dropped {esc(name)}: {esc(why)}</p>')
    note = outside_note(report)
    for text in ([note] if note else []) + list(report.get("warnings") or []):
        body.append(f'<p class="warn">{esc(text)}</p>')
    refits = {n: how for n, how in report.get("test_predictions", {}).items() if how.startswith("full")}
    if refits:
        body.append(f'<p class="meta">test predictions: {esc("; ".join(f"{n} from its {h}" for n, h in refits.items()))}'
                    "; scores are the folds' out-of-fold ones.</p>")
    body.append('<nav><a href="#scores">scores</a><a href="#fitted">weights</a><a href="#per-class">per class</a>'
                '<a href="#confusion">confusion</a><a href="#wrong">most confidently wrong</a></nav>')

    columns, rows, highlight = score_table(report)
    body += ['<h2 id="scores">Out-of-fold scores</h2>', table(columns, rows, highlight, sortable=True)]
    columns, rows, other = fitted_table(report)
    body.append(f'<h2 id="fitted">Fitted: blend:{esc(method)}</h2>')
    if rows:
        body.append(table(columns, rows))
    if other:
        body.append(f'<p class="meta">{esc("; ".join(f"{k}: {v}" for k, v in other.items()))}</p>')
    if not rows and not other:
        body.append('<p class="meta">Nothing fitted: the blender learns no parameters.</p>')

    body.append('<h2 id="per-class">Per class: precision, recall, F1</h2>')
    chart, chart_note = per_class_chart(report)
    body += [image(chart, "per-class precision, recall and F1"), f'<p class="meta">{esc(chart_note)}</p>']
    columns, rows = per_class_table(report)
    body.append(f"<details><summary>the table (the blend's precision, recall, F1, then each member's F1)</summary>"
                f"{table(columns, rows)}</details>")

    body.append('<h2 id="confusion">Confusion matrix of the blend</h2>')
    body.append(embedded(folder / "confusion.png", "confusion matrix"))
    body.append('<h2 id="correlation">Correlation of the members</h2>')
    body.append(embedded(folder / "correlation.png", "correlation of the members"))

    body += gallery(report, store)
    page = write_page(path, document(f"{competition}: blend:{method}", body), started)
    if store is not None:
        try:
            store.record_blend(competition, Path(report["submission"]), {
                "page": str(path.resolve()), "method": method, "metric": report["metric"],
                "scores": {k: report["blend"][k] for k in HEADLINE}, "members": list(report["members"]),
                "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        except KitError as exc:  # a read-only store: the page is written, kit report just will not link it
            reporter.message(f"warning: the blend's page is not noted in the store, kit report will not link it: {exc}")
    return page


def embedded(path: Path, alt: str) -> str:
    try:
        return image(path.read_bytes(), alt, cls="plot matrix")
    except OSError as exc:
        return f'<p class="warn">{esc(path)}: {esc(exc.strerror or exc)}</p>'


def per_class_chart(report: dict) -> tuple[bytes, str]:
    """The per-class bars of the blend and its members, within CHART_MEMBERS and CHART_CLASSES."""
    classes = [c["class"] for c in report["blend"]["per_class"]]
    members = sorted(report["members"], key=lambda n: -report["members"][n]["macro_f1"])
    shown_members = members[:CHART_MEMBERS]
    keep = list(range(len(classes)))
    notes = []
    if len(classes) > CHART_CLASSES:
        f1 = [c["f1"] for c in report["blend"]["per_class"]]
        keep = sorted(sorted(keep, key=lambda i: f1[i])[:CHART_CLASSES])
        notes.append(f"the blend's {CHART_CLASSES} worst classes by F1 of {len(classes)}")
    if len(members) > CHART_MEMBERS:
        notes.append(f"the {CHART_MEMBERS} best members by macro F1 of {len(members)}")
    scores = {f"blend:{report['method']}": [report["blend"]["per_class"][i] for i in keep]}
    scores.update({n: [report["members"][n]["per_class"][i] for i in keep] for n in shown_members})
    png = per_class_png(scores, [classes[i] for i in keep])
    return png, ("Out of fold: the blend (outlined), then each member. "
                 + ("Shown: " + "; ".join(notes) + "; the table has them all." if notes else "Every class and member."))


def gallery(report: dict, store: Store | None) -> list[str]:
    errors = report.get("confident_errors") or {"wrong": 0, "of": 0, "rows": []}
    rows = errors["rows"][:GALLERY_SIZE]
    out = ['<h2 id="wrong">Held-out images the blend gets most confidently wrong</h2>',
           f'<p class="meta">{errors["wrong"]:,} of {errors["of"]:,} out-of-fold rows are wrong; the {len(rows)} '
           "the blend is surest of are shown, with the true class (green) and the predicted one (red, with the "
           "blend's probability). A sure mistake is often a mislabelled image, or two classes the members confuse."
           "</p>"]
    if not rows:
        return out + ['<p class="meta">No wrong row: nothing to show.</p>']
    thumbs, why = thumbnails(store, report["competition"], [r["id"] for r in rows], report)
    if why:
        out.append(f'<p class="warn">No thumbnails: {esc(why)}</p>')
    if not thumbs:  # no picture at all: a table says as much in less room
        return out + [table(["id", "fold", "true", "predicted", "confidence", "p(true)"],
                            [[r["id"], r["fold"], r["true"], r["predicted"], r["confidence"], r["p_true"]]
                             for r in rows])]
    cards = []
    for r in rows:
        picture = thumbs.get(r["id"])
        shown = (f'<img class="{picture[1]}" alt="{esc(r["id"])}" src="{picture[0]}">' if picture
                 else '<div class="no">no image</div>')
        cards.append(f'<div class="card">{shown}<div class="t">true {esc(r["true"])}</div>'
                     f'<div class="p">pred {esc(r["predicted"])} {r["confidence"]:.3f}</div>'
                     f'<div class="meta">id {esc(r["id"])}, fold {r["fold"]}</div></div>')
    return out + [f'<div class="gallery">{"".join(cards)}</div>']


def thumbnails(store: Store | None, competition: str, ids: list[str], report: dict) -> tuple[dict, str | None]:
    """{id: (data URI, css class)} of these training images from the competition's images as kit keeps them
    (the decoded cache of image files, the arrays of the array layouts); never decodes anything. Whatever
    stops it is returned as the reason, so that a blend never fails for want of pictures."""
    if store is None:
        return {}, "no store given"
    try:
        from .competition import load_competition

        members = list(report["members"])
        manifest = store.manifest(competition, members[0])
        try:
            spec = store.competition_spec(competition)
        except KitError:
            return {}, (f"no model of the store records where competition '{competition}''s images are (no "
                        f"recipe.yaml: a synthetic store?)")
        decoded = manifest.predict.decoded_size[0] if manifest.predict else None
        data = load_competition(spec, image_size=decoded, decode=False)
        if manifest.data_fingerprint and data.fingerprint and data.fingerprint != manifest.data_fingerprint:
            return {}, (f"competition '{competition}''s images changed since {manifest.name} was trained "
                        f"(data fingerprint {manifest.data_fingerprint} -> {data.fingerprint})")
        row_of = {str(i): r for r, i in enumerate(data.train_ids)}
        out = {}
        for id_ in ids:
            row = row_of.get(str(id_))
            if row is not None:
                out[id_] = thumbnail(np.asarray(data.train_images[row]))
        missing = len(ids) - len(out)
        return out, (f"{missing} of the ids are not among the competition's training images" if missing else None)
    except Exception as exc:  # a gallery without pictures, never a failed blend: the reason is shown instead
        return {}, str(exc) if isinstance(exc, KitError) else f"{type(exc).__name__}: {exc}"


def thumbnail(pixels: np.ndarray) -> tuple[str, str]:
    """An H x W x C uint8 image as a PNG data URI at most THUMB_SIDE on a side, and its CSS class ('px':
    a small image drawn larger with square pixels rather than blurred)."""
    from PIL import Image

    pixels = np.asarray(pixels, dtype=np.uint8)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels[..., :3])
    small = max(picture.size) < THUMB_SIDE / 2
    if max(picture.size) > THUMB_SIDE:
        picture.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return data_uri(buffer.getvalue()), "px" if small else ""
