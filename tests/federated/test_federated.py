"""Federated training on Flower, without an engine (fast): the strategies' averaging against numpy, FedProx
with mu = 0 against FedAvg, the bias-corrected EMA against its closed form, what leaves a site, the report of a
site that stops answering, and the recipe's checks. The engines run in test_deployment.py (slow)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("flwr")

from tests.federated.conftest import tiny_recipe  # noqa: E402
from tests.federated.helpers import FakeGrid, array_record, contexts, instruction, train_round  # noqa: E402

from flwr.app import ConfigRecord, Error, Message, Metadata, MetricRecord, RecordDict  # noqa: E402

from fastmri_zoo.federated.flower import _build, _server_settings, flower_apps, make_strategy, serve  # noqa: E402
from fastmri_zoo.federated.outputs import FederationLog, read_metrics  # noqa: E402
from fastmri_zoo.federated.recipe import federation_recipe_from_dict  # noqa: E402
from fastmri_zoo.federated.sites import check_site_folders, load_site_data, split_by_share  # noqa: E402
from fastmri_zoo.federated.training import (  # noqa: E402
    BiasCorrectedEMA, LocalTraining, model_arrays, set_model_arrays)
from fastmri_zoo.training.fit import _model_inputs  # noqa: E402


def _apps(raw, data_root, out_dir):
    settings = {"recipe": raw, "source": None, "data-dir": str(data_root), "out-dir": str(out_dir)}
    return flower_apps(settings)


def _reply(node_id: int, arrays: dict | None, count: float, **metrics) -> Message:
    """A site's reply to a train message (as the SuperLink hands it to the server)."""
    content = RecordDict({"metrics": MetricRecord({"num-examples": count, **metrics})})
    if arrays is not None:
        content["arrays"] = array_record(arrays)
    request = Message(RecordDict(), metadata=Metadata(run_id=1, message_id=f"m{node_id}", src_node_id=1,
                                                      dst_node_id=node_id, reply_to_message_id="", group_id="",
                                                      created_at=time.time(), ttl=3600.0, message_type="train"))
    return Message(content, reply_to=request)


def _log(recipe, tmp_path, nodes):
    log = FederationLog(recipe, tmp_path)
    for node, site in zip(nodes, recipe.sites):
        log.add_site(node, site.name, 10)
    return log


# ------------------------------------------------------------------------------------------ averaging


def test_server_aggregate_is_the_sample_weighted_mean_of_weights_and_alphas(tmp_path):
    recipe = federation_recipe_from_dict(tiny_recipe())
    rng = np.random.default_rng(0)
    counts = [12.0, 6.0, 9.0]
    updates = [{"0000:alpha": rng.normal(size=(5, 8)).astype(np.float32),
                "0001:image_net_0/head/kernel": rng.normal(size=(3, 3, 2, 4)).astype(np.float32),
                "0002:data_consistency_0/noise_weight": np.float32([rng.normal()])} for _ in counts]
    nodes = [7, 8, 9]
    strategy = make_strategy(recipe, _log(recipe, tmp_path, nodes), phase="search")
    aggregated, _ = strategy.aggregate_train(1, [_reply(n, u, c, **{"train-loss": 0.1}) for n, u, c in
                                                 zip(nodes, updates, counts)])
    weights = np.asarray(counts) / np.sum(counts)
    for key in updates[0]:
        reference = np.tensordot(weights, np.stack([u[key].astype(np.float64) for u in updates]), axes=1)
        np.testing.assert_allclose(aggregated[key].numpy(), reference, rtol=0, atol=1e-6)
    # an unweighted mean would differ: the weighting is what is checked
    assert np.abs(aggregated["0000:alpha"].numpy() - np.mean([u["0000:alpha"] for u in updates], 0)).max() > 1e-3


