"""The claims suite: the pytest plugin, sessions of claim figures, their comparison and matrix, learning-rate tuning, the run plan."""
