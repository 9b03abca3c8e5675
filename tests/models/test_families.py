"""Every model family through the generic checks (tests/models/families.py).

The multicoil cases are marked ``slow`` (CI runs them): tracing them is most of the cost of these
checks, the code under test is the family's single-coil one plus the acquisition's, and the
multicoil forward passes are checked in the default suite by the families' own tests
(zero-network references, the reconstruct command, .keras round trips).
"""

import pytest

from tests.models.families import check_adam_steps, family_cases, family_classes, run_family_checks

#: multicoil cases whose forward pass no other default test runs stay in the default suite
DEFAULT_MULTICOIL = {"GriddedPDNet-multicoil"}
CASES = [pytest.param(*case, marks=pytest.mark.slow)
         if case[0].endswith("-multicoil") and case[0] not in DEFAULT_MULTICOIL else case
         for case in family_cases()]
IDS = [case[0] for case in family_cases()]


def test_every_family_offers_a_small_config():
    for cls in family_classes():
        small = cls.small_config()
        assert isinstance(small, dict) and small, cls.__name__


@pytest.mark.parametrize("name,cls,kwargs", CASES, ids=IDS)
def test_family(name, cls, kwargs, rng, tmp_path):
    run_family_checks(cls, kwargs, rng, tmp_path)


@pytest.mark.parametrize("name,cls,kwargs", CASES, ids=IDS)
def test_family_trains(name, cls, kwargs, rng):
    check_adam_steps(cls, kwargs, rng)
