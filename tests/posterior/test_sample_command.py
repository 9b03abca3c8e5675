"""`fastmri-zoo sample PRIOR FILE.h5` (issue #17) on a tiny random-weight prior and small generated files.

The outputs are checked against the sampler run directly on the file's measurements prepared
independently (numpy: the mask read from the zeros of k-space, the zero-filled maximum as the
scale, coil maps from the fully sampled centre divided by their root-sum-of-squares); the
posterior mean against the data; the written files and figure; bad inputs before any sampling.
"""

import hashlib
import os

import h5py
import keras
import numpy as np
import pytest

from fastmri_zoo import cli, metrics
from fastmri_zoo.data.h5 import write_fastmri_h5
from fastmri_zoo.models import ScoreNetwork
from fastmri_zoo.physics import SENSE, CartesianSingleCoil
from fastmri_zoo.posterior import estimate_noise_std, files, sample_posterior
from tests.conftest import crandn
from tests.models.conftest import np_fftc, np_ifftc

SIZE = 16
NOISE = 1e-3  # the files' k-space noise, std per real part (file units)
#: the sampler's settings of the command lines below
CHAINS, STEPS, GAMMA, SIGMA_INIT, STEP_SIZE = 3, 30, 0.85, 0.1, 0.004
OPTIONS = ["--chains", str(CHAINS), "--steps", str(STEPS), "--gamma", str(GAMMA), "--sigma-init", str(SIGMA_INIT),
           "--step-size", str(STEP_SIZE)]


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def column_mask(size=SIZE):
    """float32 (1, W): a 4-column fully sampled centre (W/2 - 2 ... W/2 + 1), every 3rd column elsewhere,
    the centre block's neighbours unsampled (so the centre block is exactly those 4 columns)."""
    mask = np.zeros((1, size), np.float32)
    mask[0, ::3] = 1
    mask[0, size // 2 - 3 : size // 2 + 3] = 0
    mask[0, size // 2 - 2 : size // 2 + 2] = 1
    return mask


def phantom(slices=3, size=SIZE):
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    disc = ((xx / 0.8) ** 2 + (yy / 0.6) ** 2 < 1) * (1.0 + 0.5 * (xx > 0.1))
    return np.stack([disc * (1 + 0.1 * s) * np.exp(1j * (xx + 0.5 * yy)) for s in range(slices)]).astype(np.complex64)


@pytest.fixture(scope="module")
def prior_folder(tmp_path_factory):
    """A tiny ScoreNetwork preset of SIZE x SIZE images, seeded weights, its output layer scaled down (a weak prior)."""
    keras.utils.set_random_seed(3)
    model = ScoreNetwork(**ScoreNetwork.small_config())
    model.build()
    model.output_conv.kernel.assign(model.output_conv.kernel * 0.05)
    folder = tmp_path_factory.mktemp("prior") / "tiny-prior"
    example = {"image": np.zeros((1, SIZE, SIZE), np.complex64), "sigma": np.zeros((1,), np.float32)}
    model.save_to_preset(folder, example_inputs=example, description="A tiny random prior.")
    return folder


@pytest.fixture(scope="module")
def prior(prior_folder):
    return ScoreNetwork.from_preset(str(prior_folder))


@pytest.fixture(scope="module")
def singlecoil_file(tmp_path_factory):
    """An undersampled single-coil file (the mask in its zeros) with its reference."""
    rng = np.random.default_rng(1)
    image = phantom()
    kspace = column_mask() * (np_fftc(image) + NOISE * crandn(rng, image.shape))
    path = tmp_path_factory.mktemp("files") / "single.h5"
    write_fastmri_h5(path, kspace.astype(np.complex64), np.abs(image).astype(np.float32))
    return path, kspace.astype(np.complex64)


@pytest.fixture(scope="module")
def multicoil_file(tmp_path_factory):
    rng = np.random.default_rng(2)
    image = phantom(slices=2)
    yy, xx = np.mgrid[-1 : 1 : SIZE * 1j, -1 : 1 : SIZE * 1j]
    smaps = np.stack([np.exp(-((xx - c) ** 2 + yy**2)) * np.exp(1j * c * yy) for c in (-1.0, 1.0, 0.0)])
    coil_images = smaps[None] * image[:, None]
    kspace = column_mask() * (np_fftc(coil_images) + NOISE * crandn(rng, coil_images.shape))
    rss = np.sqrt((np.abs(coil_images) ** 2).sum(1)).astype(np.float32)
    path = tmp_path_factory.mktemp("files") / "multi.h5"
    write_fastmri_h5(path, kspace.astype(np.complex64), rss)
    return path, kspace.astype(np.complex64)


def numpy_measurements(kspace):
    """(scale, normalised k-space, coil maps or None) of one slice, computed with numpy."""
    zero_filled = np_ifftc(kspace)
    magnitude = np.sqrt((np.abs(zero_filled) ** 2).sum(0)) if kspace.ndim == 3 else np.abs(zero_filled)
    scale = magnitude.max()
    normalised = kspace / scale
    if kspace.ndim == 2:
        return scale, normalised, None
    centre = np.zeros(SIZE)
    centre[SIZE // 2 - 2 : SIZE // 2 + 2] = 1  # the fully sampled block of column_mask
    low = np_ifftc(normalised * centre)
    rss = np.sqrt((np.abs(low) ** 2).sum(0))
    return scale, normalised, np.where(rss > 1e-6 * rss.max(), low / np.maximum(rss, 1e-30), 0)


def direct_posterior(prior, kspace, index, noise_std_file):
    """The sampler run on slice ``index`` prepared by numpy_measurements, settings and seed as the command's."""
    scale, normalised, smaps = numpy_measurements(kspace[index])
    mask = column_mask()
    if smaps is None:
        operator, measurements = CartesianSingleCoil(mask[None]), normalised[None]
    else:
        operator, measurements = SENSE(mask[None], smaps[None].astype(np.complex64)), normalised[None]
    result = sample_posterior(prior.score, operator, measurements.astype(np.complex64), noise_std_file / scale,
                              step_size=STEP_SIZE, sigma_init=SIGMA_INIT, n_chains=CHAINS, n_steps=STEPS, gamma=GAMMA,
                              seed=index)
    return scale, result


@pytest.mark.parametrize("coils", ["single", "multi"])
def test_sample_matches_the_sampler_on_the_files_measurements(prior_folder, prior, singlecoil_file, multicoil_file,
                                                             coils, tmp_path, capsys):
    path, kspace = singlecoil_file if coils == "single" else multicoil_file
    before = sha256(path)
    out, png = tmp_path / "posterior.h5", tmp_path / "posterior.png"
    noise = NOISE  # in the file's k-space units: the sampler of each slice gets NOISE / that slice's scale
    index = len(kspace) // 2
    code = cli.main(["sample", str(prior_folder), str(path), *OPTIONS, "--noise-std", str(noise),
                     "-o", str(out), "--png", str(png)])
    assert code == 0
    stdout = capsys.readouterr().out
    assert f"slice(s) [{index}]" in stdout and "acceptance rate" in stdout and "final temperature" in stdout
    assert "posterior mean" in stdout and "Spearman" in stdout
    assert sha256(path) == before  # the input is never replaced
    assert png.read_bytes()[:4] == b"\x89PNG"

    scale, direct = direct_posterior(prior, kspace, index, noise)
    with h5py.File(out) as handle:
        mean, std = handle["posterior_mean"][()], handle["posterior_std"][()]
        magnitude = handle["reconstruction"][()]
        attrs = dict(handle.attrs)
        assert "samples" not in handle
    assert mean.shape == std.shape == magnitude.shape == (1, SIZE, SIZE)
    assert (mean.dtype, std.dtype, magnitude.dtype) == (np.complex64, np.float32, np.float32)
    np.testing.assert_allclose(mean[0], direct.mean * scale, rtol=1e-3, atol=1e-4 * np.abs(mean).max())
    np.testing.assert_allclose(std[0], direct.std * scale, rtol=1e-3, atol=1e-4 * std.max())
    np.testing.assert_allclose(magnitude, np.abs(mean), rtol=1e-6)
    np.testing.assert_allclose(attrs["acceptance_rate"], [direct.acceptance_rate.mean()], rtol=1e-6)
    np.testing.assert_allclose(attrs["final_sigma"], [direct.sigma.mean()], rtol=1e-5)
    np.testing.assert_allclose(attrs["scale"], [scale], rtol=1e-5)
    assert attrs["chains"] == CHAINS and attrs["steps"] == STEPS and attrs["kernel"] == "hmc"
    assert f"acceptance rate {direct.acceptance_rate.mean():.3f}" in stdout


def test_posterior_mean_is_consistent_with_the_data(prior_folder, singlecoil_file, tmp_path, capsys):
    """On the sampled frequencies the mean's k-space is within the tempered noise level of the data,
    sqrt(noise_std^2 + sigma_final^2) per real part (file units), where the chains can follow the annealing:
    the weak prior of the fixture, and leapfrog steps a constant fraction of the temperature (step power 1;
    the default 1.5 shrinks them faster, for long runs)."""
    path, kspace = singlecoil_file
    out = tmp_path / "posterior.h5"
    scale = numpy_measurements(kspace[1])[0]
    assert cli.main(["sample", str(prior_folder), str(path), "--chains", "3", "--steps", "40", "--gamma", "0.9",
                     "--sigma-init", "0.1", "--step-size", "0.03", "--step-power", "1", "--noise-std",
                     str(NOISE), "-o", str(out)]) == 0
    capsys.readouterr()
    with h5py.File(out) as handle:
        mean, final_sigma = handle["posterior_mean"][0], float(handle.attrs["final_sigma"][0])
    sampled = np.broadcast_to(column_mask() > 0, kspace.shape[1:])
    residual = (np_fftc(mean) - kspace[1])[sampled]
    level = np.hypot(NOISE, final_sigma * scale)
    rms = np.sqrt(np.mean(np.concatenate([residual.real, residual.imag]) ** 2))
    assert rms < 3 * level, (rms, level)
    # the prior acted: the mean is not the zero-filled image
    assert np.abs(mean - np_ifftc(kspace[1])).max() > 1e-3 * np.abs(mean).max()


def test_keep_samples_writes_them_and_reports_their_coverage(prior_folder, singlecoil_file, tmp_path, capsys):
    path, kspace = singlecoil_file
    out = tmp_path / "posterior.h5"
    assert cli.main(["sample", str(prior_folder), str(path), *OPTIONS, "--burn-in", "20", "--thin", "5",
                     "--keep-samples", "--slices", "0:2", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    with h5py.File(out) as handle:
        samples, mean, std = handle["samples"][()], handle["posterior_mean"][()], handle["posterior_std"][()]
        reference = None
    with h5py.File(path) as handle:
        reference = handle["reconstruction_rss"][0:2]
    assert samples.shape == (2, CHAINS * 2, SIZE, SIZE) and samples.dtype == np.complex64  # steps 20 and 25
    # the running moments (Welford) are numpy's mean and variance of the samples
    np.testing.assert_allclose(mean, samples.mean(1), rtol=1e-4, atol=1e-5 * np.abs(mean).max())
    np.testing.assert_allclose(std, np.sqrt(samples.var(1)), rtol=1e-3, atol=1e-5 * std.max())
    low, high = np.quantile(np.abs(samples), [0.05, 0.95], axis=1)
    coverage = np.mean((reference >= low) & (reference <= high))
    assert f"90% intervals cover {coverage:.3f} of the pixels" in stdout
    # the same over the foreground: each slice's reference above 10% of its own maximum
    head = reference > 0.1 * reference.max(axis=(1, 2), keepdims=True)
    inside = (reference >= low) & (reference <= high)
    assert 0 < head.sum() < head.size and f"{inside[head].mean():.3f} of the foreground's" in stdout
    from scipy.stats import spearmanr
    error = np.abs(np.abs(mean) - reference)
    assert f"{spearmanr(std[head], error[head]).statistic:.3f} over the foreground" in stdout
    assert "6 sample(s) per pixel" in stdout
    assert "slice 0:" in stdout and "slice 1:" in stdout


def test_a_given_noise_level_is_in_file_units_for_every_slice(prior_folder, multicoil_file, tmp_path, capsys):
    """--noise-std is the file's noise: each slice's sampler gets it over that slice's own normalisation."""
    path, kspace = multicoil_file
    scales = [numpy_measurements(kspace[i])[0] for i in range(2)]
    assert abs(scales[0] - scales[1]) > 0.05 * max(scales)  # slices normalised differently
    out = tmp_path / "posterior.h5"
    assert cli.main(["sample", str(prior_folder), str(path), *OPTIONS, "--slices", "0:2", "--noise-std", str(NOISE),
                     "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    with h5py.File(out) as handle:
        np.testing.assert_allclose(handle.attrs["scale"], scales, rtol=1e-5)
        np.testing.assert_allclose(handle.attrs["noise_std"], [NOISE / scale for scale in scales], rtol=1e-5)
        assert not bool(handle.attrs["noise_std_estimated"])
    assert stdout.count(f"noise std {NOISE:.3g} in the file's units (given)") == 2


def test_fully_sampled_file_is_undersampled_as_asked(prior_folder, tmp_path, capsys):
    image = phantom(slices=1)
    path = tmp_path / "full.h5"
    write_fastmri_h5(path, np_fftc(image).astype(np.complex64), np.abs(image).astype(np.float32))
    assert cli.main(["sample", str(prior_folder), str(path), *OPTIONS, "--noise-std", "0.001"]) == 2
    assert "records no acquisition; pass --acceleration" in capsys.readouterr().err
    assert cli.main(["sample", str(prior_folder), str(path), *OPTIONS, "--noise-std", "0.001", "--acceleration", "2",
                     "--mask-type", "equispaced_fraction", "--center-fraction", "0.25"]) == 0
    stdout = capsys.readouterr().out
    assert "undersampled retrospectively: equispaced_fraction mask, AF 2.29" in stdout  # 7 of 16 columns
    assert "nothing written" in stdout


def test_estimated_noise_level_is_printed_and_recorded(prior_folder, singlecoil_file, tmp_path, capsys):
    path, kspace = singlecoil_file
    out = tmp_path / "posterior.h5"
    assert cli.main(["sample", str(prior_folder), str(path), *OPTIONS, "-o", str(out)]) == 0
    scale, normalised, _ = numpy_measurements(kspace[1])
    expected = estimate_noise_std(normalised, column_mask())
    assert f"noise std {expected * scale:.3g} in the file's units (estimated)" in capsys.readouterr().out
    with h5py.File(out) as handle:
        np.testing.assert_allclose(handle.attrs["noise_std"], [expected], rtol=1e-4)
        assert bool(handle.attrs["noise_std_estimated"])


def test_noise_estimate_of_white_noise():
    """Noise only in the outer rows: the estimate is its std per real part (within the spread of the median)."""
    rng = np.random.default_rng(4)
    noise = 0.3 * crandn(rng, (4, 64, 64))
    mask = (rng.uniform(size=(1, 64)) < 0.5).astype(np.float32)
    assert estimate_noise_std(noise * mask, mask) == pytest.approx(0.3, rel=0.03)
    # a smooth image adds signal near the centre of k-space only: the estimate barely moves
    yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    image = np.exp(-(xx**2 + yy**2) / 0.2) * 64
    assert estimate_noise_std((np_fftc(image) + noise[0]) * mask, mask) == pytest.approx(0.3, rel=0.05)


# ---------------------------------------------------------------------------- bad inputs


@pytest.fixture
def no_sampling(monkeypatch):
    """Records every call of the sampler by the command (none is expected)."""
    calls = []
    monkeypatch.setattr(files, "sample_posterior", lambda *a, **k: calls.append(a))
    return calls


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--chains", "0"], "--chains: expected a value >= 1, got 0"),
        (["--steps", "0"], "--steps: expected a value >= 1"),
        (["--sigma-init", "nan"], "--sigma-init: expected a finite number, got nan"),
        (["--sigma-init", "-0.1"], "--sigma-init: expected a value > 0"),
        (["--gamma", "inf"], "--gamma: expected a finite number"),
        (["--gamma", "1.5"], "--gamma: expected a factor in (0, 1]"),
        (["--gamma", "1e-30", "--noise-std", "0"], "--gamma: the temperature can fall to 0 after 30 accepted moves"),
        (["--step-size", "inf"], "--step-size: expected a finite number"),
        (["--kernel", "gibbs"], "--kernel: expected one of ['hmc', 'langevin'], got 'gibbs'"),
        (["--noise-std", "-1"], "--noise-std: expected a value >= 0"),
        (["--burn-in", "30"], "--burn-in: expected fewer than n_steps = 30 steps"),
        (["--slices", "7:9"], "--slices: selects no slice of the file's 3"),
    ],
)
def test_bad_settings_fail_before_sampling(prior_folder, singlecoil_file, tmp_path, capsys, no_sampling, extra,
                                           message):
    path, _ = singlecoil_file
    out = tmp_path / "posterior.h5"
    assert cli.main(["sample", str(prior_folder), str(path), *OPTIONS, *extra, "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fastmri-zoo sample: error:") and message in error, error
    assert not no_sampling and not out.exists()


def test_bad_files_fail_before_sampling(prior_folder, singlecoil_file, tmp_path, capsys, no_sampling):
    path, _ = singlecoil_file
    larger = tmp_path / "larger.h5"
    write_fastmri_h5(larger, np_fftc(phantom(1, size=24)).astype(np.complex64))
    noncartesian = tmp_path / "radial.h5"
    write_fastmri_h5(noncartesian, np.ones((1, 32), np.complex64), trajectory=np.zeros((2, 32), np.float32),
                     image_shape=(SIZE, SIZE))
    cases = [
        ([str(larger), "--acceleration", "2"], "k-space of 24 x 24 (kspace (1, 24, 24)), but the prior"),
        ([str(noncartesian)], "holds non-Cartesian k-space"),
        ([str(path), "-o", str(path)], "is the input file"),
        ([str(tmp_path / "absent.h5")], "no such file"),
    ]
    for arguments, message in cases:
        assert cli.main(["sample", str(prior_folder), *arguments, *OPTIONS]) == 2
        error = capsys.readouterr().err
        assert message in error, error
    assert not no_sampling


def test_a_prior_recording_its_coil_mode_refuses_the_other(tmp_path, multicoil_file, capsys, no_sampling):
    """A prior whose preset records a single-coil acquisition is not given multicoil files."""
    model = ScoreNetwork(**ScoreNetwork.small_config())
    folder = model.save_to_preset(
        tmp_path / "singlecoil-prior", acquisition={"multicoil": False},
        example_inputs={"image": np.zeros((1, SIZE, SIZE), np.complex64), "sigma": np.zeros((1,), np.float32)})
    path, _ = multicoil_file
    assert cli.main(["sample", str(folder), str(path), *OPTIONS]) == 2
    assert "single-coil model but the file holds 3 coils" in capsys.readouterr().err
    assert not no_sampling


def test_checkpoints_of_other_tasks_are_refused(prior_folder, singlecoil_file, tmp_path, capsys, no_sampling):
    from tests.zoo_helpers import make_preset

    path, _ = singlecoil_file
    network, _ = make_preset(tmp_path / "network")
    assert cli.main(["sample", str(network), str(path), *OPTIONS]) == 2
    assert "is a reconstruction checkpoint, not a prior one; use fastmri-zoo reconstruct" in capsys.readouterr().err
    assert cli.main(["reconstruct", str(prior_folder), str(path), "-o", str(tmp_path / "r.h5")]) == 2
    assert "is a prior checkpoint, not a reconstruction one; use fastmri-zoo sample" in capsys.readouterr().err
    assert not no_sampling and not (tmp_path / "r.h5").exists()


# ---------------------------------------------------------------------------- atomic writing


def _folder_files(folder):
    return sorted(os.listdir(folder))


def test_interrupted_sampling_writes_nothing(prior_folder, singlecoil_file, tmp_path, capsys, monkeypatch):
    path, _ = singlecoil_file
    out = tmp_path / "posterior.h5"
    out.write_bytes(b"the previous result")
    real = files.sample_posterior

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "sample_posterior", interrupted)
    assert cli.main(["sample", str(prior_folder), str(path), *OPTIONS, "-o", str(out), "--png",
                     str(tmp_path / "p.png")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert out.read_bytes() == b"the previous result" and _folder_files(tmp_path) == ["posterior.h5"]


def test_a_failed_write_leaves_no_half_written_file(prior_folder, singlecoil_file, tmp_path, capsys, monkeypatch):
    path, _ = singlecoil_file
    out = tmp_path / "posterior.h5"
    out.write_bytes(b"the previous result")
    create = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == "posterior_std":  # after the first datasets are written
            raise OSError("No space left on device")
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    assert cli.main(["sample", str(prior_folder), str(path), *OPTIONS, "-o", str(out)]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == b"the previous result" and _folder_files(tmp_path) == ["posterior.h5"]


def test_uncertainty_metrics_against_numpy():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 20, 20)), rng.standard_normal((3, 20, 20))
    b = b + a  # correlated
    ranks = lambda x: np.argsort(np.argsort(x.ravel())).astype(float)  # noqa: E731 (no ties in continuous data)
    expected = np.corrcoef(ranks(a), ranks(b))[0, 1]
    assert metrics.spearman_correlation(a, b) == pytest.approx(expected, rel=1e-10)
    # a monotone transform keeps the ranks: correlation 1
    assert metrics.spearman_correlation(a, np.exp(a)) == pytest.approx(1.0)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    assert metrics.spearman_correlation(a, b, mask) == pytest.approx(
        np.corrcoef(ranks(a[:, mask]), ranks(b[:, mask]))[0, 1], rel=1e-10)
    # draws of the samples' own distribution fall in their 90% interval 90% of the time
    samples = 2.0 + 0.5 * rng.standard_normal((400, 50, 50))
    truth = 2.0 + 0.5 * rng.standard_normal((50, 50))
    assert metrics.interval_coverage(samples, truth) == pytest.approx(0.9, abs=0.015)
    assert metrics.interval_coverage(samples, truth + 100) == 0.0
    with pytest.raises(ValueError, match="np.abs"):
        metrics.spearman_correlation(a + 1j, b)
    with pytest.raises(ValueError, match="samples: expected"):
        metrics.interval_coverage(samples[:1], truth)


def test_foreground_mask_per_image():
    rng = np.random.default_rng(6)
    reference = rng.uniform(0, 1, (3, 16, 12)) * np.array([1.0, 10.0, 0.01])[:, None, None]
    mask = metrics.foreground_mask(reference, 0.25)
    for image, selected in zip(reference, mask):  # each image against its own maximum
        np.testing.assert_array_equal(selected, image > 0.25 * image.max())
    assert mask.dtype == bool and mask.shape == reference.shape
    np.testing.assert_array_equal(metrics.foreground_mask(reference[1]), reference[1] > 0.1 * reference[1].max())
    for fraction in (0, 1, -0.5):
        with pytest.raises(ValueError, match="fraction: expected a number in"):
            metrics.foreground_mask(reference, fraction)
    with pytest.raises(ValueError, match=r"reference: expected images \(\.\.\., H, W\)"):
        metrics.foreground_mask(reference[0, 0])
    with pytest.raises(ValueError, match="np.abs"):
        metrics.foreground_mask(reference + 0j)
