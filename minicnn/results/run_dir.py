"""The output folder of a run, checked before any work starts.

A run that trains for an hour and then cannot write its results has lost the
hour; one that silently replaces an earlier run's results has lost that run.
So ``prepare_output_dir`` creates the folder, proves it can write there, and
refuses a folder that already holds results unless told to overwrite them.
"""
import os
import tempfile
from pathlib import Path

RESULT_FILES = ("metrics.json", "metrics.csv", "learning_curve.png", "model.npz")


class OutputError(ValueError):
    """The output folder cannot be used; the message says why and what to do."""


def prepare_output_dir(path, overwrite=False):
    """The folder ``path``, created if needed and checked writable; raises OutputError."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputError(f"--out {path} is a file, not a folder; give a folder for the results")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"--out {path}: {parent} is a file, so no folder can be made "
                              "under it; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise OutputError(f"--out {path} is not writable ({exc.strerror or exc}); choose a "
                          "folder you can write to") from None
    held = [name for name in RESULT_FILES if (path / name).exists()]
    if held and not overwrite:
        raise OutputError(f"--out {path} already holds results ({', '.join(held)}); add "
                          "--overwrite to replace them, or choose another folder")
    return path


def fresh_run_dir(root=None):
    """A new, empty folder ``<root>/train-NNN`` (the first free number), for a run given no
    --out.  ``root``: $MINICNN_RUNS, else ``runs`` under the working folder.  mkdir is the
    claim, so two runs started together never share a folder.  Raises OutputError."""
    root = Path(root or os.environ.get("MINICNN_RUNS") or "runs").expanduser()
    number = 1 + max((int(p.name[6:]) for p in root.glob("train-*") if p.name[6:].isdigit()),
                     default=0)
    try:
        root.mkdir(parents=True, exist_ok=True)
        while True:
            path = root / f"train-{number:03d}"
            try:
                path.mkdir()
                return prepare_output_dir(path)
            except FileExistsError:
                number += 1
    except OSError as exc:
        raise OutputError(f"cannot make a results folder under {root} ({exc.strerror or exc}); "
                          "pass --out DIR with a folder you can write to") from None
