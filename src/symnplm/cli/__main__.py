"""``python -m symnplm.cli ...`` is ``symnplm ...``."""

import sys

from symnplm.cli import main

sys.exit(main())