def test_a_site_that_stops_answering_is_reported_and_the_round_goes_on(tmp_path):
    raw = tiny_recipe(min_clients=2)
    recipe = federation_recipe_from_dict(raw)
    nodes = [7, 8, 9]
    log = _log(recipe, tmp_path, nodes)
    strategy = make_strategy(recipe, log)
    log.sent("train", "train", 3, nodes)
    arrays = {"0000:w": np.ones(3, np.float32)}
    failure = Message(Error(code=1, reason="Node Unavailable"),
                      reply_to=Message(RecordDict(), metadata=Metadata(
                          run_id=1, message_id="m9", src_node_id=1, dst_node_id=1, reply_to_message_id="", group_id="",
                          created_at=time.time(), ttl=3600.0, message_type="train")))
    replies = [_reply(7, arrays, 2.0, **{"train-loss": 0.5}), _reply(8, {"0000:w": 3 * arrays["0000:w"]}, 1.0,
                                                                   **{"train-loss": 0.25}), failure]
    aggregated, _ = strategy.aggregate_train(3, replies)
    np.testing.assert_allclose(aggregated["0000:w"].numpy(), (2 * 1 + 1 * 3) / 3, atol=1e-6)
    dropped = recipe.sites[2].name
    assert log.dropped == [{"site": dropped, "phase": "train", "round": 3, "stage": "train",
                            "reason": "Node Unavailable"}]
    rows = read_metrics(tmp_path / "metrics.csv")
    assert {(row["site"], row["status"]) for row in rows} == {(recipe.sites[0].name, "ok"), (recipe.sites[1].name, "ok"),
                                                              (dropped, "missing")}
    assert [row["train_loss"] for row in rows if row["status"] == "ok"] == [0.5, 0.25]
    # below min_clients the federation stops, naming why
    log.sent("train", "train", 4, nodes)
    with pytest.raises(RuntimeError, match="fewer than min_clients=2.*Node Unavailable"):
        strategy.aggregate_train(4, [replies[0], failure])


def test_a_site_gone_between_rounds_is_reported(tmp_path):
    """A SuperNode the SuperLink has already forgotten is not asked at all: still a dropped site, by name."""
    recipe = federation_recipe_from_dict(tiny_recipe(min_clients=2))
    nodes = [7, 8, 9]
    log = _log(recipe, tmp_path, nodes)
    strategy = make_strategy(recipe, log)
    log.sent("train", "train", 2, nodes[:2])
    arrays = {"0000:w": np.ones(3, np.float32)}
    strategy.aggregate_train(2, [_reply(7, arrays, 2.0, **{"train-loss": 0.5}), _reply(8, arrays, 1.0,
                                                                                        **{"train-loss": 0.5})])
    assert log.dropped == [{"site": recipe.sites[2].name, "phase": "train", "round": 2, "stage": "train",
                            "reason": "no longer connected"}]
    log.sent("evaluate", "evaluate", 2, nodes[:2])
    strategy.aggregate_evaluate(2, [_reply(7, None, 2.0, psnr=30.0), _reply(8, None, 1.0, psnr=31.0)])
    assert len(log.dropped) == 1  # reported once
    assert [row["status"] for row in read_metrics(tmp_path / "metrics.csv") if row["site"] == recipe.sites[2].name] \
        == ["absent", "absent"]


# ------------------------------------------------------------------------------------------ EMA


def test_bias_corrected_ema_leaves_a_constant_sequence_unchanged():
    constant = {"a": np.float32([[0.3, -1.7], [2.0, 5e-3]]), "b": np.float32([123.0])}
    for gamma in (0.0, 0.5, 0.9, 0.99):
        ema = BiasCorrectedEMA(gamma)
        for step in range(1, 8):
            corrected = ema.update(constant)
            # closed form: m_t = (1 - gamma^t) c, so m_t / (1 - gamma^t) = c
            np.testing.assert_allclose(ema.average["a"], (1 - gamma**step) * constant["a"].astype(np.float64), rtol=1e-12)
            for key in constant:
                np.testing.assert_allclose(corrected[key], constant[key], rtol=1e-6)


def test_bias_corrected_ema_is_the_geometric_mean_of_the_sequence():
    rng = np.random.default_rng(1)
    gamma, sequence = 0.8, [{"w": rng.normal(size=4)} for _ in range(5)]
    ema = BiasCorrectedEMA(gamma)
    for t, weights in enumerate(sequence, start=1):
        peeked = ema.peek(weights)
        corrected = ema.update(weights)
        np.testing.assert_array_equal(peeked["w"], corrected["w"])  # peek does not fold in
        coefficients = np.array([gamma ** (t - s) for s in range(1, t + 1)])
        reference = coefficients @ np.stack([w["w"] for w in sequence[:t]]) / coefficients.sum()
        np.testing.assert_allclose(corrected["w"], reference, rtol=1e-6)
    assert ema.steps == 5


# ------------------------------------------------------------------------------------------ FedProx


