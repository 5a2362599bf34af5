"""Compiling and deploying the local ERC20 (`standins/contracts/TestToken.sol`).

Owns the offline compile with npm's `solc` (solc-js, installed in `.tools` by make) and the
deploy on a local node (anvil), for tests and the demo. A compile is cached by the
source's hash, so it runs once per source.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

from web3 import Web3

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path(__file__).with_name("contracts") / "TestToken.sol"
SOLCJS = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "solcjs"
CACHE = REPO_ROOT / ".tools" / "build"


def compile_token() -> tuple[list, str]:
    """(abi, bytecode) of TestToken."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    cached = CACHE / f"TestToken-{digest}.json"
    if not cached.exists():
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(
                [str(SOLCJS), "--bin", "--abi", "--optimize", "-o", out, str(SOURCE)],
                check=True,
                capture_output=True,
            )
            abi = next(Path(out).glob("*TestToken.abi")).read_text()
            bytecode = next(Path(out).glob("*TestToken.bin")).read_text()
        CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps({"abi": json.loads(abi), "bytecode": bytecode}))
    artifact = json.loads(cached.read_text())
    return artifact["abi"], artifact["bytecode"]


def deploy_token(w3: Web3, deployer: str, symbol: str, decimals: int, supply: int):
    """Deploy TestToken from an unlocked node account; returns the contract."""
    abi, bytecode = compile_token()
    factory = w3.eth.contract(abi=abi, bytecode=bytecode)
    tx_hash = factory.constructor(symbol, symbol, decimals, supply).transact({"from": deployer})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    return w3.eth.contract(address=receipt["contractAddress"], abi=abi)
