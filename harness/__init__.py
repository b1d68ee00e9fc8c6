"""Training harness behind the claims suite for Zhang et al. (ICLR 2017),
"Understanding deep learning requires rethinking generalization".

Importable and usable without pytest: `harness.core.train.fit(config)` makes one
run, `harness.core.record` defines its record (and RUN_SEMANTICS_VERSION),
`harness.core.store` keeps records, `harness.theory` holds the constructions
that need no training loop. Wings: `harness.core` (the run core),
`harness.suite` (the claims suite), `harness.report`, `harness.imagenet`,
`harness.theory`; tests/test_layout.py keeps their imports one way.
"""

__version__ = "0.1.0"
