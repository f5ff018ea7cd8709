"""Subcommands of the ``trackprint`` CLI, one module each (see ``trackprint/cli.py``)."""
