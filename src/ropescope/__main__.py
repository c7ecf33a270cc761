"""``python -m ropescope`` runs the CLI."""

from ropescope.cli import main

main()
