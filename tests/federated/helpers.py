"""Running one federated round without an engine: Flower's strategy configures the messages, the ClientApp
answers them in this process, the strategy aggregates the replies."""

from __future__ import annotations

import time

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, Metadata, RecordDict  # noqa: E402


class FakeGrid:
    """A Grid without an engine: the connected SuperNodes and, given a ClientApp and the SuperNodes'
    contexts, ``send_and_receive`` answered in this process."""

    def __init__(self, node_ids, client_app=None):
        self.node_ids = list(node_ids)
        self.client_app = client_app
        self.contexts = node_ids if isinstance(node_ids, dict) else None

    def get_node_ids(self):
        return list(self.node_ids)

    def send_and_receive(self, messages, *, timeout=None):
        return deliver(self.client_app, messages, self.contexts)


def contexts(count: int) -> dict[int, Context]:
    """A simulation-like Context per SuperNode: node ``100 + i`` is site ``i`` (``partition-id``)."""
    return {100 + i: Context(run_id=1, node_id=100 + i, node_config={"partition-id": i, "num-partitions": count},
                             state=RecordDict(), run_config={}) for i in range(count)}


def instruction(content: RecordDict, node_id: int, kind: str) -> Message:
    """A message from the server to ``node_id`` as the SuperLink delivers it."""
    return Message(content, metadata=Metadata(run_id=1, message_id=f"{kind}-{node_id}-{time.time_ns()}",
                                              src_node_id=1, dst_node_id=node_id, reply_to_message_id="", group_id="",
                                              created_at=time.time(), ttl=3600.0, message_type=kind))


def deliver(client_app, messages, node_contexts) -> list[Message]:
    """Each message handed to the ClientApp of its SuperNode; the replies."""
    replies = []
    for message in messages:
        node = message.metadata.dst_node_id
        delivered = instruction(message.content, node, message.metadata.message_type)
        replies.append(client_app(delivered, node_contexts[node]))
    return replies


def array_record(arrays: dict) -> ArrayRecord:
    return ArrayRecord({key: Array(np.ascontiguousarray(value)) for key, value in arrays.items()})


def train_round(strategy, client_app, arrays: dict, node_contexts, server_round: int = 1, phase: str = "train",
                genotype: str = ""):
    """One training round: ``(aggregated arrays as a dict, the replies)``."""
    config = ConfigRecord({"phase": phase, "genotype": genotype})
    messages = strategy.configure_train(server_round, array_record(arrays), config, FakeGrid(node_contexts))
    replies = deliver(client_app, messages, node_contexts)
    aggregated, _ = strategy.aggregate_train(server_round, replies)
    return (None if aggregated is None else {k: v.numpy() for k, v in aggregated.items()}), replies
