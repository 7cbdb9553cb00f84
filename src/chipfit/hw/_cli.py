"""`chipfit hw ...` subcommands (list, show, calibrate)."""

import typer

hw_app = typer.Typer(no_args_is_help=True, add_completion=False)
