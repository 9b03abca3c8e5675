"""``fastmri-zoo reconstruct`` on raw non-Cartesian files: the bundled real radial cardiac
acquisition and small simulated files. References are computed here with numpy and finufft
(type-1 / type-2 NUFFT in the package's sign and scaling convention)."""

import os

import finufft
import h5py
import keras
import matplotlib.image
import numpy as np
import pytest

from fastmri_zoo import cli
from fastmri_zoo.data.h5 import read_fastmri_h5, write_fastmri_h5
from fastmri_zoo.demo import bundled_sample
from fastmri_zoo.inference import noncartesian_inputs, reconstruct_file, reconstruct_noncartesian
from fastmri_zoo.physics import pipe_menon_density
from fastmri_zoo.sampling import radial_trajectory

SAMPLE = "radial_cardiac_12coil"
CENTER_RADIUS = 0.1 * np.pi  # the centre of k-space the coil maps come from (as in training)


# ---------------------------------------------------------------------------- numpy / finufft references


def np_adjoint(traj, kspace, shape):
    """x_n = N^(-1/2) sum_j y_j exp(+i k_j . (n - N//2)); traj (2, nsamples), kspace (..., nsamples)."""
    values = np.atleast_2d(kspace).astype(np.complex128)
    out = np.stack([finufft.nufft2d1(traj[0].astype(np.float64), traj[1].astype(np.float64), v, shape,
                                     isign=1, eps=1e-12) for v in values])
    out = out / np.sqrt(np.prod(shape))
    return out if np.ndim(kspace) > 1 else out[0]


def np_forward(traj, images):
    """y_j = N^(-1/2) sum_n x_n exp(-i k_j . (n - N//2)); images (..., H, W)."""
    values = np.asarray(images, np.complex128).reshape((-1,) + np.shape(images)[-2:])
    out = np.stack([finufft.nufft2d2(traj[0].astype(np.float64), traj[1].astype(np.float64), v, isign=-1, eps=1e-12)
                    for v in values])
    return (out / np.sqrt(np.prod(np.shape(images)[-2:]))).reshape(np.shape(images)[:-2] + (-1,))


def np_prepare(kspace, traj, shape, dcomp):
    """Scale, coil maps and SENSE-combined adjoint + DCp of one multicoil slice, from the definitions."""
    coil_images = np_adjoint(traj, kspace * dcomp, shape)
    scale = np.sqrt((np.abs(coil_images) ** 2).sum(0)).max()
    centre = np.hypot(traj[0], traj[1]) < CENTER_RADIUS
    low = np_adjoint(traj, kspace * dcomp * centre, shape)
    smaps = low / np.sqrt((np.abs(low) ** 2).sum(0))
    adjoint = (np.conj(smaps) * coil_images).sum(0)
    return scale, smaps, adjoint


def relative_error(got, want):
    return float(np.linalg.norm(np.asarray(got) - want) / np.linalg.norm(want))


# ---------------------------------------------------------------------------- the bundled acquisition


@pytest.fixture(scope="module")
def sample():
    volume = read_fastmri_h5(bundled_sample(SAMPLE))
    dcomp = np.asarray(pipe_menon_density(volume.trajectory, volume.image_shape), np.float32)
    return volume, dcomp


