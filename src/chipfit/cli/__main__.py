"""``python -m chipfit.cli ...`` (as torchrun starts it)."""

from chipfit.cli import main

main()
