import numpy as np
import pytest

from minicnn.backend import backend_class, get_backend

# CPU backends always run: if one cannot, that is a failure, not a skip.
CPU_BACKENDS = ["numpy", "numba", "cudasim"]


def gpu_params(*ids):
    """pytest params for the cupy backend: marked gpu, skipped with the reason where it cannot run."""
    cls = backend_class("cupy")
    marks = [pytest.mark.gpu]
    if not cls.is_available():
        marks.append(pytest.mark.skip(reason=f"cupy: {cls.unavailable_reason}"))
    return [pytest.param(i, marks=marks) for i in ids]


ALL_BACKENDS = CPU_BACKENDS + gpu_params("cupy")


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    return get_backend(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
