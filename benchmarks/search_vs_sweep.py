"""The merge pipeline against the λ-sweep on every task: the study's runner under the name the
benchmarks use (`studies/search_vs_sweep/` holds the code, its README the results and commands).

    .venv/bin/python benchmarks/search_vs_sweep.py --seeds 5 --json out/search_vs_sweep.json --plot out/anytime
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    study = Path(__file__).resolve().parents[1] / "studies" / "search_vs_sweep" / "search_vs_sweep.py"
    sys.argv[0] = str(study)
    runpy.run_path(str(study), run_name="__main__")
