"""The slow run's ordering table (``tests/conftest.py``'s LONGEST_TESTS) names tests that exist, and the
ordering puts each half's longest tests first: a renamed test would silently fall back to collection order."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import LONGEST_TESTS, pytest_collection_modifyitems

REPOSITORY = Path(__file__).resolve().parent.parent


class Item:
    """What the ordering reads of a pytest item (hashable, as items are)."""

    def __init__(self, nodeid: str):
        self.nodeid = nodeid


def test_every_entry_names_a_test_function_of_an_existing_module():
    for prefix, seconds in LONGEST_TESTS.items():
        path, _, test = prefix.partition("::")
        source = (REPOSITORY / path).read_text()  # FileNotFoundError names a moved module
        assert seconds > 0
        if test:
            name, _, parameter = test.partition("[")
            assert re.search(rf"^def {re.escape(name)}\(", source, re.M), prefix
            if parameter:  # a parameter the module spells out, or (the recipes' tests) a weights/ folder's name
                parameter = parameter.rstrip("]")
                assert f'"{parameter}' in source or any(
                    folder.name.startswith(parameter) for folder in (REPOSITORY / "weights").iterdir()), prefix


def test_each_half_starts_with_every_other_long_test_longest_first():
    names = list(LONGEST_TESTS)
    items = [Item(f"tests/test_short.py::test_{i}") for i in range(10)]
    items[3:3] = [Item(names[1] + "x"), Item(names[2] + "y")]
    items.append(Item(names[0] + "z"))
    expected_short = [item.nodeid for item in items if item.nodeid.startswith("tests/test_short.py")]
    pytest_collection_modifyitems(None, items)
    order = [item.nodeid for item in items]
    # 13 tests, a first half of 6: the longest and the third longest, 4 short ones; then the second longest
    assert order[:2] == [names[0] + "z", names[2] + "y"] and order[6] == names[1] + "x"
    assert [n for n in order if n.startswith("tests/test_short.py")] == expected_short  # the rest as collected
    assert len(order) == 13 and len(set(order)) == 13
