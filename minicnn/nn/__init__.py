"""The network: layers, the plan that runs them, the model, optimizers and the training loop,
ready-made models, the ``--arch`` grammar, the memory estimate and the model file."""
