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
    "TOKENGINE_BTC_RPC": "Bitcoin JSON-RPC URL (http://host:port, or http://user:pass@host:port "
    "for an external node); unset: a regtest node",
    "TOKENGINE_BTC_RPC_COOKIE_FILE": "file holding the Bitcoin RPC credentials as user:password "
    "(bitcoind's .cookie); set: used instead of the URL's",
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
    "TOKENGINE_ETH_KEYSTORE_PASSWORD": "password of that keystore (a secret: never logged); "
    "prefer TOKENGINE_ETH_KEYSTORE_PASSWORD_FILE",
    "TOKENGINE_ETH_KEYSTORE_PASSWORD_FILE": "file (mode 0600) holding that password; set: used "
    "instead of TOKENGINE_ETH_KEYSTORE_PASSWORD",
    "TOKENGINE_ETH_START_BLOCK": "first block the Ethereum watcher reads (default 0)",
    "TOKENGINE_BANK_DROP_DIR": "directory watched for camt files (default DATA_DIR/bank-inbox)",
    "TOKENGINE_BTC_PAYOUT_KEY_FILE": "file holding the Bitcoin payout key (WIF, a secret: never "
    "logged); unset: no BTC payouts",
    "TOKENGINE_ETH_SWEEP_KEY_FILE": "file (mode 0600) holding the extended private key of the "
    "Ethereum deposit pool's xpub (a secret: never logged); unset: deposits are not swept",
    "TOKENGINE_BTC_FEE_RATE": "Bitcoin payout fee rate in satoshi per byte (default 2)",
    "TOKENGINE_RECORD_KEYS_FILE": "record-authentication keys (JSON, mode 0600; default "
    "DATA_DIR/secrets/record-keys.json, made at first use): only engine processes read it",
    "TOKENGINE_API_ALLOWED_HOSTS": "Host names the API answers (default 127.0.0.1,localhost,"
    "::1; any port)",
    "TOKENGINE_API_ALLOWED_ORIGINS": "browser Origins allowed to call the API (default none)",
    "TOKENGINE_API_RATE_PER_S": "requests per second per API key (default 100, burst 2x)",
    "TOKENGINE_METRICS_OPEN": "1: /metrics without a key (default: an operator or auditor key)",
    "TOKENGINE_API_KEY_FILE": "file holding the API key the CLI and demo use to call the API",
    "TOKENGINE_API_BIND": "address the HTTP API listens on (default 127.0.0.1; 0.0.0.0 in a "
    "container)",
    "TOKENGINE_METRICS_PORT": "port of /metrics for the sink and the connectors (default 0: "
    "not served; workers serve it on the API port)",
    "TOKENGINE_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL or SSL",
    "TOKENGINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512 (default) or SCRAM-SHA-256",
    "TOKENGINE_KAFKA_SASL_USERNAME": "the Kafka user this process authenticates as",
    "TOKENGINE_KAFKA_SASL_PASSWORD_FILE": "file (mode 0600) holding that user's password",
    "TOKENGINE_KAFKA_CA_FILE": "CA certificate (PEM) that signed the brokers' certificates",
    "TOKENGINE_TOPIC_REPLICATION_FACTOR": "replicas of every topic created (default 1; 3 on a "
    "cluster)",
    "TOKENGINE_TOPIC_MIN_INSYNC_REPLICAS": "min.insync.replicas of every topic created "
    "(default 1; 2 on a cluster, with acks=all)",
}

# Read only when the engine starts a service itself (not in a deployment).
EMBEDDED_ONLY_VARIABLES: dict[str, str] = {
    "TOKENGINE_ANVIL_BIN": "path of the anvil binary (default: .tools from npm, then PATH)",
}


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")


