"""Registry: routing, pins, exact / near / shadow conflicts, atomic swaps."""

from __future__ import annotations

from dataclasses import dataclass

from pulse_tui.pulse.handlers import HandlerResult, JobContext
from pulse_tui.pulse.registry import EXACT, NEAR, SHADOW, Registry, fold


@dataclass
class Fake:
    """A stand-in Handler that only records where it lives (routing is what is tested)."""

    plugin: str
    name: str

    async def run(self, ctx: JobContext) -> HandlerResult:
        return HandlerResult()


def make(plugin):
    return lambda name: Fake(plugin, name)


def demo_registry(pins=None) -> Registry:
    r = Registry(["demo", "python", "importer"], pins or {})
    r.set_plugin("importer", ["data.import", "data.export", "data.batch_import"], make("importer"))
    r.set_plugin("demo", ["demo.echo", "data.import", "data.batch-import"], make("demo"))
    return r


def test_builtins_always_present_and_qualified():
    r = Registry()
    assert {"pulse.noop", "pulse.sleep", "pulse.fail", "pulse/pulse.noop"} <= r.routable()
    assert r.resolve("pulse/pulse.sleep") is r.resolve("pulse.sleep")
    assert all(i.builtin and not i.conflict for i in r.handlers())


def test_exact_conflict_first_in_config_order_wins():
    r = demo_registry()  # importer registered first, but demo is first in config order
    info = r.info("data.import")
    assert (info.owner, info.claimants, info.conflict) == ("demo", ("demo", "importer"), EXACT)
    assert info.qualified == ("demo/data.import", "importer/data.import")
    assert info.explanation == (
        "announced by demo and importer; demo owns it (first in config); use importer/data.import to reach the other"
    )
    assert r.resolve("data.import").plugin == "demo"
    assert r.resolve("importer/data.import").plugin == "importer"
    assert r.resolve("demo/data.import").plugin == "demo"


def test_pin_wins_and_falls_back_when_pinned_plugin_does_not_announce():
    r = demo_registry({"data.import": "importer"})
    info = r.info("data.import")
    assert info.owner == "importer" and info.pinned and "pinned in [handlers]" in info.explanation
    assert r.resolve("data.import").plugin == "importer"
    r.remove_plugin("importer")
    info = r.info("data.import")
    assert info.owner == "demo" and not info.pinned and info.conflict == ""
    assert "pinned to importer, which does not announce it" in info.explanation


def test_near_conflicts_are_warnings_both_routable():
    r = demo_registry()
    a, b = r.info("data.batch-import"), r.info("data.batch_import")
    assert a.conflict == b.conflict == NEAR
    assert "differs from data.batch_import only by case or -/_" in a.explanation
    assert r.resolve("data.batch-import").plugin == "demo"
    assert r.resolve("data.batch_import").plugin == "importer"
    assert fold("Data.Batch-Import") == fold("data.batch_import")


def test_shadowing_builtins():
    r = Registry(["x"])
    diff = r.set_plugin("x", ["pulse.noop", "Pulse.Sleep"], make("x"))
    assert r.resolve("pulse.noop").plugin == ""  # the built-in keeps the bare name
    assert r.resolve("x/pulse.noop").plugin == "x"
    assert r.info("pulse.noop").conflict == SHADOW and r.info("Pulse.Sleep").conflict == SHADOW
    assert len(diff.warnings) == 2


def test_set_plugin_diff_and_version():
    r = demo_registry()
    v = r.version
    diff = r.set_plugin("demo", ["demo.echo", "demo.new"], make("demo"))
    assert diff.added == ("demo.new",) and diff.removed == ("data.batch-import", "data.import")
    assert diff.conflicts == () and r.version == v + 1
    assert r.info("data.import").owner == "importer" and not r.info("data.import").conflict
    diff = r.set_plugin("python", ["data.import"], make("python"))
    assert diff.conflicts == ("data.import",)
    assert r.info("data.import").owner == "python"  # python precedes importer in config order
    diff = r.remove_plugin("demo")
    assert set(diff.removed) == {"demo.echo", "demo.new"} and "demo.echo" not in r.routable()
    assert r.resolve("demo/demo.echo") is None


def test_swap_is_one_table():
    r = demo_registry()
    before = r._table
    r.set_plugin("demo", ["demo.echo"], make("demo"))
    assert r._table is not before and "data.batch-import" in before.routes  # old table untouched


def test_suggest():
    r = demo_registry()
    assert r.suggest("data.imprt")[0] == "data.import"
    assert "data.batch_import" in r.suggest("Data.Batch_Import")
    assert r.suggest("zzzz") == []


def test_unknown_plugin_added_last_in_order():
    r = Registry(["a"])
    r.set_plugin("late", ["n"], make("late"))
    r.set_plugin("a", ["n"], make("a"))
    assert r.info("n").owner == "a" and r.info("n").claimants == ("a", "late")


def test_announced_names_that_could_take_routes_are_refused_rest_register():
    r = demo_registry()
    diff = r.set_plugin("x", ["demo/demo.echo", "pulse/pulse.noop", "a b", "z\u200bw", "", "x.ok"], make("x"))
    assert r.resolve("demo/demo.echo").plugin == "demo"
    assert r.resolve("pulse/pulse.noop").plugin == ""
    assert r.plugin_handlers("x") == ["x.ok"] and diff.added == ("x.ok",)
    assert [s.split(":")[0] for s in r.refused_of("x")] == [
        "'demo/demo.echo'",
        "'pulse/pulse.noop'",
        "'a b'",
        "'z\\u200bw'",
        "''",
    ]
    assert any("refused handler name 'a b'" in w for w in diff.warnings)
    r.set_plugin("x", ["x.ok"], make("x"))
    assert r.refused_of("x") == ()


def test_suggestions_with_many_handlers_still_find_the_typo():
    r = Registry(["big"])
    r.set_plugin("big", [f"gen.handler{i:05d}" for i in range(10_000)], make("big"))
    assert r.suggest("gen.handlr00042")[0] == "gen.handler00042"
    assert r.suggest("GEN.HANDLER00042") == ["gen.handler00042"]
    assert r.suggest("nothing.like.it") == []
