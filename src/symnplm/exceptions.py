"""The exceptions symnplm raises for bad input or unfinished work.

Every error caused by a user's input is a ``ValueError`` (or ``OSError`` for damaged
files) whose message names the file, key, branch or value; the command line prints
that message as one line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "CampaignIncomplete",
    "ConfigError",
    "DamagedFileError",
    "EmptySelectionError",
    "InputError",
]


class InputError(ValueError):
    """Bad input; the message names the file, tree, branch or metadata key."""


class DamagedFileError(OSError):
    """Data of a file that opened fine could not be read (e.g. a corrupt basket)."""


class ConfigError(ValueError):
    """A run description is invalid; the message names the file and the key."""


class EmptySelectionError(ValueError):
    """A requested dataset / category / variation has no selected event."""


class CampaignIncomplete(RuntimeError):
    """The campaign stopped (``max_batches``) before every batch was computed."""
