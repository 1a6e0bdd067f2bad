"""``python -m tidal.bench``: see ``tidal.bench`` and ``--help``."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
