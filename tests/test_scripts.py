"""Script store: validation, atomic saves, stale-save refusal (the server side of the editor)."""

from __future__ import annotations

import os

import pytest

from pulse_tui.pulse.errors import NotFound, Precondition, ValidationError
from pulse_tui.pulse.scripts import ScriptStore, check_syntax, template


async def test_save_get_list_delete(tmp_path):
    reloads: list[int] = []

    async def reload() -> str:
        reloads.append(1)
        return "reloaded"

    st = ScriptStore(str(tmp_path / "scripts"), reload=reload, is_live=lambda h: h == "python.hello")
    out = await st.save("hello", template("hello"), "")
    assert out.saved and out.live and out.reload_message == "reloaded"
    assert out.script.handler == "python.hello"
    got = st.get("hello")
    assert got.code == template("hello") and got.version == out.script.version
    assert [s.name for s in st.list()] == ["hello"]
    await st.delete("hello", got.version)
    assert st.list() == [] and len(reloads) == 2
    with pytest.raises(NotFound):
        st.get("hello")


async def test_syntax_error_refused_with_position_and_nothing_written(tmp_path):
    st = ScriptStore(str(tmp_path))
    out = await st.save("bad", "def run(payload, ctx):\n    return (1,\n", "")
    assert not out.saved and out.line >= 2 and "line" in out.error
    assert not os.path.exists(tmp_path / "bad.py")
    out = await st.save("norun", "x = 1\n", "")
    assert not out.saved and "run(payload, ctx)" in out.error
    assert check_syntax("r", "return 5\n") is not None  # compile-time error, not just parse


async def test_stale_save_refused(tmp_path):
    st = ScriptStore(str(tmp_path))
    first = await st.save("job", template("job"), "")
    v1 = first.script.version
    second = await st.save("job", template("job") + "\n# edit A\n", v1)
    assert second.saved
    with pytest.raises(Precondition, match="saved by someone else"):
        await st.save("job", template("job") + "\n# edit B\n", v1)
    assert "edit A" in st.get("job").code
    with pytest.raises(Precondition, match="already exists"):
        await st.save("job", template("job"), "")


@pytest.mark.parametrize("name", ["", "Upper", "1abc", "a b", "a/b", "../x", "x" * 65, "ünï"])
async def test_bad_names(tmp_path, name):
    st = ScriptStore(str(tmp_path))
    with pytest.raises(ValidationError, match="not allowed"):
        await st.save(name, template("x"), "")
    assert os.listdir(tmp_path) == []


async def test_name_taken_by_another_plugin(tmp_path):
    st = ScriptStore(str(tmp_path), owner_of=lambda h: "importer" if h == "python.load" else "")
    with pytest.raises(ValidationError, match="served by plugin 'importer'"):
        await st.save("load", template("load"), "")


@pytest.mark.parametrize("name", ["x\n", "hello\n", "a\r", "ok\x00"])
async def test_name_with_trailing_newline_or_control_refused(tmp_path, name):
    st = ScriptStore(str(tmp_path / "scripts"))
    with pytest.raises(ValidationError, match="not allowed"):
        await st.save(name, template("x"), "")
    assert not (tmp_path / "scripts").exists()  # nothing written (a first save makes the folder)


async def test_script_name_script_is_reserved(tmp_path):
    """python.script is the built-in: a script named `script` would report live=true while the
    built-in runs instead."""
    st = ScriptStore(str(tmp_path / "scripts"), is_live=lambda h: True)
    with pytest.raises(ValidationError, match="reserved: python.script is a built-in"):
        await st.save("script", template("script"), "")
    assert not (tmp_path / "scripts").exists()  # nothing written
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "script.py").write_text(template("script"))  # put there by hand
    assert [s.name for s in st.list()] == []
