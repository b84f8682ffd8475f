"""minicnn: a from-scratch convolutional neural network engine you can read.

    import minicnn
    model = minicnn.Sequential([minicnn.Conv2D(16, 3, padding="same"), minicnn.ReLU(),
                                minicnn.MaxPool2D(2), minicnn.Flatten(), minicnn.Dense(10)],
                               input_shape=(1, 28, 28))
    model.summary()
"""
from ._version import __version__
from .backend import available_backends, get_backend
from .nn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid
from .nn.loading import load
from .nn.model import Sequential
from .nn.optim import SGD, Adam
from .nn.presets import lab_model
from .parallel.threads import configure as configure_threads

__all__ = ["Sequential", "Conv2D", "MaxPool2D", "ReLU", "Sigmoid", "Flatten", "Dense",
           "SGD", "Adam", "load", "lab_model", "get_backend", "available_backends",
           "configure_threads"]
