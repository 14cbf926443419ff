"""``langevin-nets fit`` on several devices: ``--devices``, the chunk options, and the
checks of the multi-process options.

One subprocess runs a tiny SMC fit with two forced CPU devices (the device count is fixed
when JAX starts, so it cannot be changed in this process); every bad option is checked
in-process with ``main([...])``: exit status 2, one ``error:`` line, nothing written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import assert_nothing_written, assert_one_error
from langevin_nets.cli import main
from langevin_nets.io.config import InputError

ROWS = "x,y\n" + "".join(f"{i / 4:.2f},{np.sin(i / 4):.4f}\n" for i in range(16))


@pytest.fixture
def train(tmp_path: Path) -> Path:
    p = tmp_path / "train.csv"
    p.write_text(ROWS)
    return p


def _env(num_devices: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _cli() -> list[str]:
    exe = Path(sys.executable).parent / "langevin-nets"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "langevin_nets.cli"]


def test_two_devices_from_the_config_file(tmp_path: Path, train: Path) -> None:
    """``devices`` and ``particle-chunk`` set in the TOML file, ``--data-chunk`` on the
    command line: the run uses 2 devices and records it."""
    cfg = tmp_path / "run.toml"
    cfg.write_text('devices = 2\nparticle-chunk = 2\nmethod = "smc-geometric"\n')
    out = tmp_path / "out"
    argv = [*_cli(), "fit", "--config", str(cfg), "--data", str(train), "--hidden", "4",
            "--particles", "8", "--stages", "3", "--steps", "1", "--data-chunk", "5",
            "--out", str(out), "--quiet"]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(2), timeout=300)
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["device_count"] == 2
    assert s["devices_available"] == 2
    assert s["process_count"] == 1
    assert s["sampler"]["num_devices"] == 2
    assert (s["particle_chunk"], s["data_chunk"]) == (2, 5)
    assert s["config"]["devices"] == 2 and s["config"]["particle_chunk"] == 2
    assert s["num_particles"] == 8
    # The effective configuration keeps the device options (they are settings of the fit)
    # and not the multi-process ones (they differ between processes).
    text = (out / "config.toml").read_text()
    assert "devices = 2" in text and "data_chunk = 5" in text
    assert "coordinator" not in text and "process_id" not in text


# Each case: (id, extra arguments, texts the error line must contain).
BAD = [
    ("devices do not divide particles", ["--devices", "3", "--particles", "64"],
     ["--devices 3", "--particles 64"]),
    ("devices zero", ["--devices", "0"], ["--devices", "positive integer or all", "'0'"]),
    ("devices negative", ["--devices", "-2"], ["--devices", "'-2'"]),
    ("devices word", ["--devices", "abc"], ["--devices", "'abc'"]),
    ("devices fraction", ["--devices", "1.5"], ["--devices", "'1.5'"]),
    ("more devices than exist", ["--devices", "4", "--particles", "8"],
     ["--devices 4", "only 1 device"]),
    ("langevin on two devices", ["--method", "langevin", "--devices", "2"],
     ["--devices 2", "--method langevin"]),
    ("particle chunk zero", ["--particle-chunk", "0"], ["--particle-chunk"]),
    ("data chunk word", ["--data-chunk", "many"], ["--data-chunk", "'many'"]),
    ("coordinator alone", ["--coordinator", "127.0.0.1:1234"],
     ["go together", "missing: --num-processes, --process-id"]),
    ("process id alone", ["--process-id", "0"],
     ["go together", "missing: --coordinator, --num-processes"]),
    ("no process id", ["--coordinator", "127.0.0.1:1234", "--num-processes", "2"],
     ["missing: --process-id"]),
    ("coordinator without port", ["--coordinator", "localhost", "--num-processes", "2",
                                  "--process-id", "0"], ["--coordinator", "HOST:PORT"]),
    ("coordinator without host", ["--coordinator", ":1234", "--num-processes", "2",
                                  "--process-id", "0"], ["--coordinator", "HOST:PORT"]),
    ("coordinator port zero", ["--coordinator", "h:0", "--num-processes", "2",
                               "--process-id", "0"], ["--coordinator", "1 to 65535"]),
    ("coordinator port too big", ["--coordinator", "h:70000", "--num-processes", "2",
                                  "--process-id", "0"], ["--coordinator", "1 to 65535"]),
    ("coordinator bad port", ["--coordinator", "h:12ab", "--num-processes", "2",
                              "--process-id", "0"], ["--coordinator", "HOST:PORT"]),
    ("process id too big", ["--coordinator", "h:1234", "--num-processes", "2",
                            "--process-id", "2"], ["--process-id", "0 to 1"]),
    ("no processes", ["--coordinator", "h:1234", "--num-processes", "0",
                      "--process-id", "0"], ["--num-processes", "positive integer"]),
    ("langevin over processes", ["--method", "langevin", "--coordinator", "h:1234",
                                 "--num-processes", "2", "--process-id", "0"],
     ["--num-processes 2", "SMC"]),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "needles"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_device_options_exit_2(
    tmp_path: Path, train: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
    needles: list[str],
) -> None:  # fmt: skip
    out = tmp_path / "out"
    rc = main(["fit", "--data", str(train), "--out", str(out), *extra])
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    assert_one_error(cap.err, *needles)
    assert cap.out == ""
    assert_nothing_written(tmp_path, out)


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ('devices = "abc"\n', ["--devices", "'abc'", "run.toml"]),
        ("devices = 0\n", ["--devices", "run.toml"]),
        ('coordinator = "nohost"\nnum-processes = 2\nprocess-id = 0\n',
         ["--coordinator", "HOST:PORT", "run.toml"]),
        ("num-processes = 2\n", ["go together"]),
    ],
)  # fmt: skip
def test_bad_device_options_in_config_exit_2(
    tmp_path: Path, train: Path, capsys: pytest.CaptureFixture[str], toml: str,
    needles: list[str],
) -> None:  # fmt: skip
    cfg = tmp_path / "run.toml"
    cfg.write_text(toml)
    out = tmp_path / "out"
    rc = main(["fit", "--config", str(cfg), "--data", str(train), "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    assert_one_error(cap.err, *needles)
    assert_nothing_written(tmp_path, out)


def test_uci_checks_device_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["uci", "boston", "--devices", "3", "--particles", "8", "--data-dir",
               str(tmp_path), "--out", str(tmp_path / "out")])  # fmt: skip
    assert rc == 2
    assert_one_error(capsys.readouterr().err, "--devices 3", "--particles 8")


def test_resolve_devices() -> None:
    import jax

    from langevin_nets.fit import resolve_devices

    n = jax.device_count()
    assert resolve_devices(None, "smc-adaptive", 8) is None
    assert resolve_devices("all", "smc-adaptive", 8 * n) == n
    assert resolve_devices(1, "langevin", 8) == 1
    with pytest.raises(InputError, match=f"devices {n + 1}: only {n} device"):
        resolve_devices(n + 1, "smc-data", 8 * (n + 1))
    if n == 1:  # "all" is one device: fine for Langevin
        assert resolve_devices("all", "langevin", 8, "cli") == 1
    else:
        with pytest.raises(InputError, match=f"--devices all \\({n} devices\\): only the SMC"):
            resolve_devices("all", "langevin", 8, "cli")


def test_fit_api_checks_devices_before_compiling() -> None:
    from langevin_nets.fit import fit

    X = np.linspace(-1, 1, 10)
    y = X**2
    with pytest.raises(ValueError, match="particles 10 cannot be split evenly over devices 3"):
        fit(X, y, particles=10, devices=3)
    with pytest.raises(ValueError, match="devices 2: only the SMC methods"):
        fit(X, y, method="langevin", devices=2)
    with pytest.raises(TypeError, match="devices must be a positive integer or all"):
        fit(X, y, devices=2.0)
    with pytest.raises(ValueError, match="data_chunk must be a positive integer"):
        fit(X, y, data_chunk=0)
