"""``python -m p2pdm``: the same as the ``p2pdm`` command."""

import sys

from p2pdm.cli.main import main

sys.exit(main())
