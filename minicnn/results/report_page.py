"""A run's report page: what this network does with these images, in one HTML file.

``write_run_report(run_dir, model, test, metrics, class_names)`` writes
<run_dir>/report/: the figures as PNG files (results/report_figures.py) and
index.html, rendered from templates/report.html with Jinja2, last and
atomically, so the folder always holds a whole page.  The page needs no
server and no network: open it from disk.  ``write_study_report`` does the
same for a sweep's or a study's folder: its figure, its table and a link to
each trial's page.
"""
import csv
import math
from pathlib import Path

import numpy as np

from . import report_figures as fig
from .files import write_text

MISTAKES = 25
SHOWN = 2               # test images whose feature maps and saliency are shown


def _template(name):
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("minicnn.results", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]))

    def missing(v):       # absent (an older run's file), None or NaN: shown as a dash
        return (isinstance(v, jinja2.Undefined) or v is None
                or (isinstance(v, float) and math.isnan(v)))
    env.filters["pct"] = lambda v: "–" if missing(v) else f"{100 * v:.2f}%"
    env.filters["num"] = lambda v, d=4: "–" if missing(v) else f"{v:.{d}f}"
    env.filters["rate"] = lambda v: "–" if missing(v) else f"{v:.4g}"
    return env.get_template(name)


def _probabilities(model, x, batch=500):
    """Softmax of the logits of x (N, ...), NumPy float64 (N, K), in batches."""
    out = []
    for start in range(0, len(x), batch):
        xb = model.backend.asarray(x[start:start + batch], dtype=model.dtype)
        logits = np.asarray(model.backend.to_numpy(model.forward(xb)), dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out.append(e / e.sum(axis=1, keepdims=True))
    return np.concatenate(out)


def _saliency(model, x):
    """d(score of the predicted class) / d(input) for images x, through model.backward."""
    xb = model.backend.asarray(x, dtype=model.dtype)
    logits = model.backend.to_numpy(model.forward(xb))
    onehot = np.zeros_like(logits)
    onehot[np.arange(len(x)), logits.argmax(axis=1)] = 1
    return model.backend.to_numpy(model.backward(model.backend.asarray(onehot)))


def analyse(model, test, names):
    """The numbers the page shows about the test set: predictions, confusion matrix, per-class
    error, the most confidently wrong images."""
    p = _probabilities(model, test.x)
    predicted = p.argmax(axis=1)
    k = len(names)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (test.y, predicted), 1)
    per_class = [{"name": names[c], "images": int(matrix[c].sum()),
                  "error": 1 - matrix[c, c] / matrix[c].sum() if matrix[c].sum() else None}
                 for c in range(k)]
    wrong = np.flatnonzero(predicted != test.y)
    worst = wrong[np.argsort(-p[wrong, predicted[wrong]], kind="stable")][:MISTAKES]
    return {"predicted": predicted, "matrix": matrix, "per_class": per_class,
            "accuracy": float(np.mean(predicted == test.y)), "worst": worst,
            "worst_probability": p[worst, predicted[worst]]}


def _layer_rows(model):
    algorithm = {layer: step.algorithm for step in model.plan for layer in step.layers}
    return [{"name": layer.name, "type": type(layer).__name__,
             "shape": str((None,) + tuple(layer.output_shape)),
             "params": layer.num_params() + layer.num_state(),
             "algorithm": algorithm.get(layer) or ""} for layer in model.layers]


def write_run_report(run_dir, model, test, metrics, names):
    """<run_dir>/report/index.html and its figures; returns the page's path.  ``model``: the
    run's model, loaded with fuse=False (each layer its own step); ``test``: the test split
    as the run saw it (crops included)."""
    out = Path(run_dir) / "report"
    epochs = metrics.get("epochs") or []
    facts = analyse(model, test, names)
    title = metrics.get("config", {}).get("arch", "model")
    figures = {}
    if epochs:
        fig.learning_curves(epochs, out / "curves.png", f"{title}")
        figures["curves"] = "curves.png"
    fig.confusion(facts["matrix"], names, out / "confusion.png")
    fig.mistakes(test.x[facts["worst"]], test.y[facts["worst"]],
                 facts["predicted"][facts["worst"]], facts["worst_probability"], names,
                 out / "mistakes.png")
    convs = [step.layers[0] for step in model.plan if step.algorithm]    # the convolutions
    if convs:
        fig.filters(model.backend.to_numpy(convs[0].params["w"]), out / "filters.png")
        figures["filters"] = "filters.png"
    shown = np.arange(min(SHOWN, len(test.y)))
    if convs:
        acts = model.activations(model.backend.asarray(test.x[shown], dtype=model.dtype))
        names_of_convs = {layer.name for layer in convs}
        for i in shown:
            maps = [(name, a[i]) for name, a in acts if name in names_of_convs]
            fig.feature_maps(test.x[i], maps, out / f"features_{i}.png")
        figures["features"] = [f"features_{i}.png" for i in shown]
    if test.x.ndim == 4:
        grads = _saliency(model, test.x[shown])
        fig.saliency(test.x[shown], grads, [f"true {names[test.y[i]]}, predicted "
                                            f"{names[facts['predicted'][i]]}" for i in shown],
                     out / "saliency.png")
        figures["saliency"] = "saliency.png"
    last = epochs[-1] if epochs else {}
    page = _template("report.html").render(
        metrics=metrics, last=last, epochs=epochs, layers=_layer_rows(model),
        facts=facts, figures=figures, config=metrics.get("config", {}),
        seconds_per_epoch=(sum(e["train_seconds"] for e in epochs) / len(epochs)
                           if epochs else None),
        parameters=model.num_params(), state=int(model.flat_state.size))
    write_text(out / "index.html", page)
    return out / "index.html"


def read_table(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_study_report(folder, study, table, figure, trials):
    """<folder>/report/index.html for a sweep or study: its figure (a PNG in folder), its
    table (rows of dicts) and links to the trials' pages ([(label, relative href)])."""
    out = Path(folder) / "report"
    page = _template("study.html").render(study=study, table=table,
                                          figure=f"../{figure}" if figure else None,
                                          trials=trials)
    write_text(out / "index.html", page)
    return out / "index.html"
