"""The denoising examples (data.synthesized_denoising_dataset): clean magnitude slices of peak 1, a noise level
drawn per example in the given range, noisy = clean + sigma x unit white noise (checked by the residual's
standard deviation), fixed validation examples, and bad options."""

import numpy as np
import pytest

from fastmri_zoo.data.pipelines import check_noise_range, synthesized_denoising_dataset
from tests.training.conftest import phantoms


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("volumes")
    rng = np.random.default_rng(4)
    for i in range(2):
        np.save(folder / f"v{i}.npy", (10 * phantoms(rng, 24, size=24)).astype(np.float32))
    return folder


def examples(dataset, count):
    return [(inputs["image"].numpy(), float(inputs["sigma"].numpy()), target.numpy())
            for inputs, target in dataset.unbatch().take(count)]


def test_noisy_is_clean_plus_sigma_white_noise(volumes):
    synthesis = {"size": [48, 48], "min_signal": 0.1, "zoom": [1.0, 1.0]}
    dataset = synthesized_denoising_dataset(volumes, synthesis, sigma=(0.05, 0.3), seed=None, batch_size=4)
    assert dataset.preprocessor is None
    drawn = examples(dataset, 24)
    levels = np.array([sigma for _, sigma, _ in drawn])
    assert (levels >= 0.05).all() and (levels <= 0.3).all() and levels.std() > 0.03  # drawn per example
    for noisy, sigma, clean in drawn:
        assert noisy.shape == clean.shape == (48, 48, 1) and noisy.dtype == np.float32
        np.testing.assert_allclose(clean.max(), 1.0, rtol=1e-6)  # peak 1 (synthesis normalises each slice)
        assert clean.min() >= 0
        residual = (noisy - clean).ravel()
        # 2304 pixels: the sample standard deviation is within 4 standard errors (sigma / sqrt(2 n)) of sigma
        assert abs(residual.std() - sigma) < 4 * sigma / np.sqrt(2 * residual.size)
        assert abs(residual.mean()) < 4 * sigma / np.sqrt(residual.size)


def test_validation_examples_are_fixed_and_sigma_zero_is_clean(volumes):
    synthesis = {"size": [32, 32], "min_signal": 0.1, "val_examples": 3}
    first = examples(synthesized_denoising_dataset(volumes, synthesis, seed=5), 10)
    second = examples(synthesized_denoising_dataset(volumes, synthesis, seed=5), 10)
    assert len(first) == 3
    for (a_noisy, a_sigma, a_clean), (b_noisy, b_sigma, b_clean) in zip(first, second):
        np.testing.assert_array_equal(a_noisy, b_noisy)
        np.testing.assert_array_equal(a_clean, b_clean)
        assert a_sigma == b_sigma and 0.0 <= a_sigma <= 55 / 255  # the default range, the thesis'
    for noisy, sigma, clean in examples(synthesized_denoising_dataset(volumes, synthesis, sigma=(0, 0), seed=1), 3):
        assert sigma == 0.0
        np.testing.assert_array_equal(noisy, clean)


def test_bad_options(volumes):
    with pytest.raises(ValueError, match="snr_db: a denoising data set adds its own noise"):
        synthesized_denoising_dataset(volumes, {"snr_db": [20, 30]})
    with pytest.raises(ValueError, match="synthesis.coils: a single-coil acquisition has 1 coil"):
        synthesized_denoising_dataset(volumes, {"coils": 4})
    for bad in ([0.2, 0.1], [-0.1, 0.1], [0, float("nan")], [0.1], "wide"):
        with pytest.raises(ValueError, match="sigma: expected"):
            check_noise_range(bad)
