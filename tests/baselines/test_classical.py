import numpy as np

from fastmri_zoo import baselines, physics
from tests.conftest import crandn


def test_zero_filled_fully_sampled_is_rss(rng):
    coil_images = crandn(rng, (1, 4, 16, 16))
    kspace = physics.fftc(coil_images).numpy()
    got = baselines.zero_filled(kspace).numpy()
    np.testing.assert_allclose(got, np.sqrt((np.abs(coil_images) ** 2).sum(1)), rtol=1e-5)


def test_cg_sense_beats_zero_filled_on_undersampled_data(rng):
    n, coils = 32, 4
    yy, xx = np.mgrid[-1:1:n * 1j, -1:1:n * 1j]
    image = ((xx**2 + yy**2 < 0.6) * (1 + 0.5 * np.cos(4 * xx))).astype(np.complex64)[None]
    smaps = np.stack([np.exp(-((xx - np.cos(a)) ** 2 + (yy - np.sin(a)) ** 2))
                      for a in np.linspace(0, 2 * np.pi, coils, endpoint=False)])[None].astype(np.complex64)
    smaps /= np.sqrt((np.abs(smaps) ** 2).sum(1, keepdims=True))
    mask = np.zeros((1, 1, n), np.float32)
    mask[..., ::2] = 1
    mask[..., n // 2 - 3 : n // 2 + 3] = 1
    kspace = physics.SENSE(mask, smaps).forward(image).numpy()
    zf = baselines.zero_filled(kspace, smaps=smaps).numpy()
    cg = baselines.cg_sense(kspace, mask, smaps, num_iterations=30).numpy()
    err_zf = np.linalg.norm(zf - image) / np.linalg.norm(image)
    err_cg = np.linalg.norm(cg - image) / np.linalg.norm(image)
    assert err_cg < 1e-2 < err_zf
