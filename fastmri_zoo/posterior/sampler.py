"""Posterior sampling with a score prior: annealed HMC and annealed Langevin (thesis sec. 6.2, Appendix B).

After Ramzi, Remy, Lanusse, Starck & Ciuciu, "Denoising score-matching for uncertainty
quantification in inverse problems" (NeurIPS 2020 workshop).

Conventions. An image x is complex64 (chains, *spatial); its real and imaginary parts are
the coordinates, so "white noise of std sigma" has variance sigma^2 in each part, and a
score is the gradient of a log-density as one complex number per pixel,
r = d log p / d Re x + i d log p / d Im x. A prior is any callable ``score(x, sigma) -> r``
with ``sigma`` float32 (chains,), one temperature per image: the score of the prior
smoothed by Gaussian noise of std sigma (e.g. ``models.ScoreNetwork``). The measurements
are y = A x + n for any ``physics.LinearOperator`` A, n of std ``noise_std`` in each part.

Tempered posterior (eq. 6.11): the smoothed prior times the likelihood tempered as
-||y - A x||^2 / (2 (noise_std^2 + sigma^2)); its score is
r(x, sigma) + A^H (y - A x) / (noise_std^2 + sigma^2) (:func:`posterior_score`).

:func:`sample_posterior` runs independent chains side by side on the batch axis from the
zero-filled image A^H y plus white noise of std ``sigma_init``. At each step every chain
makes one move of its kernel at its own temperature sigma, with step size
``step_size * (sigma / sigma_init) ** step_power``:

- ``"hmc"`` (:class:`AnnealedHMC`): Hamiltonian Monte Carlo, ``n_leapfrog`` leapfrog steps,
  a Metropolis-Hastings test whose log-density difference is the integral of the score
  along the segment from the old to the proposed state by Simpson's rule (the density
  itself is unknown; the rule is exact for a Gaussian);
- ``"langevin"`` (:class:`AnnealedLangevin`): one unadjusted Langevin step, always taken.

With ``anneal``, a chain's sigma shrinks by ``gamma`` after each accepted move (down to
``sigma_min``); otherwise it stays at ``sigma_init`` and the chain samples the tempered
posterior at that temperature. A sample is a state after the final denoising step
x + sigma^2 r(x, sigma) (Tweedie) when ``denoise``, else the state itself. The mean and
variance E|x - mean|^2 of the samples are accumulated as they come
(:class:`RunningMoments`), not stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from ..checks import check_complex, check_finite, check_scalar, static_shape
from ..physics.base import LinearOperator

__all__ = [
    "KERNELS",
    "AnnealedHMC",
    "AnnealedLangevin",
    "PosteriorSamples",
    "RunningMoments",
    "SamplerOptions",
    "posterior_score",
    "sample_posterior",
]

Score = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def _per_image(values: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """(chains,) values reshaped to broadcast against x (chains, *spatial), in x's dtype."""
    return tf.cast(tf.reshape(values, [-1] + [1] * (x.shape.rank - 1)), x.dtype)


