"""Handler routing across plugins, with naming conflicts reported instead of crashing.

Names a job may be enqueued under:
  * a bare name (`data.import`): routed to its *owner*;
  * a qualified name `plugin/name` (`importer/data.import`): always that plugin's handler;
  * `pulse/<builtin>` (`pulse/pulse.noop`): the built-in (config reserves the plugin name
    `pulse` for this), so every handler, built-in or not, has a qualified form.

Owner of a bare name: the built-in if one has that name (a plugin never takes a built-in's bare
name); else the pinned plugin (`[handlers]` in config) if it announces the name; else the first
claimant in config order. Conflicts are reported, never raised:
  * exact  — two or more plugins announce the same name;
  * near   — names equal after casefolding and treating `-` and `_` as `.` (but not identical);
  * shadow — a plugin name equal or near to a built-in's name.

Announced names are checked (`check_announced_name`): a handler name is 1-200 characters, none
of them `/` (the qualifier separator: a bare name `demo/demo.echo` would take over another plugin's
qualified route), whitespace, or a control or format character (Unicode Cc/Cf: NUL, newlines,
bidi overrides, zero-width characters). A plugin's refused names are reported (its state and the
reload result say which and why); the rest of its names register.

"Did you mean": names equal after folding come from an index; close spellings are searched with
difflib only among a bounded candidate set (names sharing the folded first or last three
characters and about the same length), so a mistyped enqueue costs the same with 10 or 10,000 handlers.

Concurrency: the whole routing state is one immutable `_Table`; every change builds a new
table and installs it with one assignment (then bumps `version`). A reader — the engine
resolving a job — sees either the old or the new handler set, never a mix.
"""

from __future__ import annotations

import difflib
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pulse_tui.pulse.handlers import Handler, builtin_handlers

log = logging.getLogger("pulse.registry")

BUILTIN_PLUGIN = "pulse"  # qualifier for built-ins: pulse/pulse.noop
MAX_HANDLER_NAME = 200  # the engine refuses longer names at enqueue
SUGGEST_FULL_SCAN = 500  # up to this many routes, difflib looks at all of them
SUGGEST_CANDIDATES = 200  # beyond it, at most this many indexed candidates

EXACT = "exact"
NEAR = "near"
SHADOW = "shadow"


def fold(name: str) -> str:
    """The form near-conflicts are compared in: casefolded, `-` and `_` read as `.`."""
    return re.sub(r"[-_]", ".", name.casefold())


def check_announced_name(name: str) -> str:
    """Why a plugin may not announce `name` ("" when it may)."""
    if not name:
        return "empty"
    if len(name) > MAX_HANDLER_NAME:
        return f"{len(name)} characters long (at most {MAX_HANDLER_NAME})"
    if "/" in name:
        return "contains '/' (reserved for plugin/name qualified routes)"
    for c in name:
        if c.isspace():
            return f"contains whitespace (U+{ord(c):04X})"
        cat = unicodedata.category(c)
        if cat == "Cc":
            return f"contains a control character (U+{ord(c):04X})"
        if cat == "Cf":
            return f"contains an invisible formatting character such as a bidi override (U+{ord(c):04X})"
    return ""


def _suggest_keys(folded: str) -> tuple[str, ...]:
    bare = folded.rsplit("/", 1)[-1]
    return (f"<{bare[:3]}", f">{bare[-3:]}")


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    name: str  # bare name
    owner: str  # plugin receiving the bare name; "" = built-in (see `builtin`)
    claimants: tuple[str, ...]  # plugins announcing it, in config order
    conflict: str  # "" | exact | near | shadow
    explanation: str  # one line for humans ("" when there is nothing to say)
    builtin: bool
    pinned: bool  # owner chosen by [handlers] in config
    qualified: tuple[str, ...]  # plugin/name forms that always route


