"""Write ``src/ropescope/data/calibration.json``: what ``ropescope calibrate`` measures for every bound.

The audit prints each bound beside its measured false alarms and misses on the catalog; this file carries them
so a single audit need not recompute the calibration. Run from the repository root after changing the catalog
or a bound: ``python tools/build_calibration.py``. ``tests/test_calibrate.py`` checks the file against a fresh run.
"""

from __future__ import annotations

import json
from pathlib import Path

from ropescope.calibrate import calibrate, rates_document

TARGET = Path(__file__).resolve().parents[1] / "src" / "ropescope" / "data" / "calibration.json"

if __name__ == "__main__":
    document = rates_document(calibrate(sensitivity=False))
    rows = ",\n  ".join(json.dumps(row) for row in document.pop("scores"))
    head = json.dumps(document)[:-1]
    TARGET.write_text(f'{head}, "scores": [\n  {rows}\n]}}\n', encoding="utf-8")
    print(f"wrote {TARGET}")
