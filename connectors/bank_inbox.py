"""The bank drop directory: camt files (or JSON notifications) put there are published.

The convention for writers: write the file under a name the sweeper ignores (starting
with `.`, or not ending in `.xml` / `.json`, e.g. `statement.xml.part`), then rename it to
its final name in the same directory. The rename is atomic, so the sweeper never sees a
file half written; a file whose last change is younger than `SETTLE_S` is left for the
next sweep besides, for writers that do not rename.

Owns the file lifecycle: a file is claimed by an atomic rename into `.claimed/` (so two
workers sweeping one directory never both take it), read (regular files only: a link or
anything else is refused unread, opened without following links; at most
`MAX_FILE_BYTES`), submitted through the bank connector, then moved to `processed/` or,
when it cannot be used, to `rejected/` with a `.error.txt` beside it naming the reason (a
dead letter records it too, with a bounded excerpt: `topics.dead_letters.excerpt`). A
claimed file left behind by a worker that died is taken back after `STALE_CLAIM_S`
(submitting it again publishes nothing twice: the connector dedupes by message id).
Nothing a file holds can stop the sweep: each file's failure is its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from pathlib import Path

from connectors.bank import BankConnector, Submission
from core.camt import CamtError
from core.fields import FieldError, load_json
from core.reasons import Reason

log = logging.getLogger(__name__)

SUFFIXES = (".xml", ".json")
MAX_FILE_BYTES = 4 * 1024 * 1024
SETTLE_S = 1.0  # a file changed more recently is left for the next sweep
STALE_CLAIM_S = 60.0  # a claim this old belongs to a worker that died (a file takes < 1 s)
FOLDERS = (".claimed", "processed", "rejected")


def sweep(
    directory: Path,
    connector: BankConnector,
    settle_s: float = SETTLE_S,
    stale_claim_s: float = STALE_CLAIM_S,
) -> list[tuple[str, str]]:
    """Publish every waiting file; returns (file name, outcome) pairs."""
    for folder in FOLDERS:
        (directory / folder).mkdir(parents=True, exist_ok=True)
    recover_stale_claims(directory, stale_claim_s)
    outcomes = []
    now = time.time()
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in SUFFIXES:
            continue
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode) or now - info.st_mtime < settle_s:
            continue
        claimed = directory / ".claimed" / path.name
        try:
            path.rename(claimed)  # a link is moved as a link, never followed
        except FileNotFoundError:
            continue  # another worker took it
        outcomes.append((path.name, handle(directory, claimed, connector)))
    return outcomes


def handle(directory: Path, claimed: Path, connector: BankConnector) -> str:
    source = f"bank-inbox:{claimed.name}"
    try:
        submission = submit_file(claimed, connector, source)
    except CamtError as error:
        reject(directory, claimed, error)
        return f"rejected: {error.reason}"
    except Exception as error:  # never stop the sweep on one file
        log.exception("bank inbox: %s not handled", claimed.name)
        problem = CamtError(Reason.INTERNAL_ERROR, f"{type(error).__name__}: {error}")
        with contextlib.suppress(Exception):
            connector.reject(b"", source, problem)
        reject(directory, claimed, problem)
        return "rejected: internal_error"
    move(claimed, directory / "processed" / claimed.name)
    return f"published {len(submission.published)}, duplicates {len(submission.duplicates)}"


def reject(directory: Path, claimed: Path, error: CamtError) -> None:
    # the reason first (written whole, then moved in), then the file it explains:
    # whoever sees a file in rejected/ finds its reason beside it
    reason = directory / ".claimed" / f"{claimed.name}.error.txt"
    reason.write_text(f"{error.reason}: {error}\n")
    move(reason, directory / "rejected" / reason.name)
    move(claimed, directory / "rejected" / claimed.name)
    log.warning("bank inbox: %s rejected: %s", claimed.name, error)


def move(path: Path, target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # taken back by a recovery meanwhile
        path.rename(target)


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file (never through a link), at most MAX_FILE_BYTES."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:  # a symbolic link (ELOOP), a vanished file
        raise CamtError(Reason.NOT_A_REGULAR_FILE, f"{path.name}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise CamtError(Reason.NOT_A_REGULAR_FILE, f"{path.name}: not a regular file")
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise CamtError(Reason.TOO_LARGE, f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
    return data


def submit_file(path: Path, connector: BankConnector, source: str) -> Submission:
    data = read_regular_file(path)
    if path.suffix.lower() == ".json":
        try:
            body = load_json(data, decimals=True)
        except FieldError as error:
            problem = CamtError(error.reason, f"{path.name}: {error}")
            connector.reject(data, source, problem)
            raise problem from None
        return connector.submit_json(body, source, data)
    return connector.submit_xml(data, source)


def recover_stale_claims(directory: Path, stale_claim_s: float = STALE_CLAIM_S) -> None:
    """Claimed files a dead worker left (claimed longer ago than STALE_CLAIM_S) go back."""
    now = time.time()
    for claimed in (directory / ".claimed").iterdir():
        if claimed.name.endswith(".error.txt"):
            continue
        try:
            claimed_at = claimed.lstat().st_ctime  # the rename into .claimed/ set it
        except FileNotFoundError:
            continue
        if now - claimed_at > stale_claim_s:
            log.warning("bank inbox: %s was claimed by a worker that stopped; again", claimed.name)
            move(claimed, directory / claimed.name)
