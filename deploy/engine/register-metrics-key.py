"""The `metrics-key` job of docker-compose.kafka.yml: puts Prometheus's API key on the
api-keys topic, so that the workers' `/metrics` (OPERATOR or AUDITOR keys only) answers it.

`make deploy-secrets` made the key (an AUDITOR key, `deploy/make-secrets.py`) and its
ApiKey record on the host; this job, inside the engine image with the engine's settings,
publishes that record signed as the operator unless the topic has it already
(`topics.operator_records.republish_key`): every `docker compose up` may run it again.

Usage: python register-metrics-key.py KEY_FILE RECORD_FILE
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from core.config import Settings
from core.secrets import install_log_redaction, read_secret_file, settings_secrets
from topics.codec import make_codec
from topics.operator_records import republish_key


def main(key_file: Path, record_file: Path) -> None:
    settings = Settings.from_env()
    token = read_secret_file(key_file)
    install_log_redaction(settings_secrets(settings) | {token}, settings.log_level)
    record = json.loads(read_secret_file(record_file))
    record["changed_at"] = datetime.fromisoformat(record["changed_at"])
    codec = make_codec(settings.schema_registry, settings.topic_prefix)
    republish_key(settings, codec, token, record)
    print(f"metrics key {record['key_id']} ({record['role']}) is on the api-keys topic")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.rsplit("Usage: ", 1)[1])
    main(Path(sys.argv[1]), Path(sys.argv[2]))
