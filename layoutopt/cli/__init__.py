"""The command line: parse arguments, call the library, print.

``main(argv)`` runs one command and returns its exit code; ``app_main`` is the ``layoutopt``
script. The typer application is ``layoutopt.cli.app.app``.
"""

from layoutopt.cli.app import app_main, main

__all__ = ["app_main", "main"]
