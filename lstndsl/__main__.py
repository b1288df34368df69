"""`python -m lstndsl` is the `lstndsl` command."""

import sys

from lstndsl.cli import main

sys.exit(main())