def test_sample_layout_geometry_and_attribution(sample):
    volume, _ = sample
    path = bundled_sample(SAMPLE)
    assert os.path.getsize(path) < 2e6
    assert volume.noncartesian and volume.multicoil and volume.reference is None and volume.dcomp is None
    assert volume.kspace.shape == (1, 12, 6400) and volume.kspace.dtype == np.complex64
    assert volume.trajectory.shape == (2, 6400) and volume.trajectory.dtype == np.float32
    assert volume.image_shape == (256, 256)
    assert "gpuNUFFT" in volume.attrs["source"] and volume.attrs["licence"] == "MIT"
    assert volume.attrs["acceleration"] == pytest.approx(256 / 25)
    # 25 diametric spokes of 256 samples, spoke-major, from +pi to -pi in steps of 2 pi / 255,
    # 180 / 25 degrees apart (closed form of the gpuNUFFT trajectory).
    spokes = volume.trajectory.reshape(2, 25, 256)
    radius = np.hypot(spokes[0], spokes[1])
    np.testing.assert_allclose(radius, np.broadcast_to(np.abs(np.linspace(np.pi, -np.pi, 256)), (25, 256)), atol=2e-6)
    steps = np.hypot(*np.diff(spokes, axis=-1))
    np.testing.assert_allclose(steps, 2 * np.pi / 255, rtol=1e-4)
    angles = np.degrees(np.arctan2(spokes[1, :, 0], spokes[0, :, 0])) % 180
    np.testing.assert_allclose(np.sort(angles), np.arange(25) * 7.2, atol=1e-4)
    assert np.abs(volume.trajectory).max() <= np.pi
    # The raw data are not scaled: the peak of the file is the gpuNUFFT rawdata's.
    assert 1e-3 < np.abs(volume.kspace).max() < 1e-2


def test_sample_adjoint_dcomp_and_coil_maps_match_finufft(sample):
    volume, dcomp = sample
    kspace, traj, shape = volume.kspace[0], volume.trajectory, volume.image_shape
    scale_ref, smaps_ref, adjoint_ref = np_prepare(kspace, traj, shape, dcomp)

    network, adjoint, used_dcomp = reconstruct_noncartesian(None, volume.kspace, traj, shape, progress=False)
    assert network is None and adjoint.shape == (1, 256, 256) and adjoint.dtype == np.float32
    np.testing.assert_allclose(used_dcomp, dcomp, rtol=1e-6)
    assert relative_error(adjoint[0], np.abs(adjoint_ref)) < 1e-3

    inputs, scale, image = noncartesian_inputs(kspace, traj, shape, dcomp)
    assert scale == pytest.approx(scale_ref, rel=1e-4)
    assert relative_error(image, adjoint_ref) < 1e-3
    smaps = inputs["smaps"].numpy()
    assert smaps.shape == (1, 12, 256, 256)
    assert relative_error(smaps[0], smaps_ref) < 1e-3
    np.testing.assert_allclose(inputs["kspace"].numpy()[0], kspace / scale_ref, rtol=0,
                               atol=1e-4 * np.abs(kspace).max() / scale_ref)
    # The maps have unit root-sum-of-squares wherever there is signal.
    signal = np.abs(adjoint_ref) > 0.1 * np.abs(adjoint_ref).max()
    assert signal.mean() > 0.05
    np.testing.assert_allclose(np.sqrt((np.abs(smaps[0]) ** 2).sum(0))[signal], 1.0, atol=1e-5)
    np.testing.assert_array_equal(inputs["traj"].numpy()[0], traj)
    np.testing.assert_array_equal(inputs["dcomp"].numpy()[0], dcomp)


# ---------------------------------------------------------------------------- simulated files


def phantom(size, coils, rng):
    """Smooth complex object and birdcage-like coil maps: coil images (coils, size, size)."""
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    image = (x**2 / 0.6 + y**2 / 0.4 < 1) * (1 + 0.5 * np.cos(3 * x)) * np.exp(1j * rng.uniform(-1, 1) * (x + y))
    angles = 2 * np.pi * np.arange(coils) / coils
    maps = np.stack([np.exp(-((x - 1.2 * np.cos(a)) ** 2 + (y - 1.2 * np.sin(a)) ** 2) / 1.5) * np.exp(1j * a)
                     for a in angles])
    return image[None] * maps


