"""What the study and benchmark scripts share beyond minicnn.cli: the flags of a study, in one
call, and writing a script's JSON result."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minicnn.cli import (add_study_output_flags, add_training_flags, positive_int,  # noqa: E402
                         seed)


def add_study_flags(p, out_default):
    """--epochs, --batch-size, --seed, --train-limit, the data flags, --out and --force."""
    add_training_flags(p)
    p.add_argument("--batch-size", type=positive_int, default=50)
    p.add_argument("--seed", type=seed, default=0)
    add_study_output_flags(p, out_default)


def save_json(folder, name, obj):
    """Write ``obj`` to folder/name (atomically) and say so."""
    from minicnn.results.files import write_json
    write_json(Path(folder) / name, obj)
    print(f"\nwrote {Path(folder) / name}")