@dataclass(frozen=True, slots=True)
class RouteDiff:
    """What a set_plugin/remove_plugin changed for that plugin."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()  # its names another plugin also announces (exact)
    warnings: tuple[str, ...] = ()  # explanations of near / shadow conflicts involving it
    refused: tuple[str, ...] = ()  # "name: why" for announced names that were not registered


@dataclass(frozen=True, slots=True)
class _Table:
    plugins: Mapping[str, Mapping[str, Handler]] = field(default_factory=dict)  # config order
    routes: Mapping[str, Handler] = field(default_factory=dict)  # bare + qualified
    infos: tuple[HandlerInfo, ...] = ()
    folded: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # fold(route) -> routes
    keyed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # _suggest_keys -> routes


class Registry:
    """Implements handlers.Router. Plugin order = config order (later newcomers go last)."""

    def __init__(
        self,
        plugin_order: Sequence[str] = (),
        pins: Mapping[str, str] | None = None,
        builtins: Iterable[Handler] | None = None,
    ) -> None:
        self._order = list(dict.fromkeys(plugin_order))
        self._pins = dict(pins or {})
        self._builtins = {h.name: h for h in (builtin_handlers() if builtins is None else builtins)}
        self.version = 0
        self._refused: dict[str, tuple[str, ...]] = {}
        self._table = self._build({})

    # ------------------------------------------------------------ Router

    def resolve(self, name: str) -> Handler | None:
        return self._table.routes.get(name)

    def routable(self) -> frozenset[str]:
        return frozenset(self._table.routes)

    def suggest(self, name: str) -> list[str]:
        """Close matches for "did you mean": same folded form first, then difflib over a bounded
        candidate set (all routes when there are few; else those sharing an index key)."""
        table = self._table
        folded = fold(name)
        same = [r for r in table.folded.get(folded, ()) if r != name]
        if len(table.routes) <= SUGGEST_FULL_SCAN:
            candidates: list[str] = list(table.routes)
        else:
            picked: dict[str, None] = {}
            for d in (0, -1, 1, -2, 2):  # nearest lengths first; a bucket is (key, length)
                for key in _suggest_keys(folded):
                    for r in table.keyed.get(f"{key}:{len(folded) + d}", ())[:SUGGEST_CANDIDATES]:
                        picked[r] = None
                if len(picked) >= SUGGEST_CANDIDATES:
                    break
            candidates = list(picked)[:SUGGEST_CANDIDATES]
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
        return list(dict.fromkeys([*same, *close]))[:3]

    # ------------------------------------------------------------ changes

    def set_plugin(
        self, plugin: str, names: Iterable[str], make_handler: Callable[[str], Handler]
    ) -> RouteDiff:
        """Replace `plugin`'s whole handler set (atomically) with handlers for `names`."""
        if plugin == BUILTIN_PLUGIN:
            raise ValueError(f"plugin name {BUILTIN_PLUGIN!r} is reserved for built-ins")
        if plugin not in self._order:
            self._order.append(plugin)
        refused: list[str] = []
        handlers: dict[str, Handler] = {}
        for n in dict.fromkeys(names):
            why = check_announced_name(n)
            if why:
                refused.append(f"{n!r}: {why}")
            else:
                handlers[n] = make_handler(n)
        if refused:
            log.warning(
                "plugin %s announced %d handler name(s) that are not allowed and were not registered: %s",
                plugin,
                len(refused),
                "; ".join(refused),
            )
            self._refused[plugin] = tuple(refused)
        else:
            self._refused.pop(plugin, None)
        diff = self._install(plugin, handlers)
        return RouteDiff(
            diff.added,
            diff.removed,
            diff.conflicts,
            (*diff.warnings, *(f"refused handler name {r}" for r in refused)),
            tuple(refused),
        )

    def remove_plugin(self, plugin: str) -> RouteDiff:
        self._refused.pop(plugin, None)
        return self._install(plugin, None)

    def refused_of(self, plugin: str) -> tuple[str, ...]:
        """The names `plugin` last announced that were refused, as "name: why"."""
        return self._refused.get(plugin, ())

    def plugin_handlers(self, plugin: str) -> list[str]:
        return sorted(self._table.plugins.get(plugin, {}))

    def handlers(self) -> list[HandlerInfo]:
        return list(self._table.infos)

    def info(self, name: str) -> HandlerInfo | None:
        return next((i for i in self._table.infos if i.name == name), None)

    def conflicts_of(self, plugin: str) -> list[HandlerInfo]:
        return [i for i in self._table.infos if i.conflict and plugin in i.claimants]

    def _install(self, plugin: str, handlers: dict[str, Handler] | None) -> RouteDiff:
        before = set(self._table.plugins.get(plugin, {}))
        plugins = {p: h for p, h in self._table.plugins.items() if p != plugin}
        if handlers is not None:
            plugins[plugin] = handlers
        table = self._build(plugins)
        self._table = table  # the one assignment readers can observe
        self.version += 1
        after = set(handlers or {})
        mine = [i for i in table.infos if plugin in i.claimants]
        return RouteDiff(
            added=tuple(sorted(after - before)),
            removed=tuple(sorted(before - after)),
            conflicts=tuple(i.name for i in mine if i.conflict == EXACT),
            warnings=tuple(i.explanation for i in mine if i.conflict in (NEAR, SHADOW)),
        )

    # ------------------------------------------------------------ the table

    def _build(self, plugins: Mapping[str, Mapping[str, Handler]]) -> _Table:
        order = [p for p in self._order if p in plugins]
        ordered = {p: plugins[p] for p in order}
        claimants: dict[str, list[str]] = {}
        for p, hs in ordered.items():
            for n in hs:
                claimants.setdefault(n, []).append(p)
        names = sorted(set(claimants) | set(self._builtins))
        folded: dict[str, list[str]] = {}
        for n in names:
            folded.setdefault(fold(n), []).append(n)

        routes: dict[str, Handler] = {}
        infos: list[HandlerInfo] = []
        for n, h in self._builtins.items():
            routes[f"{BUILTIN_PLUGIN}/{n}"] = h
        for p, hs in ordered.items():
            for n, h in hs.items():
                routes[f"{p}/{n}"] = h

        for n in names:
            who = tuple(claimants.get(n, ()))
            builtin = n in self._builtins
            pin = self._pins.get(n, "")
            if builtin:
                owner, pinned = "", False
                routes[n] = self._builtins[n]
            elif pin in who:
                owner, pinned = pin, True
            else:
                owner, pinned = who[0], False
            if not builtin:
                routes[n] = ordered[owner][n]
            near = [m for m in folded[fold(n)] if m != n]
            conflict, explanation = self._explain(n, who, owner, builtin, pin, near)
            qualified = tuple(f"{p}/{n}" for p in who)
            if builtin:
                qualified = (f"{BUILTIN_PLUGIN}/{n}", *qualified)
            infos.append(HandlerInfo(n, owner, who, conflict, explanation, builtin, pinned, qualified))
        by_fold: dict[str, list[str]] = {}
        keyed: dict[str, list[str]] = {}
        for r in routes:
            f = fold(r)
            by_fold.setdefault(f, []).append(r)
            for key in _suggest_keys(f):
                keyed.setdefault(f"{key}:{len(f)}", []).append(r)
        return _Table(
            plugins=ordered,
            routes=routes,
            infos=tuple(infos),
            folded={k: tuple(v) for k, v in by_fold.items()},
            keyed={k: tuple(v) for k, v in keyed.items()},
        )

    def _explain(
        self, name: str, who: tuple[str, ...], owner: str, builtin: bool, pin: str, near: list[str]
    ) -> tuple[str, str]:
        if builtin and who:
            return SHADOW, (
                f"built-in {name} is also announced by {_join(who)}; the built-in keeps the bare name; "
                f"use {who[0]}/{name} to reach the plugin's"
            )
        near_builtins = [m for m in near if m in self._builtins]
        if not builtin and near_builtins:
            return (
                SHADOW,
                f"{name} (from {_join(who)}) differs from built-in {near_builtins[0]} only by case or -/_",
            )
        if len(who) > 1:
            others = [p for p in who if p != owner]
            if pin and pin == owner:
                why = "pinned in [handlers]"
            elif pin:
                why = f"first in config; pinned {pin} does not announce it"
            else:
                why = "first in config"
            reach = ", ".join(f"{p}/{name}" for p in others)
            return EXACT, (
                f"announced by {_join(who)}; {owner} owns it ({why}); use {reach} to reach the "
                f"other{'s' if len(others) > 1 else ''}"
            )
        if near and who:
            return (
                NEAR,
                f"{name} ({_join(who)}) differs from {', '.join(near)} only by case or -/_; check the spelling",
            )
        if pin and who and pin not in who:
            return "", f"pinned to {pin}, which does not announce it; {owner} owns it"
        return "", ""


def _join(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