def _real_inner(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Re <a, b> per image: float32 (chains,)."""
    return tf.reduce_sum(tf.math.real(tf.math.conj(a) * b), axis=list(range(1, a.shape.rank)))


def _white_noise(generator: tf.random.Generator, shape) -> tf.Tensor:
    """Complex white noise of std 1 in each of the real and imaginary parts."""
    return tf.complex(generator.normal(shape), generator.normal(shape))


def posterior_score(score: Score, operator: LinearOperator, measurements, noise_std: float) -> Score:
    """The tempered posterior score (x, sigma) -> r(x, sigma) + A^H (y - A x) / (noise_std^2 + sigma^2).

    score: the prior's (x, sigma) -> r; operator: A; measurements: y, complex64, of the
    operator's measurement shape with a batch axis of 1 (broadcast over the chains).
    """
    noise_variance = float(noise_std) ** 2

    def tempered(x, sigma):
        weight = _per_image(1.0 / (noise_variance + tf.square(sigma)), x)
        return score(x, sigma) + weight * operator.adjoint(measurements - operator.forward(x))

    return tempered


class AnnealedHMC:
    """One Hamiltonian Monte Carlo move per chain, with an MH test on the integrated score.

    Momenta p have white complex noise of std 1 per part, kinetic energy |p|^2 / 2; the
    proposal is ``n_leapfrog`` leapfrog steps of size ``step_size`` (per chain). The
    log-density difference between the old state x0 and the proposal x1 is
    int_0^1 Re <s(x0 + t d), d> dt, d = x1 - x0, by Simpson's rule (s at x0, the midpoint
    and x1). Score evaluations per move: n_leapfrog + 2.
    """

    name = "hmc"

    def __init__(self, n_leapfrog: int = 4):
        self.n_leapfrog = check_scalar("n_leapfrog", n_leapfrog, integer=True, at_least=1)

    def step(self, x, sigma, step_size, score: Score, generator):
        """(new states, accepted bool (chains,)) from x (chains, *spatial) at temperatures sigma (chains,)."""
        epsilon = _per_image(step_size, x)
        momentum = _white_noise(generator, tf.shape(x))
        start_score = score(x, sigma)
        p = momentum + 0.5 * epsilon * start_score
        proposal = x
        for i in range(self.n_leapfrog):
            proposal = proposal + epsilon * p
            end_score = score(proposal, sigma)
            p = p + (0.5 if i == self.n_leapfrog - 1 else 1.0) * epsilon * end_score
        move = proposal - x
        middle_score = score(x + 0.5 * move, sigma)
        log_density_change = (
            _real_inner(start_score, move) + 4.0 * _real_inner(middle_score, move) + _real_inner(end_score, move)
        ) / 6.0
        kinetic_change = 0.5 * (_real_inner(p, p) - _real_inner(momentum, momentum))
        log_acceptance = log_density_change - kinetic_change
        uniform = generator.uniform(tf.shape(log_acceptance), minval=0.0, maxval=1.0)
        # A NaN energy (a diverging proposal) compares False: rejected.
        accepted = tf.math.log(uniform) < log_acceptance
        return tf.where(_per_image(tf.cast(accepted, tf.float32), x) != 0, proposal, x), accepted


class AnnealedLangevin:
    """One unadjusted Langevin move per chain: x + (h / 2) s(x) + sqrt(h) z, h = step_size^2.

    h = step_size^2 makes it one leapfrog step of HMC without the MH test; every move is
    taken (accepted is all True). The chain's stationary law is the target's only as h -> 0
    (for a Gaussian of precision lambda its variance is 1 / (lambda (1 - h lambda / 4))).
    """

    name = "langevin"

    def step(self, x, sigma, step_size, score: Score, generator):
        epsilon = _per_image(step_size, x)
        proposal = x + 0.5 * epsilon * epsilon * score(x, sigma) + epsilon * _white_noise(generator, tf.shape(x))
        return proposal, tf.ones(tf.shape(sigma), tf.bool)


#: With ``target_acceptance``: after each move a chain's step is multiplied by exp(STEP_ADAPTATION (accepted -
#: target)): ten rejections in a row at a target of 0.65 halve it.
STEP_ADAPTATION = 0.1

#: The kernels of :func:`sample_posterior`, by name.
KERNELS = {"hmc": AnnealedHMC, "langevin": AnnealedLangevin}


class RunningMoments:
    """Mean and variance E|x - mean|^2 (numpy's ``var``, ddof=0) of complex images, a batch at a time.

    Welford's update in Chan, Golub & LeVeque's form for a batch of n samples:
    mean += delta n / total, M2 += M2_batch + |delta|^2 count n / total.
    """

    def __init__(self):
        self.count = 0
        self.mean = None
        self.sum_of_squares = None

    def update(self, samples) -> None:
        """samples: complex (n, *spatial)."""
        samples = tf.convert_to_tensor(samples)
        n = int(samples.shape[0])
        batch_mean = tf.reduce_mean(samples, axis=0)
        batch_squares = tf.reduce_sum(tf.square(tf.abs(samples - batch_mean)), axis=0)
        if self.count == 0:
            self.count, self.mean, self.sum_of_squares = n, batch_mean, batch_squares
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * tf.cast(n / total, delta.dtype)
        self.sum_of_squares = self.sum_of_squares + batch_squares + tf.square(tf.abs(delta)) * (self.count * n / total)
        self.count = total

    @property
    def variance(self):
        if self.count == 0:
            raise ValueError("RunningMoments: no sample recorded yet.")
        return self.sum_of_squares / self.count


@dataclass
class PosteriorSamples:
    """What :func:`sample_posterior` returns (numpy arrays).

    mean: complex64 (*spatial), variance: float32 (*spatial) = E|x - mean|^2, over the
    ``count`` recorded samples; final: complex64 (chains, *spatial), each chain's last
    sample; acceptance_rate, sigma: float32 (chains,), the fraction of accepted moves and
    the final temperature of each chain; acceptance_trace, sigma_trace: float32 (n_steps,),
    the fraction of chains accepting and the mean temperature at each step; samples:
    complex64 (count, *spatial) when kept, else None.
    """

    mean: np.ndarray
    variance: np.ndarray
    count: int
    final: np.ndarray
    acceptance_rate: np.ndarray
    sigma: np.ndarray
    acceptance_trace: np.ndarray
    sigma_trace: np.ndarray
    samples: np.ndarray | None = None

    @property
    def std(self) -> np.ndarray:
        """Pixel-wise standard deviation sqrt(E|x - mean|^2)."""
        return np.sqrt(self.variance)


@dataclass(frozen=True)
class SamplerOptions:
    """The chains' settings of :func:`sample_posterior` (see its docstring), checked when made: a
    ValueError names the first bad one (``n_chains: expected a value >= 1, got 0.``). ``burn_in``
    None becomes n_steps - 1 (each chain's last state only). ``asdict(options)`` are keyword
    arguments of :func:`sample_posterior`."""

    step_size: float
    sigma_init: float
    n_chains: int
    n_steps: int
    kernel: str
    n_leapfrog: int
    step_power: float
    gamma: float
    sigma_min: float
    anneal: bool
    denoise: bool
    burn_in: int | None
    thin: int
    target_acceptance: float | None = None

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {sorted(KERNELS)}, got {self.kernel!r}.")
        checked = dict(
            n_chains=check_scalar("n_chains", self.n_chains, integer=True, at_least=1),
            n_steps=check_scalar("n_steps", self.n_steps, integer=True, at_least=1),
            n_leapfrog=check_scalar("n_leapfrog", self.n_leapfrog, integer=True, at_least=1),
            sigma_init=check_scalar("sigma_init", self.sigma_init, above=0),
            step_size=check_scalar("step_size", self.step_size, above=0),
            step_power=check_scalar("step_power", self.step_power, at_least=0),
            gamma=check_scalar("gamma", self.gamma, above=0),
        )
        if checked["gamma"] > 1:
            raise ValueError(f"gamma: expected a factor in (0, 1] (sigma shrinks after accepted moves), got {self.gamma!r}.")
        checked["sigma_min"] = check_scalar("sigma_min", self.sigma_min, at_least=0)
        if checked["sigma_min"] > checked["sigma_init"]:
            raise ValueError(f"sigma_min: expected at most sigma_init = {self.sigma_init!r}, got {self.sigma_min!r}.")
        n_steps = checked["n_steps"]
        burn_in = n_steps - 1 if self.burn_in is None else check_scalar("burn_in", self.burn_in, integer=True, at_least=0)
        if burn_in >= n_steps:
            raise ValueError(f"burn_in: expected fewer than n_steps = {n_steps} steps, got {burn_in}.")
        checked.update(burn_in=burn_in, thin=check_scalar("thin", self.thin, integer=True, at_least=1))
        if self.target_acceptance is not None:
            target = check_scalar("target_acceptance", self.target_acceptance, above=0)
            if target >= 1:
                raise ValueError(f"target_acceptance: expected a rate in (0, 1) or None, got {self.target_acceptance!r}.")
            checked["target_acceptance"] = target
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    @property
    def recorded_per_chain(self) -> int:
        """States recorded per chain: steps burn_in, burn_in + thin, ... below n_steps."""
        return (self.n_steps - 1 - self.burn_in) // self.thin + 1

    @property
    def lowest_sigma(self) -> float:
        """The lowest temperature a chain can reach: sigma_init gamma^n_steps (every move accepted), or sigma_min."""
        return max(self.sigma_init * self.gamma**self.n_steps, self.sigma_min) if self.anneal else self.sigma_init

    def check_schedule(self, noise_std: float) -> None:
        """ValueError when the tempered likelihood's weight 1 / (noise_std^2 + sigma^2) can overflow float32
        along the temperature schedule (a chain annealed to sigma ~ 0 on noiseless measurements)."""
        if noise_std**2 + self.lowest_sigma**2 < 1.0 / float(np.finfo(np.float32).max):
            raise ValueError(
                f"gamma: the temperature can fall to {self.lowest_sigma:.3g} after {self.n_steps} accepted moves, "
                f"where the likelihood's weight 1 / (noise_std^2 + sigma^2) is not finite in float32 (noise_std "
                f"{noise_std:g}); raise gamma or sigma_min, or give a noise_std > 0."
            )


def _check_measurements(operator, measurements) -> tf.Tensor:
    if not isinstance(operator, LinearOperator):
        raise ValueError(
            f"operator: expected a physics.LinearOperator (e.g. CartesianSingleCoil, SENSE), got {type(operator).__name__}."
        )
    check_complex("measurements", measurements)
    check_finite("measurements", measurements)
    shape = static_shape(measurements)
    if len(shape) < 2 or shape[0] != 1:
        raise ValueError(
            f"measurements: expected one slice with a batch axis of 1, e.g. (1, H, W) or (1, coils, H, W), got shape "
            f"{shape}; sample one slice at a time."
        )
    return tf.cast(tf.convert_to_tensor(measurements), tf.complex64)


def _initial_states(x_init, zero_filled, n_chains: int):
    """The chains' starting images (before noise): zero-filled, or x_init checked against its shape."""
    image_shape = tuple(zero_filled.shape[1:])
    if x_init is None:
        return tf.repeat(zero_filled, n_chains, axis=0)
    check_complex("x_init", x_init)
    check_finite("x_init", x_init)
    shape = static_shape(x_init)
    if shape == image_shape:
        x_init = tf.convert_to_tensor(x_init)[None]
        shape = (1,) + shape
    if tuple(shape[1:]) != image_shape or shape[0] not in (1, n_chains):
        raise ValueError(
            f"x_init: expected an image {image_shape} (the operator's adjoint of the measurements), or (1 or n_chains, "
            f"*{image_shape}), got shape {shape}."
        )
    return tf.broadcast_to(tf.cast(x_init, tf.complex64), (n_chains,) + image_shape)


def _check_score(score, x, sigma) -> None:
    """The prior must return a complex score of the images' shape (one trial call, before sampling)."""
    value = score(x, sigma)
    if not value.dtype.is_complex or tuple(value.shape) != tuple(x.shape):
        raise ValueError(
            f"score: expected a complex score of the images' shape {tuple(x.shape)}, got dtype {value.dtype.name} and "
            f"shape {tuple(value.shape)}; a prior trained on other images (size, coils, real magnitudes) does not fit "
            "these measurements."
        )
    check_finite("score(x_init, sigma_init)", value)


def sample_posterior(
    score: Score,
    operator: LinearOperator,
    measurements,
    noise_std: float,
    *,
    step_size: float,
    sigma_init: float,
    n_chains: int = 8,
    n_steps: int = 1000,
    kernel: str = "hmc",
    n_leapfrog: int = 4,
    step_power: float = 1.5,
    gamma: float = 0.995,
    sigma_min: float = 0.0,
    anneal: bool = True,
    denoise: bool = True,
    burn_in: int | None = None,
    thin: int = 1,
    target_acceptance: float | None = None,
    x_init=None,
    keep_samples: bool = False,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PosteriorSamples:
    """Posterior samples of one slice, their running mean and variance, and the chains' diagnostics.

    score: the prior (x, sigma) -> r (module docstring); operator: A, a
    ``physics.LinearOperator`` whose forward maps the image to ``measurements``: complex64,
    one slice with a batch axis of 1 ((1, H, W) single-coil, (1, coils, H, W) SENSE);
    noise_std: the std of the measurement noise in each real part.

    step_size: epsilon, the step at sigma = sigma_init; sigma_init: sigma_0, the first
    temperature and the std of the white noise added to the starting image; n_chains:
    independent chains run together; n_steps: moves per chain; kernel: "hmc" or
    "langevin"; n_leapfrog: leapfrog steps of an HMC move; step_power: the step size is
    epsilon (sigma / sigma_0) ** step_power; gamma: a chain's sigma is multiplied by gamma
    after each accepted move (``anneal``), not below sigma_min; anneal=False: sigma stays
    sigma_0 (the tempered posterior at that fixed temperature).

    target_acceptance: None (the thesis' rule: the step follows the temperature alone) or a rate in
    (0, 1): each chain's step is also multiplied by exp(``STEP_ADAPTATION`` (accepted - target)) after
    every move (a Robbins-Monro adaptation, not in the thesis). Under the thesis' rule a chain whose
    step is too large for its temperature rejects every move and, since its temperature falls only
    after accepted moves, never anneals; adapted, it shrinks its step until moves pass. Off by
    default: it changes the chain, so the fixed-temperature posterior is exact only without it.

    Recording: the states after steps burn_in, burn_in + thin, ... (default burn_in:
    n_steps - 1, the last state of each chain only), denoised (x + sigma^2 r(x, sigma))
    when ``denoise``; keep_samples: also return them. x_init: the starting image (default
    A^H y), complex (*spatial), (1, *spatial) or (n_chains, *spatial). seed: the random
    stream (None: not reproducible); progress: called as progress(step, n_steps) after each step.

    Everything is checked before the first move; a ValueError names the bad argument.
    """
    if not callable(score):
        raise ValueError(f"score: expected a callable (x, sigma) -> r, got {type(score).__name__}.")
    options = SamplerOptions(
        step_size=step_size, sigma_init=sigma_init, n_chains=n_chains, n_steps=n_steps, kernel=kernel,
        n_leapfrog=n_leapfrog, step_power=step_power, gamma=gamma, sigma_min=sigma_min, anneal=anneal,
        denoise=denoise, burn_in=burn_in, thin=thin, target_acceptance=target_acceptance,
    )
    (step_size, sigma_init, n_chains, n_steps, kernel, n_leapfrog, step_power, gamma, sigma_min, anneal, denoise,
     burn_in, thin, target_acceptance) = asdict(options).values()
    noise_std = check_scalar("noise_std", noise_std, at_least=0)
    options.check_schedule(noise_std)
    move = AnnealedHMC(n_leapfrog) if kernel == "hmc" else AnnealedLangevin()

    measurements = _check_measurements(operator, measurements)
    zero_filled = operator.adjoint(measurements)
    predicted = operator.forward(zero_filled)
    if tuple(predicted.shape) != tuple(measurements.shape):
        raise ValueError(
            f"measurements: shape {tuple(measurements.shape)} does not match the operator, which maps images "
            f"{tuple(zero_filled.shape[1:])} to measurements {tuple(predicted.shape)}."
        )
    generator = tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()
    x = _initial_states(x_init, zero_filled, n_chains)
    x = x + sigma_init * _white_noise(generator, tf.shape(x))
    sigma = tf.fill([n_chains], tf.constant(sigma_init, tf.float32))
    _check_score(score, x, sigma)

    tempered = posterior_score(score, operator, measurements, noise_std)

    @tf.function
    def one_step(x, sigma, adaptation):
        step = step_size * adaptation * tf.pow(sigma / sigma_init, step_power)
        x, accepted = move.step(x, sigma, step, tempered, generator)
        if anneal:
            sigma = tf.where(accepted, tf.maximum(gamma * sigma, sigma_min), sigma)
        if target_acceptance is not None:
            adaptation = adaptation * tf.exp(STEP_ADAPTATION * (tf.cast(accepted, tf.float32) - target_acceptance))
        return x, sigma, accepted, adaptation

    @tf.function
    def denoised(x, sigma):
        return x + _per_image(tf.square(sigma), x) * score(x, sigma)

    moments = RunningMoments()
    kept = []
    accepted_count = tf.zeros([n_chains], tf.float32)
    acceptance_trace, sigma_trace = [], []
    adaptation = tf.ones([n_chains], tf.float32)
    for step in range(n_steps):
        x, sigma, accepted, adaptation = one_step(x, sigma, adaptation)
        accepted = tf.cast(accepted, tf.float32)
        accepted_count += accepted
        acceptance_trace.append(float(tf.reduce_mean(accepted)))
        sigma_trace.append(float(tf.reduce_mean(sigma)))
        if step >= burn_in and (step - burn_in) % thin == 0:
            sample = denoised(x, sigma) if denoise else x
            moments.update(sample)
            if keep_samples:
                kept.append(sample.numpy())
        if progress is not None:
            progress(step + 1, n_steps)
    final = denoised(x, sigma) if denoise else x
    return PosteriorSamples(
        mean=moments.mean.numpy().astype(np.complex64),
        variance=moments.variance.numpy().astype(np.float32),
        count=moments.count,
        final=final.numpy().astype(np.complex64),
        acceptance_rate=(accepted_count / n_steps).numpy(),
        sigma=sigma.numpy(),
        acceptance_trace=np.asarray(acceptance_trace, np.float32),
        sigma_trace=np.asarray(sigma_trace, np.float32),
        samples=np.concatenate(kept) if keep_samples else None,
    )
