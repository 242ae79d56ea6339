"""``python -m impasto`` runs the command line."""

import sys

from .console import main

sys.exit(main())
