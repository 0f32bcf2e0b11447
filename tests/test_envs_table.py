"""`purejaxppo envs`'s table: docs/cli.md holds what the command prints, and the Brax envs'
spaces are built once, then read from a cache (`purejaxppo.run.envs_table`)."""

from __future__ import annotations

import io

import pytest
from _cli_support import REPO

from purejaxppo.run import envs_table

DOC = REPO / "docs" / "cli.md"


def _doc_spaces(table: str) -> dict[str, tuple[str, str]]:
    """`{brax/name: (actions, obs)}` of the doc's Brax rows."""
    cells = [
        line.strip("|").split(" | ") for line in table.splitlines() if line.startswith("| brax/")
    ]
    return {c[0].strip(): (c[1], c[2]) for c in cells}


def test_doc_table_is_what_the_command_prints():
    """Every gymnax row always; the Brax rows' names, configs and expected returns whenever
    brax is installed, their spaces where cached (building them takes ~20 s: the slow test
    below does)."""
    table = envs_table.doc_table(DOC.read_text(encoding="utf-8"))
    rows, lines = envs_table.markdown_rows(REPO, build=False)
    if lines[1].startswith("brax/NAME needs the brax extra"):  # no brax: gymnax rows only
        head = table.split("\n| brax/")[0]
        assert envs_table.markdown(rows, []).startswith(head), "regenerate: see docs/cli.md"
        assert lines[0] in table
        return
    doc_spaces = _doc_spaces(table)
    filled = [
        (*r[:1], *doc_spaces.get(r[0], ("?", "?")), *r[3:]) if r[1:3] == ("?", "?") else r
        for r in rows
    ]
    assert envs_table.markdown(filled, lines) == table, (
        "docs/cli.md's envs table differs from `purejaxppo envs`: "
        "python -m purejaxppo.run.envs_table docs/cli.md"
    )


def test_brax_spaces_are_built_once_then_cached(monkeypatch, tmp_path):
    pytest.importorskip("brax.envs")
    from purejaxppo.envs.brax import brax_env_names

    built: list[str] = []

    def fake_spaces(name: str) -> tuple[str, str]:
        built.append(name)
        return "Box(1,) [-1, 1]", str(len(name))

    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(envs_table, "spaces_text", fake_spaces)
    names = brax_env_names()
    first, second = io.StringIO(), io.StringIO()
    spaces = envs_table.brax_spaces(names, first)
    assert built == names and spaces["brax/ant"] == ("Box(1,) [-1, 1]", "8")
    assert first.getvalue().startswith(f"building {len(names)} Brax environments")
    assert str(tmp_path / envs_table.SPACES_FILE) in first.getvalue()
    assert envs_table.brax_spaces(names, second) == spaces  # from the cache: nothing built
    assert built == names and second.getvalue() == ""

    monkeypatch.setattr(envs_table.metadata, "version", lambda package: "0.0.0")
    assert envs_table.brax_spaces(names[:1], second) == {names[0]: spaces[names[0]]}
    assert built == [*names, names[0]]  # another brax version: built again

    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    assert envs_table.spaces_cache_file() is None


@pytest.mark.slow
def test_doc_table_with_freshly_built_brax_spaces(monkeypatch, tmp_path):
    """The whole table, Brax spaces built through MJX (~20 s on 2 cores), not cached."""
    pytest.importorskip("brax.envs")
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", str(tmp_path))
    table = envs_table.doc_table(DOC.read_text(encoding="utf-8"))
    assert envs_table.markdown(*envs_table.markdown_rows(REPO)) == table
