"""Checkpoints: the atomic npz + json files, and SMC resumed bit for bit.

The SMC tests use one 1-D conjugate target (theta ~ N(0, 1), y_i | theta ~ N(theta, 1))
given as plain functions, with one particle count and stage cap, so that every run shares
one compiled program (the schedule, thresholds, key and stage slice are runtime values).
A run is "killed" in process by making the engine's compiled stage program or the file
write raise partway; the CLI test further down kills a real process with SIGKILL.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import langevin_nets.checkpoint as ckpt
from langevin_nets.langevin import langevin
from langevin_nets.smc import smc

ENGINE = sys.modules["langevin_nets.smc.engine"]

Y = jnp.asarray([0.9, 1.4, 0.3, 1.1, 0.6, 1.7, 0.2, 0.8, 1.2, 0.4, 1.0, 0.7], jnp.float32)
N_DATA = int(Y.shape[0])


def logprior(theta):
    return -0.5 * theta[0] ** 2 - 0.5 * math.log(2 * math.pi)


def loglik(theta):
    return -0.5 * (Y - theta[0]) ** 2 - 0.5 * math.log(2 * math.pi)


def sample_prior(key, n):
    return jax.random.normal(key, (n, 1))


GAUSS = (logprior, loglik, sample_prior)
KW = dict(num_particles=64, max_stages=40, num_mcmc_steps=2, num_integration_steps=3)
SCHEDULES = {
    "data": dict(schedule="data", ess_threshold=0.8),
    "adaptive": dict(schedule="adaptive", target_ess=0.9, resampling="stratified"),
    # Waste-free: 16 chains of 4 states (3 moves each) replace KW's moves.
    "waste-free": dict(schedule="adaptive", target_ess=0.9, waste_free=4, num_mcmc_steps=None),
}


def assert_same_result(a, b) -> None:
    """Bit for bit: particles, weights, evidence, every history row, counts."""
    np.testing.assert_array_equal(np.asarray(a.particles), np.asarray(b.particles))
    np.testing.assert_array_equal(np.asarray(a.log_weights), np.asarray(b.log_weights))
    assert a.log_evidence == b.log_evidence
    for name, x, y in zip(a.history._fields, a.history, b.history, strict=True):
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert (a.num_stages, a.hit_max_stages, a.num_gradient_evaluations) == (
        b.num_stages, b.hit_max_stages, b.num_gradient_evaluations
    )  # fmt: skip


class Killed(Exception):
    """Stands for the process dying."""


def kill_after(monkeypatch, name: str, module, calls: int) -> None:
    """Make ``module.name`` raise :class:`Killed` on call number ``calls + 1``."""
    original = getattr(module, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise Killed
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


# -- the files --------------------------------------------------------------------------------


def test_save_load_roundtrip(tmp_path):
    arrays = {
        "x": np.arange(6, dtype=np.float32).reshape(2, 3),
        "k": np.asarray(7, np.int32),
        "flags": np.array([True, False]),
        "key": np.array([1, 2], np.uint32),
    }
    ckpt.save(tmp_path / "c", arrays, {"kind": "test", "stage": 3, "lam": float("inf")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.npz"]  # no temp files
    loaded, meta = ckpt.load(tmp_path / "c.npz")  # either suffix names the pair
    assert set(loaded) == set(arrays)
    for k, a in arrays.items():
        assert loaded[k].dtype == a.dtype
        np.testing.assert_array_equal(loaded[k], a)
    assert meta["format"] == ckpt.FORMAT and meta["version"] == ckpt.VERSION
    assert meta["stage"] == 3 and meta["lam"] == "inf"  # JSON has no infinity
    assert json.loads((tmp_path / "c.json").read_text()) == meta
    assert ckpt.info(tmp_path / "c.json") == meta
    assert ckpt.load(tmp_path / "missing") is None and not ckpt.exists(tmp_path / "missing")


def test_no_pickle_anywhere(tmp_path):
    with pytest.raises(TypeError, match="numbers only"):
        ckpt.save(tmp_path / "c", {"o": np.array([{"a": 1}], dtype=object)}, {})
    # A file holding a pickled object array is refused, not unpickled.
    np.savez(tmp_path / "evil.npz", o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ckpt.CheckpointError, match="unreadable"):
        ckpt.load(tmp_path / "evil")


def test_foreign_damaged_and_future_files_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ckpt.CheckpointError, match="not a langevin-nets checkpoint"):
        ckpt.load(tmp_path / "plain")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ckpt.CheckpointError, match="unreadable"):
        ckpt.load(tmp_path / "junk")
    ckpt.save(tmp_path / "c", {"x": np.zeros(2)}, {})
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "c.npz").write_bytes(data[: len(data) // 2])  # a torn file
    with pytest.raises(ckpt.CheckpointError, match="unreadable"):
        ckpt.load(tmp_path / "c")
    raw = json.dumps({"format": ckpt.FORMAT, "version": ckpt.VERSION + 1}).encode()
    np.savez(tmp_path / "new.npz", __meta__=np.frombuffer(raw, np.uint8))
    with pytest.raises(ckpt.CheckpointError, match="format version"):
        ckpt.load(tmp_path / "new")


def test_paths(tmp_path):
    base = (tmp_path / "run" / "c.npz", tmp_path / "run" / "c.json")
    for p in ("c", "c.npz", "c.json"):
        assert ckpt.paths(tmp_path / "run" / p) == base
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        ckpt.paths(tmp_path / "d")
    with pytest.raises(ValueError, match="non-empty"):
        ckpt.paths(" ")
    with pytest.raises(TypeError, match="must be a path"):
        ckpt.paths(3)


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path):
    ckpt.save(tmp_path / "c", {"x": np.zeros(3)}, {"stage": 1})

    def torn(fh):
        fh.write(b"half a file")
        raise Killed

    with pytest.raises(Killed):
        ckpt.atomic_write(tmp_path / "c.npz", torn)
    arrays, meta = ckpt.load(tmp_path / "c")
    assert meta["stage"] == 1 and np.array_equal(arrays["x"], np.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.npz"]
    # A SIGKILL mid-write can leave a temporary file; it is ignored and then removed.
    (tmp_path / "c.npz.abc123.tmp").write_bytes(b"partial")
    assert ckpt.load(tmp_path / "c")[1]["stage"] == 1
    ckpt.remove(tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_settings_hash_names_the_difference(tmp_path):
    head = ckpt.header("smc", {"num_particles": 64, "key": "a" * 64}, "data:x")
    ckpt.save(tmp_path / "c", {}, head)
    meta = ckpt.info(tmp_path / "c")
    ckpt.check_compatible(
        meta, tmp_path / "c", kind="smc", config={"num_particles": 64, "key": "a" * 64},
        data_hash="data:x",
    )  # fmt: skip
    with pytest.raises(ckpt.CheckpointError, match="num_particles: 64 in the checkpoint, 32"):
        ckpt.check_compatible(meta, tmp_path / "c", kind="smc",
                              config={"num_particles": 32, "key": "a" * 64}, data_hash=None)
    with pytest.raises(ckpt.CheckpointError, match="key: hash aaaaaaaaaa in the checkpoint"):
        ckpt.check_compatible(meta, tmp_path / "c", kind="smc",
                              config={"num_particles": 64, "key": "b" * 64}, data_hash=None)
    with pytest.raises(ckpt.CheckpointError, match="different data"):
        ckpt.check_compatible(meta, tmp_path / "c", kind="smc",
                              config={"num_particles": 64, "key": "a" * 64}, data_hash="data:y")
    with pytest.raises(ckpt.CheckpointError, match="written by 'smc', not 'langevin'"):
        ckpt.check_compatible(meta, tmp_path / "c", kind="langevin", config={}, data_hash=None)


# -- SMC ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    """Uninterrupted runs without checkpoints, one per schedule."""
    return {s: smc(GAUSS, jax.random.PRNGKey(11), **(KW | kw)) for s, kw in SCHEDULES.items()}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_resumed_run_is_bitwise_the_uninterrupted_one(schedule, reference, tmp_path, monkeypatch):
    kw = dict(KW, **SCHEDULES[schedule])
    ref = reference[schedule]
    assert ref.num_stages >= 4  # enough stages to cut
    path = tmp_path / "smc"
    # Checkpointing itself changes nothing.
    assert_same_result(smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, **kw), ref)
    meta = ckpt.info(path)
    assert meta["stage"] == ref.num_stages and meta["finished"]
    assert meta["checkpoint_every"] == 1 and meta["log_evidence"] == pytest.approx(
        ref.log_evidence, abs=0, rel=1e-6
    )
    ckpt.remove(path)

    # Killed after two slices of 2 stages; resumed with another interval.
    with monkeypatch.context() as m:
        kill_after(m, "_advance", ENGINE, calls=2)
        with pytest.raises(Killed):
            smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, checkpoint_every=2, **kw)
    assert ckpt.info(path)["stage"] == 4 and not ckpt.info(path)["finished"]
    resumed = smc(
        GAUSS, jax.random.PRNGKey(11), checkpoint=path, checkpoint_every=3, resume=True, **kw
    )
    assert_same_result(resumed, ref)

    # Resuming a finished run returns the same result, running no stage.
    calls = []
    advance = ENGINE._advance
    monkeypatch.setattr(ENGINE, "_advance", lambda *a: calls.append(1) or advance(*a))
    again = smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, resume=True, **kw)
    assert_same_result(again, ref)
    assert len(calls) == 1


def test_killed_while_writing_a_checkpoint(reference, tmp_path, monkeypatch):
    kw = dict(KW, **SCHEDULES["data"])
    path = tmp_path / "smc"
    # Writes: npz then json per checkpoint; die in the middle of the third npz.
    with monkeypatch.context() as m:
        kill_after(m, "atomic_write", ckpt, calls=4)
        with pytest.raises(Killed):
            smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, checkpoint_every=3, **kw)
    assert ckpt.info(path)["stage"] == 6
    resumed = smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, resume=True, **kw)
    assert_same_result(resumed, reference["data"])


def test_resume_is_refused_with_other_settings(reference, tmp_path, monkeypatch):
    kw = dict(KW, **SCHEDULES["data"])
    path = tmp_path / "smc"
    smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, checkpoint_every=4, **kw)
    before = (path.with_suffix(".npz").read_bytes(), path.with_suffix(".json").read_bytes())

    # Settings are compared before anything is compiled or run.
    def no_run(*args):
        raise AssertionError("compiled program called")

    monkeypatch.setattr(ENGINE, "_init", no_run)
    monkeypatch.setattr(ENGINE, "_advance", no_run)
    with pytest.raises(ckpt.CheckpointError, match="different configuration .*key: hash"):
        smc(GAUSS, jax.random.PRNGKey(12), checkpoint=path, resume=True, **kw)
    with pytest.raises(ValueError, match="ess_threshold: 0.8 in the checkpoint, 0.7 now"):
        smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, resume=True,
            **(kw | dict(ess_threshold=0.7)))  # fmt: skip
    with pytest.raises(ValueError, match="kind: 'data-fixed' in the checkpoint, 'tempering-"):
        smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, resume=True,
            **(kw | SCHEDULES["adaptive"]))  # fmt: skip
    with pytest.raises(ValueError, match="already exists .*resume=True"):
        smc(GAUSS, jax.random.PRNGKey(11), checkpoint=path, **kw)
    assert (path.with_suffix(".npz").read_bytes(), path.with_suffix(".json").read_bytes()) \
        == before  # fmt: skip


@pytest.mark.parametrize(
    "extra, error, match",
    [
        (dict(checkpoint_every=2), ValueError, "need a checkpoint path"),
        (dict(resume=True), ValueError, "need a checkpoint path"),
        (dict(checkpoint="c", checkpoint_every=0), ValueError, "checkpoint_every"),
        (dict(checkpoint="c", resume="yes"), TypeError, "resume must be True or False"),
        (dict(checkpoint=5), TypeError, "checkpoint must be a path"),
    ],
)
def test_bad_checkpoint_arguments(extra, error, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        smc(GAUSS, jax.random.PRNGKey(0), **KW, **extra)
    assert list(tmp_path.iterdir()) == []



# -- Langevin -----------------------------------------------------------------------------------


def std_normal(x):
    return -0.5 * jnp.sum(x * x)


LKW = dict(step_size=0.3, friction=1.0, num_chains=2, num_burnin=5, thin=2)
X0 = np.zeros((2, 3))


def same_trace(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(la, lb, strict=True)
    )


@pytest.mark.parametrize(
    "key, metropolis",
    [(jax.random.PRNGKey(3), False), (jax.random.key(3), True)],
    ids=["raw-key-unadjusted", "typed-key-metropolis"],
)
def test_langevin_resumed_run_is_bitwise_the_uninterrupted_one(key, metropolis, tmp_path,
                                                                monkeypatch):  # fmt: skip
    kw = dict(LKW, metropolis=metropolis)
    plain = langevin(std_normal, key, X0, 20, **kw)
    path = tmp_path / "lv"
    # Checkpointed in slices of 6 samples: the same numbers as one scan.
    assert same_trace(langevin(std_normal, key, X0, 20, checkpoint=path, checkpoint_every=6,
                               **kw), plain)  # fmt: skip
    meta = ckpt.info(path)
    assert meta["kind"] == "langevin" and meta["sample"] == 20 and meta["finished"]
    ckpt.remove(path)
    with monkeypatch.context() as m:
        kill_after(m, "save", ckpt, calls=2)
        with pytest.raises(Killed):
            langevin(std_normal, key, X0, 20, checkpoint=path, checkpoint_every=6, **kw)
    assert ckpt.info(path)["sample"] == 12
    resumed = langevin(std_normal, key, X0, 20, checkpoint=path, checkpoint_every=5,
                       resume=True, **kw)  # fmt: skip
    assert same_trace(resumed, plain)
    if metropolis:
        return
    # One chain: the chain axis is dropped the same way.
    one = dict(LKW, num_chains=1)
    assert same_trace(
        langevin(std_normal, key, X0[0], 9, checkpoint=tmp_path / "one", **one),
        langevin(std_normal, key, X0[0], 9, **one),
    )


def test_langevin_resume_is_refused_with_other_settings(tmp_path):
    path, x0 = tmp_path / "lv", X0 + 0.5
    langevin(std_normal, jax.random.PRNGKey(3), x0, 8, checkpoint=path, **LKW)
    with pytest.raises(ckpt.CheckpointError, match="step_size: 0.3 in the checkpoint, 0.2 now"):
        langevin(std_normal, jax.random.PRNGKey(3), x0, 8, checkpoint=path, resume=True,
                 **(LKW | dict(step_size=0.2)))  # fmt: skip
    with pytest.raises(ckpt.CheckpointError, match="initial_position: hash"):
        langevin(std_normal, jax.random.PRNGKey(3), x0 + 1, 8, checkpoint=path, resume=True,
                 **LKW)  # fmt: skip
    with pytest.raises(ckpt.CheckpointError, match="different data"):
        langevin(lambda x: std_normal(2 * x), jax.random.PRNGKey(3), x0, 8,
                 checkpoint=path, resume=True, **LKW)  # fmt: skip
    with pytest.raises(ValueError, match="already exists"):
        langevin(std_normal, jax.random.PRNGKey(3), x0, 8, checkpoint=path, **LKW)
    with pytest.raises(ValueError, match="need a checkpoint path"):
        langevin(std_normal, jax.random.PRNGKey(3), x0, 8, resume=True, **LKW)


@pytest.mark.parametrize(
    "extra",
    [dict(), dict(on_divergence="restart", burnin_step_size=50.0)],
    ids=["raise", "restart-in-burnin"],
)
def test_langevin_killed_during_burnin_resumes_bitwise(extra, tmp_path, monkeypatch):
    # 30 burn-in steps in slices of checkpoint_every * thin = 12 steps: saved after steps 12
    # and 24; the last 6 run with the first production slice. With "restart" the burn-in
    # step of 50 (25 times the stability limit) is halved per chain while the run is cut,
    # so the checkpoints carry the per-chain step sizes and restart counts.
    kw = dict(LKW, num_burnin=30, **extra)
    key = jax.random.PRNGKey(5)
    plain = langevin(std_normal, key, X0, 10, **kw)
    if extra:
        assert np.all(plain.num_restarts >= 5)
    path = tmp_path / "lv"
    for kills, burned, resume_every in [(1, 12, 6), (2, 24, 4)]:
        with monkeypatch.context() as m:
            kill_after(m, "save", ckpt, calls=kills)
            with pytest.raises(Killed):
                langevin(std_normal, key, X0, 10, checkpoint=path, checkpoint_every=6, **kw)
        meta = ckpt.info(path)
        assert (meta["phase"], meta["burnin_step"], meta["sample"]) == ("burn-in", burned, 0)
        assert not meta["finished"]
        restarts = ckpt.load(path)[0][".chains.num_restarts"]
        assert restarts.shape == (2,) and (restarts.sum() > 0) == bool(extra)
        if extra:  # the restart settings are part of the configuration
            with pytest.raises(ckpt.CheckpointError, match="on_divergence: 'restart' in the "
                               "checkpoint, 'raise' now"):  # fmt: skip
                langevin(std_normal, key, X0, 10, checkpoint=path, resume=True,
                         **(kw | dict(on_divergence="raise")))  # fmt: skip
        resumed = langevin(std_normal, key, X0, 10, checkpoint=path, resume=True,
                           checkpoint_every=resume_every, **kw)  # fmt: skip
        assert same_trace(resumed, plain)
        assert ckpt.info(path)["finished"] and ckpt.info(path)["burnin_step"] == 30
        ckpt.remove(path)


# -- the command line, killed for real ---------------------------------------------------------

# The killed run sleeps after each checkpoint it saves (nothing else changes), so that the
# test reliably kills it between the first checkpoint and the end of sampling.
SLOW_SAVES = """
import sys, time
import langevin_nets.checkpoint as c
save = c.save
def slow(*args, **kwargs):
    save(*args, **kwargs)
    time.sleep(2.0)
