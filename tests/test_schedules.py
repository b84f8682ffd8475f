"""Learning-rate schedules (minicnn/nn/schedules.py) and their use in training.

Each kind against values worked out by hand (staircase with TensorFlow's decay_steps =
int(EPOCHS * steps_per_epoch), smooth exponential, step, cosine, constant); bad specs
refused with a ScheduleError that says what to write; fit() recording each epoch's first
and last rates in EpochStats.lr / lr_end, the optimizer really stepping with them (the
run replayed by hand), and --lr-schedule through the train command's flags.
"""
import math

import numpy as np
import pytest

import minicnn
import minicnn.train
from minicnn.data import Dataset, Split
from minicnn.nn.fit import fit
from minicnn.nn.layers import Dense, Flatten
from minicnn.nn.model import Sequential
from minicnn.nn.schedules import ScheduleError, parse_schedule


# -- each kind by hand ----------------------------------------------------------------------
def test_staircase_is_tensorflows_exponential_decay():
    """The CIFAR-10 tutorial: lr 0.1, staircase:0.1:350, batch 128 over 50,000 images."""
    steps_per_epoch = 50000 / 128                       # 390.625, TensorFlow's float
    s = parse_schedule("staircase:0.1:350", 0.1, steps_per_epoch, 400)
    assert s.decay_steps == 136718                      # int(350 * 390.625) = int(136718.75)
    assert s(0) == 0.1
    assert s(136717) == 0.1
    assert s(136718) == pytest.approx(0.01, rel=1e-12)
    assert s(2 * 136718 - 1) == pytest.approx(0.01, rel=1e-12)
    assert s(2 * 136718) == pytest.approx(0.001, rel=1e-12)


def test_staircase_small_numbers():
    s = parse_schedule("staircase:0.5:1.5", 0.2, 4, 10)  # decay every int(1.5 * 4) = 6 steps
    assert [s(i) for i in (0, 5, 6, 11, 12)] == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05],
                                                              rel=1e-12)


def test_exponential_is_smooth():
    s = parse_schedule("exponential:0.5:2", 0.4, 10, 5)  # decay_steps 20
    assert s.decay_steps == 20
    assert s(0) == 0.4
    assert s(5) == pytest.approx(0.4 * 0.5 ** 0.25, rel=1e-12)
    assert s(10) == pytest.approx(0.4 * math.sqrt(0.5), rel=1e-12)
    assert s(20) == pytest.approx(0.2, rel=1e-12)
    assert s(30) == pytest.approx(0.4 * 0.5 ** 1.5, rel=1e-12)
    rates = [s(i) for i in range(40)]
    assert all(a > b for a, b in zip(rates, rates[1:]))        # strictly decreasing


def test_step_multiplies_at_each_epoch():
    s = parse_schedule("step:2,4:0.5", 0.1, 10, 6)
    assert s.boundaries == (20, 40)
    expected = {0: 0.1, 19: 0.1, 20: 0.05, 39: 0.05, 40: 0.025, 59: 0.025, 1000: 0.025}
    for step, rate in expected.items():
        assert s(step) == pytest.approx(rate, rel=1e-12), step
    # the epochs may come in any order, and fractional steps per epoch are cut as TF does
    s = parse_schedule("step:4,2:0.1", 1.0, 2.5, 6)
    assert s.boundaries == (5, 10)
    assert [s(4), s(5), s(9), s(10)] == pytest.approx([1.0, 0.1, 0.1, 0.01], rel=1e-12)


def test_cosine_from_lr_to_zero():
    s = parse_schedule("cosine", 0.3, 10, 4)               # 40 steps
    assert (s.kind, s.total_steps) == ("cosine", 40)
    assert s(0) == 0.3
    assert s(20) == pytest.approx(0.15, rel=1e-12)
    assert s(10) == pytest.approx(0.3 * (1 + math.cos(math.pi / 4)) / 2, rel=1e-12)
    assert s(40) == pytest.approx(0.0, abs=1e-15)
    assert s(41) == pytest.approx(0.0, abs=1e-15)           # stays at 0 past the end
    assert parse_schedule("cosine", 0.3, 2.5, 3).total_steps == 8   # ceil(7.5)


