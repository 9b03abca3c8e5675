"""What each site holds: its subjects, its acquisition, its training stream and its held-out examples.

A site never reads another site's files. The ``"volumes"`` sites of a recipe share one data root in a
simulation, each reading only its own group of subjects (:func:`split_by_share`); in a deployment each
site's machine holds its own data root. The ``"cardiac"`` site uses the images bundled with the package.

Examples are synthesised from magnitude volumes (:mod:`fastmri_zoo.data.synthesis`) with the site's
coils, masks and acceleration, as the trainer's pipelines make them
(:func:`~fastmri_zoo.data.synthesized_cartesian_dataset`):

- training: ``steps * batch_size`` new examples for every round, augmented, drawn from the seed
  (recipe seed, site, phase, round), so a federation is reproducible and two strategies given the same
  seed see the same examples;
- held-out: ``eval_examples`` fixed examples of the site's held-out subjects, not augmented, the same
  at every round.

The sample count a site reports, which weights its update in the server's average, is the number of
slices its training stream draws from (slices holding signal, along the synthesis orientations).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import zoom

from ..data.pipelines import synthesized_cartesian_dataset
from ..data.simulate import load_magnitude
from ..data.synthesis import SliceSynthesizer, Synthesis, list_volume_files
from ..samples import cardiac_images
from ..training.fit import _pipeline_options
from .recipe import FederationRecipe, Site

__all__ = ["SiteData", "split_by_share", "load_site_data", "check_site_folders", "CARDIAC_ALPHA_FRACTION"]

#: The share of the bundled cardiac training images the ``"cardiac"`` site keeps for alpha (the search).
CARDIAC_ALPHA_FRACTION = 0.25


def split_by_share(items: list, shares: list[float], where: str = "data") -> list[list]:
    """``items`` (sorted by the caller) split into ``len(shares)`` consecutive groups whose sizes follow
    ``shares`` (largest remainders), each of at least one item; raises when there are fewer items than groups."""
    count = len(items)
    if count < len(shares):
        raise ValueError(f"{where}: {count} subject(s) for {len(shares)} volume sites; expected at least one each.")
    shares = np.asarray(shares, np.float64)
    spare = count - len(shares)  # everybody gets one, the rest by share
    exact = spare * shares / shares.sum()
    sizes = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - sizes), kind="stable")[: spare - int(sizes.sum())]:
        sizes[index] += 1
    sizes += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [items[bounds[i]:bounds[i + 1]] for i in range(len(shares))]


@dataclass
class SiteData:
    """A site's volumes (float32 (D, H, W) magnitudes, peak 1) by split, and how it acquires them."""

    site: Site
    index: int
    train: list
    val: list | None
    test: list
    seed: int = 0

    @property
    def synthesis(self):
        return Synthesis.from_dict(self.site.synthesis, f"sites[{self.index}].synthesis")

    @property
    def training_examples(self) -> int:
        """The sample count of the site: the slices its training stream draws from."""
        drawn = SliceSynthesizer(self.train, self.synthesis)._slices
        return int(sum(len(slices) for per_axis in drawn for slices in per_axis.values()))

    def _seed(self, *parts) -> int:
        return zlib.crc32(repr((self.seed, self.site.name) + parts).encode()) & 0x7FFFFFFF

    def _dataset(self, volumes, *, seed: int, examples: int, batch_size: int, augment: bool):
        return synthesized_cartesian_dataset(None, self.synthesis, seed=seed, batch_size=batch_size,
                                             num_examples=examples, augment=augment, volumes=volumes,
                                             **_pipeline_options(self.site.acquisition))

    def training_batches(self, phase: str, server_round: int, steps: int, batch_size: int, split: str = "train"):
        """``steps`` batches ``(inputs, target)`` of new augmented examples of ``split`` (``"train"``, or
        ``"val"``: the alpha split of the search) for ``server_round`` of ``phase``."""
        volumes = self.train if split == "train" else self.val
        if volumes is None:
            raise ValueError(f"site {self.site.name}: no {split} subjects (data.{split}).")
        return self._dataset(volumes, seed=self._seed(phase, split, int(server_round)), examples=steps * batch_size,
                             batch_size=batch_size, augment=True)

    def heldout(self, examples: int, batch_size: int):
        """The site's fixed held-out examples, batched."""
        return self._dataset(self.test, seed=self._seed("heldout"), examples=examples, batch_size=batch_size,
                             augment=False)