@pytest.mark.slow  # a Flower federation of several rounds: 15-80 s each on one core
def test_fedprox_with_mu_zero_equals_fedavg(tmp_path, data_root, server_task):
    """One round of Flower's FedAvg and of Flower's FedProx (mu = 0, the client's proximal term in the graph)
    from the same weights on the same examples: the same global weights; mu > 0 keeps the sites nearer."""
    results = {}
    for name, federation in (("fedavg", {}), ("fedprox", {"proximal_mu": 0.0}), ("strong", {"proximal_mu": 1e4})):
        # two local steps: the proximal gradient mu (w - w_global) is zero at the first one
        raw = tiny_recipe(strategy="fedavg" if name == "fedavg" else "fedprox", local_steps=2, **federation)
        recipe = federation_recipe_from_dict(raw)
        client_app, _ = _apps(raw, data_root, tmp_path / name)
        start = model_arrays(_build(recipe, "train"))
        strategy = make_strategy(recipe, _log(recipe, tmp_path / name, [100, 101, 102]))
        results[name], replies = train_round(strategy, client_app, start, contexts(3))
        mu = [reply_mu for reply_mu in (r.content.get("config") for r in replies)]
        assert mu == [None] * 3  # replies carry no config
    for key in results["fedavg"]:
        np.testing.assert_allclose(results["fedprox"][key], results["fedavg"][key], rtol=0, atol=1e-6)
    moved = {name: sum(np.sum((results[name][k] - start[k]) ** 2) for k in start) for name in results}
    assert moved["fedavg"] > 0 and moved["strong"] < moved["fedavg"]


def test_the_proximal_term_pulls_towards_the_global_weights_given(data_root):
    """With an EMA a site starts from its average, not from the global weights: the proximal term must pull
    towards the global weights received. A far anchor and a strong mu move every weight towards it."""
    recipe = federation_recipe_from_dict(tiny_recipe(strategy="fedprox", proximal_mu=1.0))
    site = load_site_data(recipe, "ixi-large", data_root)
    model = recipe.build_model()
    for inputs, _ in site.training_batches("train", 1, 1, 1):
        model(_model_inputs(inputs))
    start = model_arrays(model)
    trainable = {id(v) for v in model.trainable_variables}
    names = [name for name, v in zip(start, model.weights) if id(v) in trainable]
    anchor = {name: value + (1.0 if name in names else 0.0) for name, value in start.items()}
    training = LocalTraining(model, learning_rate=1e-3, proximal=True)
    training.run(site.training_batches("train", 1, 3, 1), 1e6, anchor=anchor)
    moved = model_arrays(model)
    towards = [np.mean((moved[name] - start[name]) > 0) for name in names]
    assert min(towards) == 1.0, towards  # every trainable weight stepped up, towards anchor = start + 1
    with pytest.raises(ValueError, match="anchor: the weights of FedProx's proximal term"):
        LocalTraining(model).run(site.training_batches("train", 1, 1, 1), anchor=anchor)


# ------------------------------------------------------------------------------------------ optimizer state


def test_a_kept_optimizer_state_continues_the_run_exactly(data_root):
    """Two runs of 2 steps, the second from the first's weights and optimizer state, equal one run of the same
    4 batches with one optimizer; the second run started fresh differs (Adam's moments and step count)."""
    recipe = federation_recipe_from_dict(tiny_recipe())
    site = load_site_data(recipe, "ixi-large", data_root)
    batches = list(site.training_batches("train", 1, 4, 1))
    model = recipe.build_model()
    model(_model_inputs(batches[0][0]))
    start = model_arrays(model)
    training = LocalTraining(model, learning_rate=1e-2)
    training.run(batches)
    continuous = model_arrays(model)

    set_model_arrays(model, start)
    training.run(batches[:2])
    state = training.optimizer_state()
    training.run(batches[2:], optimizer_state=state)
    for key in continuous:
        np.testing.assert_allclose(model_arrays(model)[key], continuous[key], rtol=1e-6, atol=1e-7)

    set_model_arrays(model, start)
    training.run(batches[:2])
    training.run(batches[2:])  # a fresh Adam for the second half
    assert max(np.max(np.abs(model_arrays(model)[k] - continuous[k])) for k in continuous) > 1e-4
    with pytest.raises(ValueError, match="optimizer state: expected"):
        training.run(batches[:1], optimizer_state=state[:-1])