@pytest.mark.parametrize("spec", [None, "", "constant", " constant "])
def test_constant(spec):
    s = parse_schedule(spec, 0.07, 10, 3)
    assert [s(i) for i in (0, 1, 29, 10 ** 6)] == [0.07] * 4


# -- bad specs -------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,match", [
    ("linear", r"unknown schedule 'linear'.*staircase:RATE:EPOCHS"),
    ("warmup:5", r"unknown schedule .warmup.; use one of constant"),
    ("staircase:0.1", r"write it as staircase:RATE:EPOCHS"),
    ("staircase:0.1:350:2", r"write it as staircase:RATE:EPOCHS"),
    ("exponential", r"write it as exponential:RATE:EPOCHS"),
    ("step:2,4", r"write it as step:E1,E2:FACTOR"),
    ("cosine:10", r"write it as cosine"),
    ("constant:0.1", r"write it as constant"),
    ("staircase:-0.1:350", r"decay rate must be a positive number, got '-0.1'"),
    ("staircase:0:350", r"decay rate must be a positive number"),
    ("exponential:0.5:-2", r"epochs per decay must be a positive number, got '-2'"),
    ("exponential:x:2", r"decay rate must be a positive number, got 'x'"),
    ("staircase:0.5:nan", r"epochs per decay"),
    ("step:2,4:-0.5", r"factor must be a positive number, got '-0.5'"),
    ("step:2,-4:0.5", r"each epoch must be a positive number, got '-4'"),
    ("step::0.5", r"give the epochs"),
    ("staircase:0.5:0.01", r"more often than once a step"),
])
def test_bad_specs_are_refused_in_one_line(spec, match):
    with pytest.raises(ScheduleError, match=match) as info:
        parse_schedule(spec, 0.1, 10, 5)
    assert "--lr-schedule" in str(info.value) and "\n" not in str(info.value)
    if "unknown schedule" not in str(info.value):       # the message quotes what was given
        assert str(info.value).startswith(f"--lr-schedule {spec!r}: ")
    assert isinstance(info.value, ValueError)


def test_a_decay_every_step_is_the_most_often_allowed():
    s = parse_schedule("staircase:0.5:0.1", 1.0, 10, 5)      # 0.1 epoch of 10 steps: 1 step
    assert (s.kind, s.decay_steps) == ("staircase", 1)
    assert [s(0), s(1), s(2)] == [1.0, 0.5, 0.25]


# -- fit() ----------------------------------------------------------------------------------
def fake_data(n_train=20, n_val=6):
    rng = np.random.default_rng(0)
    split = lambda n: Split(rng.random((n, 1, 2, 2)).astype(np.float32),
                            rng.integers(0, 3, n).astype(np.int64))
    return Dataset(split(n_train), split(n_val), split(4))


def tiny_model():
    return Sequential([Flatten(), Dense(3)], (1, 2, 2), dtype="float64", seed=1)


class RecordingSGD(minicnn.SGD):
    """SGD that remembers the learning rate of each step it took."""

    def __init__(self, lr):
        super().__init__(lr)
        self.used = []

    def step(self, model):
        self.used.append(self.lr)
        super().step(model)


def test_fit_records_and_uses_the_scheduled_rates():
    data, epochs, batch = fake_data(), 3, 5               # 4 steps per epoch
    schedule = parse_schedule("exponential:0.5:1", 0.2, 4, epochs)
    model, opt = tiny_model(), RecordingSGD(0.2)
    history = fit(model, opt, data, epochs, batch, seed=3, schedule=schedule)
    assert opt.used == pytest.approx([0.2 * 0.5 ** (i / 4) for i in range(12)], rel=1e-12)
    for stats in history:
        first = 4 * (stats.epoch - 1)
        assert stats.lr == schedule(first) and stats.lr_end == schedule(first + 3)
    assert history[0].lr == 0.2 and history[-1].lr_end == pytest.approx(0.2 * 0.5 ** (11 / 4))

    # the same run replayed by hand: the same shuffles, each step at its scheduled rate
    replay, sgd = tiny_model(), minicnn.SGD(0.2)
    rng = np.random.default_rng(3)
    for _ in range(epochs):
        order = rng.permutation(20)
        for start in range(0, 20, batch):
            idx = order[start:start + batch]
            sgd.lr = schedule(replay.steps_taken)
            replay.train_step(data.train.x[idx].astype(np.float64), data.train.y[idx], sgd)
    np.testing.assert_array_equal(replay.flat_params, model.flat_params)
    # and differently from a constant rate
    constant = tiny_model()
    fit(constant, minicnn.SGD(0.2), data, epochs, batch, seed=3)
    assert not np.allclose(constant.flat_params, model.flat_params)


