"""Figure entries as a claims session file holds them, for the tests of sessions, matrices and exports."""


def figure(claim, text, measured, holds=True, optimizer="paper_sgd", test=None, **context):
    """One declared figure (`harness.suite.summary.figure_entry`'s keys); `context` adds the claim's extra fields."""
    test = test or f"claims/test_x.py::test_{claim.lower()}_x[mlp_1x512-{optimizer}]"
    return {
        "claim": claim,
        "figure": text,
        "measured": measured,
        "threshold": "t",
        "holds": holds,
        "optimizer": optimizer,
        "test": test,
        **context,
    }
