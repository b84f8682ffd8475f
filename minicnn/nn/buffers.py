"""Flat buffers: every parameter of a model in one array, and the views each layer sees.

An optimizer update, a gradient sum over shards or an all-reduce over
processes is then one call over one array.  A ``FlatLayout`` records where
each (layer, name) lives; ``views(flat)`` gives {layer: {name: view}} into
any array of the layout's size (parameters, gradients, optimizer state, or
the non-trainable state of batch norm, which has a layout of its own).
"""
import numpy as np


class FlatLayout:
    def __init__(self, layers, values):
        """``values``: one {name: host array} per layer (its initial parameters or state)."""
        self.layers = list(layers)
        self.slots, offset = [], 0          # (layer, name, start, shape)
        for layer, arrays in zip(self.layers, values):
            for name, value in arrays.items():
                self.slots.append((layer, name, offset, value.shape))
                offset += value.size
        self.size = offset
        self.initial = np.zeros(offset)
        for (_, _, start, _), value in zip(self.slots, (v for d in values for v in d.values())):
            self.initial[start:start + value.size] = value.ravel()

    def views(self, flat):
        """{layer: {name: view of flat}} for every layer (empty dicts for layers without any)."""
        views = {layer: {} for layer in self.layers}
        for layer, name, start, shape in self.slots:
            views[layer][name] = flat[start:start + int(np.prod(shape))].reshape(shape)
        return views

    def named(self, flat):
        """[(layer.name + "." + name, view)] in layout order."""
        return [(f"{layer.name}.{name}", flat[start:start + int(np.prod(shape))].reshape(shape))
                for layer, name, start, shape in self.slots]
