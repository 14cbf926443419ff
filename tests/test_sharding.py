"""SMC with the particles split over devices, chunked evaluation, and traced data.

The multi-device checks run in ONE subprocess (``tests/sharding_checks.py``) with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` in its environment, set before JAX
starts there (never in this process); it compiles four programs and prints a JSON summary
that the tests below read through a module-scoped fixture.

Model (in float64): Bayesian linear regression with a known noise level, 20 points, geometric
tempering over 8 stages, N = 256 or 258 particles; its evidence is Gaussian in closed form.

Tolerances. The standard deviation of the log-evidence estimate of this configuration,
measured over 40 seeds on one device, is SD_LOG_Z (see the constant) with N = 256; the
mean over those seeds was within 0.015 of the closed form (no visible bias). Two independent
runs differ by sqrt(2) SD; 4.5 SD is used for a run against the closed form and
4.5 sqrt(2) SD for two runs (a false failure about once in 10^5 per comparison).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from langevin_nets import BayesianMLP
from langevin_nets.smc import SMCResult, smc

# The module, not the function ``smc`` that the package exports under the same name path.
ENGINE = sys.modules["langevin_nets.smc.engine"]

SCRIPT = Path(__file__).with_name("sharding_checks.py")
#: Standard deviation of the log evidence over 40 seeds (one device, N = 256): 0.085
#: (resampling at ESS < N/2) and 0.075 (at every stage); rounded up for the spread of a
#: 40-seed estimate (about 11 %).
SD_LOG_Z = 0.09
TOL_EXACT = 4.5 * SD_LOG_Z
TOL_PAIR = 4.5 * np.sqrt(2.0) * SD_LOG_Z


def exact_log_evidence() -> float:
    """``log N(y; 0, sigma^2 I + s^2 Phi Phi^T)`` for the script's data (``s = 1``)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from sharding_checks import NOISE, data
    finally:
        sys.path.pop(0)
    X, y = data()
    Phi = np.c_[X, np.ones(len(X))]
    C = NOISE**2 * np.eye(len(X)) + Phi @ Phi.T
    _, logdet = np.linalg.slogdet(2 * np.pi * C)
    return float(-0.5 * (logdet + y[:, 0] @ np.linalg.solve(C, y[:, 0])))


