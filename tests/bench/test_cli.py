"""`python -m bench health` end to end: a real node and the baseline, a short run, table and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness.report import RESULTS_DIR

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_health_scenario_measures_node_and_baseline_and_writes_json(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench", "health", "--quick", "--seconds", "1", "--warmup", "0",
            "--clients", "4", "--no-wrk", "--no-plots", "--out", str(tmp_path),
            "--node-env", "ORCH_SECURITY__BCRYPT_COST=10"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== health (quick) ==" in done.stdout
    [path] = tmp_path.glob("health-quick-*.json")
    doc = json.loads(path.read_text())
    rows = {row["target"]: row for row in doc["summary"]}
    assert set(rows) == {"orch", "baseline"}
    assert rows["orch"]["ops"] > 0 and rows["baseline"]["ops"] > 0
    assert rows["orch"]["errors"] == 0
    assert rows["orch"]["ratio"] == pytest.approx(rows["orch"]["rps"] / rows["baseline"]["rps"], rel=1e-3)
    assert rows["orch"]["server_rss_peak_mb"] > 10
    assert doc["ok"] is True
    assert {c["name"] for c in doc["checks"]} >= {"no failed requests", "node exits cleanly on SIGTERM"}
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["packages"]["trio"]


def test_results_dir_is_gitignored() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(RESULTS_DIR / "x.json")], cwd=REPO, check=False, timeout=10
    )
    assert ignored.returncode == 0
