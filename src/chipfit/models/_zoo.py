"""Imports every model family so their constructors register. Add a family here when you add its file."""

from chipfit.models import convnext, hornet, mobilenetv2, quadranet, shufflenetv2, swin  # noqa: F401
