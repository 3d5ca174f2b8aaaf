"""`python -m metadata` runs the `metadata` command."""

import sys

from metadata.cli import main

sys.exit(main())
