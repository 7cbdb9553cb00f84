"""Imports every model family so their constructors register. Add a family here when you add its file."""

from chipfit.models import families  # noqa: F401
