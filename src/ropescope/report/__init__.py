"""Rendering: Rich tables, JSON documents and matplotlib plots for each layer of the flow."""

from __future__ import annotations

from rich.console import Console


def terminal() -> Console:
    """The console every view prints to: the terminal's width, or 100 columns when output is piped."""
    console = Console()
    return console if console.is_terminal else Console(width=100)
