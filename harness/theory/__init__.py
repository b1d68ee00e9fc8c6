"""The paper's theory claims as plain functions, no training loop needed.

- expressivity: Theorem 1's 2n + d network and its depth-k form (C8)
- min_norm: SGD on least squares converges to the minimum-norm solution (C9)
- kernels: Gaussian-kernel interpolation without regularisation (C10, C11)
- rademacher: empirical Rademacher complexity by fitting random signs (C12)
- bench: time and residual of the construction at large n
"""
