"""`tokengine demo` (what `make demo` runs), with a shorter load phase: every check holds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(400)
def test_the_demo_runs_every_flow_and_every_check_holds(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGINE_")}
    env["TOKENGINE_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "tokengine", "demo", "--load", "300"],
        env=env,
        text=True,
        capture_output=True,
        timeout=380,
    )
    output = done.stdout
    assert done.returncode == 0, output[-4000:] + done.stderr[-2000:]
    assert "all checks hold" in output
    for expected in (
        "level 12 confirmations, credited at 12",
        "fails and is rolled back",
        "cross-chain",
        "300 requests decided",
        "SIGNIFICANT, payouts_suspended",
        "health 503",
        "safeguarding report",
        "verify-ledger (postgres): postgres:",
        "Postgres rows equal the topics",
        "the wallets hold what the ledger says (invariant 1)",
        "ethereum:wallets:TOK",
    ):
        assert expected in output, expected
    assert "✗" not in output
