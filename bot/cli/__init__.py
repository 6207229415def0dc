"""The ``autocircle`` command line: one Typer app made of sub-apps, one module each."""
