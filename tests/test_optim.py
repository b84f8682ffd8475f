"""The optimizers (nn/optim.py): SGD, SGD with momentum and Adam follow their formulas step
by step, Adam's defaults and hyper-parameter checks are the paper's, an optimizer is tied to
the size of the model it first stepped, and a warm step allocates nothing (plain SGD keeps no
state at all, momentum one velocity).  The update kernels themselves against their
references: test_kernels.py."""
from types import SimpleNamespace

import numpy as np
import pytest

import minicnn
from conftest import NO_ALLOCATION, traced_peak
from minicnn import SGD, Adam, Dense, Flatten, Sequential
from minicnn.backend import get_backend


# -- the formulas ----------------------------------------------------------------------------
def test_sgd_momentum_matches_the_formula():
    model = Sequential([Flatten(), Dense(2)], (1, 1, 3), dtype="float64")
    w0 = model.layers[1].params["w"].copy()
    g = np.arange(6.0).reshape(3, 2)
    opt = SGD(0.1, momentum=0.9)
    v = np.zeros_like(w0)
    for _ in range(3):
        model.layers[1].grads["w"][...] = g
        opt.step(model)
        v = 0.9 * v - 0.1 * g
        w0 = w0 + v
    np.testing.assert_allclose(model.layers[1].params["w"], w0, rtol=1e-14)


def test_adam_matches_the_paper():
    model = Sequential([Flatten(), Dense(2)], (1, 1, 3), dtype="float64")
    w = model.layers[1].params["w"].copy()
    opt, m, v = Adam(0.01), 0.0, 0.0
    for t in range(1, 4):
        g = np.sin(np.arange(6.0) * t).reshape(3, 2)
        model.layers[1].grads["w"][...] = g
        opt.step(model)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(model.layers[1].params["w"], w, rtol=1e-12)


# -- hyper-parameters -----------------------------------------------------------------------
def test_adam_defaults_are_the_papers():
    adam = minicnn.Adam()
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps) == (0.001, 0.9, 0.999, 1e-8)


@pytest.mark.parametrize("name,value,wanted", [
    ("lr", 0, "a positive finite number"),
    ("beta2", 1, r"in \[0, 1\)"),
    ("beta2", 2, r"in \[0, 1\)"),
    ("eps", 0, "a positive finite number"),
])
def test_adam_names_the_bad_hyper_parameter(name, value, wanted):
    with pytest.raises(ValueError, match=rf"^Adam: {name} must be {wanted}, got "):
        minicnn.Adam(**{name: value})


def test_adam_beta2_may_be_zero():
    assert minicnn.Adam(beta2=0).beta2 == 0.0


# -- state: one model, nothing allocated once warm -------------------------------------------
def flat_model(size, backend="numpy"):
    """What an optimizer uses of a model: its backend and flat parameter and gradient buffers."""
    rng = np.random.default_rng(0)
    return SimpleNamespace(backend=get_backend(backend),
                           flat_params=rng.standard_normal(size).astype(np.float32),
                           flat_grads=rng.standard_normal(size).astype(np.float32))


def test_an_optimizer_refuses_a_model_of_another_size():
    sgd = minicnn.SGD(0.1)
    sgd.step(flat_model(1000))
    with pytest.raises(ValueError, match=r"^SGD: this optimizer was used with a model of 1,000 "
                                         r"parameters; make a new one for this model \(2,000 "
                                         r"parameters\)$"):
        sgd.step(flat_model(2000))


@pytest.mark.parametrize("make", [lambda: minicnn.SGD(0.1), lambda: minicnn.SGD(0.1, 0.9),
                                  lambda: minicnn.Adam()], ids=["sgd", "momentum", "adam"])
def test_a_warm_optimizer_step_allocates_nothing(make):
    """Reference updates (numpy backend): the optimizer passes its workspace down."""
    model, optimizer = flat_model(300_000), make()
    optimizer.step(model)
    optimizer.step(model)
    peak, _ = traced_peak(lambda: optimizer.step(model))
    assert peak < NO_ALLOCATION


def test_plain_sgd_keeps_no_state_and_momentum_one_velocity():
    """SGD without momentum needs no buffer: its first step allocates nothing the size of
    the model, where momentum's first step allocates exactly one velocity (numba: the
    updates are in-place kernels, so the state is all a first step allocates)."""
    model = flat_model(300_000, "numba")
    minicnn.SGD(0.1).step(model)                 # compile both kernels before tracing
    minicnn.SGD(0.1, 0.9).step(model)
    sgd_peak, _ = traced_peak(lambda: minicnn.SGD(0.1).step(model))
    momentum_peak, _ = traced_peak(lambda: minicnn.SGD(0.1, 0.9).step(model))
    assert sgd_peak < NO_ALLOCATION
    assert model.flat_params.nbytes <= momentum_peak < model.flat_params.nbytes + NO_ALLOCATION
