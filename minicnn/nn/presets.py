"""Ready-made models: the networks learners meet, by name (``--arch NAME``).

Each preset gives its layers, the input it was written for and the training
settings its source used (``python -m minicnn.train --arch NAME`` takes them as
defaults; flags given on the command line win).  Parameter counts are Keras's
for the same layers (tests/test_presets.py writes them out).

    lab                the lab CNN: [3x3 'same' conv, ReLU, 2x2 max-pool] x 2, dense+ReLU, dense
    tf-mnist-tutorial  TensorFlow's "Layers" MNIST tutorial (cnn_mnist.py)
    cifar10-tutorial   TensorFlow's CIFAR-10 tutorial network (cifar10.py), 24x24 crops
    keras-1..3         the Keras report's three MNIST models, and keras-deep-light: see below

The Keras report's layer lists were not available to us: keras-1, keras-2 and
keras-3 are reconstructed from the parameter counts it gives (207,178, 449,482
and 440,906, matched exactly) and the layers it names (5x5 and 7x7
convolutions, sigmoid dense layers); keras-deep-light from its description
(2x2 and stride-2 convolutions, many thin layers).  Its training: 50 epochs,
batch 100, SGD 0.05.
"""
from typing import Callable, NamedTuple

from .layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid
from .model import Sequential
from .regularization import Dropout, LocalResponseNorm


class Preset(NamedTuple):
    layers: Callable        # (filters, units, classes, algorithm) -> [Layer]
    description: str
    input_shape: tuple      # (C, H, W) it was written for
    defaults: dict          # training settings of its source, by train's flag names


def lab_layers(filters=16, units=128, classes=10, algorithm="auto"):
    """The classic lab CNN: [3x3 'same' conv, ReLU, 2x2 max-pool] x 2, dense+ReLU, dense."""
    return [Conv2D(filters, 3, padding="same", algorithm=algorithm), ReLU(), MaxPool2D(2),
            Conv2D(filters, 3, padding="same", algorithm=algorithm), ReLU(), MaxPool2D(2),
            Flatten(), Dense(units), ReLU(), Dense(classes)]


def lab_model(filters=16, units=128, input_shape=(1, 28, 28), classes=10, algorithm="auto",
              **kwargs):
    """``Sequential(lab_layers(...), input_shape, **kwargs)``; 104,250 parameters at 16 filters."""
    return Sequential(lab_layers(filters, units, classes, algorithm), input_shape, **kwargs)


def tf_mnist_tutorial(classes=10, algorithm="auto", **_):
    """conv 5x5 32 'same' + ReLU, 2x2 pool, conv 5x5 64 'same' + ReLU, 2x2 pool, dense 1024 +
    ReLU, dropout 0.4, dense 10: 3,274,634 parameters."""
    return [Conv2D(32, 5, padding="same", algorithm=algorithm), ReLU(), MaxPool2D(2),
            Conv2D(64, 5, padding="same", algorithm=algorithm), ReLU(), MaxPool2D(2),
            Flatten(), Dense(1024), ReLU(), Dropout(0.4), Dense(classes)]


def cifar10_tutorial(classes=10, algorithm="auto", **_):
    """TensorFlow's cifar10.py inference(): conv 5x5 64 + ReLU, 3x3/2 'same' max-pool, LRN,
    conv 5x5 64 + ReLU, LRN, 3x3/2 'same' max-pool, dense 384 + ReLU, dense 192 + ReLU,
    dense 10; truncated-normal weights (stddev 5e-2, 5e-2, 0.04, 0.04, 1/192), biases 0,
    0.1, 0.1, 0.1, 0, weight decay 0.004 on the two hidden dense layers: 1,068,298
    parameters on 24x24x3 crops."""
    def normal(stddev):
        return {"type": "truncated_normal", "stddev": stddev}

    def bias(value):
        return {"type": "constant", "value": value} if value else "zeros"

    def lrn():
        return LocalResponseNorm(4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)
    return [Conv2D(64, 5, padding="same", algorithm=algorithm, kernel_initializer=normal(5e-2)),
            ReLU(), MaxPool2D(3, 2, padding="same"), lrn(),
            Conv2D(64, 5, padding="same", algorithm=algorithm, kernel_initializer=normal(5e-2),
                   bias_initializer=bias(0.1)),
            ReLU(), lrn(), MaxPool2D(3, 2, padding="same"), Flatten(),
            Dense(384, kernel_initializer=normal(0.04), bias_initializer=bias(0.1),
                  weight_decay=0.004), ReLU(),
            Dense(192, kernel_initializer=normal(0.04), bias_initializer=bias(0.1),
                  weight_decay=0.004), ReLU(),
            Dense(classes, kernel_initializer=normal(1 / 192.0))]


