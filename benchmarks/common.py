"""What the study scripts share: flags, data, resumable result points (minicnn.sweep.Points)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minicnn.cli_helpers import (ArgumentParser, add_data_flags, fail, number_list,  # noqa: E402,F401
                                 positive_int)
from minicnn.sweep import Points  # noqa: E402,F401  (the resumable points folder)


def add_common_flags(p, out_default):
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=positive_int, metavar="N",
                   help="train on the first N training images only")
    p.add_argument("--out", default=out_default, help=f"output folder (default {out_default})")
    p.add_argument("--force", action="store_true",
                   help="recompute points that an earlier (interrupted) run already finished")
    add_data_flags(p)


def load_data(prog, args):
    from minicnn.data import DataError, load_dataset
    try:
        data = load_dataset(args.dataset, args.data_dir, train_limit=args.train_limit)
    except (DataError, OSError, ValueError) as exc:
        fail(prog, f"cannot read {args.dataset}: {exc}")
    return data
