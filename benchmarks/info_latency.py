"""Wall time of ``redimnet info`` (stored table) against ``redimnet info --count`` (builds and counts).

    python benchmarks/info_latency.py [--rounds 5]

Each command runs in a fresh process, as a user types it; prints the median and range
of the wall times in seconds.  Compare the two figures of one run (the machine's load
changes from run to run).
"""

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "info (stored table)": ["info"],
    "info b2 (stored)": ["info", "b2"],
    "info b2 --count": ["info", "b2", "--count"],
}


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for label, argv in COMMANDS.items():
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "redimnet", *argv], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"{label:<22} median {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f})")


if __name__ == "__main__":
    main()