@pytest.fixture(scope="module")
def checks() -> dict:
    env = dict(os.environ)
    # LLVM optimisation level 0 halves the compile time of the four programs; the
    # partitioning over devices (an HLO pass) is the same.
    flags = "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
    env.pop("JAX_PLATFORMS", None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(f"sharding_checks.py failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["num_devices_available"] == 4
    return out


def test_device_argument_errors_name_the_numbers(checks):
    e = checks["errors"]
    assert e["too_many"] == "ValueError: devices=8 asks for more devices than the 4 available"
    assert e["not_divisible"].startswith("ValueError: num_particles=258 must be divisible")
    assert "(4)" in e["not_divisible"]
    assert e["bad_type"].startswith("TypeError: devices must be")


def test_indivisible_particle_count_falls_back_to_one_device(checks):
    (message,) = checks["fallback_warnings"]
    assert "num_particles=258 is not divisible by the 4 available devices" in message
    assert checks["one"]["num_devices"] == 1


def test_other_data_of_the_same_shape_reuse_the_compiled_program(checks):
    assert checks["other_data"]["new_compilations"] == 0
    assert checks["other_data"]["log_evidence"] != checks["one"]["log_evidence"]


def test_evidence_agrees_across_device_counts_and_with_the_closed_form(checks):
    exact = exact_log_evidence()
    runs = {k: checks[k] for k in ("one", "two", "four")}
    assert [r["num_devices"] for r in runs.values()] == [1, 2, 4]
    for name, r in runs.items():
        assert abs(r["log_evidence"] - exact) < TOL_EXACT, (name, r["log_evidence"], exact)
    z = [r["log_evidence"] for r in runs.values()]
    assert max(z) - min(z) < TOL_PAIR
    assert "P('particles',)" in checks["four_sharding"]


def test_bitwise_reproducible_for_a_device_count(checks):
    assert checks["four_again"] == checks["four"]
    # A user mesh of the same devices (Explicit axis, as jax.make_mesh makes it), passed
    # or also set as the current mesh: the same program, the same result.
    assert checks["user_mesh_axis_types"] == "(Explicit,)"
    assert checks["user_mesh"] == checks["four"]
    assert checks["user_mesh_set"] == checks["four"]
    assert checks["one_in_user_mesh"] == checks["one"]


def test_every_resampler_on_an_explicit_mesh(checks):
    exact = exact_log_evidence()
    z = {}
    for name, r in checks["resamplers"].items():
        assert r["num_devices"] == 4
        lw = np.asarray(r["log_weights"])
        # Resampling at every stage, then moves: equal weights at the end.
        np.testing.assert_allclose(lw, -np.log(256), rtol=1e-5)
        assert np.all(np.isfinite(r["particles"]))
        assert abs(r["log_evidence"] - exact) < TOL_EXACT, (name, r["log_evidence"], exact)
        z[name] = r["log_evidence"]
    assert len(set(z.values())) == 4  # four different schemes really ran


#: Waste-free SMC (256 particles, 32 chains of 8 states) on the same model, one device: sd of
#: the log evidence over 40 seeds 0.139, rounded up for the spread of a 40-seed estimate.
SD_LOG_Z_WASTE_FREE = 0.16


def test_waste_free_on_one_and_four_devices(checks):
    exact = exact_log_evidence()
    wf = checks["waste_free"]
    assert [wf[k]["num_devices"] for k in ("one", "four", "four_chunked")] == [1, 4, 4]
    for name in ("one", "four", "four_chunked"):
        r = wf[name]
        assert abs(r["log_evidence"] - exact) < 4.5 * SD_LOG_Z_WASTE_FREE, (name, r, exact)
        assert np.all(np.isfinite(r["particles"]))
        np.testing.assert_allclose(r["log_weights"], -np.log(256), rtol=1e-10)
    # Chunking changes only the order of float64 roundings, so the runs start equal.
    assert abs(wf["four"]["log_evidence"] - wf["four_chunked"]["log_evidence"]) < 0.05
    assert "2 chains, which do not split over 4 devices" in wf["error"]


def test_chunked_equals_unchunked(checks):
    """particle_chunk=16 (4 chunks per device) and data_chunk=5 against all at once.

    The script runs in float64, where chunks change only the order of roundings (about
    1e-16 relative). Along the run's trajectories and resamplings they grow (measured:
    4e-11 in the particles, 2e-11 in the log weights, 1e-12 in the log evidence); 1e-9
    leaves a margin of 25, while a wrong pairing of particles, keys or data moves values by
    O(1).
    (In float32 a grown rounding difference can flip an accept/reject decision, after
    which two correct runs differ as samples: no elementwise comparison is possible.)
    """
    a, b = checks["four"], checks["chunked"]
    assert b["log_evidence"] == pytest.approx(a["log_evidence"], abs=1e-9)
    np.testing.assert_allclose(b["particles"], a["particles"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(b["log_weights"], a["log_weights"], rtol=0, atol=1e-9)


# -- in this process (one device): argument checks before any compilation --------------------


def _post():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (10, 1))
    return BayesianMLP((1, 1), noise_std=1.0).posterior(X, X)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(devices=0), ValueError, "devices must be a positive number"),
        (dict(devices=2), ValueError, "devices=2 asks for more devices than the 1 available"),
        (dict(devices=True), TypeError, "devices must be None, a number"),
        (dict(devices=[]), ValueError, "devices must not be an empty list"),
        (dict(devices=[0]), TypeError, "devices must hold jax.Device"),
        (dict(devices="cpu"), TypeError, "devices must be None, a number"),
        (dict(particle_chunk=0), ValueError, "particle_chunk must be a positive integer"),
        (dict(particle_chunk=2.5), TypeError, "particle_chunk must be a positive integer"),
        (dict(data_chunk=0), ValueError, "data_chunk must be a positive integer"),
    ],
)
def test_bad_arguments_raise_before_compiling(kwargs, error, match, monkeypatch):
    def no_run(*args):
        raise AssertionError("compiled program called")

    monkeypatch.setattr(ENGINE, "_init", no_run)
    monkeypatch.setattr(ENGINE, "_advance", no_run)
    with pytest.raises(error, match=match):
        smc(_post(), jax.random.PRNGKey(0), num_particles=8, **kwargs)


def test_data_chunk_needs_a_posterior(monkeypatch):
    post = _post()
    triple = (post.logprior, post.loglikelihood_per_datum, post.sample_prior)
    monkeypatch.setattr(ENGINE, "_init", None)
    with pytest.raises(TypeError, match="data_chunk needs a Posterior"):
        smc(triple, jax.random.PRNGKey(0), num_particles=8, data_chunk=2)


def test_result_records_the_device_count():
    assert SMCResult._field_defaults == {"num_devices": 1}
    assert ENGINE._split_target(_post(), ENGINE._as_target(_post()))[0] is None
    post = _post()
    triple = (post.logprior, post.loglikelihood_per_datum, post.sample_prior)
    static, data = ENGINE._split_target(triple, ENGINE._as_target(triple))
    assert data is None and static is not None


@pytest.mark.parametrize("chunk", [3, 64])
def test_map_particles_in_chunks_is_vmap(chunk):
    """Chunks of any size (a remainder included) give vmap's values, particle by particle."""
    from langevin_nets.smc.sharding import map_particles

    x = jax.random.normal(jax.random.PRNGKey(0), (10, 3))

    def f(args):
        a, b = args
        return jax.numpy.sum(a * a) + b[0], a * b[1]

    expected = jax.vmap(f)((x, 2.0 * x))
    got = map_particles(f, (x, 2.0 * x), None, chunk)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6)
