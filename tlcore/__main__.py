"""Entry point for `python -m tlcore`."""

import sys

from tlcore.cli import main

sys.exit(main())