@pytest.fixture
def simulated(tmp_path):
    """Two slices, 4 coils, 48 x 48, radial AF 4, a closed-form |k| density stored in the file."""
    rng = np.random.default_rng(1)
    size, coils = 48, 4
    traj = radial_trajectory(size, 4).reshape(2, -1)
    kspace = np.stack([np_forward(traj, phantom(size, coils, rng)) for _ in range(2)]).astype(np.complex64) * 3e-4
    dcomp = np.maximum(np.hypot(traj[0], traj[1]), 0.01).astype(np.float32)
    path = tmp_path / "radial.h5"
    write_fastmri_h5(path, kspace, trajectory=traj, dcomp=dcomp, image_shape=(size, size), acquisition="simulated")
    return path, kspace, traj, dcomp


def test_dcomp_of_the_file_is_used_and_image_shape_can_be_overridden(simulated):
    path, kspace, traj, dcomp = simulated
    for shape in (None, (40, 40)):
        volume = read_fastmri_h5(path, image_shape=shape)
        grid = shape or (48, 48)
        assert volume.image_shape == grid
        _, adjoint, used = reconstruct_noncartesian(None, volume.kspace, volume.trajectory, volume.image_shape,
                                                    dcomp=volume.dcomp, progress=False)
        # The file's weights, rescaled so that (A^H D A 1) = 1 at the centre of the grid:
        # (A^H D A 1)[N//2] = N^(-1/2) sum_j d_j (A 1)_j.
        gain = np.real(np.sum(dcomp * np_forward(traj, np.ones(grid)))) / np.sqrt(np.prod(grid))
        np.testing.assert_allclose(used, dcomp / gain, rtol=2e-3)
        assert adjoint.shape == (2,) + grid
        for index in range(2):
            _, _, want = np_prepare(kspace[index], traj, grid, dcomp / gain)
            assert relative_error(adjoint[index], np.abs(want)) < 2e-3
    # Per-slice weights are rescaled slice by slice.
    _, _, used = reconstruct_noncartesian(None, kspace, traj, (48, 48), dcomp=np.stack([dcomp, 3 * dcomp]),
                                          progress=False)
    np.testing.assert_allclose(used[0], used[1], rtol=1e-5)


def test_single_coil_inputs_match_numpy(simulated):
    path, kspace, traj, dcomp = simulated
    single = kspace[0, 0]
    inputs, scale, image = noncartesian_inputs(single, traj, (48, 48), dcomp)
    want = np_adjoint(traj, single * dcomp, (48, 48))
    assert scale == pytest.approx(np.abs(want).max(), rel=1e-3)
    assert relative_error(image, want) < 2e-3
    assert set(inputs) == {"kspace", "traj", "dcomp"} and inputs["kspace"].shape == (1, traj.shape[-1])
    np.testing.assert_allclose(inputs["kspace"].numpy()[0], single / scale, rtol=1e-5)


def test_reading_an_image_shape_that_does_not_fit(simulated, tmp_path):
    path, *_ = simulated
    with pytest.raises(ValueError, match="image_shape"):
        read_fastmri_h5(path, image_shape=(48, 48, 48))  # the trajectory is 2D
    with pytest.raises(ValueError, match="image_shape"):
        read_fastmri_h5(path, image_shape=(0, 48))
    with pytest.raises(ValueError, match="Cartesian file"):
        read_fastmri_h5(bundled_sample("brain_4coil"), image_shape=(256, 256))
    # A non-Cartesian file without the image_shape attribute is readable when the grid is given.
    bare = tmp_path / "bare.h5"
    with h5py.File(path) as source, h5py.File(bare, "w") as target:
        for key in ("kspace", "trajectory"):
            target.create_dataset(key, data=source[key][()])
    with pytest.raises(ValueError, match="image_shape"):
        read_fastmri_h5(bare)
    assert read_fastmri_h5(bare, image_shape=[48, 48]).image_shape == (48, 48)


# ---------------------------------------------------------------------------- the network, the command, errors


def tiny_ncpdnet(multicoil=True, **kwargs):
    from fastmri_zoo.models import NCPDNet

    keras.utils.set_random_seed(0)
    return NCPDNet(n_iter=2, n_filters=4, multicoil=multicoil, **kwargs)


