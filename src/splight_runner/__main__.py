"""``python -m splight_runner``: the ``splight-runner`` command line."""

import sys

from splight_runner.cli import main

sys.exit(main())
