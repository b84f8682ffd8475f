"""python -m minicnn.report RUN_DIR: the report page of a run (or of a sweep or study).

    python -m minicnn.report runs/train-001          # -> runs/train-001/report/index.html
    python -m minicnn.train --report ...             # the same, at the end of the run

A run's folder (metrics.json and model.npz, as python -m minicnn.train writes it) gets a
page with the run's settings and layers, its learning curves, the confusion matrix and the
error of each class on the test set, the 25 most confidently wrong test images, the first
layer's filters, the feature maps of every convolution and saliency maps for two test
images (results/report_page.py).  A sweep's or study's folder gets its figure, its table
and links to each trial's page.  Nothing of the run is changed: the page and its figures
go to <RUN_DIR>/report/, written only once everything they need has been read.
"""
import json
import sys
from pathlib import Path

from .cli import ArgumentParser, add_backend_flag, fail, load_data, resolve_backend

PROG = "python -m minicnn.report"
STUDIES = {"sweep.json": ("sweep", "sweep.png", "sweep.csv"),
           "learning_rate.json": ("learning-rate study", "learning_curves.png",
                                  "learning_curves.csv"),
           "runtime.json": ("runtime study", "runtime.png", "runtime.csv"),
           "architectures.json": ("architecture study", "architectures.png",
                                  "architectures.csv")}


class ReportError(ValueError):
    """The folder cannot be reported on; the message says why."""


def _metrics(run_dir):
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path} cannot be read ({exc}); is {run_dir} a finished run?") from None
    if not isinstance(metrics, dict) or "config" not in metrics:
        raise ReportError(f"{path} is not the metrics.json of a minicnn run")
    return metrics


def _test_split(metrics, data):
    """The test split as the run saw it: its dataset, cropped as the run cropped it."""
    from .data.augment import crop_view
    config = metrics["config"]
    if config.get("crop") or config.get("augment"):
        data, _ = crop_view(data, config.get("crop"), False)
    return data.test


def write_report(run_dir, backend="auto", data=None, data_dir=None, quiet=True):
    """Write <run_dir>/report/index.html; returns its path.  ``data``: the run's dataset if
    it is at hand (else read as the run's config says).  Raises ReportError."""
    from .data import info
    from .nn.loading import load
    from .results.report_page import write_run_report
    run_dir = Path(run_dir)
    metrics = _metrics(run_dir)
    try:
        model = load(run_dir / "model.npz", backend=backend, fuse=False)
    except FileNotFoundError:
        raise ReportError(f"{run_dir} has no model.npz; the report needs the run's model "
                          "(python -m minicnn.train writes it with the results)") from None
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    config = dict(metrics["config"])
    if data is None:
        from types import SimpleNamespace
        args = SimpleNamespace(dataset=config.get("dataset", "mnist"),
                               data_dir=data_dir or config.get("data_dir"), train_limit=None)
        data = load_data(PROG, args)
    test = _test_split(metrics, data)
    if tuple(test.x.shape[1:]) != model.input_shape:
        raise ReportError(f"the model expects {model.input_shape} inputs, the run's test set "
                          f"has {tuple(test.x.shape[1:])}")
    names = info(config.get("dataset", "mnist")).class_names
    return write_run_report(run_dir, model, test, metrics, names)


def write_study(folder):
    """The page of a sweep's or study's folder, and each trial's page it can make."""
    from .results.report_page import read_table, write_study_report
    folder = Path(folder)
    found = next((f for f in STUDIES if (folder / f).is_file()), None)
    study, figure, table = STUDIES[found]
    rows = read_table(folder / table) if (folder / table).is_file() else []
    trials = []
    for trial in sorted((folder / "trials").glob("*/metrics.json")):
        try:
            write_report(trial.parent)
            trials.append((trial.parent.name, f"../trials/{trial.parent.name}/report/index.html"))
        except ReportError as exc:
            print(f"{PROG}: trial {trial.parent.name} skipped: {exc}", file=sys.stderr)
    return write_study_report(folder, study, rows, figure if (folder / figure).is_file() else None,
                              trials)


def main(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("run_dir", help="a run's folder (python -m minicnn.train --out), or a sweep's "
                                   "or study's")
    add_backend_flag(p)
    p.add_argument("--data-dir", help="data root (default: the one the run used, else "
                   "$MINICNN_DATA, else ~/.cache/minicnn/data)")
    args = p.parse_args(argv)
    folder = Path(args.run_dir)
    if not folder.is_dir():
        fail(PROG, f"{folder} is not a folder; give the folder of a run (its --out)")
    backend = resolve_backend(PROG, args.backend).name
    try:
        if (folder / "metrics.json").is_file():
            page = write_report(folder, backend, data_dir=args.data_dir)
        elif any((folder / f).is_file() for f in STUDIES):
            page = write_study(folder)
        else:
            fail(PROG, f"{folder} holds no run (no metrics.json) and no sweep or study; give "
                       "the folder a run wrote (python -m minicnn.train --out DIR)")
    except ReportError as exc:
        fail(PROG, str(exc))
    print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
