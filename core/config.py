"""Settings of one TokEngine process, read from the environment once.

Owns every `TOKENGINE_*` variable the engine reads; nothing else calls `os.environ`
for configuration. `ENVIRONMENT_VARIABLES` is the list the docker-compose test checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

ENVIRONMENT_VARIABLES: dict[str, str] = {
    "TOKENGINE_KAFKA": "bootstrap servers (host:port,...); unset: start the embedded tansu broker",
    "TOKENGINE_DATABASE_URL": "Postgres URL; unset: start an embedded Postgres",
    "TOKENGINE_ETH_RPC": "Ethereum JSON-RPC URL; unset: start a local anvil node",
    "TOKENGINE_BTC_RPC": "Bitcoin JSON-RPC URL (http://user:pass@host:port); unset: a regtest node",
    "TOKENGINE_SCHEMA_REGISTRY": "Confluent schema registry URL; set: Confluent wire format",
    "TOKENGINE_TOPIC_PREFIX": "prefix of every topic name (default 'tokengine.')",
    "TOKENGINE_APP_ID": "Faust application id / consumer group prefix (default 'tokengine')",
    "TOKENGINE_API_PORT": "HTTP API port of the worker (default 6066; 0 picks a free port)",
    "TOKENGINE_DATA_DIR": "directory for local state (default ./var)",
    "TOKENGINE_PROCESSING_GUARANTEE": "at_least_once (default) or exactly_once (real Kafka only)",
    "TOKENGINE_ASSETS_FILE": "asset configuration (TOML); default: core/assets.toml",
    "TOKENGINE_WORKERS": "number of Faust workers `up` starts (default 1)",
    "TOKENGINE_LOG_LEVEL": "worker log level: crit, error, warn (default), info, debug",
    "TOKENGINE_BANK_API": "intraday bank-balance API base URL (tier 2); unset: on demand only",
    "TOKENGINE_INTRADAY_INTERVAL_S": "seconds between intraday checks (default 900 = 15 min)",
    "TOKENGINE_ETH_KEYSTORE": "keystore JSON of the Ethereum payout key; unset: no ETH payouts",
    "TOKENGINE_ETH_KEYSTORE_PASSWORD": "password of that keystore (a secret: never logged)",
    "TOKENGINE_ETH_START_BLOCK": "first block the Ethereum watcher reads (default 0)",
    "TOKENGINE_BANK_DROP_DIR": "directory watched for camt files (default DATA_DIR/bank-inbox)",
    "TOKENGINE_BTC_PAYOUT_KEY_FILE": "file holding the Bitcoin payout key (WIF, a secret: never "
    "logged); unset: no BTC payouts",
    "TOKENGINE_BTC_FEE_RATE": "Bitcoin payout fee rate in satoshi per byte (default 2)",
}

# Read only when the engine starts a service itself (not in a deployment).
EMBEDDED_ONLY_VARIABLES: dict[str, str] = {
    "TOKENGINE_ANVIL_BIN": "path of the anvil binary (default: .tools from npm, then PATH)",
}


@dataclass(frozen=True)
class Settings:
    kafka: str | None
    database_url: str | None
    eth_rpc: str | None
    btc_rpc: str | None
    schema_registry: str | None
    topic_prefix: str
    app_id: str
    api_port: int
    data_dir: Path
    processing_guarantee: str
    assets_file: Path
    workers: int
    log_level: str = "warn"
    bank_api: str | None = None
    intraday_interval_s: float = 900.0
    bank_drop_dir: Path | None = None
    eth_keystore: Path | None = None
    eth_keystore_password: str = field(default="", repr=False)
    eth_start_block: int = 0
    btc_payout_key_file: Path | None = None
    btc_fee_rate: int = 2

    @property
    def bank_inbox(self) -> Path:
        return self.bank_drop_dir or self.data_dir / "bank-inbox"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        guarantee = env.get("TOKENGINE_PROCESSING_GUARANTEE", "at_least_once")
        if guarantee not in ("at_least_once", "exactly_once"):
            raise ValueError(f"TOKENGINE_PROCESSING_GUARANTEE: unknown value {guarantee!r}")
        return cls(
            kafka=env.get("TOKENGINE_KAFKA") or None,
            database_url=env.get("TOKENGINE_DATABASE_URL") or None,
            eth_rpc=env.get("TOKENGINE_ETH_RPC") or None,
            btc_rpc=env.get("TOKENGINE_BTC_RPC") or None,
            schema_registry=env.get("TOKENGINE_SCHEMA_REGISTRY") or None,
            topic_prefix=env.get("TOKENGINE_TOPIC_PREFIX", "tokengine."),
            app_id=env.get("TOKENGINE_APP_ID", "tokengine"),
            api_port=int(env.get("TOKENGINE_API_PORT", "6066")),
            data_dir=Path(env.get("TOKENGINE_DATA_DIR", "var")),
            processing_guarantee=guarantee,
            assets_file=Path(
                env.get("TOKENGINE_ASSETS_FILE") or Path(__file__).with_name("assets.toml")
            ),
            workers=int(env.get("TOKENGINE_WORKERS", "1")),
            log_level=env.get("TOKENGINE_LOG_LEVEL", "warn"),
            bank_api=env.get("TOKENGINE_BANK_API") or None,
            intraday_interval_s=float(env.get("TOKENGINE_INTRADAY_INTERVAL_S", "900")),
            eth_keystore=Path(env["TOKENGINE_ETH_KEYSTORE"])
            if env.get("TOKENGINE_ETH_KEYSTORE")
            else None,
            eth_keystore_password=env.get("TOKENGINE_ETH_KEYSTORE_PASSWORD", ""),
            eth_start_block=int(env.get("TOKENGINE_ETH_START_BLOCK", "0")),
            bank_drop_dir=Path(env["TOKENGINE_BANK_DROP_DIR"])
            if env.get("TOKENGINE_BANK_DROP_DIR")
            else None,
            btc_payout_key_file=Path(env["TOKENGINE_BTC_PAYOUT_KEY_FILE"])
            if env.get("TOKENGINE_BTC_PAYOUT_KEY_FILE")
            else None,
            btc_fee_rate=int(env.get("TOKENGINE_BTC_FEE_RATE", "2")),
        )

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)

    def as_environ(self) -> dict[str, str]:
        """The variables a child process needs to see these same settings."""
        pairs = {
            "TOKENGINE_KAFKA": self.kafka,
            "TOKENGINE_DATABASE_URL": self.database_url,
            "TOKENGINE_ETH_RPC": self.eth_rpc,
            "TOKENGINE_BTC_RPC": self.btc_rpc,
            "TOKENGINE_SCHEMA_REGISTRY": self.schema_registry,
            "TOKENGINE_TOPIC_PREFIX": self.topic_prefix,
            "TOKENGINE_APP_ID": self.app_id,
            "TOKENGINE_API_PORT": str(self.api_port),
            "TOKENGINE_DATA_DIR": str(self.data_dir),
            "TOKENGINE_PROCESSING_GUARANTEE": self.processing_guarantee,
            "TOKENGINE_ASSETS_FILE": str(self.assets_file),
            "TOKENGINE_WORKERS": str(self.workers),
            "TOKENGINE_LOG_LEVEL": self.log_level,
            "TOKENGINE_BANK_API": self.bank_api,
            "TOKENGINE_INTRADAY_INTERVAL_S": str(self.intraday_interval_s),
            "TOKENGINE_ETH_KEYSTORE": None if self.eth_keystore is None else str(self.eth_keystore),
            "TOKENGINE_ETH_KEYSTORE_PASSWORD": self.eth_keystore_password or None,
            "TOKENGINE_ETH_START_BLOCK": str(self.eth_start_block),
            "TOKENGINE_BANK_DROP_DIR": None
            if self.bank_drop_dir is None
            else str(self.bank_drop_dir),
            "TOKENGINE_BTC_PAYOUT_KEY_FILE": None
            if self.btc_payout_key_file is None
            else str(self.btc_payout_key_file),
            "TOKENGINE_BTC_FEE_RATE": str(self.btc_fee_rate),
        }
        return {name: value for name, value in pairs.items() if value is not None}
