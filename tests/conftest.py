"""Shared helpers for the statistical tests: Monte Carlo error from independent chains, and a
compiled multi-chain runner for the raw BAOAB kernel.

Monte Carlo error (used by every exactness test)
------------------------------------------------
Each test runs ``C`` independent chains of ``N`` steps. For a statistic ``f`` the estimate is
the mean over chains of the per-chain time averages ``m_c``; because the chains are
independent, ``se = std(m_c) / sqrt(C)`` is an honest standard error whatever the chains'
autocorrelation (batch means with one batch per chain: the integrated autocorrelation time is
absorbed into the spread of the ``m_c``). With ``C >= 32`` the ``m_c`` are close to normal and
the ``se`` itself is known to about ``1 / sqrt(2 C) <= 13 %``.

A test then asks ``|estimate - exact| < Z_TOL * se`` with ``Z_TOL = 4``: for an exact sampler a
single comparison fails with probability ``6e-5`` (``8e-4`` allowing for the ``se``'s own
error), so a test making ~20 comparisons is not flaky; the seeds are fixed in any case. A bias
of more than about ``5 se`` is detected.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin_nets.kernels.baoab as baoab

Z_TOL = 4.0


def chain_estimate(values) -> tuple[np.ndarray, np.ndarray]:
    """Estimate and standard error of ``E[f]`` from ``values`` of shape ``(C, N, ...)``.

    ``C`` independent chains of ``N`` correlated draws each (see the module docstring).
    """
    v = np.asarray(values, dtype=np.float64)
    chain_means = v.mean(axis=1)
    est = chain_means.mean(axis=0)
    se = chain_means.std(axis=0, ddof=1) / np.sqrt(v.shape[0])
    return est, se


def second_moments(x, center=None):
    """Per-draw outer products ``(x - c)(x - c)^T``: shape ``(C, N, d, d)``."""
    x = np.asarray(x, dtype=np.float64)
    if center is not None:
        x = x - center
    return np.einsum("cti,ctj->ctij", x, x)


_STATIC = ("logdensity_fn", "num_steps", "metropolis", "num_integration_steps", "refresh")


@partial(jax.jit, static_argnames=_STATIC)
def _run_kernel(
    key,
    x0,
    step_size,
    friction,
    mass,
    temperature,
    *,
    logdensity_fn,
    num_steps,
    metropolis,
    num_integration_steps,
    refresh,
):
    def chain(key, x):
        k_init, k_run = jax.random.split(key)
        state = baoab.init(x, logdensity_fn, key=k_init, mass=mass, temperature=temperature)

        def body(state, k):
            k_mom, k_step = jax.random.split(k)
            if refresh:  # a full momentum refresh before each move: HMC when friction = 0
                p = baoab.sample_momentum(k_mom, state.position, mass, temperature)
                state = state._replace(momentum=p)
            state, info = baoab.step(
                k_step,
                state,
                logdensity_fn,
                step_size,
                friction,
                mass,
                temperature,
                metropolis,
                num_integration_steps,
            )
            return state, (state.position, state.momentum, info.acceptance_rate)

        _, out = jax.lax.scan(body, state, jax.random.split(k_run, num_steps))
        return out

    keys = jax.random.split(key, x0.shape[0])
    return jax.vmap(chain)(keys, x0)


def run_kernel(
    logdensity_fn: Callable,
    key,
    x0,
    num_steps: int,
    step_size: float,
    friction: float,
    *,
    mass=1.0,
    temperature: float = 1.0,
    metropolis: bool = False,
    num_integration_steps: int = 1,
    refresh: bool = False,
    num_burnin: int = 0,
):
    """Run ``kernels.baoab.step`` on chains started at ``x0`` ``(C, d)``.

    Returns numpy arrays: positions and momenta ``(C, N, d)`` after each move, and the
    acceptance probabilities ``(C, N)``; the first ``num_burnin`` moves are dropped. Step
    size, friction, mass and temperature are traced, so one compilation serves all of them.
    """
    q, p, acc = _run_kernel(
        key,
        jnp.asarray(x0, jnp.float32),
        jnp.float32(step_size),
        jnp.float32(friction),
        jnp.asarray(mass, jnp.float32),
        jnp.float32(temperature),
        logdensity_fn=logdensity_fn,
        num_steps=num_burnin + num_steps,
        metropolis=metropolis,
        num_integration_steps=num_integration_steps,
        refresh=refresh,
    )
    s = slice(num_burnin, None)
    return np.asarray(q[:, s]), np.asarray(p[:, s]), np.asarray(acc[:, s])


@pytest.fixture(scope="session")
def mc() -> SimpleNamespace:
    """The helpers above for tests: ``mc.chain_estimate``, ``mc.run_kernel``, ``mc.Z_TOL``..."""
    return SimpleNamespace(
        Z_TOL=Z_TOL,
        chain_estimate=chain_estimate,
        second_moments=second_moments,
        run_kernel=run_kernel,
    )