def _keras(kernels, hidden, classes=10, algorithm="auto"):
    """[conv KxK 16 / 32 'same' + ReLU + 2x2 max-pool] x 2, sigmoid dense layers, dense."""
    layers = []
    for k, filters in zip(kernels, (16, 32)):
        layers += [Conv2D(filters, k, padding="same", algorithm=algorithm), ReLU(), MaxPool2D(2)]
    layers.append(Flatten())
    for units in hidden:
        layers += [Dense(units), Sigmoid()]
    return layers + [Dense(classes)]


def keras_deep_light(classes=10, algorithm="auto", **_):
    """Thin and deep: 3x3 convs with 2x2 stride-2 convs in place of pooling, a sigmoid dense
    layer: 57,122 parameters."""
    def conv(filters, k, stride=1):
        return [Conv2D(filters, k, stride=stride, padding="same", algorithm=algorithm), ReLU()]
    return [*conv(16, 3), *conv(16, 2, 2), *conv(32, 3), *conv(32, 2, 2), *conv(32, 3),
            Flatten(), Dense(24), Sigmoid(), Dense(classes)]


_MNIST = (1, 28, 28)
_KERAS_RUN = {"epochs": 50, "batch_size": 100, "lr": 0.05}
PRESETS = {
    "lab": Preset(lambda filters=16, units=128, classes=10, algorithm="auto":
                  lab_layers(filters, units, classes, algorithm),
                  "the lab CNN (width from --filters and --units)", _MNIST, {}),
    "tf-mnist-tutorial": Preset(tf_mnist_tutorial,
                                "TensorFlow's Layers tutorial for MNIST, dropout 0.4",
                                _MNIST, {"batch_size": 100, "lr": 0.001}),
    "cifar10-tutorial": Preset(cifar10_tutorial,
                               "TensorFlow's CIFAR-10 tutorial: LRN, 3x3/2 pools, weight decay",
                               (3, 24, 24),
                               {"dataset": "cifar10", "crop": 24, "augment": True,
                                "batch_size": 128, "lr": 0.1,
                                "lr_schedule": "staircase:0.1:350", "ema": 0.9999}),
    "keras-1": Preset(lambda classes=10, algorithm="auto", **_:
                      _keras((5, 3), (128,), classes, algorithm),
                      "Keras report model 1: 5x5 and 3x3 convs, sigmoid dense 128",
                      _MNIST, _KERAS_RUN),
    "keras-2": Preset(lambda classes=10, algorithm="auto", **_:
                      _keras((7, 5), (256, 128), classes, algorithm),
                      "Keras report model 2: 7x7 and 5x5 convs, sigmoid dense 256, 128",
                      _MNIST, _KERAS_RUN),
    "keras-3": Preset(lambda classes=10, algorithm="auto", **_:
                      _keras((5, 3), (256, 128), classes, algorithm),
                      "Keras report model 3: 5x5 and 3x3 convs, sigmoid dense 256, 128",
                      _MNIST, _KERAS_RUN),
    "keras-deep-light": Preset(keras_deep_light,
                               "Keras report's deep and light net: 2x2 stride-2 convs",
                               _MNIST, _KERAS_RUN),
}
