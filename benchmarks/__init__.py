"""Speed measurements and paper reproductions (not unit tests).

``python -m benchmarks`` (what ``make bench`` runs) times symnplm side by side with a
plain PyTorch baseline and prints a table; see :mod:`benchmarks.__main__`.
"""
