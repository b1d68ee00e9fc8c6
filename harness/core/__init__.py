"""The run core: configs, data, variants, preparation, models, optimizers, the training loops, checkpoints and run records."""
