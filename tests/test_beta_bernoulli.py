"""The original sandbox's validation: a Beta-Bernoulli posterior sampled on the logit scale.

Data: ``k`` successes in ``n`` Bernoulli trials, prior ``p ~ Beta(a, b)``, so the posterior is
``Beta(A, B)`` with ``A = a + k``, ``B = b + n - k``. In ``phi = logit(p)`` the density picks
up the Jacobian ``dp/dphi = p (1 - p)``:

    log pi(phi) = A log sigmoid(phi) + B log sigmoid(-phi) + const,

and the samples' ``sigmoid(phi)`` must have the Beta posterior's mean ``A / (A + B)`` and
variance ``A B / ((A + B)^2 (A + B + 1))``.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import langevin_nets as ln

PRIOR_A, PRIOR_B, N_TRIALS, N_SUCCESS = 2.0, 2.0, 30, 9
A, B = PRIOR_A + N_SUCCESS, PRIOR_B + N_TRIALS - N_SUCCESS
EXACT_MEAN = A / (A + B)
EXACT_VAR = A * B / ((A + B) ** 2 * (A + B + 1))


def logit_logdensity(phi):
    z = phi[0]
    return A * jax.nn.log_sigmoid(z) + B * jax.nn.log_sigmoid(-z)


def record(phi):
    p = jax.nn.sigmoid(phi[0])
    return {"p": p, "sq": (p - EXACT_MEAN) ** 2}


def test_the_logit_density_is_the_beta_posterior():
    """A check on the test itself: pi(phi) = Beta.pdf(p) p (1 - p) up to a constant."""
    from scipy import stats

    phis = np.linspace(-4.0, 3.0, 15)
    p = 1.0 / (1.0 + np.exp(-phis))
    ours = np.array([float(logit_logdensity(np.array([f]))) for f in phis])
    exact = stats.beta.logpdf(p, A, B) + np.log(p) + np.log1p(-p)
    np.testing.assert_allclose(ours - exact, (ours - exact)[0], atol=1e-4)


# Curvature of -log pi at the mode is about (A + B) p (1 - p) = 7.4: omega ~ 2.7.
# Unadjusted: h = 0.2 (h omega = 0.55). BAOAB's bias is O(h^2); a long run (256 chains x 20000
# steps, seed 9) measured at h = 0.6 a variance bias of +1.8e-4 (+- 0.05e-4) and a mean bias of
# 0.7e-5 (+- 3e-5), so at h = 0.2 about 2e-5 and 1e-6: under half the standard errors below
# (mean 4e-4, variance 5e-5). Adjusted: h = 0.5 is exact whatever the bias.
CASES = [(False, 0.2), (True, 0.5)]


@pytest.mark.parametrize("metropolis,step_size", CASES)
def test_beta_posterior_mean_and_variance(mc, metropolis, step_size):
    num_chains, num_samples = 32, 2000
    trace = ln.langevin(
        logit_logdensity,
        jax.random.PRNGKey(4),
        np.zeros(1),
        num_samples,
        step_size=step_size,
        friction=2.0,
        num_burnin=300,
        metropolis=metropolis,
        num_chains=num_chains,
        record_fn=record,
    )
    mean, mean_se = mc.chain_estimate(trace.recorded["p"])
    var, var_se = mc.chain_estimate(trace.recorded["sq"])
    assert abs(mean - EXACT_MEAN) < mc.Z_TOL * mean_se, (mean, mean_se, EXACT_MEAN)
    assert abs(var - EXACT_VAR) < mc.Z_TOL * var_se, (var, var_se, EXACT_VAR)
    # Resolution: a 1 % error in the mean or a 10 % error in the variance would be caught.
    assert mc.Z_TOL * mean_se < 0.01 * EXACT_MEAN
    assert mc.Z_TOL * var_se < 0.1 * EXACT_VAR
    # The sampled p must differ from the prior mean 0.5 and the MLE 0.3 by many errors.
    assert abs(mean - 0.5) > 50 * mean_se and abs(mean - N_SUCCESS / N_TRIALS) > 5 * mean_se
