"""The checkpoints trained for this zoo, registered at import.

Each entry's preset folder is bundled under the repository's ``weights/``
(loaded offline); its model card gives the training command, data, split and
held-out metrics. None is on the Hugging Face Hub yet (``hub_repo`` unset):
``fastmri-zoo push NAME REPO_ID`` uploads one, and the returned commit then
pins ``hub_revision``.
"""

from __future__ import annotations

from ..registry import CheckpointEntry, register

_IXI = "Trained on simulated k-space of IXI T1 brain volumes (CC BY-SA 3.0); see the model card."

#: (architecture, coils, acceleration, sha256 of model.weights.h5, description)
_CARTESIAN = [
    ("pdnet", "singlecoil", 4, "913e579ade826f23f5613928e9780288730fba35725d2bd8508b875e4ae049f0",
     "PDNet (learned primal-dual, 318k parameters), random masks AF 4."),
    ("cascadenet", "singlecoil", 4, "94501a32b82174887358c6f821ca399c26505737f65b8ec8f0e4fc5fa23e08ed",
     "Cascade-net D5C5 (5 cascades of 5 convolutions, 48 filters, 425k parameters), random masks AF 4."),
    ("kikinet", "singlecoil", 4, "b8d3110267ee109901905ac4319bf76e1c7c9a062459fab3e655283203776240",
     "KIKI-net (2 k-space/image CNN pairs of 16 convolutions, 48 filters, 1.25M parameters; residual k-space CNNs), "
     "random masks AF 4."),
    ("unet", "singlecoil", 4, "5a7546017134ed3ff635fe500c177fb883b77a27b68f2df89fc3261fdbb495b7",
     "U-net (16/32/64/128 filters, 482k parameters) on the zero-filled magnitude, random masks AF 4."),
    ("xpdnet", "multicoil", 4, "472a470796d9954dad337954322e2992eccf47987009df5d9dbffe49296ebce0",
     "XPDNet (U-net denoiser, 5 iterations, coil-map refiner), 8 coils, equispaced masks AF 4."),
    ("xpdnet", "multicoil", 8, "faaadcd8ac4b5d859873e634cc9ff755c24f9c0c57ebec4bf47347de5d13de57",
     "XPDNet (U-net denoiser, 5 iterations, coil-map refiner), 8 coils, equispaced masks AF 8."),
]

for _architecture, _coils, _acceleration, _sha256, _description in _CARTESIAN:
    _name = f"{_architecture}-cartesian-{_coils}-af{_acceleration}"
    register(CheckpointEntry(
        architecture=_architecture, trajectory="cartesian", coils=_coils, acceleration=_acceleration,
        dataset=None, bundled=_name, sha256=_sha256, pretrained=True,
        description=f"{_description} {_IXI}",
    ))

#: (architecture, variant, trajectory, coils, sha256 of model.weights.h5, description)
_NONCARTESIAN = [
    ("ncpdnet", None, "spiral", "singlecoil", "d37d84dac347aca4758ce99833309019458d91ab8cb772cebd3c30a9b7ed9883",
     "NC-PDNet (10 iterations, 5 primal, 32 filters, 156,260 parameters), single-coil, spiral AF 4."),
    ("ncpdnet", None, "radial", "singlecoil", "bec7f5dd32e98a20b93c1c0fb341716b35147ed017592fd3d35599619d14e22a",
     "NC-PDNet (10 iterations, 5 primal, 32 filters, 156,260 parameters), single-coil, radial AF 4."),
    ("ncpdnet", None, "radial", "multicoil", "f5fec43bb43b5cca94b422f3abaeb7f2da038ad34d1d7e16cbc17db7ccd0493b",
     "NC-PDNet (10 iterations, 5 primal, 32 filters, coil-map refiner, 163,718 parameters), 8 coils, radial AF 4."),
    ("ncpdnet", None, "spiral", "multicoil", "7565582286de08952314af9d9b9f127a9dc7ed2c5f8b43448c8d4230c9e7fd90",
     "NC-PDNet (10 iterations, 5 primal, 32 filters, coil-map refiner, 163,718 parameters), 8 coils, spiral AF 4."),
    ("ncpdnet", None, "radial", "3d", "f9f20c5c14d96251c2384db4fd3a61fd08e9f947ce9ab59d6a60d6ee3a744ada",
     "NC-PDNet 3D (6 iterations, 2 primal, 16 filters, 67,608 parameters), single-coil whole volumes, kooshball AF 4."),
    ("unet", "adjdcomp", "radial", "multicoil", "29bb117b99f0e7bd9ce074cafbb985d7c988ff34e3bfc0f4f48efd6a92480b4f",
     "U-net (16/32/64/128 filters) on the density-compensated adjoint, the NC-PDNet paper's baseline; 8 coils, radial AF 4."),
]

for _architecture, _variant, _trajectory, _coils, _sha256, _description in _NONCARTESIAN:
    _name = "-".join(part for part in (_architecture, _variant, _trajectory, _coils) if part)
    register(CheckpointEntry(
        architecture=_architecture, variant=_variant, trajectory=_trajectory, coils=_coils, acceleration=None,
        dataset=None, bundled=_name, sha256=_sha256, pretrained=True, description=f"{_description} {_IXI}",
    ))
