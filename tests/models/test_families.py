"""Every model family through the generic checks (tests/models/families.py)."""

import pytest

from tests.models.families import family_cases, family_classes, run_family_checks

CASES = family_cases()


def test_every_family_offers_a_small_config():
    for cls in family_classes():
        small = cls.small_config()
        assert isinstance(small, dict) and small, cls.__name__


@pytest.mark.parametrize("name,cls,kwargs", CASES, ids=[case[0] for case in CASES])
def test_family(name, cls, kwargs, rng, tmp_path):
    run_family_checks(cls, kwargs, rng, tmp_path)
