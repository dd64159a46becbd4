"""Wall time of the CLI's quick answers (target: well under 2 s), beside the interpreter's own start-up.

    .venv/bin/python bench/cli_startup.py [--runs 5]

Each command runs in a fresh interpreter (as a user's shell does); the median of the runs is reported.
`import torch` is timed too: what every quick command would pay if a heavy import crept back in.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
COMMANDS = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "python -c 'import torch' (what to avoid)": [sys.executable, "-c", "import torch"],
    "cosmo --help": [sys.executable, "-m", "cosmo", "--help"],
    "cosmo config configs/tiny-cpu.yaml": [sys.executable, "-m", "cosmo", "config", "configs/tiny-cpu.yaml"],
    "cosmo train --help": [sys.executable, "-m", "cosmo", "train", "--help"],
}


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    print(f"median of {runs} runs, target < {TARGET_S:.1f} s for the cosmo commands")
    for name, argv in COMMANDS.items():
        seconds = median_seconds(argv, runs)
        verdict = "" if not name.startswith("cosmo") else ("  ok" if seconds < TARGET_S else "  MISSED")
        print(f"{name:42s} {seconds:6.2f} s  {seconds / TARGET_S:5.2f}x target{verdict}")


if __name__ == "__main__":
    main()
