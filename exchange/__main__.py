"""``python -m exchange`` is the ``exchange`` command."""

import sys

from exchange.cli import main

sys.exit(main())
