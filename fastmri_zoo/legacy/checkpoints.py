"""The authors' 18 published fastMRI / OASIS checkpoints, as zoo entries.

Each :class:`LegacyCheckpoint` says where the Keras-2 file is on the Hugging
Face Hub (``zaccharieramzi/<repo>``, ``model_weights.h5``), which zoo network
with which options reproduces the original architecture, the order in which
the original stored its weights (a *plan*, see :mod:`.order`), and the
original's pre/post-processing (k-space scale factor, crop). The registry
lists them as checkpoints of format "keras2" (:func:`fastmri_zoo.registry.keras2_entry`)
and loads them with :func:`load`, which downloads the file (or finds it in the
cache), checks it (structure, finite values, the sha256 recorded at its first
download) and converts it.

No Hub revision is pinned: none was known when these entries were written
(no network). The sha256 recorded at the first download stands in for it.
This module imports nothing heavy; TensorFlow is imported when a model is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from ..hub import ChecksumError, _snapshot_commit, download_file, sha256_file
from .integrity import record_key, record_path, record_sha256, recorded_sha256

__all__ = ["LegacyCheckpoint", "LEGACY_CHECKPOINTS", "get_checkpoint", "build", "plan", "from_keras2_h5", "load"]

HUB_FILENAME = "model_weights.h5"

FASTMRI_SCALE = 1e6
OASIS_SCALE = 1e-2

_BENCHMARK_PAPER = (
    "Z. Ramzi, P. Ciuciu, J.-L. Starck, \"Benchmarking MRI reconstruction neural networks on large public "
    "datasets\", Applied Sciences 10(5):1816, 2020. Code: github.com/zaccharieramzi/fastmri-reproducible-benchmark."
)
_XPDNET_PAPER = (
    "Z. Ramzi, P. Ciuciu, J.-L. Starck, \"XPDNet for MRI reconstruction: an application to the 2020 fastMRI "
    "challenge\", arXiv:2010.07290, 2020. Code: github.com/zaccharieramzi/fastmri-reproducible-benchmark."
)
_NCPDNET_PAPER = (
    "Z. Ramzi, G. R. Chaithya, J.-L. Starck, P. Ciuciu, \"NC-PDNet: a density-compensated unrolled network for "
    "2D and 3D non-Cartesian MRI reconstruction\", IEEE Transactions on Medical Imaging 41(7), 2022. "
    "Code: github.com/zaccharieramzi/fastmri-reproducible-benchmark."
)
_FASTMRI_KNEE_SINGLECOIL = (
    "fastMRI knee, single-coil track (Zbontar et al. 2018, NYU Langone; fastmri.med.nyu.edu), "
    "retrospectively undersampled with fastMRI random Cartesian masks (8% centre, AF 4)."
)
_OASIS = (
    "OASIS brain MR images (Marcus et al., oasis-brains.org), single-coil k-space simulated from the "
    "magnitude images, random Cartesian masks at AF 4."
)

_CARTESIAN_SINGLECOIL = {"kspace": {"shape": [1, 32, 32], "dtype": "complex64"},
                         "mask": {"shape": [1, 32], "dtype": "float32"}}
_NONCARTESIAN = {"kspace": {"shape": [1, 16], "dtype": "complex64"},
                 "traj": {"shape": [1, 2, 16], "dtype": "float32"},
                 "dcomp": {"shape": [1, 16], "dtype": "float32"}}
_NONCARTESIAN_MULTICOIL = {"kspace": {"shape": [1, 1, 16], "dtype": "complex64"},
                           "traj": {"shape": [1, 2, 16], "dtype": "float32"},
                           "dcomp": {"shape": [1, 16], "dtype": "float32"},
                           "smaps": {"shape": [1, 1, 16, 16], "dtype": "complex64"}}
_NONCARTESIAN_3D = {"kspace": {"shape": [1, 16], "dtype": "complex64"},
                    "traj": {"shape": [1, 3, 16], "dtype": "float32"},
                    "dcomp": {"shape": [1, 16], "dtype": "float32"}}
_CARTESIAN_MULTICOIL = {"kspace": {"shape": [1, 1, 32, 32], "dtype": "complex64"},
                        "mask": {"shape": [1, 32], "dtype": "float32"},
                        "smaps": {"shape": [1, 1, 32, 32], "dtype": "complex64"}}


@dataclass(frozen=True)
class LegacyCheckpoint:
    """One published Keras-2 checkpoint and the zoo network that reproduces it.

    ``network``: the Keras registered name of the zoo class (``fastmri_zoo>XPDNet``)
    built with ``network_kwargs``; ``family`` its lowercase class name (``xpdnet``), which
    chooses the file layout; ``original``: the
    constructor call of the original code (for the card); ``layout``: the
    Keras-2 file layout (``weights`` or ``full_model``).
    """

    architecture: str
    trajectory: str
    coils: str
    acceleration: int | None
    dataset: str
    hub_repo: str
    network: str
    network_kwargs: dict
    original: str
    layout: str
    parameter_count: int
    kspace_scale: float
    output_crop: str | None
    input_signature: dict
    paper: str
    training_data: str
    notes: str = ""
    hub_filename: str = HUB_FILENAME

    @property
    def family(self) -> str:
        """The zoo class in lowercase (``unet``, ``cascadenet``, ``kikinet``, ``pdnet``, ``xpdnet``, ``ncpdnet``)."""
        return self.network.rpartition(">")[2].lower()

    @property
    def name(self) -> str:
        parts = [self.architecture, self.trajectory, self.coils]
        if self.acceleration is not None:
            parts.append(f"af{self.acceleration}")
        return "-".join(parts + [self.dataset])

    def with_network(self, **network_kwargs) -> "LegacyCheckpoint":
        """A copy with some network options replaced (e.g. the reduced sizes of a test fixture)."""
        return dataclasses.replace(self, network_kwargs={**self.network_kwargs, **network_kwargs})

    def card(self) -> str:
        """The model card body (markdown): credit, training data, architecture, pre/post-processing."""
        crop = {
            None: "none (the image is returned at the input size)",
            "fastmri": "centre crop to `inputs['output_shape']` when given, else 320 x 320, as the original "
                       "`general_fastmri_format` (smaller images come back whole)",
        }[self.output_crop]
        layout = ("full model (`model.save`): weights under `/model_weights`, optimizer state ignored"
                  if self.layout == "full_model" else "weights only (`model.save_weights`)")
        lines = [
            f"Trained and published by **Zaccharie Ramzi** and co-authors (paper below) as `hf://{self.hub_repo}`. "
            "All credit for the network and its training goes to the authors; fastmri-zoo only converts their "
            "Keras-2 file on load.",
            "",
            f"- Paper: {self.paper}",
            f"- Training data: {self.training_data}",
            f"- Original constructor: `{self.original}`",
            f"- Original file: `{self.hub_filename}` ({layout}, Keras 2 / TF 2.x), {self.parameter_count:,} parameters",
            f"- Zoo network: `{self.family}` with `{self.network_kwargs}`",
            f"- Pre-processing: k-space multiplied by {self.kspace_scale:g} before the network "
            "(the training scale); the output is divided by it, so k-space in physical units gives an image "
            "in physical units.",
            f"- Post-processing: {crop}.",
            "- Hub revision: not pinned (unknown when this entry was written). The first load records the "
            "file's sha256 in the Hugging Face cache folder (`fastmri_zoo/first_seen_sha256.json`) after "
            "checking its structure and that every value is finite; later loads must match it.",
            "- Licence and terms: those of the Hub repository and of the training data.",
        ]
        if self.notes:
            lines.append(f"- Notes: {self.notes}")
        return "\n".join(lines)


def _cartesian(architecture, coils, dataset, hub_repo, network, network_kwargs, original, layout, parameter_count,
               paper, training_data, acceleration=4, signature=None, notes="", output_crop="default"):
    scale = FASTMRI_SCALE if dataset == "fastmri" else OASIS_SCALE
    if output_crop == "default":
        output_crop = "fastmri" if dataset == "fastmri" else None
    return LegacyCheckpoint(
        architecture=architecture, trajectory="cartesian", coils=coils, acceleration=acceleration, dataset=dataset,
        hub_repo=hub_repo, network=network, network_kwargs=network_kwargs, original=original, layout=layout,
        parameter_count=parameter_count, kspace_scale=scale, output_crop=output_crop,
        input_signature=signature or (_CARTESIAN_MULTICOIL if coils == "multicoil" else _CARTESIAN_SINGLECOIL),
        paper=paper, training_data=training_data, notes=notes,
    )


_OLD_UNET = ("old_unet.unet(input_size={size}, lr=1e-3, n_layers=4, pool='max', layers_n_channels=[16, 32, 64, 128], "
             "layers_n_non_lins=2)")
_OASIS_ARGS = "input_size=(None, None, 1), fastmri=False, "
_UPDNET_KNEE = dict(
    denoiser="unet",
    denoiser_kwargs={"layers_n_channels": [16, 32, 64, 128], "activation": "prelu", "channel_attention": True},
    n_primal=5, n_dual=1, n_iter=25, primal_only=True, multicoil=True, refine_smaps=True,
    refiner_kwargs={"head_activation": True},
)
_UPDNET_KNEE_ORIGINAL = (
    "UPDNet(multicoil=True, n_dual=1, primal_only=True, n_layers=4, n_iter=25, "
    "channel_attention_kwargs={'dense': True}, refine_smaps=True, non_linearity='prelu', "
    "layers_n_channels=[16, 32, 64, 128])"
)
_XPDNET_BRAIN = dict(
    denoiser="mwcnn", denoiser_kwargs={},
    n_primal=5, n_dual=1, n_iter=25, primal_only=True, multicoil=True, refine_smaps=True,
    refiner_kwargs={"layers_n_channels": [8, 16, 32, 64], "head_activation": True},
)
_XPDNET_BRAIN_ORIGINAL = (
    "XPDNet(MWCNN, dict(n_scales=3, n_filters_per_scale=[64, 128, 256], n_convs_per_scale=[3, 3, 3], "
    "n_first_convs=2, first_conv_n_filters=32, res=False, n_outputs=10, use_bias=False), n_scales=4, res=True, "
    "n_primal=5, n_iter=25, multicoil=True, refine_smaps=True, refine_big=True, output_shape_spec=True, "
    "primal_only=True, n_dual=1)"
)


#: The original NC-PDNet operator: tfkbnufft KbNufftModule(im_size, norm='ortho'), 2x grid, 6 points,
#: 1024 table points; forward + adjoint NUFFTs (no Toeplitz embedding).
_NC_OPERATOR = {"table_oversampling": 1024, "toeplitz": False}
_NC_TRAJECTORIES = {
    "radial": "golden-angle radial, 400 // 4 = 100 spokes of 640 points (AF 4)",
    "spiral": "spiral, 3 revolutions, 100 shots (AF 4)",
}


def _ncpdnet_2d(trajectory, coils):
    multicoil = coils == "multicoil"
    network = {"legacy_im_size": [640, 400], **_NC_OPERATOR}
    if multicoil:
        network.update(multicoil=True, refine_smaps=True, refiner_kwargs={"head_activation": True})
    repo = f"zaccharieramzi/NCPDNet-{coils}-{trajectory}"
    coil_text = "multicoil track (15 coils; " if multicoil else "single-coil track ("
    maps = ("; coil maps from the low frequencies (|k| <= 0.04 pi) of the density-compensated adjoint, refined by "
            "the network" if multicoil else "")
    return LegacyCheckpoint(
        architecture="ncpdnet", trajectory=trajectory, coils=coils, acceleration=None, dataset="fastmri",
        hub_repo=repo, network="fastmri_zoo>NCPDNet", network_kwargs=network,
        original="NCPDNet(im_size=(640, 400), dcomp=True" + (", multicoil=True, refine_smaps=True)" if multicoil else ")"),
        layout="weights", parameter_count=163_718 if multicoil else 156_260, kspace_scale=FASTMRI_SCALE,
        output_crop="fastmri", input_signature=_NONCARTESIAN_MULTICOIL if multicoil else _NONCARTESIAN,
        paper=_NCPDNET_PAPER,
        training_data=(f"fastMRI knee, {coil_text}Zbontar et al. 2018): non-Cartesian k-space simulated from the "
                       f"fully sampled images with a {_NC_TRAJECTORIES[trajectory]}, Pipe-Menon density "
                       f"compensation{maps}."),
        notes="Images are 640 x W with W <= 400 (even margin): they are zero-padded to 640 x 400 inside the NUFFT, "
              "as in the original; the NUFFT is the original tfkbnufft one (1024 table points, no Toeplitz "
              "embedding), which the goldens need to agree within 1e-4.",
    )


def _updnet_knee(acceleration):
    return _cartesian(
        "updnet", "multicoil", "fastmri", f"zaccharieramzi/UPDNet-knee-af{acceleration}", "fastmri_zoo>XPDNet",
        _UPDNET_KNEE, _UPDNET_KNEE_ORIGINAL, "weights", 12_126_858, _XPDNET_PAPER,
        f"fastMRI knee, multicoil track (15 coils; Zbontar et al. 2018), fastMRI random Cartesian masks at "
        f"AF {acceleration}; coil maps from the fully sampled centre (extract_smaps, {32 // acceleration}% of "
        "k-space), refined by the network.",
        acceleration=acceleration,
        notes="UPDNet = XPDNet with a U-net denoiser (PReLU, channel attention); 50 MB file.",
    )


def _xpdnet_brain(acceleration):
    return _cartesian(
        "xpdnet", "multicoil", "fastmri", f"zaccharieramzi/XPDNet-brain-af{acceleration}", "fastmri_zoo>XPDNet",
        _XPDNET_BRAIN, _XPDNET_BRAIN_ORIGINAL, "weights", 155_569_040, _XPDNET_PAPER,
        f"fastMRI brain, multicoil track (Zbontar et al. 2018), fastMRI Cartesian masks at AF {acceleration}; "
        "coil maps from the fully sampled centre, refined by the network.",
        acceleration=acceleration,
        notes="MWCNN denoiser (the authors' 'medium' configuration without biases); 624 MB file. Pass "
              "inputs['output_shape'] = the reconstruction size to crop as the challenge did.",
    )


LEGACY_CHECKPOINTS: tuple[LegacyCheckpoint, ...] = (
    _cartesian("unet", "singlecoil", "fastmri", "zaccharieramzi/UNet-fastmri", "fastmri_zoo>UNet",
               {"input_crop": [320, 320], "input_normalization": "mean_std"},
               _OLD_UNET.format(size="(320, 320, 1)"), "full_model", 481_801, _BENCHMARK_PAPER,
               _FASTMRI_KNEE_SINGLECOIL,
               signature={"kspace": {"shape": [1, 320, 320], "dtype": "complex64"},
                          "mask": {"shape": [1, 320], "dtype": "float32"}},
               output_crop=None,
               notes="The network sees the 320 x 320 centre crop of the zero-filled magnitude, normalised by its "
                     "mean and standard deviation; its output is mapped back (x std + mean). Its 4-channel 1x1 head "
                     "is linear, as in training (the Hub card's newer `unet` adds a ReLU there)."),
    _cartesian("unet", "singlecoil", "oasis", "zaccharieramzi/UNet-OASIS", "fastmri_zoo>UNet", {},
               _OLD_UNET.format(size="(None, None, 1)"), "full_model", 481_801, _BENCHMARK_PAPER, _OASIS,
               notes="Linear 4-channel 1x1 head, as in training (the Hub card's newer `unet` adds a ReLU there)."),
    _cartesian("pdnet", "singlecoil", "fastmri", "zaccharieramzi/PDNet-fastmri", "fastmri_zoo>PDNet", {},
               "pdnet(lr=1e-3, n_primal=5, n_dual=5, n_iter=10, n_filters=32)", "weights", 318_280,
               _BENCHMARK_PAPER, _FASTMRI_KNEE_SINGLECOIL),
    _cartesian("pdnet", "singlecoil", "oasis", "zaccharieramzi/PDNet-OASIS", "fastmri_zoo>PDNet", {},
               f"pdnet({_OASIS_ARGS}n_primal=5, n_dual=5, n_iter=10, n_filters=32, lr=1e-3)", "weights", 318_280,
               _BENCHMARK_PAPER, _OASIS),
    _cartesian("cascadenet", "singlecoil", "fastmri", "zaccharieramzi/CascadeNet-fastmri", "fastmri_zoo>CascadeNet", {},
               "cascade_net(lr=1e-3, n_cascade=5, n_convs=5, n_filters=48, noiseless=True)", "weights", 424_570,
               _BENCHMARK_PAPER, _FASTMRI_KNEE_SINGLECOIL),
    _cartesian("cascadenet", "singlecoil", "oasis", "zaccharieramzi/CascadeNet-OASIS", "fastmri_zoo>CascadeNet", {},
               f"cascade_net({_OASIS_ARGS}n_cascade=5, n_convs=5, n_filters=48, noiseless=True, lr=1e-3)", "weights",
               424_570, _BENCHMARK_PAPER, _OASIS,
               notes="48 filters (the file's size and the training scripts); the Hub card's `cascade_net()` "
                     "default of 16 filters cannot load it."),
    _cartesian("kikinet", "singlecoil", "fastmri", "zaccharieramzi/KIKI-net-fastmri", "fastmri_zoo>KIKINet", {},
               "full_kiki_net(n_convs=16, n_filters=48, noiseless=True, activation=LeakyReLU(0.1))", "full_model",
               1_251_080, _BENCHMARK_PAPER, _FASTMRI_KNEE_SINGLECOIL),
    _cartesian("kikinet", "singlecoil", "oasis", "zaccharieramzi/KIKI-net-OASIS", "fastmri_zoo>KIKINet", {},
               f"full_kiki_net({_OASIS_ARGS}n_convs=16, n_filters=48, noiseless=True, activation=LeakyReLU(0.1))",
               "full_model", 1_251_080, _BENCHMARK_PAPER, _OASIS),
    _updnet_knee(4),
    _updnet_knee(8),
    _cartesian("updnet", "singlecoil", "fastmri", "zaccharieramzi/UPDNet-knee-singlecoil-af4", "fastmri_zoo>XPDNet",
               dict(denoiser="unet", denoiser_kwargs={"layers_n_channels": [16, 32, 64]}, n_primal=5, n_dual=1,
                    n_iter=10, primal_only=True),
               "UPDNet(n_dual=1, primal_only=True, layers_n_channels=[16, 32, 64])", "weights", 1_186_000,
               _XPDNET_PAPER, _FASTMRI_KNEE_SINGLECOIL),
    _xpdnet_brain(4),
    _xpdnet_brain(8),
    _ncpdnet_2d("radial", "singlecoil"),
    _ncpdnet_2d("spiral", "singlecoil"),
    _ncpdnet_2d("radial", "multicoil"),
    _ncpdnet_2d("spiral", "multicoil"),
    LegacyCheckpoint(
        architecture="ncpdnet", trajectory="radial", coils="3d", acceleration=None, dataset="oasis",
        hub_repo="zaccharieramzi/NCPDNet-3D", network="fastmri_zoo>NCPDNet",
        network_kwargs={"ndim": 3, "n_iter": 6, "n_primal": 2, "n_filters": 16, "legacy_im_size": [176, 256, 256],
                        **_NC_OPERATOR},
        original="NCPDNet(three_d=True, n_iter=6, n_filters=16, im_size=(176, 256, 256), dcomp=True, fastmri=False, "
                 "n_primal=2)",
        layout="weights", parameter_count=67_608, kspace_scale=OASIS_SCALE, output_crop=None,
        input_signature=_NONCARTESIAN_3D, paper=_NCPDNET_PAPER,
        training_data="OASIS brain volumes (Marcus et al., oasis-brains.org), non-Cartesian k-space simulated with "
                      "a 3D radial (kooshball) trajectory at AF 4 (AF = N Nz / shots), Pipe-Menon density compensation.",
        notes="Volumes of at most 176 x 256 x 256 (even margins) are zero-padded to that grid inside the NUFFT, as in "
              "the original; n_primal=2 (the corrected Hub card; the file's size confirms it).",
    ),
)


# ---------------------------------------------------------------------------- building and plans


def get_checkpoint(name: str) -> LegacyCheckpoint:
    """The legacy checkpoint registered as ``name`` (ValueError with the closest names otherwise)."""
    for checkpoint in LEGACY_CHECKPOINTS:
        if checkpoint.name == name:
            return checkpoint
    names = [checkpoint.name for checkpoint in LEGACY_CHECKPOINTS]
    close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
    hint = f"closest names: {', '.join(close)}" if close else f"Keras-2 checkpoints: {', '.join(names)}"
    raise ValueError(f"name: unknown Keras-2 checkpoint {name!r}; {hint}. fastmri_zoo.list_models() lists every name.")


def build(checkpoint: LegacyCheckpoint):
    """The (built, untrained) :class:`~fastmri_zoo.legacy.LegacyReconstruction` of ``checkpoint``."""
    from .wrapper import LegacyReconstruction  # lazy: imports TensorFlow, which list/info never need

    return LegacyReconstruction.from_checkpoint(checkpoint)


def plan(checkpoint: LegacyCheckpoint, network) -> list:
    """The :class:`~fastmri_zoo.legacy.converter.GroupPlan` list of the original file, for the built ``network``.

    Functional originals (U-net, Cascade-net, PDNet, KIKI-net's last stage)
    store one group per convolution; subclassed ones (UPDNet, XPDNet, NCPDNet)
    one group per top-level sub-network (coil-map refiner, then each image net).
    """
    from .converter import GroupPlan  # lazy: numpy and h5py, which list/info never need
    from .order import flatten, keras2_layers  # lazy: imports Keras and TensorFlow

    def functional(layer, label):
        return [GroupPlan(f"{label}, layer {j}", tuple(unit)) for j, unit in enumerate(keras2_layers(layer))]

    def subclassed(layer, label):
        return GroupPlan(label, tuple(flatten(keras2_layers(layer))))

    family = checkpoint.family
    if family == "unet":
        return functional(network.image_net, "image_net")
    if family == "cascadenet":
        return [group for i, net in enumerate(network.image_nets) for group in functional(net, f"image_nets[{i}]")]
    if family == "pdnet":
        groups = []
        for i, (kspace_net, image_net) in enumerate(zip(network.kspace_nets, network.image_nets)):
            groups += functional(kspace_net, f"kspace_nets[{i}]") + functional(image_net, f"image_nets[{i}]")
        return groups
    if family == "kikinet":
        if network.n_iter != 2:
            raise ValueError(f"network: the original KIKI-net file layout is known for n_iter=2, got {network.n_iter}.")
        # The original nests the first three stages (K, I, K) in one functional sub-model.
        nested = (keras2_layers(network.kspace_nets[0]) + keras2_layers(network.image_nets[0])
                  + keras2_layers(network.kspace_nets[1]))
        return [GroupPlan("kspace_nets[0], image_nets[0], kspace_nets[1]", tuple(flatten(nested)))] + functional(
            network.image_nets[1], "image_nets[1]")
    if family in ("xpdnet", "ncpdnet"):
        if getattr(network, "kspace_nets", None):
            raise ValueError("network: the original file layout with k-space networks is not documented.")
        groups = [subclassed(network.smaps_refiner, "smaps_refiner")] if network.refine_smaps else []
        return groups + [subclassed(net, f"image_nets[{i}]") for i, net in enumerate(network.image_nets)]
    raise ValueError(f"family: no file layout for {family!r}.")


def from_keras2_h5(path: str | os.PathLike, checkpoint: LegacyCheckpoint | str):
    """Build ``checkpoint`` (a LegacyCheckpoint or its name) and load the Keras-2 file at ``path`` into it.

    The file is refused (:class:`~fastmri_zoo.legacy.LegacyStructureError`) if its
    structure differs from the expected one or a value is not finite.
    Returns the :class:`~fastmri_zoo.legacy.LegacyReconstruction`.
    """
    from .converter import assign_weights  # lazy: numpy and h5py, which list/info never need
    from .keras2_h5 import Keras2File  # lazy: numpy and h5py, which list/info never need

    if isinstance(checkpoint, str):
        checkpoint = get_checkpoint(checkpoint)
    with Keras2File(path) as keras2_file:  # a file that is not Keras-2 h5 fails before anything is built
        model = build(checkpoint)
        assign_weights(keras2_file, plan(checkpoint, model.network))
    model.keras2_source = {"path": str(path), "layout": keras2_file.layout, "keras_version": keras2_file.keras_version}
    return model


# ---------------------------------------------------------------------------- loading by name


def load(checkpoint: LegacyCheckpoint | str, pretrained: bool = True, revision: str | None = None, *,
         endpoint: str | None = None, cache_dir: str | os.PathLike | None = None, token: str | bool | None = None):
    """The model of ``checkpoint`` with the authors' weights from the Hub (or fresh ones if not ``pretrained``).

    The file comes from the Hugging Face cache when there (offline mode
    included), else from the Hub. The first time, it must pass the structure
    and finiteness checks before its sha256 is recorded; later loads must
    match that record (:class:`~fastmri_zoo.hub.ChecksumError` otherwise).
    Offline without the file in the cache, a
    :class:`~fastmri_zoo.hub.HubUnreachableError` says how to pre-download it;
    nothing is built before the file is there.
    """
    if isinstance(checkpoint, str):
        checkpoint = get_checkpoint(checkpoint)
    if not pretrained:
        return build(checkpoint)
    key = record_key(checkpoint.hub_repo, checkpoint.hub_filename, revision)
    expected = recorded_sha256(key, cache_dir)
    try:
        path = download_file(checkpoint.hub_repo, checkpoint.hub_filename, revision=revision,
                             expected_sha256=expected, endpoint=endpoint, cache_dir=cache_dir, token=token)
    except ChecksumError as error:
        raise ChecksumError(
            f"{error} The sha256 {expected} was recorded at the first download of {key} "
            f"(in {record_path(cache_dir)}); if the authors published a new file and you trust it, remove that "
            "entry from the record to accept it.",
            error.path, error.expected, error.actual,
        ) from None
    model = from_keras2_h5(path, checkpoint)
    if expected is None:
        record_sha256(key, sha256_file(path), commit=_snapshot_commit(Path(path)), cache_dir=cache_dir)
    model.keras2_source["hub"] = f"hf://{checkpoint.hub_repo}/{checkpoint.hub_filename}@{revision or 'main'}"
    return model