c.save = slow
from langevin_nets.cli import main
sys.exit(main(sys.argv[1:]))
"""
N_ROWS = 40


def _write_csv(path: Path, bump: float = 0.0) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, N_ROWS)
    y = np.sin(x) + 0.1 * rng.standard_normal(N_ROWS)
    y[-1] += bump
    rows = "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(x, y, strict=True))
    path.write_text("x,y\n" + rows)


def _env(cache: Path) -> dict[str, str]:
    # A compilation cache shared by the three processes only saves time: a cached program
    # is the program compiled. (test_faults checks a fresh process without it.)
    return dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")  # fmt: skip


def _posterior(out: Path) -> dict[str, np.ndarray]:
    import xarray as xr

    with xr.open_dataset(out / "posterior.nc", group="posterior") as ds:
        return {k: ds[k].values for k in ds.data_vars}


def test_cli_killed_run_resumes_bitwise(tmp_path, capsys):
    from langevin_nets.cli import main

    data = tmp_path / "d.csv"
    _write_csv(data)
    args = ["fit", "--data", str(data), "--method", "smc-data", "--batch-size", "1",
            "--hidden", "3", "--particles", "12", "--steps", "1", "--seed", "3", "--quiet"]
    ckpt_args = [*args, "--checkpoint-every", "4"]
    out, ref = tmp_path / "out", tmp_path / "ref"
    env = _env(tmp_path / "jax-cache")
    python = [sys.executable, "-c"]
    fast = SLOW_SAVES.replace("2.0", "0")
    victim = subprocess.Popen([*python, SLOW_SAVES, *ckpt_args, "--out", str(out)], env=env)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint.json").exists():
            assert victim.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.kill()
        victim.wait()
    killed_at = ckpt.info(out / "checkpoint")
    assert 4 <= killed_at["stage"] < N_ROWS and not killed_at["finished"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.json", "checkpoint.npz"]
    files = {p.name: p.read_bytes() for p in out.iterdir()}

    # Refused: without --resume, with other options, with other data. Nothing changes.
    def refused(argv, match):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and match in err, err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == files
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["d.csv", "jax-cache", "out", *extra]
        )

    extra: list[str] = []
    refused([*ckpt_args, "--out", str(out)], "pass --resume to continue it")
    refused([*ckpt_args, "--particles", "13", "--resume", "--out", str(out)],
            "num_particles: 12 in the checkpoint, 13 now")  # fmt: skip
    other = tmp_path / "other.csv"
    _write_csv(other, bump=0.5)
    extra.append("other.csv")
    refused([*ckpt_args, "--data", str(other), "--resume", "--out", str(out)], "different data")

    resumed = subprocess.run([*python, fast, *ckpt_args, "--resume", "--out", str(out)],
                             env=env, timeout=600)  # fmt: skip
    assert resumed.returncode == 0
    # The uninterrupted run, without checkpoints.
    reference = subprocess.run([*python, fast, *args, "--out", str(ref)], env=env, timeout=600)
    assert reference.returncode == 0
    # A finished run leaves its outputs only: no checkpoint, no staging directory.
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in ref.iterdir())
    assert "summary.json" in names and not any(n.startswith("checkpoint") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["d.csv", "other.csv", "jax-cache", "out", "ref"]
    )

    a = json.loads((out / "summary.json").read_text())
    b = json.loads((ref / "summary.json").read_text())
    assert a["checkpoint"]["resumed_from_stage"] == killed_at["stage"]
    assert b["checkpoint"] is None
    assert a["sampler"]["num_stages"] == N_ROWS
    for key in ("train", "log_evidence", "log_evidence_standardized", "stages", "sampler",
                "gradient_evaluations", "resolved", "model"):  # fmt: skip
        assert a[key] == b[key], key
    assert (out / "predictions.csv").read_bytes() == (ref / "predictions.csv").read_bytes()
    pa, pb = _posterior(out), _posterior(ref)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    for key in ("langevin_nets_version", "jax_version", "device_count"):
        assert a[key] == b[key] and a[key] is not None
    assert a["seed"] == b["seed"] == 3

    # A finished run holds no checkpoint to resume.
    assert main([*ckpt_args, "--resume", "--out", str(out)]) == 2
    assert "holds no checkpoint to continue" in capsys.readouterr().err
