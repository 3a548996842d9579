"""``python -m tsne_dist`` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
