"""A stand-in for Colab's `google.colab` package, for testing the Colab path off Colab.

Put ``tests/colab_stub`` on ``PYTHONPATH``: its ``sitecustomize`` imports this package at start-up,
as Colab's kernel does, so ``"google.colab" in sys.modules`` is true. ``google`` stays a namespace
package (no ``google/__init__.py``), so ``google.protobuf`` (onnx) still imports.
"""

from google.colab import drive

__all__ = ["drive"]
