"""Training harness behind the claims suite for Zhang et al. (ICLR 2017),
"Understanding deep learning requires rethinking generalization".

Importable and usable without pytest: `harness.core.train.fit(config)` makes one
run, `harness.core.store` keeps run records, `harness.theory` holds the
constructions that need no training loop.
"""

__version__ = "0.1.0"

# Bumped whenever a change alters what a run computes (data, variants,
# training, evaluation): it is part of every run key, so records made by the
# old code are never reused for the new.
RUN_SEMANTICS_VERSION = 2
