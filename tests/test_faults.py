"""Numerical faults injected on purpose, and reproducibility across processes.

* SMC on a likelihood that is NaN on part of the space, started with a step size far beyond
  the stability limit: NaN particles get weight zero and are counted per stage, the step
  size backs off, nothing non-finite reaches the output.
* Langevin with a step beyond the stability limit: a clear error naming the chain, the
  exact step and phase where it diverged, and what to change.
* The command line on data with a huge outlier: finite results, and the per-stage
  divergence counts in summary.json.
* The same key and settings give the same bits in a fresh process.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from langevin_nets.errors import DivergenceError
from langevin_nets.langevin import langevin
from langevin_nets.smc import smc, tuning

# theta ~ N(0, 1), y_i | theta ~ N(theta, 1), with the likelihood NaN above CUT.
Y = jnp.asarray([0.9, 1.4, 0.3, 1.1, 0.6, 1.7, 0.2, 0.8], jnp.float32)
CUT = 1.0
H0 = 50.0  # the leapfrog is stable for h < 2 sd; the posterior sd is 1/3


def logprior(theta):
    return -0.5 * theta[0] ** 2 - 0.5 * math.log(2 * math.pi)


def loglik_nan_above_cut(theta):
    ll = -0.5 * (Y - theta[0]) ** 2 - 0.5 * math.log(2 * math.pi)
    return jnp.where(theta[0] > CUT, jnp.nan, ll)


def sample_prior(key, n):
    return jax.random.normal(key, (n, 1))


NAN_REGION = (logprior, loglik_nan_above_cut, sample_prior)
KW = dict(num_particles=256, schedule="data", max_stages=8, num_mcmc_steps=3,
          num_integration_steps=3, step_size=H0)  # fmt: skip


def run_nan_region(seed: int = 0):
    """The faulty SMC run (also run by the fresh process of the reproducibility test)."""
    return smc(NAN_REGION, jax.random.PRNGKey(seed), **KW)


@pytest.fixture(scope="module")
def nan_run():
    return run_nan_region()


def test_smc_drops_nan_particles_and_counts_them_per_stage(nan_run):
    h = nan_run.history
    assert nan_run.num_stages == 8 and not nan_run.hit_max_stages
    # ~16% of the 256 prior draws lie above the cut: NaN at the first reweighting, and
    # about half the proposals of a step of 50 land there too.
    assert h.num_divergent.shape == (8,) and h.num_divergent[0] > 40
    x, lw = np.asarray(nan_run.particles), np.asarray(nan_run.log_weights)
    assert np.all(np.isfinite(x)) and np.all(x[np.isfinite(lw), 0] <= CUT)
    assert np.all(np.isfinite(lw) | (lw == -np.inf))
    assert abs(float(jax.scipy.special.logsumexp(lw))) < 1e-5
    assert math.isfinite(nan_run.log_evidence)


def test_step_size_backs_off_on_divergences(nan_run):
    # The stage's recorded step is that of its last (third) move, after two updates. The
    # acceptance rule alone changes log h by at most MAX_LOG_CHANGE per update, so it
    # cannot go below H0 * exp(-2); only the halving on divergences gets there.
    h = nan_run.history.step_size
    assert tuning.MAX_LOG_CHANGE == 1.0
    assert h[0] < H0 * math.exp(-2) * 0.5
    # ... and the adaptation then settles on a usable step (posterior sd ~ 0.33).
    assert 0.01 < h[-1] < 2.0 and nan_run.history.acceptance_rate[-1] > 0.3


# -- Langevin ------------------------------------------------------------------------------------


def std_normal(x):
    return -0.5 * jnp.sum(x * x)


LKW = dict(friction=1.0, num_chains=2)


def test_langevin_divergence_names_chain_step_and_phase():
    x0 = np.ones((2, 2))
    with pytest.raises(DivergenceError) as err:
        langevin(std_normal, jax.random.PRNGKey(0), x0, 200, step_size=50.0, **LKW)
    msg = str(err.value)
    m = re.search(r"chain (\d) diverged .* at production step (\d+) \(while "
                                r"drawing sample \2\).*smaller step_size \(now 50.0\)", msg)
    assert m, msg
    step = int(m.group(2))
    # The step named is the first non-finite one: one step fewer runs clean.
    assert 1 < step < 200
    clean = langevin(std_normal, jax.random.PRNGKey(0), x0, step - 1, step_size=50.0, **LKW)
    assert np.all(np.isfinite(np.asarray(clean.positions)))
    with pytest.raises(DivergenceError, match=f"at production step {step} "):
        langevin(std_normal, jax.random.PRNGKey(0), x0, step, step_size=50.0, **LKW)
    # During burn-in the message names the burn-in and its step size.
    with pytest.raises(DivergenceError, match=r"at burn-in step \d+ of 300; .*smaller "
                       r"burnin_step_size \(now 50.0\)"):  # fmt: skip
        langevin(std_normal, jax.random.PRNGKey(0), x0, 5, step_size=0.1,
                 burnin_step_size=50.0, num_burnin=300, **LKW)  # fmt: skip


# -- the command line on an outlier ----------------------------------------------------------


def test_cli_outlier_gives_finite_results_and_stage_divergence_counts(tmp_path, capsys):
    from langevin_nets.cli import main

    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 30)
    y = np.sin(x) + 0.1 * rng.standard_normal(30)
    y[7] = 1e6  # a huge outlier
    rows = "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(x, y, strict=True))
    (tmp_path / "d.csv").write_text("x,y\n" + rows)
    rc = main(["fit", "--data", str(tmp_path / "d.csv"), "--hidden", "3", "--particles", "8",
               "--steps", "1", "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["log_evidence"] is not None and math.isfinite(s["log_evidence"])
    assert math.isfinite(s["train"]["rmse"]) and math.isfinite(s["train"]["log_likelihood"])
    assert s["stages"] and all(isinstance(st["num_divergent"], int) for st in s["stages"])
    assert s["sampler"]["num_divergent_total"] == sum(st["num_divergent"] for st in s["stages"])
    # Reproducibility fields.
    for key in ("langevin_nets_version", "jax_version", "device_count", "seed"):
        assert s[key] is not None, key


# -- reproducibility -------------------------------------------------------------------------


def test_same_key_same_bits_in_a_fresh_process(nan_run, tmp_path):
    out = tmp_path / "run.npz"
    code = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_faults import run_nan_region\n"
        "r = run_nan_region()\n"
        f"np.savez({str(out)!r}, particles=np.asarray(r.particles), "
        "log_weights=np.asarray(r.log_weights), log_evidence=r.log_evidence, "
        "step_size=r.history.step_size, num_divergent=r.history.num_divergent)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
    with np.load(out, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["particles"], np.asarray(nan_run.particles))
        np.testing.assert_array_equal(f["log_weights"], np.asarray(nan_run.log_weights))
        assert float(f["log_evidence"]) == nan_run.log_evidence
        np.testing.assert_array_equal(f["step_size"], nan_run.history.step_size)
        np.testing.assert_array_equal(f["num_divergent"], nan_run.history.num_divergent)
    other = run_nan_region(seed=1)
    assert not np.array_equal(np.asarray(other.particles), np.asarray(nan_run.particles))