@pytest.mark.slow  # the bundled 12-coil 256 x 256 acquisition end to end; small files go through the same command below
def test_command_runs_an_untrained_ncpdnet_on_the_bundled_acquisition(sample, tmp_path, capsys):
    volume, dcomp = sample
    kspace, traj, shape = volume.kspace[0], volume.trajectory, volume.image_shape
    scale, smaps, adjoint_ref = np_prepare(kspace, traj, shape, dcomp)
    model = tiny_ncpdnet()
    inputs = {"kspace": (kspace / scale)[None].astype(np.complex64), "traj": traj[None], "dcomp": dcomp[None],
              "smaps": smaps[None].astype(np.complex64)}
    expected = np.abs(np.asarray(model(inputs))[0]) * scale
    folder = model.save_to_preset(tmp_path / "preset", description="untrained NC-PDNet for the test")

    out, png = tmp_path / "recon.h5", tmp_path / "recon.png"
    assert cli.main(["reconstruct", str(folder), bundled_sample(SAMPLE), "-o", str(out), "--png", str(png)]) == 0
    printed = capsys.readouterr().out
    assert "no metrics" in printed and "Pipe-Menon" in printed and str(png) in printed
    with h5py.File(out) as handle:
        got = handle["reconstruction"][()]
        attrs = dict(handle.attrs)
    assert got.shape == (1, 256, 256) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=2e-3 * expected.max())
    # The network changed the image: it is not the adjoint + DCp it starts from.
    assert relative_error(got[0], np.abs(adjoint_ref)) > 1e-2
    assert attrs["density_compensation"] == "Pipe-Menon" and "no fully sampled reference" in attrs["metrics"]
    assert list(attrs["image_shape"]) == [256, 256] and attrs["acceleration"] == pytest.approx(10.24)
    figure = matplotlib.image.imread(png)
    assert figure.shape[1] > 1.5 * figure.shape[0]  # two panels side by side


def write_reference_file(path):
    """A radial AF 2, 3-coil, 32 x 32 slice with its RSS reference; returns the reference (1, 32, 32)."""
    rng = np.random.default_rng(2)
    size, coils = 32, 3
    traj = radial_trajectory(size, 2).reshape(2, -1)
    coil_images = phantom(size, coils, rng)
    reference = np.sqrt((np.abs(coil_images) ** 2).sum(0))[None].astype(np.float32)
    write_fastmri_h5(path, np_forward(traj, coil_images)[None].astype(np.complex64), reference, trajectory=traj,
                     image_shape=(size, size))
    return reference


def test_metrics_when_a_non_cartesian_file_has_a_reference(tmp_path):
    from skimage.metrics import peak_signal_noise_ratio

    path = tmp_path / "ref.h5"
    reference = write_reference_file(path)
    result = reconstruct_file(tiny_ncpdnet(), path, png=tmp_path / "ref.png", progress=False)
    assert result.noncartesian and result.baseline == "adjoint + DCp" and np.isnan(result.acceleration)
    for name, image in (("network", result.reconstruction), ("adjoint + DCp", result.zero_filled)):
        want = peak_signal_noise_ratio(reference[0], image[0], data_range=reference.max())
        assert result.metrics[name]["psnr"] == pytest.approx(want, rel=1e-4)
    # A fully sampled-ish radial acquisition (AF 2) of a smooth object: adjoint + DCp is close.
    assert result.metrics["adjoint + DCp"]["psnr"] > 20
    assert os.path.getsize(tmp_path / "ref.png") > 0


