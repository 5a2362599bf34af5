"""Processes as Linux `/proc` shows them: what a test or bench started, and whether it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


STARTED_DATA_DIRS: set[Path] = set()  # what `forget_started_data` removes at the end


def forget_started_data() -> None:
    """Remove what runs of `up` kept outside their data directories (the Postgres data of
    a root run whose DATA_DIR the postgres user cannot reach: pytest's 0700 tmp_path)."""
    from tokengine.services import forget_postgres_elsewhere
    from tokengine.up import SERVICES_DIR

    for data_dir in STARTED_DATA_DIRS:
        forget_postgres_elsewhere(data_dir / SERVICES_DIR)


def start_up(
    data_dir: Path, cwd: Path | None = None
) -> tuple[subprocess.Popen, list[str], dict[str, str]]:
    """`tokengine up` on its own data directory (relative to `cwd` when that is given, as
    `make run`'s ./var is) and a free API port, read until its `ready:` (or `error`) line:
    (the process, its lines so far, its environment)."""
    STARTED_DATA_DIRS.add((cwd or Path.cwd()) / data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGINE_")}
    env.update(TOKENGINE_DATA_DIR=str(data_dir), TOKENGINE_API_PORT="0")
    up = subprocess.Popen(
        [sys.executable, "-m", "tokengine", "up"],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = []
    for line in up.stdout:
        lines.append(line.rstrip())
        if line.startswith(("ready:", "error")):
            break
    return up, lines, env
