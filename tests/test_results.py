"""What a run leaves behind (minicnn/results/): result files written atomically (files.py) and
the learning-curve figure (figures.py).  The files of a whole run: test_cli.py."""
import json

import pytest

from minicnn.results import figures
from minicnn.results.files import atomic_open, write_csv, write_json


def test_an_interrupted_write_leaves_the_previous_version_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(path, "w") as f:
            f.write('{"a": 2, "half')
            raise KeyboardInterrupt
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_csv_rows_keep_the_columns_asked_for(tmp_path):
    path = tmp_path / "sub" / "rows.csv"
    write_csv(path, [{"lr": 0.1, "loss": 2.5, "extra": "x"}, {"lr": 0.01}], ["lr", "loss"])
    assert path.read_text().splitlines() == ["lr,loss", "0.1,2.5", "0.01,"]


def test_learning_curve_ticks_are_whole_epochs(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: seen.update(fig=fig))
    history = [dict(epoch=1, train_accuracy=.9, val_accuracy=.91, train_loss=.3, val_loss=.25)]
    monkeypatch.setattr("matplotlib.pyplot.close", lambda fig: None)
    figures.plot_learning_curve(history, tmp_path / "c.png", "t")
    for ax in seen["fig"].axes:
        assert list(ax.get_xticks()) == [1]
    assert seen["fig"].get_layout_engine() is not None        # labels cannot crowd
