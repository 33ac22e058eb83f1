"""Coffea processors (installed as ``symnplm.processors``)."""
