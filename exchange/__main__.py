"""``python -m exchange`` is the ``exchange`` command."""

import sys

from exchange.cli import main

if __name__ == "__main__":  # not when a helper process (forkserver) imports it
    sys.exit(main())
