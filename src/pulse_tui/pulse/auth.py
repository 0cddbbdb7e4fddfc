"""Who may call the server: the admin token, the read-only token and per-plugin tokens.

- The admin and read-only tokens live in the data dir (`token`, `token.readonly`): 64 hex chars,
  created on first start, atomically, with mode 0600. They are never logged.
- Each plugin gets its own random token at Initialize (kept in memory only). A plugin token may
  only read and update the jobs currently running on that plugin (checked by the services).
- Every comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from pulse_tui.pulse.errors import PermissionDenied, PulseError, ReadOnly, Unauthenticated

log = logging.getLogger(__name__)

TOKEN_FILE = "token"
READONLY_TOKEN_FILE = "token.readonly"

ADMIN = "admin"
READONLY = "readonly"
PLUGIN = "plugin"


class TokenFileError(PulseError):
    """A token file exists but cannot be used (unreadable, malformed)."""

    code = "FAILED_PRECONDITION"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. `plugin` is set for plugin tokens."""

    role: str
    plugin: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def require_admin(self, action: str) -> None:
        """Raise PermissionDenied unless this is the admin token."""
        if self.role == READONLY:
            raise ReadOnly(f"the read-only token may not {action}; use the admin token")
        if self.role == PLUGIN:
            raise PermissionDenied(
                f"plugin {self.plugin!r} may not {action}; plugin tokens may only update their running jobs"
            )


def write_secret_file(path: Path, value: str) -> None:
    """Write `value` to `path` atomically, readable by the owner only (mode 0600).

    The temp file is created with O_CREAT|O_EXCL and mode 0o600, so the secret is never visible
    with wider permissions, then renamed over `path`.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_token_file(path: Path) -> str:
    """Read a token file written by `write_secret_file` (clients use this too)."""
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc}") from None
    if not token:
        raise TokenFileError(f"token file {path} is empty")
    return token


def load_or_create_token(path: Path) -> str:
    """The token stored at `path`, creating a fresh 64-hex token on first use."""
    if not path.exists():
        write_secret_file(path, secrets.token_hex(32))
        log.info("created token file %s", path)
    token = read_token_file(path)
    if len(token) != 64 or any(c not in "0123456789abcdef" for c in token):
        raise TokenFileError(
            f"token file {path} does not hold a 64-hex token; delete it and restart to create a new one"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("token file %s was readable by others (mode %o); reset to 0600", path, mode)
    return token


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


class Authenticator:
    """Maps a presented token to a Principal, or raises Unauthenticated."""

    def __init__(self, admin_token: str, readonly_token: str, *, token_path: Path | None = None) -> None:
        self._admin = admin_token
        self._readonly = readonly_token
        self._plugin_tokens: dict[str, str] = {}  # token -> plugin name (one per plugin instance)
        self.token_path = token_path

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> Authenticator:
        admin = load_or_create_token(data_dir / TOKEN_FILE)
        readonly = load_or_create_token(data_dir / READONLY_TOKEN_FILE)
        return cls(admin, readonly, token_path=data_dir / TOKEN_FILE)

    # ---- plugin tokens (issued by the plugin host at Initialize)
    def issue_plugin_token(self, plugin: str) -> str:
        """A fresh token for one instance of `plugin`. Earlier instances keep theirs until revoked:
        an old instance draining after a reload still reports progress on its jobs."""
        token = secrets.token_hex(32)
        self._plugin_tokens[token] = plugin
        return token

    def revoke_plugin_token(self, plugin: str, token: str | None = None) -> None:
        """Revoke one instance's token, or (token=None) every token of `plugin`."""
        if token is not None:
            if self._plugin_tokens.get(token) == plugin:
                del self._plugin_tokens[token]
            return
        for t in [t for t, p in self._plugin_tokens.items() if p == plugin]:
            del self._plugin_tokens[t]

    # ---- checks
    def identify(self, token: str) -> Principal:
        if not token:
            raise Unauthenticated("missing auth token; pass the admin token from the server's token file")
        # Compare against every known token so timing does not reveal which one matched.
        found: Principal | None = None
        if _same(token, self._admin):
            found = Principal(ADMIN)
        if _same(token, self._readonly):
            found = found or Principal(READONLY)
        for plugin_token, plugin in list(self._plugin_tokens.items()):
            if _same(token, plugin_token):
                found = found or Principal(PLUGIN, plugin)
        if found is None:
            raise Unauthenticated("invalid auth token; use the token from the server's token file")
        return found

    def identify_bearer(self, authorization: str | None) -> Principal:
        """Check an `authorization: Bearer <token>` metadata value."""
        if not authorization:
            raise Unauthenticated(
                "missing authorization metadata; send `authorization: Bearer <token>` "
                "with the token from the server's token file"
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("malformed authorization metadata; expected `Bearer <token>`")
        return self.identify(token.strip())
