"""``python -m ser_robot.experiments PATH [--out DIR] [--workers N]``."""

import sys

from ser_robot.experiments.command import main

sys.exit(main())
