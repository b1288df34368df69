"""One module per `lstndsl` subcommand (found by lstndsl/cli.py).

A command module defines `HELP` (one line), `ORDER` (its place in `--help`), `add_arguments(p)`
and `run(args) -> int`, and imports heavy packages (torch, timm) inside `run` only.
"""
