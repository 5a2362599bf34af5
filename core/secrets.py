"""Secrets: read from files, written only for their owner, never shown.

Owns the rules every TokEngine process follows for a secret (a password, a cookie, a
private key): it is read from a file (a file group or others may read is used, with a
warning: Docker secrets are mounted 0444), every secret file we write is created 0600 in a
0700 directory, a URL is printed only through `redacted` (its password replaced by
`***`), and `install_log_redaction` makes every log record of the process carry neither a
configured secret nor a URL's credentials. Third-party loggers stay at WARNING unless the
log level asks for debug (httpx logs every request's URL at INFO).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_FILE_MODE = 0o600
SECRET_DIR_MODE = 0o700
MIN_SECRET_LENGTH = 6  # shorter strings would mask ordinary words in log lines
QUERY_SECRETS = ("password", "sslpassword")
THIRD_PARTY_LOGGERS = (
    "httpx",
    "httpcore",
    "urllib3",
    "web3",
    "aiokafka",
    "kafka",
    "asyncio",
    "aiohttp",
    "psycopg",
)
# scheme://user:password@host: the password part of any URL inside a log line
URL_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)


class InsecureSecretFile(Exception):
    """A secret file we were about to write is not ours alone (refused)."""


def read_secret_file(path: Path) -> str:
    """The file's text, stripped; a warning (not a refusal) when group or others may read it."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret file %s is readable by others (mode %o): chmod 600", path, mode & 0o777)
    return path.read_text().strip()


def secrets_dir(data_dir: Path) -> Path:
    """DATA_DIR/secrets, created 0700 (every secret file `up` writes lives there)."""
    path = data_dir / "secrets"
    path.mkdir(parents=True, exist_ok=True, mode=SECRET_DIR_MODE)
    path.chmod(SECRET_DIR_MODE)
    return path


def write_secret_file(path: Path, text: str) -> Path:
    """Writes `text` to a file only its owner can read (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=SECRET_DIR_MODE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, SECRET_FILE_MODE)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), SECRET_FILE_MODE)  # an existing file keeps its mode otherwise
        out.write(text)
    return path


def redacted(url: str | None) -> str | None:
    """The URL with its password (and a `password=` query value) replaced by `***`."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name in QUERY_SECRETS for name, _ in pairs):
            masked = [(n, MASK if n in QUERY_SECRETS else v) for n, v in pairs]
            query = urlencode(masked, safe="/*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str | None) -> set[str]:
    """The secrets a URL carries (its password, a `password=` query value)."""
    if not url or "://" not in url:
        return set()
    parts = urlsplit(url)
    found = {parts.password} if parts.password else set()
    found |= {v for n, v in parse_qsl(parts.query) if n in QUERY_SECRETS and v}
    return found


def passfile_of(database_url: str | None) -> Path | None:
    """The libpq `passfile` a Postgres URL names (the embedded Postgres's password)."""
    if not database_url or "://" not in database_url:
        return None
    found = dict(parse_qsl(urlsplit(database_url).query)).get("passfile")
    return Path(found) if found else None


def settings_secrets(settings: Settings) -> set[str]:
    """Every secret these settings give this process: URL passwords and secret files."""
    found: set[str] = set()
    urls = (settings.database_url, settings.btc_rpc, settings.eth_rpc, settings.bank_api)
    for url in (*urls, settings.schema_registry):
        found |= url_secrets(url)
    if settings.eth_keystore_password:
        found.add(settings.eth_keystore_password)
    files = (
        settings.btc_rpc_cookie_file,
        settings.eth_keystore_password_file,
        settings.btc_payout_key_file,
        settings.eth_sweep_key_file,
        settings.kafka_sasl_password_file,
        passfile_of(settings.database_url),
    )
    for path in files:
        if path is None or not path.is_file():
            continue
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        found.add(text)
        # user:password (a cookie), host:port:db:user:password (a pgpass line)
        found |= {line.rsplit(":", 1)[-1] for line in text.splitlines() if ":" in line}
    return {secret for secret in found if secret}


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret and every URL's credentials replaced by `***`."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: no partial leftovers
        if secret in text:
            text = text.replace(secret, MASK)
    return URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK + "@", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback) without the secrets it knows."""

    def __init__(self) -> None:
        super().__init__("tokengine-redaction")
        self.secrets: set[str] = set()

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets |= {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self.secrets)
        return True


REDACTION = RedactingFilter()
_previous_factory = logging.getLogRecordFactory()


def _redacting_factory(*args, **kwargs) -> logging.LogRecord:
    record = _previous_factory(*args, **kwargs)
    REDACTION.filter(record)
    return record


def install_log_redaction(secrets: Iterable[str], log_level: str = "warn") -> None:
    """Every record this process logs, through any logger or handler, is redacted.

    A logger's filter sees only the records logged on that logger (not those propagated
    from its children), and Faust installs its own handlers: so the filter runs in the
    record factory, which every record of every logger goes through. Records below a
    logger's level are never made, so this costs nothing for them.
    """
    REDACTION.add(secrets)
    logging.setLogRecordFactory(_redacting_factory)
    quiet_third_party_loggers(log_level)


def quiet_third_party_loggers(log_level: str) -> None:
    """Libraries' loggers at WARNING, unless TOKENGINE_LOG_LEVEL is debug."""
    if log_level.lower() == "debug":
        return
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
