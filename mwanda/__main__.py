"""``python -m mwanda`` is the ``mwanda`` console script."""

import sys

from mwanda.cli import main

sys.exit(main())
