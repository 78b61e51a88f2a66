"""serving/packed.py: day tables that answer as the dicts they replace."""

import pytest

from serving.packed import DerivedBytes, PackedBytes, PackedInts, positions_of

DAYS = ["2024-06-01", "2024-06-02", "2024-06-03"]


def test_packed_bytes_answer_as_a_dict_would():
    values = [b'{"a":1}', b"", b"\xff" * 300]
    packed = PackedBytes(positions_of(DAYS), values)
    expected = dict(zip(DAYS, values, strict=True))
    assert dict(packed) == expected and list(packed) == DAYS and len(packed) == 3
    assert packed["2024-06-02"] == b"" and "2024-06-03" in packed and "2024-06-04" not in packed
    assert packed.get("2024-06-04") is None and b"".join(packed.values()) == b"".join(values)
    with pytest.raises(KeyError):
        packed["2024-06-04"]


def test_tables_share_their_days_and_refuse_a_wrong_count():
    positions = positions_of(DAYS)
    ints = PackedInts(positions, [-3, 0, 365])
    assert dict(ints) == {"2024-06-01": -3, "2024-06-02": 0, "2024-06-03": 365}
    with pytest.raises(ValueError, match="2 values for 3 days"):
        PackedBytes(positions, [b"a", b"b"])
    with pytest.raises(ValueError, match="4 values for 3 days"):
        PackedInts(positions, [1, 2, 3, 4])


def test_derived_bytes_are_made_from_the_source_on_request():
    source = PackedBytes(positions_of(DAYS), [b"ab,x}", b"cd,x}", b"ef,x}"])
    derived = DerivedBytes(source, lambda value: value[:-3] + b"}")
    assert dict(derived) == {"2024-06-01": b"ab}", "2024-06-02": b"cd}", "2024-06-03": b"ef}"}
    assert "2024-06-09" not in derived
