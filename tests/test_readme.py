"""README's layout table matches the tree: every top-level module and package of vacc_deploy is
named in it, and every module or folder it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vacc_deploy"


def _layout_rows() -> list[str]:
    rows = [ln for ln in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
            if ln.startswith("| `vacc_deploy/")]
    assert len(rows) > 5, "README has no layout table"
    return rows


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`\s]+)`", cell)


def test_every_top_level_entry_is_in_the_layout_table() -> None:
    firsts = " ".join(row.split("|")[1] for row in _layout_rows())
    named = {n.removeprefix("vacc_deploy/").rstrip("/").removesuffix(".py") for n in _names(firsts)}
    entries = {p.stem for p in PACKAGE.iterdir()
               if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
               or (p.is_dir() and p.name != "__pycache__")}
    assert not entries - named, f"missing from README's layout table: {sorted(entries - named)}"


def test_every_module_the_layout_table_names_exists() -> None:
    for row in _layout_rows():
        first, text = row.split("|")[1], row.split("|")[2]
        dirs = [ROOT / n for n in _names(first) if n.startswith("vacc_deploy/") and n.endswith("/")]
        for name in _names(text):
            if not re.fullmatch(r"[\w/]+\.py|[\w]+/", name) or name.startswith(("scripts/", "tests/")):
                continue
            found = any(list(d.rglob(name.rstrip("/"))) for d in dirs) or (PACKAGE / name).exists()
            assert found, f"README's layout table names {name} in the {first.strip()} row; it does not exist"
