"""numgru.kernels: the compute. Pure functions on arrays, no Python objects.

Installed as ``numgru.kernels`` (see pyproject.toml); never import it as ``kernels``.
"""
