"""The folders minicnn uses when it is not told where: its cache and the data root.

It imports nothing of minicnn, so every part of the package may use it.
"""
import os
from pathlib import Path


def cache_root() -> Path:
    """$MINICNN_CACHE, else <XDG_CACHE_HOME or ~/.cache>/minicnn: compiled kernels, stamps."""
    if os.environ.get("MINICNN_CACHE"):
        return Path(os.environ["MINICNN_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "minicnn"


def default_data_root() -> Path:
    """$MINICNN_DATA, else <XDG_CACHE_HOME or ~/.cache>/minicnn/data (not under
    $MINICNN_CACHE: clearing the kernel cache must not delete the datasets)."""
    if os.environ.get("MINICNN_DATA"):
        return Path(os.environ["MINICNN_DATA"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "minicnn" / "data"
