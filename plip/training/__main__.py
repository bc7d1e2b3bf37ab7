"""``python -m plip.training TASK ...`` (what ``torchrun -m plip.training`` runs)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