@pytest.mark.slow  # a Flower federation of several rounds: 15-80 s each on one core
def test_sites_keep_their_optimizer_state_between_rounds(tmp_path, data_root, server_task):
    """With optimizer_state "kept" each site's node state holds its optimizer after a round (step count =
    local steps), and the next round continues it (step count doubled); "fresh" keeps nothing."""
    for kept in ("kept", "fresh"):
        raw = tiny_recipe(local_steps=2, optimizer_state=kept)
        recipe = federation_recipe_from_dict(raw)
        client_app, _ = _apps(raw, data_root, tmp_path / kept)
        arrays = model_arrays(_build(recipe, "train"))
        node_contexts = contexts(3)
        strategy = make_strategy(recipe, _log(recipe, tmp_path / kept, [100, 101, 102]))
        for server_round in (1, 2):
            arrays, _ = train_round(strategy, client_app, arrays, node_contexts, server_round=server_round)
            for context in node_contexts.values():
                record = context.state.array_records.get("optimizer")
                if kept == "fresh":
                    assert record is None
                    continue
                steps = [value.numpy() for value in record.values() if value.numpy().dtype.kind == "i"]
                assert steps and all(s.size == 1 and s.item() == 2 * server_round for s in steps), steps


# ------------------------------------------------------------------------------------------ messages


def _check_only_weights_and_counts(message, model, allowed_metrics):
    """Every record of a reply: arrays are the model's weights (names, shapes, float32), metrics numbers."""
    content = message.content
    assert set(content.keys()) <= {"arrays", "metrics", "site"}
    expected = {name: tuple(v.shape) for name, v in zip(model_arrays(model), model.weights)}
    for record in content.array_records.values():
        assert list(record.keys()) == list(expected)
        for name, array in record.items():
            value = array.numpy()
            assert value.dtype == np.float32 and value.size == int(np.prod(expected[name]))
            assert value.size < 32 * 32  # nothing the size of an image (32 x 32) or of k-space
    for record in content.metric_records.values():
        assert set(record) <= allowed_metrics
        assert all(isinstance(value, (int, float)) for value in record.values())
    for record in content.config_records.values():
        assert dict(record).keys() == {"site"}


@pytest.mark.slow  # a Flower federation of several rounds: 15-80 s each on one core
def test_what_leaves_a_site_is_weights_and_counts(tmp_path, data_root):
    raw = tiny_recipe(strategy="fedautomri", ema=0.5)
    raw["model"]["kwargs"].pop("genotype")
    raw["search"] = {"rounds": 1, "local_steps": 1, "nodes": 1, "space": ["conv_3x3", "sep_conv_3x3"]}
    recipe = federation_recipe_from_dict(raw)
    client_app, _ = _apps(raw, data_root, tmp_path)
    node_contexts = contexts(3)
    for phase, genotype in (("search", ""), ("train", json.dumps([[["conv_3x3", 0], ["sep_conv_3x3", 1]]]))):
        model = _build(recipe, phase, json.loads(genotype) if genotype else None)
        arrays = array_record(model_arrays(model))
        config = ConfigRecord({"phase": phase, "genotype": genotype, "server-round": 1})
        for node in node_contexts:
            query = client_app(instruction(RecordDict({"config": ConfigRecord({"question": "site"})}), node, "query"),
                               node_contexts[node])
            _check_only_weights_and_counts(query, model, {"num-examples"})
            train = client_app(instruction(RecordDict({"arrays": arrays, "config": config}), node, "train"),
                               node_contexts[node])
            _check_only_weights_and_counts(train, model, {"num-examples", "train-loss", "alpha-loss"})
            assert ("0000:alpha" in train.content["arrays"]) == (phase == "search")  # alpha travels while searching
            evaluate = client_app(instruction(RecordDict({"arrays": arrays, "config": config}), node, "evaluate"),
                                  node_contexts[node])
            assert "arrays" not in evaluate.content
            metrics = {"num-examples", "loss", "psnr", "ssim", "nmse"}
            _check_only_weights_and_counts(evaluate, model, metrics | {f"ema-{m}" for m in metrics - {"num-examples"}})
            assert ("ema-psnr" in evaluate.content["metrics"]) == (phase == "train")


@pytest.mark.slow  # a Flower federation of several rounds: 15-80 s each on one core
def test_a_local_site_sends_metrics_only(tmp_path, data_root, server_task):
    raw = tiny_recipe(strategy="local")
    recipe = federation_recipe_from_dict(raw)
    client_app, _ = _apps(raw, data_root, tmp_path)
    start = model_arrays(_build(recipe, "train"))
    strategy = make_strategy(recipe, _log(recipe, tmp_path, [100, 101, 102]))
    aggregated, replies = train_round(strategy, client_app, start, contexts(3))
    assert aggregated is None and all("arrays" not in reply.content for reply in replies)


