"""Multi-process runs: :mod:`langevin_nets.distributed` and ``langevin-nets fit`` over two
processes on this machine.

The end-to-end test starts two processes of ``langevin-nets fit`` (one CPU device each,
Gloo collectives, coordinator on 127.0.0.1) and, at the same time, one process with two
forced CPU devices and ``--devices 2``. The SMC engine splits the particles over a mesh
of 2 devices in both cases, with the same random draws and the same partitioned program,
so the two results must agree bit for bit: log evidence, every posterior draw and every
prediction. The multi-process run also saves checkpoints (``--checkpoint-every 1``),
which must not change the result either (the engine resumes bit for bit) and which only
process 0 may keep.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from langevin_nets import distributed

# -- the module's checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
        (" node-3.cluster.local:65535 ", ("node-3.cluster.local", 65535)),
        ("[::1]:8476", ("[::1]", 8476)),
        ("h:1", ("h", 1)),
    ],
)
def test_parse_coordinator(text: str, expected: tuple[str, int]) -> None:
    assert distributed.parse_coordinator(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("localhost", "HOST:PORT"),
        (":1234", "HOST:PORT"),
        ("host:", "HOST:PORT"),
        ("host:12ab", "HOST:PORT"),
        ("a:b:1234", "HOST:PORT"),
        ("[zz]:1234", "HOST:PORT"),
        ("my host:1234", "HOST:PORT"),
        ("host:-1", "HOST:PORT"),
        ("host:0", "1 to 65535"),
        ("host:65536", "1 to 65535"),
    ],
)
def test_parse_coordinator_rejects(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=f"coordinator.*{match}"):
        distributed.parse_coordinator(text)


def test_check_process_options() -> None:
    distributed.check_process_options("h:1", 1, 0)
    distributed.check_process_options("h:1", 3, 2)
    with pytest.raises(TypeError, match="coordinator must be a string"):
        distributed.check_process_options(1234, 2, 0)
    with pytest.raises(ValueError, match="num_processes must be at least 1, got 0"):
        distributed.check_process_options("h:1", 0, 0)
    with pytest.raises(ValueError, match="process_id must be from 0 to .* = 1, got 2"):
        distributed.check_process_options("h:1", 2, 2)
    with pytest.raises(ValueError, match="process_id must be from 0 .* got -1"):
        distributed.check_process_options("h:1", 2, -1)
    with pytest.raises(TypeError, match="num_processes must be an integer, got True"):
        distributed.check_process_options("h:1", True, 0)
    with pytest.raises(TypeError, match="process_id must be an integer, got '0'"):
        distributed.check_process_options("h:1", 2, "0")


def test_initialize_after_jax_started_is_a_clear_error() -> None:
    import jax

    jax.devices()  # this test process has started JAX
    assert distributed.backend_started()
    with pytest.raises(RuntimeError, match="must be called before any other JAX call"):
        distributed.initialize("127.0.0.1:1", 2, 1)
    # Bad arguments are reported first, whatever the state of JAX.
    with pytest.raises(ValueError, match="process_id"):
        distributed.initialize("127.0.0.1:1", 2, 5)


def test_single_process_defaults() -> None:
    assert not distributed.is_initialized()
    assert distributed.is_main_process()
    assert distributed.process_index() == 0
    assert distributed.process_count() == 1
    distributed.shutdown()  # a no-op outside a multi-process run


# -- two processes, end to end --------------------------------------------------------------

# Wall-clock limit for the three processes together. They need about 80 CPU-seconds in all,
# mostly compiling the SMC program; on a 2-core machine shared with other jobs (load ~10)
# the test took 156-173 s.
TIMEOUT_S = 420


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(num_devices: int, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["TMPDIR"] = str(tmp)  # to see the scratch files of process 1 go
    return env


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "langevin-nets"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "langevin_nets.cli"]


def _write_data(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, 24)
    y = np.sin(2 * x) + 0.2 * rng.normal(size=24)
    rows = [f"{float(a)!r},{float(b)!r}" for a, b in zip(x, y, strict=True)]
    train, test = folder / "train.csv", folder / "test.csv"
    train.write_text("x,y\n" + "\n".join(rows[:18]) + "\n")
    test.write_text("x,y\n" + "\n".join(rows[18:]) + "\n")
    return train, test


def _run_all(cmds: list[tuple[list[str], dict[str, str]]], cwd: Path) -> list[tuple[int, str]]:
    """Run the commands at the same time; return (exit status, stderr) of each. Every
    process is killed if they have not all finished within TIMEOUT_S."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for argv, env in cmds:
            procs.append(subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        results = []
        for p in procs:
            try:
                _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"the processes did not finish within {TIMEOUT_S} s")
            results.append((p.returncode, err))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=30)


def _posterior_draws(out: Path) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

        idata = az.from_netcdf(str(out / "posterior.nc"))
    return {k: np.asarray(v) for k, v in idata.posterior.data_vars.items()}


def test_two_processes_match_one_process_on_two_devices(tmp_path: Path) -> None:
    train, test = _write_data(tmp_path)
    common = ["fit", "--data", str(train), "--test", str(test), "--hidden", "4",
              "--particles", "8", "--method", "smc-geometric", "--stages", "3",
              "--steps", "1", "--seed", "7", "--quiet"]  # fmt: skip
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    coordinator = f"127.0.0.1:{_free_port()}"
    outs = [tmp_path / "p0", tmp_path / "p1"]
    multi = [
        ([*_cli(), *common, "--out", str(outs[i]), "--checkpoint-every", "1",
          "--coordinator", coordinator, "--num-processes", "2", "--process-id", str(i)],
         _env(1, scratch))
        for i in range(2)
    ]  # fmt: skip
    single = (
        [*_cli(), *common, "--out", str(tmp_path / "single"), "--devices", "2"],
        _env(2, scratch),
    )
    before = {p.name for p in tmp_path.iterdir()}
    results = _run_all([*multi, single], tmp_path)
    for name, (rc, err) in zip(("process 0", "process 1", "single"), results, strict=True):
        assert rc == 0, f"{name} exited {rc}: {err[-3000:]}"

    # Process 1 computed but wrote nothing (its checkpoints went to a scratch folder, now
    # removed); process 0 wrote every output, and no checkpoint is left.
    assert not outs[1].exists()
    assert [p.name for p in scratch.iterdir() if p.name.startswith("langevin-nets-")] == []
    assert {p.name for p in tmp_path.iterdir()} == before | {"p0", "single"}
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == ["config.toml", "posterior.nc", "predictions.csv", "report.png",
                     "summary.json"]  # fmt: skip

    multi_s = json.loads((outs[0] / "summary.json").read_text())
    single_s = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert (multi_s["device_count"], multi_s["process_count"]) == (2, 2)
    assert (single_s["device_count"], single_s["process_count"]) == (2, 1)
    assert multi_s["checkpoint"]["every"] == 1
    # Bit for bit: JSON floats round-trip exactly, and the draws are compared exactly.
    assert multi_s["log_evidence"] == single_s["log_evidence"]
    assert multi_s["stages"] == single_s["stages"]
    assert multi_s["test"] == single_s["test"]
    a, b = _posterior_draws(outs[0]), _posterior_draws(tmp_path / "single")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (outs[0] / "predictions.csv").read_bytes() == (
        tmp_path / "single" / "predictions.csv"
    ).read_bytes()
