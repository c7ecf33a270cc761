"""Matplotlib for every plot of the project: the Agg backend, and saving so that the same data gives the same bytes.

PNG, SVG and PDF carry no software version or date (matplotlib's ``metadata`` set to ``None``) and SVG ids come
from a fixed salt, so a plot saved twice, or embedded twice in a report, is byte-identical.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any, BinaryIO

_METADATA: dict[str, dict[str, None]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), with a fixed SVG id salt."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "ropescope"
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, target: Path | BinaryIO, dpi: int) -> None:
    """Save ``figure`` to a file (format from its extension) or a binary stream (PNG), then close it."""
    fmt = target.suffix.lstrip(".").lower() if isinstance(target, Path) else "png"
    figure.savefig(target, dpi=dpi, format=fmt, metadata=_METADATA.get(fmt))
    pyplot().close(figure)


def png_data_uri(figure: Any, dpi: int) -> str:
    """``figure`` as a ``data:image/png;base64,…`` URI (closing it), for a page that loads nothing else."""
    buffer = io.BytesIO()
    save_figure(figure, buffer, dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
