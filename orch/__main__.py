"""`python -m orch ...` is the `orch` command."""

import sys

from orch.cli import main

sys.exit(main())
