"""Scenarios, one module each with `DESCRIPTION`, `DEFAULT_CLIENTS` and `run(options) -> ScenarioResult`.

`SCENARIOS` maps the command-line name to the module, imported only when that scenario runs.
"""

from __future__ import annotations

__all__ = ["SCENARIOS"]

SCENARIOS: dict[str, str] = {
    "health": "bench.scenarios.health",
}
