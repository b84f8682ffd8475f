import numpy as np
import pytest

from minicnn.backend import backend_class, get_backend

# CPU backends always run: if one cannot, that is a failure, not a skip.
CPU_BACKENDS = ["numpy", "numba", "cudasim"]


def _gpu_param(name):
    cls = backend_class(name)
    marks = [pytest.mark.gpu]
    if not cls.is_available():
        marks.append(pytest.mark.skip(reason=f"{name}: {cls.unavailable_reason}"))
    return pytest.param(name, marks=marks)


ALL_BACKENDS = CPU_BACKENDS + [_gpu_param("cupy")]


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    return get_backend(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
