"""``python -m helpers.onnx``: export, verify and report (see helpers.onnx.export.main)."""

import sys

from helpers.onnx.export import main

sys.exit(main())