@dataclass(frozen=True)
class Settings:
    kafka: str | None
    database_url: str | None = field(repr=False)
    eth_rpc: str | None
    btc_rpc: str | None = field(repr=False)
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
    eth_sweep_key_file: Path | None = None
    btc_fee_rate: int = 2
    btc_rpc_cookie_file: Path | None = None
    eth_keystore_password_file: Path | None = None
    record_keys_file: Path | None = None
    api_allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    api_allowed_origins: tuple[str, ...] = ()
    api_rate_per_s: float = 100.0
    metrics_open: bool = False
    api_key_file: Path | None = None
    api_bind: str = "127.0.0.1"
    metrics_port: int = 0
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password_file: Path | None = None
    kafka_ca_file: Path | None = None
    topic_replication_factor: int = 1
    topic_min_insync_replicas: int = 1

    @property
    def record_keys_path(self) -> Path:
        return self.record_keys_file or self.data_dir / "secrets" / "record-keys.json"

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
            eth_sweep_key_file=_path_or_none(env.get("TOKENGINE_ETH_SWEEP_KEY_FILE")),
            btc_fee_rate=int(env.get("TOKENGINE_BTC_FEE_RATE", "2")),
            btc_rpc_cookie_file=_path_or_none(env.get("TOKENGINE_BTC_RPC_COOKIE_FILE")),
            eth_keystore_password_file=_path_or_none(
                env.get("TOKENGINE_ETH_KEYSTORE_PASSWORD_FILE")
            ),
            record_keys_file=_path_or_none(env.get("TOKENGINE_RECORD_KEYS_FILE")),
            api_allowed_hosts=_names(env, "TOKENGINE_API_ALLOWED_HOSTS")
            or ("127.0.0.1", "localhost", "::1"),
            api_allowed_origins=_names(env, "TOKENGINE_API_ALLOWED_ORIGINS"),
            api_rate_per_s=float(env.get("TOKENGINE_API_RATE_PER_S", "100")),
            metrics_open=env.get("TOKENGINE_METRICS_OPEN", "") in ("1", "true", "yes"),
            api_key_file=_path_or_none(env.get("TOKENGINE_API_KEY_FILE")),
            api_bind=env.get("TOKENGINE_API_BIND") or "127.0.0.1",
            metrics_port=int(env.get("TOKENGINE_METRICS_PORT") or "0"),
            kafka_security_protocol=_one_of(
                env, "TOKENGINE_KAFKA_SECURITY_PROTOCOL", KAFKA_SECURITY_PROTOCOLS
            ),
            kafka_sasl_mechanism=_one_of(env, "TOKENGINE_KAFKA_SASL_MECHANISM", SASL_MECHANISMS),
            kafka_sasl_username=env.get("TOKENGINE_KAFKA_SASL_USERNAME") or None,
            kafka_sasl_password_file=_path_or_none(env.get("TOKENGINE_KAFKA_SASL_PASSWORD_FILE")),
            kafka_ca_file=_path_or_none(env.get("TOKENGINE_KAFKA_CA_FILE")),
            topic_replication_factor=_positive(env, "TOKENGINE_TOPIC_REPLICATION_FACTOR"),
            topic_min_insync_replicas=_positive(env, "TOKENGINE_TOPIC_MIN_INSYNC_REPLICAS"),
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
            # the password itself only when no file holds it (a file is never in an environ)
            "TOKENGINE_ETH_KEYSTORE_PASSWORD": None
            if self.eth_keystore_password_file is not None
            else self.eth_keystore_password or None,
            "TOKENGINE_ETH_KEYSTORE_PASSWORD_FILE": _str_or_none(self.eth_keystore_password_file),
            "TOKENGINE_ETH_START_BLOCK": str(self.eth_start_block),
            "TOKENGINE_BANK_DROP_DIR": None
            if self.bank_drop_dir is None
            else str(self.bank_drop_dir),
            "TOKENGINE_BTC_PAYOUT_KEY_FILE": None
            if self.btc_payout_key_file is None
            else str(self.btc_payout_key_file),
            "TOKENGINE_ETH_SWEEP_KEY_FILE": _str_or_none(self.eth_sweep_key_file),
            "TOKENGINE_BTC_FEE_RATE": str(self.btc_fee_rate),
            "TOKENGINE_BTC_RPC_COOKIE_FILE": _str_or_none(self.btc_rpc_cookie_file),
            "TOKENGINE_RECORD_KEYS_FILE": str(self.record_keys_path),
            "TOKENGINE_API_ALLOWED_HOSTS": ",".join(self.api_allowed_hosts),
            "TOKENGINE_API_ALLOWED_ORIGINS": ",".join(self.api_allowed_origins) or None,
            "TOKENGINE_API_RATE_PER_S": str(self.api_rate_per_s),
            "TOKENGINE_METRICS_OPEN": "1" if self.metrics_open else None,
            "TOKENGINE_API_KEY_FILE": _str_or_none(self.api_key_file),
            "TOKENGINE_API_BIND": self.api_bind,
            "TOKENGINE_METRICS_PORT": str(self.metrics_port),
            "TOKENGINE_KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
            "TOKENGINE_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "TOKENGINE_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "TOKENGINE_KAFKA_SASL_PASSWORD_FILE": _str_or_none(self.kafka_sasl_password_file),
            "TOKENGINE_KAFKA_CA_FILE": _str_or_none(self.kafka_ca_file),
            "TOKENGINE_TOPIC_REPLICATION_FACTOR": str(self.topic_replication_factor),
            "TOKENGINE_TOPIC_MIN_INSYNC_REPLICAS": str(self.topic_min_insync_replicas),
        }
        return {name: value for name, value in pairs.items() if value is not None}

    def eth_keystore_secret(self) -> str:
        """The keystore's password: from its file when one is set, else the variable's."""
        if self.eth_keystore_password_file is not None:
            from core.secrets import read_secret_file

            return read_secret_file(self.eth_keystore_password_file)
        return self.eth_keystore_password


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


def _str_or_none(value: Path | None) -> str | None:
    return None if value is None else str(value)


def _names(env: dict[str, str] | os._Environ, name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _one_of(env: dict[str, str] | os._Environ, name: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or allowed[0]
    if value not in allowed:
        raise ValueError(f"{name}: unknown value {value!r} (one of {', '.join(allowed)})")
    return value


def _positive(env: dict[str, str] | os._Environ, name: str) -> int:
    text = env.get(name) or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}: a whole number of at least 1, not {text!r}")
    return int(text)
