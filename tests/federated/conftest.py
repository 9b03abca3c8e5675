"""A tiny federation: the recipe tiny_recipe.json (two volume sites of 4 and 2 coils, the cardiac site of 3
coils; a 1-cascade NasNet of 2 channels; 32 x 32 examples) and a data root of phantom magnitude volumes."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import phantoms

RECIPE = Path(__file__).with_name("tiny_recipe.json")
#: Subjects of the data root by split: train 3 (2 + 1 by the shares 2 : 1), val 2, test 2.
SUBJECTS = {"train": 3, "val": 2, "test": 2}


def tiny_recipe(**federation) -> dict:
    """The content of tiny_recipe.json, its federation block updated with ``federation``."""
    raw = json.loads(RECIPE.read_text())
    raw = copy.deepcopy(raw)
    raw["federation"].update(federation)
    return raw


def write_data_root(root: Path, seed: int = 3, subjects: dict[str, int] | None = None) -> Path:
    """Phantom volumes under ``root/magnitude/{train,val,test}`` (``subjects``: how many in each; default SUBJECTS)."""
    rng = np.random.default_rng(seed)
    for part, count in (subjects or SUBJECTS).items():
        folder = root / "magnitude" / part
        folder.mkdir(parents=True)
        for index in range(count):
            # slices last, as the zoo reads numpy volumes (data.load_magnitude)
            np.save(folder / f"subject{index}.npy", np.moveaxis(phantoms(rng, 6), 0, -1).astype(np.float32))
    return root


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    return write_data_root(tmp_path_factory.mktemp("federated_data"))


@pytest.fixture
def server_task():
    """What Flower's runtime sets in a running ServerApp process (the sender of the messages a strategy
    makes), reset afterwards.

    A Flower internal, set on purpose: in flwr 1.42 an instruction ``Message(content, dst_node_id,
    message_type)``, which the strategies' ``configure_train`` / ``configure_evaluate`` make, stamps its run,
    sender node and task from ``flwr.supercore.task_identity.TaskIdentity`` and raises when they are unset.
    Only Flower's runtimes set it (the ``flwr-serverapp`` process, ``flwr.simulation.run_simulation``, the
    legacy ``start_grid``); no public API does, and a message can be given its ``Metadata`` only when our
    code makes it, not the strategy. These tests run a real Flower strategy without an engine, so they set
    what the runtime would (run 1, the SuperLink's node id 1). Revisit when Flower's minor version moves
    (setup.cfg pins flwr to 1.42.x)."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None
