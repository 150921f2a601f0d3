"""``python -m mig_gym`` runs the command line."""

import sys

from mig_gym.cli import main

sys.exit(main())
