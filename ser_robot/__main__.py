"""``python -m ser_robot`` is the ``ser-robot`` command."""

import sys

from ser_robot.cli import main

sys.exit(main())
