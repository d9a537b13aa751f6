"""``python -m sk_gmvae``: the same as the ``sk-gmvae`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
