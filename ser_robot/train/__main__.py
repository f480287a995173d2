"""``python -m ser_robot.train`` (also under ``torchrun ... -m ser_robot.train``)."""

import sys

from ser_robot.train.command import main

sys.exit(main())
