"""``python -m layoutopt``: the command line, as the ``layoutopt`` script runs it."""

from layoutopt.cli import app_main

if __name__ == "__main__":
    app_main()
