"""The report page of a run, a sweep or a study (python -m minicnn.report, train --report;
minicnn/report.py and results/report_page.py), read back with html.parser: every figure it
references is a PNG on disk, its numbers equal metrics.json and what the saved model scores,
the error of each class agrees with a confusion matrix computed here from model.predict; a
3-channel cropped run and a network without convolutions get their page too; a study's page
links a page per trial.  Bad input is one line, exit 2, and the run's folder is left as it
was.  The page is also opened in headless Chromium: it renders, every image loads, the
console stays clean."""
import hashlib
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cifar_files import colour_set, write_set
from conftest import assert_one_line_error, call_main, fake_mnist, run_module

ARCH = "conv:4:3:same,relu,pool,dense:10"
N_TRAIN, N_TEST = 5100, 60                     # 100 training images, 5,000 validation
SECTIONS = ("run", "curves", "confusion", "mistakes", "filters", "features", "saliency")


class Page(HTMLParser):
    """What the tests read from a page: images, links, section ids, the text of each element
    with an id, and the rows (cell texts) of each table with an id."""

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)
        self.images, self.links, self.sections, self.text, self.tables = [], [], [], {}, {}
        self._open, self._table, self._cell = [], None, None
        self.feed(self.path.read_text())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
            return
        if tag == "a":
            self.links.append(attrs["href"])
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "table" and "id" in attrs:
            self._table = self.tables.setdefault(attrs["id"], [])
        if self._table is not None and tag == "tr":
            self._table.append([])
        if self._table is not None and tag in ("td", "th"):
            self._cell = []
        self._open.append((tag, attrs.get("id")))
        if attrs.get("id"):
            self.text[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if self._table is not None and tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "table":
            self._table = None
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, ident in self._open:
            if ident:
                self.text[ident] += data
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table):
        """The table's rows below its header."""
        return self.tables[table][1:]


def pct(v):
    """How the page writes a fraction."""
    return "–" if v is None else f"{100 * v:.2f}%"


def listing(folder):
    """{relative path: (size, mtime_ns, SHA-256)} of everything under ``folder``."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns,
                                                     hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def fake_data(root, monkeypatch):
    """The fake MNIST of these tests (the same arrays, so the same checksums, every time)."""
    return fake_mnist(root, n_train=N_TRAIN, n_test=N_TEST, monkeypatch=monkeypatch)


def train_run(out, data_root, *args, arch=ARCH):
    from minicnn import train
    code = train.main(["--data-dir", str(data_root), "--arch", arch, "--backend", "numpy",
                       "--epochs", "2", "--batch-size", "20", "--out", str(out), "--quiet",
                       *map(str, args)])
    assert code == 0


def report(folder, *args):
    from minicnn import report as report_module
    assert report_module.main([str(folder), "--backend", "numpy", *map(str, args)]) == 0
    return Path(folder) / "report" / "index.html"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-epoch run on fake MNIST and its report, made in this process: (run folder, its
    files before the report, data root)."""
    tmp = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_RUNS", str(tmp / "runs"))
        fake_data(tmp / "data", mp)
        out = tmp / "run"
        train_run(out, tmp / "data")
        before = listing(out)
        report(out)
    return out, before, tmp / "data"


def assert_page(page_path, sections=SECTIONS):
    """Every <img> a PNG beside the page; the sections present; returns the Page."""
    page = Page(page_path)
    assert page.images
    for src in page.images:
        image = page_path.parent / src
        assert image.is_file(), src
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    assert [s for s in page.sections if s in SECTIONS] == list(sections)
    return page


def assert_numbers(page, metrics):
    assert page.text["test_error"] == pct(metrics["test_error"])
    assert page.text["test_accuracy"] == pct(metrics["test_accuracy"])
    assert page.text["val_accuracy"] == pct(metrics["epochs"][-1]["val_accuracy"])
    assert page.text["epochs"] == str(len(metrics["epochs"]))
    assert page.text["parameters"] == f"{metrics['parameters']:,}"
    # recomputed from the saved model: what the run measured
    assert page.text["recomputed_accuracy"] == pct(metrics["test_accuracy"])
    table = page.rows("epochs_table")
    assert [int(r[0]) for r in table] == [e["epoch"] for e in metrics["epochs"]]
    assert [r[4] for r in table] == [pct(e["val_accuracy"]) for e in metrics["epochs"]]
    seconds = np.mean([e["train_seconds"] for e in metrics["epochs"]])
    assert page.text["seconds_per_epoch"] == f"{seconds:.1f} s"


