"""Federated training and architecture search on Flower: sites that never share data train one network.

After FedAutoMRI (Wu, Li, Zou, Wang, "FedAutoMRI: Federated Neural Architecture Search for MR Image
Reconstruction"). Each site keeps its k-space; what leaves it is weights (and architecture logits
alpha during a search) and sample counts. Flower (``flwr``, an optional extra:
``pip install "fastmri-zoo[federated]"``) moves the messages: its ClientApp / ServerApp, its strategies
FedAvg and FedProx, its simulation engine on one machine and its deployment engine (a SuperLink and one
SuperNode per site) for real sites. Nothing here is a federated runtime of its own.

- ``recipe``: the federation recipe (network, sites with their subjects, coils, masks and accelerations,
  strategy ``local`` / ``fedavg`` / ``fedprox`` / ``fedautomri``), checked before anything runs.
- ``sites``: each site's subjects, training stream and held-out examples.
- ``training``: what a client does, without Flower: local training with FedProx's proximal term, the
  local MiLeNAS search, the bias-corrected EMA of the global weights, evaluation.
- ``flower``: the ClientApp and ServerApp, the strategies that record every site's answers, the
  simulation; ``app``: the module ``flwr run`` loads on a deployment; ``deployment``: the app folder
  ``fastmri-zoo federate RECIPE --app-dir DIR`` writes.
- ``outputs``: ``metrics.csv`` (per site, phase, round), ``curves.png``, ``federation.json``.

Import the modules themselves (``from fastmri_zoo.federated.flower import run_in_simulation``): this
package imports neither Flower nor TensorFlow. ``flower`` and ``app`` need Flower (importing them without it
raises :func:`require_flower`'s ImportError, which says how to install it); ``recipe``, ``sites``,
``training``, ``outputs`` and ``deployment`` do not. The rest of the zoo never imports this package, but for
the command ``fastmri-zoo federate`` (``cli``).
"""

from __future__ import annotations

#: The command that installs Flower with the zoo.
FLOWER_INSTALL = 'pip install "fastmri-zoo[federated]"'
#: The Flower versions the package is tested with (setup.cfg's ``federated`` extra).
FLOWER_VERSIONS = ">=1.42,<1.43"


def require_flower():
    """The ``flwr`` module; an ImportError saying how to install it when it is missing."""
    try:
        import flwr
    except ImportError as error:
        raise ImportError(f"federated training needs Flower (flwr), which is not installed; install it with: "
                          f"{FLOWER_INSTALL}") from error
    return flwr


__all__ = ["FLOWER_INSTALL", "FLOWER_VERSIONS", "require_flower"]