# ------------------------------------------------------------------------------------------ FedAutoMRI


@pytest.mark.slow  # a Flower federation of several rounds: 15-80 s each on one core
def test_fedautomri_searches_then_trains_the_derived_cell_with_the_ema(tmp_path, data_root, server_task):
    """The whole ServerApp (search rounds, the genotype of the averaged alpha, training rounds with the sites'
    EMA) over a Grid that hands the messages to the ClientApp in this process."""
    raw = tiny_recipe(strategy="fedautomri", rounds=2, ema=0.5)
    raw["model"]["kwargs"].pop("genotype")
    raw["search"] = {"rounds": 1, "local_steps": 1, "nodes": 1, "space": ["conv_3x3", "sep_conv_3x3"]}
    settings = {"recipe": raw, "source": None, "data-dir": str(data_root), "out-dir": str(tmp_path)}
    client_app, _ = flower_apps(settings)
    facts = serve(FakeGrid(contexts(3), client_app), _server_settings(settings, None))
    genotype = json.loads((tmp_path / "genotype.json").read_text())
    assert facts["genotype"] == genotype and len(genotype) == 1 and len(genotype[0]) == 2
    assert {op for op, _ in genotype[0]} <= {"conv_3x3", "sep_conv_3x3"}
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [(r["phase"], r["round"]) for r in rows if r["stage"] == "evaluate"] == [("search", 1)] * 3 + [
        ("train", 1)] * 3 + [("train", 2)] * 3
    search_rows = [r for r in rows if r["phase"] == "search" and r["stage"] == "train"]
    assert all(r["alpha_loss"] > 0 and r["ema_psnr"] is None for r in search_rows)
    trained = [r for r in rows if r["phase"] == "train" and r["stage"] == "evaluate"]
    assert all(np.isfinite(r["psnr"]) and np.isfinite(r["ema_psnr"]) for r in trained)
    assert facts["parameters"]["train"] < facts["parameters"]["search"]  # the derived cell keeps 2 of 4 edges' ops
    assert (tmp_path / "preset" / "config.json").is_file() and (tmp_path / "curves.png").is_file()
    assert json.loads((tmp_path / "preset" / "config.json").read_text())["config"]["genotype"] == genotype


# ------------------------------------------------------------------------------------------ resuming


def _run(raw, data_root, out_dir):
    """The whole ServerApp over a Grid handing the messages to the ClientApp in this process, with new
    SuperNode contexts (a new run: nothing kept in memory from an earlier one)."""
    settings = {"recipe": raw, "source": None, "data-dir": str(data_root), "out-dir": str(out_dir)}
    client_app, _ = flower_apps(settings)
    return serve(FakeGrid(contexts(3), client_app), _server_settings(settings, None))


@pytest.mark.slow  # a Flower federation of several rounds: 15-80 s each on one core
@pytest.mark.parametrize("strategy", ["local", "fedautomri"])
def test_an_interrupted_federation_resumes_where_it_stopped(tmp_path, data_root, server_task, strategy):
    """Three training rounds in one run, or one round, then the same recipe again in a new run: the resumed
    run trains rounds 2-3 only, from the checkpoint's global weights and the sites' kept state (the EMA and
    the optimizer, or a local site's own weights), and ends with the same metrics and weights. FedAutoMRI's
    training phase is FedAvg's with the sites' EMA (FedAvg alone adds nothing to check here); its search phase
    is not run again, its genotype is the checkpoint's."""
    from fastmri_zoo.presets import from_preset

    raw = tiny_recipe(strategy=strategy, rounds=3, local_steps=2, optimizer_state="kept",
                      **({} if strategy == "local" else {"ema": 0.5}))
    if strategy == "fedautomri":
        raw["model"]["kwargs"].pop("genotype")
        raw["search"] = {"rounds": 1, "local_steps": 1, "nodes": 1, "space": ["conv_3x3", "sep_conv_3x3"]}
    straight = _run(raw, data_root, tmp_path / "straight")
    first = dict(raw, federation={**raw["federation"], "rounds": 1})
    _run(first, data_root, tmp_path / "resumed")
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert (state["phase"], state["round"]) == ("train", 1)
    resumed = _run(raw, data_root, tmp_path / "resumed")
    assert any("resumed after train round 1" in event for event in resumed["events"])
    rows = {name: read_metrics(tmp_path / name / "metrics.csv") for name in ("straight", "resumed")}
    assert [(r["phase"], r["round"], r["site"], r["stage"]) for r in rows["resumed"]] == [
        (r["phase"], r["round"], r["site"], r["stage"]) for r in rows["straight"]]
    for a, b in zip(rows["straight"], rows["resumed"]):
        for key in ("train_loss", "psnr", "ema_psnr"):
            if a[key] is not None:
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["phase"], a["round"], key)
    assert resumed["genotype"] == straight["genotype"]
    if strategy != "local":
        for a, b in zip(from_preset(str(tmp_path / "straight" / "preset")).weights,
                        from_preset(str(tmp_path / "resumed" / "preset")).weights):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-7)
    # each site keeps the state of its last two rounds, no more
    kept = sorted(path.name for path in (tmp_path / "resumed" / "checkpoint" / "sites").glob("ixi-large-*"))
    assert kept == ["ixi-large-train-round002.npz", "ixi-large-train-round003.npz"]