def test_fit_step_schedule_changes_between_epochs():
    data = fake_data(n_train=18)                          # batches 5, 5, 5, 3: 4 steps
    schedule = parse_schedule("step:1,2:0.1", 1.0, 18 / 5, 3)  # boundaries int(3.6), int(7.2)
    assert schedule.boundaries == (3, 7)
    opt = RecordingSGD(1.0)
    history = fit(tiny_model(), opt, data, 3, 5, schedule=schedule)
    assert opt.used == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.01])
    assert [r for s in history for r in (s.lr, s.lr_end)] == pytest.approx(
        [1.0, 0.1, 0.1, 0.01, 0.01, 0.01])


def test_fit_without_a_schedule_records_the_optimizers_rate():
    opt = RecordingSGD(0.05)
    history = fit(tiny_model(), opt, fake_data(), 2, 5)
    assert opt.used == [0.05] * 8
    assert all(s.lr == 0.05 and s.lr_end == 0.05 for s in history)


# -- the train command's flag ------------------------------------------------------------------
def test_train_flags_make_the_tutorial_schedule():
    args = minicnn.train.apply_defaults(minicnn.train.build_parser().parse_args(
        ["--arch", "cifar10-tutorial"]))
    s = minicnn.train.make_schedule(args, 50000)
    assert s.kind == "staircase" and s.decay_steps == 136718 and s.lr == 0.1
    args = minicnn.train.apply_defaults(minicnn.train.build_parser().parse_args(
        ["--lr-schedule", "cosine", "--epochs", "2", "--batch-size", "10", "--lr", "0.5"]))
    s = minicnn.train.make_schedule(args, 55)
    assert s.total_steps == 11 and s(0) == 0.5


def test_train_refuses_a_bad_schedule_in_one_line(capsys):
    args = minicnn.train.apply_defaults(minicnn.train.build_parser().parse_args(
        ["--lr-schedule", "staircase:0.1"]))
    with pytest.raises(SystemExit) as info:
        minicnn.train.make_schedule(args, 1000)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "staircase:RATE:EPOCHS" in err[0]


class ReachedTheData(Exception):
    """Raised in place of reading the data: main() got past its checks."""


def run_until_the_data(monkeypatch, capsys, *argv):
    """train.main(argv) stopped where it would read the data: (True, "") if it got there,
    else (False, its stderr) after its one-line refusal."""
    def read_data(*args, **kwargs):
        raise ReachedTheData
    monkeypatch.setattr(minicnn.train, "read_data", read_data)
    try:
        minicnn.train.main(["--backend", "numpy", "--threads", "1", "--quiet", *argv])
    except ReachedTheData:
        return True, ""
    except SystemExit:
        pass
    return False, capsys.readouterr().err


@pytest.mark.parametrize("spec", ["staircase:0.5:1", "exponential:0.9:2", "step:1,2:0.5"])
def test_train_checks_the_schedule_against_the_real_step_count(tmp_path, monkeypatch, capsys,
                                                               spec):
    """55,000 images in batches of 50 are 1,100 steps an epoch: decaying every epoch or two
    is fine.  (train once checked the schedule before the data as if an epoch were 1 / batch
    size steps, and refused these.)"""
    reached, err = run_until_the_data(monkeypatch, capsys, "--lr-schedule", spec,
                                      "--batch-size", "50", "--out", str(tmp_path / "run"))
    assert reached, err


def test_train_refuses_too_frequent_a_decay_before_the_data(tmp_path, monkeypatch, capsys):
    """0.0001 epochs of 1,100 steps is no step at all: refused in one line, data unread."""
    reached, err = run_until_the_data(monkeypatch, capsys, "--lr-schedule",
                                      "staircase:0.5:0.0001", "--batch-size", "50",
                                      "--out", str(tmp_path / "run"))
    assert not reached
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "more often than once a step" in lines[0]