def _volume_groups(recipe: FederationRecipe, root: Path, part: str, shared: bool) -> list[list[str]] | None:
    folder = recipe.data.get(part)
    if folder is None:
        return None
    files = list_volume_files(root / recipe.data.get("folder", "") / folder)
    if not shared:
        return [files]
    return split_by_share(files, [site.share for site in recipe.volume_sites], f"data.{part}")


def _resize(images: np.ndarray, site: Site) -> np.ndarray:
    """The bundled images (n, 128, 128) brought to the site's synthesis grid (linear interpolation), so a
    small grid holds whole hearts rather than crops of them."""
    size = tuple(site.synthesis.get("size", images.shape[1:]))
    if size == images.shape[1:]:
        return images
    factors = (1.0, size[0] / images.shape[1], size[1] / images.shape[2])
    return np.clip(zoom(images, factors, order=1), 0, None).astype(np.float32)


def _load(paths: list[str]) -> list[np.ndarray]:
    volumes = []
    for path in paths:
        volume = np.abs(load_magnitude(path)).astype(np.float32)
        if volume.ndim != 3 or not np.isfinite(volume.max()) or volume.max() <= 0:
            raise ValueError(f"{path}: expected a 3D magnitude volume with some signal, got shape {volume.shape}.")
        volumes.append(volume / volume.max())
    return volumes


def load_site_data(recipe: FederationRecipe, name: str, data_dir: str | os.PathLike | None = None, *,
                   shared: bool = True) -> SiteData:
    """The data of site ``name``: for a ``"volumes"`` site, its subjects under the data root ``data_dir``
    (default: the recipe's folder): with ``shared`` (a simulation: one data root for every site) its group
    of the subjects (:func:`split_by_share`), else (a deployment: the site's own data root) all of them;
    for the ``"cardiac"`` site, the bundled images."""
    site = recipe.site(name)
    index = recipe.sites.index(site)
    seed = recipe.options.seed
    if site.source == "cardiac":
        train, heldout = (_resize(images, site) for images in cardiac_images())
        alpha = max(1, int(round(len(train) * CARDIAC_ALPHA_FRACTION)))
        return SiteData(site, index, train=[train[:-alpha]], val=[train[-alpha:]], test=[heldout], seed=seed)
    root = recipe.data_root(data_dir)
    position = recipe.volume_sites.index(site)
    splits = {}
    for part in ("train", "val", "test"):
        groups = _volume_groups(recipe, root, part, shared)
        splits[part] = None if groups is None else _load(groups[position if shared else 0])
    return SiteData(site, index, train=splits["train"], val=splits["val"], test=splits["test"], seed=seed)


def check_site_folders(recipe: FederationRecipe, data_dir: str | os.PathLike | None) -> None:
    """Raise FileNotFoundError / ValueError naming what is missing when the data root lacks the folders (or
    enough subjects) of the recipe's volume sites; before a simulation starts."""
    if not recipe.volume_sites:
        return
    root = recipe.data_root(data_dir)
    for part in ("train", "val", "test"):
        if recipe.data.get(part) is None:
            continue
        folder = root / recipe.data.get("folder", "") / recipe.data[part]
        if not folder.is_dir():
            raise FileNotFoundError(f"data.{part}: no such folder: {str(folder)!r}"
                                    + (f" (prepare the data with: {recipe.data['prepare']})"
                                       if recipe.data.get("prepare") else ""))
        _volume_groups(recipe, root, part, shared=True)
