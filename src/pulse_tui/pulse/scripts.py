"""Handler scripts (design phases 3–5): saved Python scripts that become `python.<name>` handlers.

The server owns the scripts: they live as `<name>.py` files in `<data_dir>/scripts/`, which is
handed to the bundled `python` plugin as its `scripts_dir` config. Saving validates first
(name, syntax, clashes with handlers that are not scripts), writes atomically, then asks the
plugin host to reload the python plugin so the handler is announced.

Versions are a hash of the content: an editor that loaded version V may only overwrite V; a save
against an older version is refused ("someone else saved a newer version"), so two operators
editing the same script never silently overwrite each other.
"""

from __future__ import annotations

import ast
import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pulse_tui.pulse.errors import Conflict, NotFound, ValidationError
from pulse_tui.script_template import NAME_RE, RESERVED_NAMES, TEMPLATE, template

MAX_SCRIPT_BYTES = 256 * 1024

# NAME_RE, TEMPLATE and template() live in pulse_tui.script_template (the TUI uses them too).
__all__ = [
    "MAX_SCRIPT_BYTES",
    "NAME_RE",
    "TEMPLATE",
    "SaveOutcome",
    "ScriptInfo",
    "ScriptStore",
    "check_name",
    "check_syntax",
    "template",
    "version_of",
]


@dataclass(slots=True)
class ScriptInfo:
    name: str
    code: str
    version: str
    modified_at: float

    @property
    def handler(self) -> str:
        return f"python.{self.name}"


@dataclass(slots=True)
class SaveOutcome:
    saved: bool
    script: ScriptInfo | None = None
    error: str = ""
    line: int = 0
    column: int = 0
    live: bool = False
    reload_message: str = ""


def version_of(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name or ""):
        raise ValidationError(
            f"script name {name!r} is not allowed: use a lowercase letter, then letters, digits, - or _ "
            "(at most 64)"
        )
    if name in RESERVED_NAMES:
        raise ValidationError(
            f"script name {name!r} is reserved: python.{name} is a built-in handler of the python plugin; "
            "pick another name"
        )


def check_syntax(name: str, code: str) -> tuple[str, int, int] | None:
    """None when the code compiles; else (message, line, column)."""
    if len(code.encode()) > MAX_SCRIPT_BYTES:
        return (f"script is larger than {MAX_SCRIPT_BYTES // 1024} KiB", 0, 0)
    try:
        compile(code, f"{name}.py", "exec", dont_inherit=True)  # full compile: symtable errors too
        tree = ast.parse(code)
    except SyntaxError as exc:
        return (f"{exc.msg} (line {exc.lineno}, column {exc.offset})", exc.lineno or 0, exc.offset or 0)
    except ValueError as exc:  # e.g. NUL bytes
        return (str(exc), 0, 0)
    if not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "run" for n in tree.body):
        return ("the script must define a top-level function run(payload, ctx)", 1, 1)
    return None


class ScriptStore:
    """Scripts on disk plus the hooks that make them live.

    `reload` reloads the python plugin and returns a short message; `is_live(handler)` tells whether
    a handler name routes now; `owner_of(handler)` names the plugin that owns a bare handler name
    ("" when none) so a script cannot take a name another plugin already serves.
    """

    def __init__(
        self,
        directory: str,
        *,
        reload: Callable[[], Awaitable[str]] | None = None,
        is_live: Callable[[str], bool] | None = None,
        owner_of: Callable[[str], str] | None = None,
        plugin_name: str = "python",
    ) -> None:
        self.directory = directory
        self._reload = reload
        self._is_live = is_live or (lambda _h: False)
        self._owner_of = owner_of or (lambda _h: "")
        self.plugin_name = plugin_name
        # the folder is created by the first save, not here: the python plugin seeds its example
        # script (`example_script`) only into a folder that does not exist yet, and the server
        # makes this store before the plugin starts

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.py")

    def list(self) -> list[ScriptInfo]:
        out = []
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []  # nothing saved yet
        for fn in names:
            if fn.endswith(".py") and NAME_RE.fullmatch(fn[:-3]) and fn[:-3] not in RESERVED_NAMES:
                try:
                    out.append(self.get(fn[:-3]))
                except NotFound:
                    continue
        return out

    def get(self, name: str) -> ScriptInfo:
        check_name(name)
        path = self._path(name)
        try:
            with open(path, encoding="utf-8") as f:
                code = f.read()
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            raise NotFound(f"no script named {name!r}") from None
        return ScriptInfo(name, code, version_of(code), mtime)

    def is_live(self, name: str) -> bool:
        return self._is_live(f"python.{name}")

    async def save(self, name: str, code: str, base_version: str) -> SaveOutcome:
        check_name(name)
        problem = check_syntax(name, code)
        if problem is not None:
            msg, line, col = problem
            return SaveOutcome(False, error=msg, line=line, column=col)
        handler = f"python.{name}"
        owner = self._owner_of(handler)
        if owner and owner != self.plugin_name:
            raise ValidationError(
                f"{handler} is already served by plugin {owner!r}; pick another script name"
            )
        try:
            current: ScriptInfo | None = self.get(name)
        except NotFound:
            current = None
        if current is not None and current.version != base_version:
            if base_version:
                raise Conflict(
                    f"script {name!r} was saved by someone else since you opened it (yours: {base_version}, "
                    f"now: {current.version}); reload it and merge your change"
                )
            raise Conflict(f"script {name!r} already exists; open it to edit it")
        if current is None and base_version:
            raise Conflict(f"script {name!r} was deleted since you opened it")
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(code)
        os.replace(tmp, self._path(name))
        info = self.get(name)
        message = ""
        if self._reload is not None:
            message = await self._reload()
        return SaveOutcome(True, info, live=self._is_live(handler), reload_message=message)

    async def delete(self, name: str, base_version: str = "") -> None:
        current = self.get(name)
        if base_version and current.version != base_version:
            raise Conflict(f"script {name!r} changed since you opened it; reload before deleting")
        os.unlink(self._path(name))
        if self._reload is not None:
            await self._reload()
