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


def start_up(data_dir: Path) -> tuple[subprocess.Popen, list[str], dict[str, str]]:
    """`tokengine up` on its own data directory and a free API port, read until its
    `ready:` (or `error`) line: (the process, its lines so far, its environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGINE_")}
    env.update(TOKENGINE_DATA_DIR=str(data_dir), TOKENGINE_API_PORT="0")
    up = subprocess.Popen(
        [sys.executable, "-m", "tokengine", "up"],
        env=env,
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
