"""Ready-made models."""
from .layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from .model import Sequential


def lab_layers(filters=16, units=128, classes=10, algorithm="auto"):
    """The classic lab CNN: [3x3 'same' conv, ReLU, 2x2 max-pool] x 2, dense+ReLU, dense."""
    return [Conv2D(filters, 3, padding="same", algorithm=algorithm), ReLU(), MaxPool2D(2),
            Conv2D(filters, 3, padding="same", algorithm=algorithm), ReLU(), MaxPool2D(2),
            Flatten(), Dense(units), ReLU(), Dense(classes)]


def lab_model(filters=16, units=128, input_shape=(1, 28, 28), classes=10, algorithm="auto",
              **kwargs):
    """``Sequential(lab_layers(...), input_shape, **kwargs)``; 104,250 parameters at 16 filters."""
    return Sequential(lab_layers(filters, units, classes, algorithm), input_shape, **kwargs)
