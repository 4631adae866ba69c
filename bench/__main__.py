"""`python -m bench SCENARIO [--quick] [options]`: run one load scenario (or `all`); see bench/README.md."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from bench.harness.runner import add_common_args, options_from_args
from bench.scenarios import SCENARIOS


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the scenario(s); exit 1 when a correctness check failed."""
    listing = "\n".join(f"  {name:10} {s.description}" for name, s in SCENARIOS.items())
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        epilog=f"scenarios:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"], help="what to measure")
    add_common_args(parser)
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    failed = []
    for name in names:
        scenario = SCENARIOS[name]
        options = options_from_args(args, scenario.default_clients, scenario.quick_clients)
        started = time.perf_counter()
        result = scenario.load()(options)
        print(f"{name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        if not result.ok:
            failed.append(name)
    if failed:
        print(f"correctness checks failed in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