def test_mismatched_model_and_file_give_clear_errors(simulated, tmp_path, capsys):
    from fastmri_zoo.models import UNet

    path, kspace, traj, _ = simulated
    radial = bundled_sample(SAMPLE)
    with pytest.raises(ValueError, match="no 'trajectory' dataset.*non-Cartesian model"):
        reconstruct_file(tiny_ncpdnet(), bundled_sample("brain_4coil"), progress=False)
    with pytest.raises(ValueError, match="non-Cartesian k-space.*Cartesian model"):
        reconstruct_file(UNet(layers_n_channels=[4, 8]), radial, progress=False)
    with pytest.raises(ValueError, match="single-coil model but .* 12 coils"):
        reconstruct_file(tiny_ncpdnet(multicoil=False), radial, progress=False)
    single = tmp_path / "single.h5"
    write_fastmri_h5(single, kspace[:, 0], trajectory=traj, image_shape=(48, 48))
    with pytest.raises(ValueError, match="multicoil model but .* single-coil"):
        reconstruct_file(tiny_ncpdnet(), single, progress=False)
    with pytest.raises(ValueError, match="3D images .* 2D grid"):
        reconstruct_file(tiny_ncpdnet(ndim=3), radial, progress=False)
    with pytest.raises(ValueError, match="acceleration.*as acquired"):
        reconstruct_file(tiny_ncpdnet(), radial, acceleration=4, progress=False)
    with pytest.raises(ValueError, match="image_shape: only for non-Cartesian models"):
        reconstruct_file(UNet(layers_n_channels=[4, 8]), bundled_sample("brain_4coil"), image_shape=(64, 64))
    # Samples without a trajectory: read as Cartesian k-space, refused with the layout to use.
    no_traj = tmp_path / "no_traj.h5"
    with h5py.File(no_traj, "w") as handle:
        handle.create_dataset("kspace", data=kspace)
    with pytest.raises(ValueError, match="no 'trajectory' dataset.*radians per pixel"):
        reconstruct_file(tiny_ncpdnet(), no_traj, progress=False)
    # Wrong shapes are named by the command, which exits with 2.
    folder = tiny_ncpdnet().save_to_preset(tmp_path / "preset", example_inputs={
        "kspace": np.zeros((1, 4, 16), np.complex64), "traj": np.zeros((1, 2, 16), np.float32),
        "dcomp": np.ones((1, 16), np.float32), "smaps": np.ones((1, 4, 8, 8), np.complex64)})
    assert cli.main(["reconstruct", str(folder), str(path), "--image-shape", "48", "48", "48"]) == 2
    assert "image_shape" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as handle:
        handle.create_dataset("kspace", data=kspace)
        handle.create_dataset("trajectory", data=traj[:, :-1])
        handle.attrs["image_shape"] = np.array([48, 48])
    assert cli.main(["reconstruct", str(folder), str(bad)]) == 2
    assert "trajectory: has" in capsys.readouterr().err


def test_evaluate_scores_non_cartesian_files_against_adjoint_dcomp(tmp_path, capsys):
    from fastmri_zoo.presets import from_preset

    data = tmp_path / "data"
    data.mkdir()
    write_reference_file(data / "ref.h5")
    folder = tiny_ncpdnet().save_to_preset(tmp_path / "preset", example_inputs={
        "kspace": np.zeros((1, 4, 16), np.complex64), "traj": np.zeros((1, 2, 16), np.float32),
        "dcomp": np.ones((1, 16), np.float32), "smaps": np.ones((1, 4, 8, 8), np.complex64)})
    assert cli.main(["evaluate", str(folder), str(data)]) == 0
    printed = capsys.readouterr().out
    result = reconstruct_file(from_preset(str(folder)), data / "ref.h5", progress=False)
    rows = {line.split("  ")[0]: line for line in printed.splitlines()[2:]}
    assert set(rows) == {"adjoint + DCp", str(folder)}  # full names
    for method, label in (("adjoint + DCp", "adjoint + DCp"), ("network", str(folder))):
        assert rows[label].split()[-3] == f"{result.metrics[method]['psnr']:.4f}"
    assert "one volume: no spread" in printed and "+-" not in printed and "nan" not in printed
