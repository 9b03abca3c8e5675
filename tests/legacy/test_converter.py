"""The Keras-2 reader and converter: both layouts and attribute encodings, chunked attributes, and refusals
(wrong shape, missing group, non-finite values, not a Keras-2 file) with messages naming what differs."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from fastmri_zoo.legacy import LegacyStructureError, build, from_keras2_h5, get_checkpoint, plan
from fastmri_zoo.legacy.converter import load_keras2_weights
from fastmri_zoo.legacy.keras2_h5 import Keras2File
from tests.legacy.conftest import DATA, cartesian_inputs, golden, relative_error

PDNET = "pdnet-cartesian-singlecoil-af4-oasis"
PDNET_FILE = DATA / "PDNet-OASIS" / "model_weights.h5"


def pdnet_output(model) -> np.ndarray:
    arrays = golden("PDNet-OASIS")
    checkpoint = get_checkpoint(PDNET)
    return np.abs(model(cartesian_inputs(arrays, checkpoint.kspace_scale)).numpy()) * checkpoint.kspace_scale


@pytest.fixture
def pdnet_copy(tmp_path):
    path = tmp_path / "model_weights.h5"
    shutil.copyfile(PDNET_FILE, path)
    path.chmod(0o644)
    return path


def test_both_layouts_and_both_name_encodings_read_alike():
    """Full-model (KIKI, names under /model_weights, str attributes) and weights-only files; bytes-typed names
    (TF 2.4 / h5py 2 era, no top_level_model_weights group) give the same group structure as str-typed ones."""
    with Keras2File(DATA / "KIKI-net-OASIS" / "model_weights.h5") as kiki:
        assert kiki.layout == "full_model"
        assert [len(g.weights) for g in kiki.weighted_groups] == [102] + [2] * 17
        assert kiki.parameter_count == 1_251_080
    with Keras2File(PDNET_FILE) as new, Keras2File(DATA / "PDNet-OASIS" / "era_tf24" / "model_weights.h5") as old:
        assert (new.layout, old.layout) == ("weights", "weights")
        assert (new.keras_version, old.keras_version) == ("2.15.0", "2.4.0")
        assert [(g.name, [(w.name, w.shape) for w in g.weights]) for g in new.groups] == [
            (g.name, [(w.name, w.shape) for w in g.weights]) for g in old.groups
        ]
        assert all(isinstance(g.name, str) for g in old.groups)
        assert len(new.groups) == 206 and len(new.weighted_groups) == 60


def test_wrong_shape_is_refused_naming_group_weight_and_shapes(pdnet_copy):
    with h5py.File(pdnet_copy, "r+") as handle:
        del handle["conv2d_4/conv2d_4/kernel:0"]
        handle["conv2d_4/conv2d_4"].create_dataset("kernel:0", data=np.zeros((3, 3, 32, 31), np.float32))
    with pytest.raises(LegacyStructureError) as error:
        from_keras2_h5(pdnet_copy, PDNET)
    message = str(error.value)
    assert "refused" in message and "1 difference" in message
    assert "group #4 'conv2d_4'" in message and "'conv2d_4/kernel:0'" in message
    assert "(3, 3, 32, 31)" in message and "(3, 3, 32, 32)" in message
    assert "image_nets[0]" in message  # the zoo sub-network that group fills


def test_missing_group_is_refused_with_the_counts(pdnet_copy):
    with h5py.File(pdnet_copy, "r+") as handle:
        names = [n for n in handle.attrs["layer_names"] if n != "conv2d_59"]
        handle.attrs["layer_names"] = np.array(names, dtype=h5py.string_dtype())
    with pytest.raises(LegacyStructureError, match=r"59 layer groups with weights, the zoo expects 60"):
        from_keras2_h5(pdnet_copy, PDNET)


def test_non_finite_value_is_refused_and_nothing_is_assigned(pdnet_copy):
    with h5py.File(pdnet_copy, "r+") as handle:
        bias = handle["conv2d_30/conv2d_30/bias:0"]
        values = bias[()]
        values[3] = np.nan
        bias[...] = values
    checkpoint = get_checkpoint(PDNET)
    model = build(checkpoint)
    before = [v.numpy().copy() for v in model.weights]
    with pytest.raises(LegacyStructureError, match=r"'conv2d_30/bias:0' of group 'conv2d_30' holds 1 non-finite"):
        load_keras2_weights(pdnet_copy, plan(checkpoint, model.network))
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.weights))


def test_float64_weights_are_refused(pdnet_copy):
    with h5py.File(pdnet_copy, "r+") as handle:
        data = handle["conv2d/conv2d/bias:0"][()]
        del handle["conv2d/conv2d/bias:0"]
        handle["conv2d/conv2d"].create_dataset("bias:0", data=data.astype(np.float64))
    with pytest.raises(LegacyStructureError, match=r"'conv2d/bias:0' is float64, expected float32"):
        from_keras2_h5(pdnet_copy, PDNET)


def test_chunked_layer_names_are_read(pdnet_copy):
    """Keras splits an attribute above 64 kB into name0, name1, ...; such a file loads the same."""
    with h5py.File(pdnet_copy, "r+") as handle:
        names = list(handle.attrs["layer_names"])
        del handle.attrs["layer_names"]
        handle.attrs["layer_names0"] = np.array(names[:100], dtype=h5py.string_dtype())
        handle.attrs["layer_names1"] = np.array(names[100:], dtype=h5py.string_dtype())
    output = pdnet_output(from_keras2_h5(pdnet_copy, PDNET))
    assert relative_error(output, golden("PDNet-OASIS")["output"][..., 0]) < 1e-4


def test_a_file_of_another_checkpoint_is_refused():
    """A Cascade-net file offered as PDNet: the first differing group is named."""
    with pytest.raises(LegacyStructureError, match=r"30 layer groups with weights, the zoo expects 60"):
        from_keras2_h5(DATA / "CascadeNet-OASIS" / "model_weights.h5", PDNET)


def test_not_a_keras2_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"not a Keras-2 weights file"):
        from_keras2_h5(path, PDNET)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match=r"not a readable HDF5 file"):
        from_keras2_h5(tmp_path / "text.h5", PDNET)


def test_converted_model_round_trips_through_a_zoo_preset(tmp_path):
    """A converted checkpoint saved as a zoo preset folder loads back (config and outputs identical)."""
    from fastmri_zoo.presets import from_preset, save_to_preset

    model = from_keras2_h5(PDNET_FILE, PDNET)
    folder = save_to_preset(model, tmp_path / "pdnet_oasis", description="PDNet-OASIS converted")
    loaded = from_preset(str(folder))
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(pdnet_output(loaded), pdnet_output(model))
