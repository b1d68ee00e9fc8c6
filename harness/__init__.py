"""Training harness behind the claims suite for Zhang et al. (ICLR 2017),
"Understanding deep learning requires rethinking generalization".

Importable and usable without pytest: `harness.train.fit(config)` makes one
run, `harness.store` keeps run records, `harness.theory` holds the
constructions that need no training loop.
"""

__version__ = "0.1.0"
