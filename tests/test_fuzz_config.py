"""Property-based fuzzing of the row YAML loader: mutated shipped configs, random structures and
random bytes either load into a valid RowConfig or raise one of our typed errors (never a bare
Python exception). Bounded (max_examples) so the suite stays fast."""

from __future__ import annotations


import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import load_from_bytes
from vacc_deploy.config import CONFIG_DIR, RowConfig, available_rows, load_row
from vacc_deploy.errors import ConfigError, VaccError

FUZZ = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
ROWS = available_rows()

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=20), st.binary(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def _load_bytes(data: bytes) -> RowConfig | None:
    """load_row on a temporary YAML file holding ``data``; None when it raised a typed error."""
    config = load_from_bytes(data, "row.yaml", load_row, VaccError)
    assert config is None or isinstance(config, RowConfig)
    return config


@FUZZ
@given(row=st.sampled_from(ROWS), edits=st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=4)),
                                                 min_size=1, max_size=6))
def test_mutated_bytes(row: str, edits: list[tuple[int, bytes]]) -> None:
    data = bytearray((CONFIG_DIR / f"{row}.yaml").read_bytes())
    for pos, blob in edits:  # overwrite (or delete, with an empty blob) a few bytes
        i = pos % (len(data) + 1)
        data[i:i + max(1, len(blob))] = blob
    _load_bytes(bytes(data))


@FUZZ
@given(row=st.sampled_from(ROWS), data=st.data())
def test_mutated_values(row: str, data: st.DataObject) -> None:
    """One key (top level or nested) replaced by an arbitrary YAML value, or removed."""
    doc = yaml.safe_load((CONFIG_DIR / f"{row}.yaml").read_text())
    node = doc
    while True:
        key = data.draw(st.sampled_from(sorted(node)))
        if isinstance(node[key], dict) and node[key] and data.draw(st.booleans()):
            node = node[key]
            continue
        break
    if data.draw(st.booleans()):
        node[key] = data.draw(values)
    else:
        del node[key]
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    _load_bytes(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(blob=st.binary(max_size=300))
def test_random_bytes(blob: bytes) -> None:
    assert _load_bytes(blob) is None  # a few random bytes are never a whole valid row


@pytest.mark.parametrize("text", ["a: 2001-02-30", "a: &x [*x]\n", "[" * 3000, "\udcff".encode("utf-8", "surrogatepass"),
                                  b"\xff\xfe\x00", "name: !!python/object/apply:os.system [echo]",
                                  (CONFIG_DIR / "lesrcnn_x2.yaml").read_text() + "\"a\\nb\": 1\n"])
def test_known_nasty(text: str | bytes) -> None:
    """Found by fuzzing or known YAML traps: an impossible date, a self-referencing anchor, deep
    nesting, bad UTF-8, a Python tag (never constructed), a key holding a newline."""
    assert _load_bytes(text if isinstance(text, bytes) else text.encode()) is None


def test_unknown_key_is_config_error(tmp_path) -> None:
    path = tmp_path / "row.yaml"
    path.write_text((CONFIG_DIR / "lesrcnn_x2.yaml").read_text() + "bogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_row(path)
