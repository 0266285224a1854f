"""``python -m randweights``: the same command line as the ``randweights`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
