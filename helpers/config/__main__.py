"""``python -m helpers.config``: write the training config of a preset (helpers.config.build)."""

import sys

from helpers.config.build import main

sys.exit(main())
