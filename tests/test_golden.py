"""The API answers byte for byte as recorded from the same model files (tests/golden.py)."""

import base64

import pytest

from api import create_app
from tests import golden


@pytest.fixture(scope="module")
def golden_client():
    return create_app(golden.GOLDEN_MODELS).test_client()


def test_every_recorded_answer_is_unchanged(golden_client):
    recorded = golden.load()
    assert len(recorded) > 10_000  # every day of both assets, twice over, and more
    changed = []
    for expected in recorded:
        actual = golden.answer(golden_client, expected["url"], expected["headers"])
        if actual != expected:
            changed.append(expected["url"])
    assert not changed, f"{len(changed)} answers changed, first {changed[:5]}"


def test_the_comparison_can_fail(golden_client):
    expected = golden.load()[5]
    actual = golden.answer(golden_client, expected["url"], expected["headers"])
    body = base64.b64decode(actual["body"])
    tampered = {**actual, "body": base64.b64encode(body.replace(b"0", b"1", 1)).decode()}
    assert body != base64.b64decode(tampered["body"])
    assert tampered != expected