def test_the_page_and_every_figure_it_shows(run):
    out, _, _ = run
    page = assert_page(out / "report" / "index.html")
    assert set(page.images) == {"curves.png", "confusion.png", "mistakes.png", "filters.png",
                                "features_0.png", "features_1.png", "saliency.png"}
    assert sorted(p.name for p in (out / "report").iterdir()) == sorted(
        page.images + ["index.html"])                    # nothing half-written beside them


def test_the_numbers_equal_metrics_json(run):
    out, _, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    page = Page(out / "report" / "index.html")
    assert_numbers(page, metrics)
    assert metrics["command"] in page.text["run"]
    assert len(page.rows("class_errors")) == 10


def test_each_class_error_agrees_with_a_confusion_matrix_of_the_saved_model(run):
    import minicnn
    from minicnn.data import load_dataset
    out, _, data_root = run
    with pytest.MonkeyPatch.context() as mp:
        fake_data(data_root, mp)
        test = load_dataset("mnist", data_root, progress=False).test
    model = minicnn.load(out / "model.npz", backend="numpy")
    predicted = model.predict(test.x)
    matrix = np.zeros((10, 10), int)
    np.add.at(matrix, (test.y, predicted), 1)
    rows = Page(out / "report" / "index.html").rows("class_errors")
    assert [r[0] for r in rows] == [str(d) for d in range(10)]
    assert [int(r[1]) for r in rows] == matrix.sum(axis=1).tolist()
    for c, row in enumerate(rows):
        total = matrix[c].sum()
        assert row[2] == pct(1 - matrix[c, c] / total if total else None), c
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.trace(matrix) / matrix.sum() == pytest.approx(metrics["test_accuracy"])


def test_the_report_changes_nothing_of_the_run(run):
    out, before, _ = run
    after = listing(out)
    assert {k: v for k, v in after.items() if not k.startswith("report/")} == before


