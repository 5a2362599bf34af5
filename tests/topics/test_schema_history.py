"""Schema evolution: data written with any released version of a schema is still read.

The embedded default keeps its log across restarts and upgrades (`make run` on the same
data directory), so records written by an older TokEngine must stay readable: every
version of `avro/*.avsc` the repository ever had is kept in `avro/released/`, and a record
of each decodes with the current schema (new fields take their defaults).
"""

from __future__ import annotations

import io
import json
import subprocess

import fastavro
import pytest
from fastavro.utils import generate_many

from topics.codec import SingleObjectCodec
from topics.schemas import AVRO_DIR, SchemaStore, make_schema

STORE = SchemaStore()
RELEASED = sorted(
    (s for s in STORE.by_fingerprint.values() if STORE.current[s.name] is not s),
    key=lambda s: (s.name, s.fingerprint),
)


def single_object(schema, record: dict) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema.parsed, record)
    return b"\xc3\x01" + schema.fingerprint + body.getvalue()


@pytest.mark.parametrize("writer", RELEASED, ids=lambda s: f"{s.name}.{s.fingerprint.hex()}")
def test_a_record_of_a_released_schema_decodes_with_the_current_one(writer) -> None:
    codec = SingleObjectCodec(STORE)
    reader = STORE.current[writer.name]
    for record in generate_many(writer.parsed, 20):
        data = single_object(writer, record)
        written = fastavro.schemaless_reader(io.BytesIO(data[10:]), writer.parsed, None)
        decoded = codec.decode_schema(writer.name, data)
        assert set(decoded) == {field["name"] for field in reader.source["fields"]}
        assert holds(decoded, written)


def holds(decoded, written) -> bool:
    """Whether `decoded` has what `written` had (records may have gained fields)."""
    if isinstance(written, dict):
        return all(k in decoded and holds(decoded[k], v) for k, v in written.items())
    if isinstance(written, list):
        return len(decoded) == len(written) and all(map(holds, decoded, written))
    return decoded == written


def test_every_version_of_a_schema_in_the_repository_is_kept() -> None:
    root = AVRO_DIR.parent
    if not (root / ".git").exists():
        pytest.skip("not a git checkout: no history to compare with")
    missing = []
    for path in sorted(AVRO_DIR.glob("*.avsc")):
        relative = str(path.relative_to(root))
        log = ["git", "-C", str(root), "log", "--format=%H", "--", relative]
        for commit in subprocess.run(
            log, capture_output=True, text=True, check=True
        ).stdout.split():
            shown = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{relative}"],
                                   capture_output=True, text=True)  # fmt: skip
            if shown.returncode != 0:
                continue
            schema = make_schema(json.loads(shown.stdout))
            if schema.fingerprint not in STORE.by_fingerprint:
                missing.append(f"{schema.name}.{schema.fingerprint.hex()} ({commit[:8]})")
    assert not missing, f"add to avro/released/: {missing}"


def test_the_released_files_are_named_by_their_fingerprint() -> None:
    for path in sorted((AVRO_DIR / "released").glob("*.avsc")):
        schema = make_schema(json.loads(path.read_text()))
        assert path.name == f"{schema.name}.{schema.fingerprint.hex()}.avsc"
        assert STORE.current[schema.name].fingerprint != schema.fingerprint, path.name
