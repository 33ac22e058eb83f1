"""``python -m symnplm.inference``: a calibrated two-sample test on toy samples (see ``--help``)."""

import sys

from symnplm.cli.test import main

sys.exit(main())
