"""`shopfloor serve` runs `served_app`: the app, in a process whose collector is tuned for a
long-running server. Checked in a child process, as the setting is process-wide."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import gc
from shopfloor.app import GC_THRESHOLDS, served_app
from shopfloor.config import Settings
before = gc.get_threshold()
app = served_app(Settings(database_url="sqlite:///unused.db"))
print(before, gc.get_threshold(), GC_THRESHOLDS, app.title)
"""


def test_served_app_raises_the_young_generation_threshold() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split(") ")
    before, after, wanted, title = out[0] + ")", out[1] + ")", out[2] + ")", out[3].strip()
    assert before == "(700, 10, 10)"  # CPython's default
    assert after == wanted == "(7000, 10, 100)"
    assert title == "shopfloor"
