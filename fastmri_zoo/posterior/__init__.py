"""Posterior sampling of an acquisition with a learned score prior (thesis sec. 6.2).

``sampler``: the tempered posterior score on any ``physics.LinearOperator``, annealed HMC
and annealed Langevin chains, their running mean and variance, acceptance and temperature
diagnostics (``sample_posterior``). A prior is any callable ``score(x, sigma) -> r``, e.g.
``models.ScoreNetwork``.

``files``: a fastMRI-layout file sampled with a prior, as ``fastmri-zoo sample`` does
(``plan_sampling``, ``run_sampling``, ``sample_file``): the file prepared as for reconstruction,
the posterior mean, standard deviation and samples in the file's units, written atomically.

A folder of its own rather than ``sampling/`` (the sampling patterns of an acquisition,
upstream of ``physics``): it consumes an operator and a prior, downstream of both.
"""

from . import files, sampler
from .files import PosteriorFile, estimate_noise_std, plan_sampling, run_sampling, sample_file
from .sampler import (
    KERNELS,
    AnnealedHMC,
    AnnealedLangevin,
    PosteriorSamples,
    RunningMoments,
    SamplerOptions,
    posterior_score,
    sample_posterior,
)

__all__ = list(sampler.__all__) + ["PosteriorFile", "estimate_noise_std", "plan_sampling", "run_sampling",
                                   "sample_file"]
