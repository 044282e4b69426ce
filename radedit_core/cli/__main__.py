"""``python -m radedit_core.cli`` is the ``radedit`` command."""

import sys

from . import main

sys.exit(main())
