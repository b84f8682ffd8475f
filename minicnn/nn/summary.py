"""The model's summary table, like Keras's ``model.summary()``."""
from .layers import Conv2D


def summary_text(model):
    """Layer, output shape, parameter count (state included, as Keras counts it) and the
    convolution algorithm of each layer, then the totals."""
    algorithm = {layer: step.algorithm for step in model.plan for layer in step.layers
                 if isinstance(layer, Conv2D)}
    rows = [(f"{layer.name} ({type(layer).__name__})", str((None,) + layer.output_shape),
             f"{layer.num_params() + layer.num_state():,}", algorithm.get(layer) or "")
            for layer in model.layers]
    heads = ("Layer (type)", "Output Shape", "Param #", "Algorithm")
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(heads)]

    def line(cells):
        return "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    rule = "=" * sum(widths)
    trainable, state = model.num_params(), int(model.flat_state.size)
    return "\n".join([
        f'Model: "sequential"  input {(None,) + model.input_shape}  backend {model.backend.name}'
        f"  dtype {model.dtype}  threads {model.threads}",
        rule, line(heads), rule, *(line(r) for r in rows), rule,
        f"Total params: {trainable + state:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {state:,}",
    ])
