"""SMC on several (forced host) devices: run in a subprocess by tests/test_sharding.py.

The parent sets ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before JAX starts
here; this script runs the checks and prints one JSON object on its last line of stdout.
Four programs are compiled (1 device, N=258; 2 devices, N=258; 4 devices, N=256; 4
devices chunked), everything else reuses them.

Everything runs in float64 (see below). Model: Bayesian linear regression with a known
noise level (``BayesianMLP((1, 1), noise_std=NOISE)``), whose evidence is Gaussian in closed
form (computed by the parent).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import jax
import numpy as np

from langevin_nets import BayesianMLP
from langevin_nets.smc import engine, smc

N_DATA = 20
NOISE = 1.0
KW = dict(schedule="geometric", num_stages=8, num_mcmc_steps=2, num_integration_steps=5)


def data(shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    X = rng.uniform(-1.5, 1.5, (N_DATA, 1))
    y = 0.8 * X[:, 0] - 0.4 + NOISE * rng.standard_normal(N_DATA) + shift
    return X, y[:, None]


def summary(r) -> dict:
    return {
        "log_evidence": float(r.log_evidence),
        "num_devices": int(r.num_devices),
        "particles": np.asarray(r.particles).tolist(),
        "log_weights": np.asarray(r.log_weights).tolist(),
    }


def timed(fn):
    t = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.particles)
    return out, time.perf_counter() - t


def main() -> None:
    model = BayesianMLP((1, 1), noise_std=NOISE, prior_scale=1.0)
    post = model.posterior(*data())
    out: dict = {"num_devices_available": len(jax.devices())}
    key = jax.random.PRNGKey(7)

    # -- argument errors, before any compilation --------------------------------------------
    errors = {}
    for name, kw in {
        "too_many": dict(num_particles=256, devices=8),
        "not_divisible": dict(num_particles=258, devices=4),
        "bad_type": dict(num_particles=256, devices="gpu"),
    }.items():
        try:
            smc(post, key, **kw, **KW)
            errors[name] = None
        except (ValueError, TypeError) as err:
            errors[name] = f"{type(err).__name__}: {err}"
    out["errors"] = errors

    # -- 1 device (N not divisible by 4: fallback with a warning) -----------------------------
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r1, _ = timed(lambda: smc(post, key, num_particles=258, **KW))
    out["fallback_warnings"] = [str(w.message) for w in caught if w.category is UserWarning]
    out["one"] = summary(r1)
    # One device while the caller has set a (4-device, Explicit) mesh of its own.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with jax.set_mesh(jax.make_mesh((4,), ("particles",))):
            out["one_in_user_mesh"] = summary(smc(post, key, num_particles=258, **KW))
    # Other data of the same shape: the same compiled program, another result.
    before = engine._advance._cache_size()
    shifted = model.posterior(*data(shift=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        r1b = smc(shifted, key, num_particles=258, **KW)
    out["other_data"] = {
        "new_compilations": engine._advance._cache_size() - before,
        "log_evidence": float(r1b.log_evidence),
    }

    # -- 2 devices, given as a list (not the first ones) ---------------------------------------
    r2, _ = timed(lambda: smc(post, key, num_particles=258, devices=jax.devices()[2:4], **KW))
    out["two"] = summary(r2)

    # -- 4 devices ---------------------------------------------------------------------------
    r4, _ = timed(lambda: smc(post, key, num_particles=256, devices=4, **KW))
    r4_again, t4 = timed(lambda: smc(post, key, num_particles=256, devices=4, **KW))
    out["four"] = summary(r4)
    out["four_again"] = summary(r4_again)
    out["four_sharding"] = str(r4.particles.sharding)
    # A user mesh from jax.make_mesh (Explicit axis by default), also as the current mesh.
    mesh = jax.make_mesh((4,), ("particles",))
    out["user_mesh_axis_types"] = str(mesh.axis_types)
    out["user_mesh"] = summary(smc(post, key, num_particles=256, devices=mesh, **KW))
    with jax.set_mesh(mesh):
        out["user_mesh_set"] = summary(smc(post, key, num_particles=256, devices=mesh, **KW))
    # Every resampler, resampling at every stage, on the user's explicit mesh.
    out["resamplers"] = {
        name: summary(
            smc(post, key, num_particles=256, devices=mesh, resampling=name,
                ess_threshold=1.0, **KW)
        )
        for name in ("systematic", "stratified", "multinomial", "residual")
    }  # fmt: skip

    # -- 4 devices, chunked over particles (within each device's 64) and over the data ----------
    chunked = smc(post, key, num_particles=256, devices=4, particle_chunk=16, data_chunk=5, **KW)
    out["chunked"] = summary(chunked)
    out["seconds_four"] = t4

    # -- waste-free SMC: 32 chains of 8 states, on 1 and 4 devices, chunked on 4 ---------------
    wf = dict(schedule="geometric", num_stages=8, num_integration_steps=5, waste_free=8)
    out["waste_free"] = {
        "one": summary(smc(post, key, num_particles=256, devices=1, **wf)),
        "four": summary(smc(post, key, num_particles=256, devices=4, **wf)),
        "four_chunked": summary(
            smc(post, key, num_particles=256, devices=4, particle_chunk=4, **wf)
        ),
    }
    try:  # 2 chains cannot split over 4 devices
        smc(post, key, num_particles=256, devices=4, **(wf | dict(waste_free=128)))
        out["waste_free"]["error"] = None
    except ValueError as err:
        out["waste_free"]["error"] = str(err)
    print(json.dumps(out))


if __name__ == "__main__":
    # Double precision: chunked and unchunked runs sum in different orders, and in float32
    # the rounding (grown along the trajectories) can flip an accept/reject decision, after
    # which two correct runs differ. In float64 the differences stay near 1e-12. Set here,
    # not at import: test_sharding.py imports this module for its data, and the setting
    # would leak into the rest of the pytest process.
    jax.config.update("jax_enable_x64", True)
    sys.exit(main())