def test_a_three_channel_cropped_run(tmp_path, monkeypatch):
    """cifar10-synthetic, 24x24 central crops: the report crops the test set as the run did
    (else its recomputed accuracy would differ, or the shapes would not fit)."""
    from minicnn.data import cifar10
    monkeypatch.setattr(cifar10, "RECORDS_PER_FILE", 1020)          # 5,100 training images
    write_set(tmp_path / "data" / cifar10.SYNTHETIC, colour_set(1020))
    out = tmp_path / "run"
    train_run(out, tmp_path / "data", "--dataset", cifar10.SYNTHETIC, "--crop", "24",
              "--lr", "0.01")
    page = assert_page(report(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert_numbers(page, metrics)
    assert metrics["architecture"]["input_shape"] == [3, 24, 24]
    rows = page.rows("class_errors")
    assert [r[0] for r in rows][:3] == ["disc", "ring", "square"]         # its class names
    assert sum(int(r[1]) for r in rows) == 1020
    assert "24x24 crops" in page.text["run"]


def test_a_network_without_convolutions(tmp_path, monkeypatch):
    fake_data(tmp_path / "data", monkeypatch)
    out = tmp_path / "run"
    train_run(out, tmp_path / "data", arch="dense:10")
    page = assert_page(report(out), ("run", "curves", "confusion", "mistakes", "saliency"))
    assert_numbers(page, json.loads((out / "metrics.json").read_text()))
    assert not [p for p in (out / "report").iterdir() if p.name.startswith(("filters",
                                                                             "features"))]


def test_train_report_writes_the_same_page(tmp_path, monkeypatch, capsys):
    from minicnn import train
    fake_data(tmp_path / "data", monkeypatch)
    out = tmp_path / "run"
    result = call_main(train.main, ["--data-dir", str(tmp_path / "data"), "--arch", ARCH,
                                    "--backend", "numpy", "--epochs", "2", "--batch-size", "20",
                                    "--out", str(out), "--quiet", "--report"], capsys)
    assert result.returncode == 0, result.stderr
    index = out / "report" / "index.html"
    assert f"report           {index}" in result.stdout
    page = assert_page(index)
    metrics = json.loads((out / "metrics.json").read_text())
    assert_numbers(page, metrics)
    # and the report command, run afterwards, writes the same numbers
    first = {k: page.text[k] for k in ("test_error", "recomputed_accuracy", "val_accuracy")}
    again = Page(report(out))
    assert {k: again.text[k] for k in first} == first
    assert again.tables["class_errors"] == page.tables["class_errors"]


# -- studies -------------------------------------------------------------------------------
def test_a_study_folder_links_a_page_per_trial(run, tmp_path, monkeypatch, capsys):
    """A sweep's folder written by hand: sweep.json, sweep.csv, sweep.png and the trials'
    run folders (one without its model: skipped, said on stderr, not linked)."""
    from minicnn import report as report_module
    out, _, data_root = run
    fake_data(data_root, monkeypatch)
    study = tmp_path / "sweep"
    for key in ("lr0.1_s0", "lr0.1_s1", "broken"):
        (study / "trials" / key).mkdir(parents=True)
        for name in ("metrics.json", "model.npz"):
            if not (key == "broken" and name == "model.npz"):
                shutil.copy(out / name, study / "trials" / key / name)
    (study / "sweep.json").write_text("{}")
    (study / "sweep.csv").write_text("lr,seed,test_error\n0.1,0,0.5\n0.1,1,0.25\n")
    shutil.copy(out / "learning_curve.png", study / "sweep.png")
    result = call_main(report_module.main, [str(study), "--backend", "numpy"], capsys)
    assert result.returncode == 0, result.stderr
    assert "trial broken skipped" in result.stderr
    index = study / "report" / "index.html"
    page = Page(index)
    assert page.images == ["../sweep.png"] and (index.parent / "../sweep.png").is_file()
    assert page.links == ["../trials/lr0.1_s0/report/index.html",
                          "../trials/lr0.1_s1/report/index.html"]
    for link in page.links:
        trial_page = assert_page((index.parent / link).resolve())
        assert_numbers(trial_page, json.loads((out / "metrics.json").read_text()))
    assert not (study / "trials" / "broken" / "report").exists()
    assert page.tables == {} and "0.25" in page.text["table"]


# -- bad input ---------------------------------------------------------------------------------
def damaged(run, tmp_path, damage):
    folder = tmp_path / "run"
    shutil.copytree(run[0], folder, ignore=shutil.ignore_patterns("report"))
    damage(folder)
    return folder


@pytest.mark.parametrize("damage,match", [
    (lambda f: (f / "model.npz").unlink(), r"has no model.npz; the report needs the run's model"),
    (lambda f: (f / "model.npz").write_bytes(b"\x00garbage" * 100),
     r"model.npz: not a minicnn model file"),
    (lambda f: (f / "model.npz").write_bytes((f / "model.npz").read_bytes()[:500]),
     r"model.npz: not a minicnn model file"),
    (lambda f: (f / "metrics.json").write_text("{not json"), r"metrics.json cannot be read"),
    (lambda f: (f / "metrics.json").write_text("[1, 2]"),
     r"metrics.json is not the metrics.json of a minicnn run"),
    (lambda f: [p.unlink() for p in f.iterdir()], r"holds no run \(no metrics.json\)"),
])
def test_a_run_that_cannot_be_reported_is_one_line_and_left_as_it_was(run, tmp_path, damage,
                                                                      match):
    folder = damaged(run, tmp_path, damage)
    before = listing(folder)
    result = run_module("minicnn.report", folder, data=False)
    assert_one_line_error(result, match)
    assert listing(folder) == before
    assert not (folder / "report").exists()


def test_a_file_or_a_missing_folder_is_one_line(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    for target in (tmp_path / "metrics.json", tmp_path / "nowhere"):
        assert_one_line_error(run_module("minicnn.report", target, data=False),
                              r"is not a folder; give the folder of a run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_run_whose_data_cannot_be_read_is_one_line(run, tmp_path):
    """Corrupt data files (present, so nothing is downloaded): one line, and nothing is
    written, since the page is written only once everything it needs has been read."""
    folder = damaged(run, tmp_path, lambda f: None)
    bad = tmp_path / "bad-data" / "mnist"
    bad.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (bad / name).write_bytes(b"\x1f\x8b not really gzip")
    before = listing(folder)
    result = run_module("minicnn.report", folder, "--data-dir", bad.parent, data=False)
    assert_one_line_error(result, r"cannot read mnist: .*corrupt or truncated gzip")
    assert listing(folder) == before and not (folder / "report").exists()


# -- the browser ---------------------------------------------------------------------------------
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install selenium)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.skip(f"{path} not found: the browser test needs Chromium and chromedriver")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1200,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_in_a_browser(run, browser, tmp_path):
    out, _, _ = run
    index = out / "report" / "index.html"
    browser.get(index.resolve().as_uri())
    browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const waits = [...document.images].map(img => img.complete ? null :
            new Promise(r => { img.onload = img.onerror = r; }));
        Promise.all(waits).then(() => done());""")
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ids = browser.execute_script("return [...document.querySelectorAll('section')].map(s => s.id)")
    assert ids == list(SECTIONS)
    images = browser.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(images) == 7
    assert all(complete and width > 0 for _, complete, width in images), images
    metrics = json.loads((out / "metrics.json").read_text())
    assert browser.find_element("id", "test_error").text == pct(metrics["test_error"])
    assert browser.find_element("id", "parameters").text == f"{metrics['parameters']:,}"
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
