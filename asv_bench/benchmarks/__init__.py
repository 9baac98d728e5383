"""asv benchmarks comparing numgru with PyTorch (see asv_bench/asv.conf.json).

``common`` builds the engines; ``gru`` holds the benchmark classes.
"""
