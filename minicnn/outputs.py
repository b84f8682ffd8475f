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


def prepare_output_dir(path, overwrite=False, flag="--out"):
    """The folder ``path``, created if needed and checked writable; raises OutputError."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is a file, not a folder; give a folder for the results")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{flag} {path}: {parent} is a file, so no folder can be made "
                              "under it; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise OutputError(f"{flag} {path} is not writable ({exc.strerror or exc}); choose a "
                          "folder you can write to") from None
    held = [name for name in RESULT_FILES if (path / name).exists()]
    if held and not overwrite:
        raise OutputError(f"{flag} {path} already holds results ({', '.join(held)}); add "
                          "--overwrite to replace them, or choose another folder")
    return path
