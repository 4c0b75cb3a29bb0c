"""Imported at start-up when ``tests/colab_stub`` is on PYTHONPATH: the process looks like
Colab's (``google.colab`` already imported)."""

import google.colab  # noqa: F401
