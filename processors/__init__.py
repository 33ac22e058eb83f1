"""Coffea processors (installed as ``symnplm.processors``).

- :mod:`~symnplm.processors.emu`: :class:`~symnplm.processors.emu.EMuProcessor`, the e-mu /
  mu-e selection with features, variations and efficiency weights;
- :mod:`~symnplm.processors.runner`: :func:`~symnplm.processors.runner.process_fileset` runs it
  over a fileset with the iterative, futures or dask executor and writes parquet + hist;
- :mod:`~symnplm.processors.inputs`: filesets, input checks, sums of generator weights;
- :mod:`~symnplm.processors.histograms`: the booked ``hist`` objects;
- :mod:`~symnplm.processors.efficiency_map`: ε_μ/ε_e measured from a processor output;
- :mod:`~symnplm.processors.cli`: ``symnplm process``.
"""

__all__: list[str] = []