@pytest.mark.slow  # a Flower federation of several rounds: 15-80 s each on one core
def test_a_checkpoint_of_another_recipe_is_refused(tmp_path, data_root, server_task):
    raw = tiny_recipe(rounds=1)
    _run(raw, data_root, tmp_path)
    other = tiny_recipe(rounds=1, learning_rate=0.01)
    with pytest.raises(ValueError, match="holds a federation of another recipe"):
        _run(other, data_root, tmp_path)


# ------------------------------------------------------------------------------------------ recipes


@pytest.mark.parametrize("change, message", [
    (lambda r: r["federation"].update(strategy="fedsgd"), "federation.strategy: expected one of"),
    (lambda r: r["federation"].update(proximal_mu=0.1), "federation.proximal_mu: the weight of FedProx"),
    (lambda r: r["sites"][0].update(coils=1), "sites.coils: one network serves every site"),
    (lambda r: r["sites"][1].update(name=r["sites"][0]["name"]), "sites: expected distinct names"),
    (lambda r: r["sites"][2].update(share=2), "sites\\[2\\].share"),
    (lambda r: r["sites"][0].update(mask_type="spiral"), "sites\\[0\\].mask_type: expected one of"),
    (lambda r: r["federation"].update(strategy="fedautomri"), "search: strategy 'fedautomri' searches the cell"),
    (lambda r: r.update(search={"rounds": 1, "local_steps": 1}) or r["federation"].update(strategy="fedautomri"),
     "model.kwargs.genotype: not in a 'fedautomri'"),
    (lambda r: r["federation"].update(min_clients=4), "federation.min_clients: 4 but the recipe has 3 sites"),
    (lambda r: r.update(search={"rounds": 1, "local_steps": 1}), "search: a search block belongs to"),
    (lambda r: r.update(card=["fedavg"]), "card: expected an object"),
    (lambda r: r["federation"].update(optimizer_state="reset"), "federation.optimizer_state: expected one of"),
])
def test_bad_recipes_are_refused_naming_the_key(change, message):
    raw = tiny_recipe()
    change(raw)
    with pytest.raises(ValueError, match=message):
        federation_recipe_from_dict(raw)


def test_subjects_are_split_by_share():
    groups = split_by_share(list(range(20)), [6, 3, 1])
    assert [len(g) for g in groups] == [11, 6, 3]  # one each, then 17 by 6 : 3 : 1 (10.2, 5.1, 1.7)
    assert sum(groups, []) == list(range(20))
    with pytest.raises(ValueError, match="2 subject\\(s\\) for 3 volume sites"):
        split_by_share([0, 1], [1, 1, 1])


def test_missing_subjects_are_reported_before_anything_runs(tmp_path, data_root):
    raw = tiny_recipe()
    raw["sites"].insert(0, {"name": "extra", "coils": 2, "mask_type": "random", "acceleration": 4})
    recipe = federation_recipe_from_dict(raw)
    with pytest.raises(ValueError, match="data.val: 2 subject\\(s\\) for 3 volume sites"):
        check_site_folders(recipe, data_root)
    with pytest.raises(FileNotFoundError, match="data.train: no such folder"):
        check_site_folders(recipe, tmp_path)
