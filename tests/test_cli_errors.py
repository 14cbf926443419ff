"""Bad input to ``langevin-nets``: exit status 2, one ``error:`` line, nothing written.

Every case runs ``main([...])`` in-process (fast; nothing is compiled because input is
checked first); two cases also run the installed console script in a subprocess to
show that no traceback reaches the user.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers import assert_nothing_written, assert_one_error
from langevin_nets.cli import main
from langevin_nets.io.config import InputError
from langevin_nets.io.outputs import OutputDir

HEADER = "a,b,y\n"
ROWS = "".join(f"{i},{i * 0.5},{i * 2 + 1}\n" for i in range(10))


def _f(tmp: Path, text: str | bytes, name: str = "x.csv") -> str:
    """Write ``text`` to ``tmp/name`` and return the path as a string."""
    return str(_write(tmp / name, text))


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _fit(good: Path, *options: str) -> list[str]:
    """``fit`` on the good file with ``options``."""
    return ["fit", "--data", str(good), *options]


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return _write(tmp_path / "train.csv", HEADER + ROWS)


# Each case: (id, function(tmp_path, good_csv) -> argv, expected text in the message).
Case = tuple[str, Callable[[Path, Path], list[str]], str]

CASES: list[Case] = [
    ("missing file", lambda t, g: ["fit", "--data", str(t / "nope.csv")], "does not exist"),
    ("data is a directory", lambda t, g: ["fit", "--data", str(t)], "is a directory"),
    ("binary file", lambda t, g: ["fit", "--data", _f(t, b"PK\x03\x04\x00\x01")],
     "not a CSV"),
    ("not utf-8", lambda t, g: ["fit", "--data", _f(t, b"a,y\n\xff\xfe,1\n")],
     "not a CSV"),
    ("ragged rows", lambda t, g: ["fit", "--data", _f(t, "a,y\n1,2\n3,4,5\n")],
     "not a CSV"),
    ("semicolons", lambda t, g: ["fit", "--data", _f(t, "a;y\n1;2\n3;4\n")],
     "separate columns with commas"),
    ("empty file", lambda t, g: ["fit", "--data", _f(t, "")], "is empty"),
    ("no header", lambda t, g: ["fit", "--data", _f(t, ROWS)], "no header"),
    ("unknown target", lambda t, g: ["fit", "--data", str(g), "--target", "zz"],
     "unknown target column 'zz'"),
    ("unknown feature", lambda t, g: ["fit", "--data", str(g), "--features", "a,q"],
     "unknown feature column 'q'"),
    ("target as feature", lambda t, g: ["fit", "--data", str(g), "--features", "a,y"],
     "cannot also be a feature"),
    ("non-numeric", lambda t, g: ["fit", "--data", _f(t, HEADER + "1,2,3\n4,abc,6\n")],
     "non-numeric value 'abc' in column 'b', row 2"),
    ("missing value", lambda t, g: ["fit", "--data", _f(t, HEADER + "1,,3\n4,5,6\n")],
     "missing value in column 'b', row 1"),
    ("nan", lambda t, g: ["fit", "--data", _f(t, HEADER + "1,2,3\n4,nan,6\n")],
     "NaN value 'nan' in column 'b', row 2"),
    ("inf", lambda t, g: ["fit", "--data", _f(t, HEADER + "1,2,inf\n4,5,6\n")],
     "infinite value 'inf' in column 'y', row 1"),
    ("one row", lambda t, g: ["fit", "--data", _f(t, HEADER + "1,2,3\n")],
     "at least 2"),
    ("header only", lambda t, g: ["fit", "--data", _f(t, HEADER)], "at least 2"),
    ("one column", lambda t, g: ["fit", "--data", _f(t, "y\n1\n2\n")],
     "no feature column"),
    ("test columns differ", lambda t, g: ["fit", "--data", str(g), "--test",
                                          str(_write(t / "t.csv", "a,c,y\n1,2,3\n"))],
     "different columns"),
    ("test lacks a feature", lambda t, g: ["fit", "--data", str(g), "--test",
                                           str(_write(t / "t.csv", "a,y\n1,3\n"))],
     "lacks 'b'"),
    ("test non-numeric", lambda t, g: ["fit", "--data", str(g), "--test",
                                       str(_write(t / "t.csv", "a,b,y\n1,zz,3\n"))],
     "non-numeric value 'zz' in column 'b', row 1 (line 2) of test file"),
    ("missing test file", lambda t, g: ["fit", "--data", str(g), "--test", str(t / "no.csv")],
     "test file"),
    ("no data option", lambda t, g: ["fit"], "--data"),
    ("unknown method", lambda t, g: ["fit", "--data", str(g), "--method", "nuts"],
     "unknown method 'nuts'"),
    ("unknown activation", lambda t, g: ["fit", "--data", str(g), "--activation", "swish"],
     "unknown activation 'swish'"),
    ("unknown prior", lambda t, g: ["fit", "--data", str(g), "--prior", "laplace"],
     "unknown prior 'laplace'"),
    ("unknown resampling", lambda t, g: ["fit", "--data", str(g), "--resampling", "optimal"],
     "unknown resampling scheme 'optimal'"),
    ("step size 0", lambda t, g: ["fit", "--data", str(g), "--step-size", "0"],
     "--step-size must be a positive number"),
    ("step size negative", lambda t, g: ["fit", "--data", str(g), "--step-size", "-0.1"],
     "--step-size must be a positive number"),
    ("step size nan", lambda t, g: ["fit", "--data", str(g), "--step-size", "nan"],
     "--step-size must be a positive number"),
    ("particles 0", lambda t, g: ["fit", "--data", str(g), "--particles", "0"],
     "--particles must be an integer of at least 2"),
    ("particles 1", lambda t, g: ["fit", "--data", str(g), "--particles", "1"],
     "--particles must be an integer of at least 2"),
    ("particles float", lambda t, g: ["fit", "--data", str(g), "--particles", "2.5"],
     "--particles must be an integer of at least 2"),
    ("stages 0", lambda t, g: ["fit", "--data", str(g), "--stages", "0"],
     "--stages must be a positive integer"),
    ("samples -1", lambda t, g: ["fit", "--data", str(g), "--samples", "-1"],
     "--samples must be a positive integer"),
    ("noise std 0", lambda t, g: ["fit", "--data", str(g), "--noise-std", "0"],
     "--noise-std must be a positive number"),
    ("noise shape negative", lambda t, g: ["fit", "--data", str(g), "--noise-shape", "-2"],
     "--noise-shape must be a positive number"),
    ("noise std and shape", lambda t, g: ["fit", "--data", str(g), "--noise-std", "1",
                                          "--noise-shape", "2"], "not both"),
    ("test and fraction", lambda t, g: ["fit", "--data", str(g), "--test", str(g),
                                        "--test-fraction", "0.2"], "not both"),
    ("fraction 1", lambda t, g: ["fit", "--data", str(g), "--test-fraction", "1"],
     "strictly between 0 and 1"),
    ("target ess 0", lambda t, g: ["fit", "--data", str(g), "--target-ess", "0"],
     "--target-ess must be a number strictly between 0 and 1"),
    ("target ess 1.5", lambda t, g: ["fit", "--data", str(g), "--target-ess", "1.5"],
     "--target-ess must be a number strictly between 0 and 1"),
    ("waste-free 1", lambda t, g: ["fit", "--data", str(g), "--waste-free", "1"],
     "--waste-free must be an integer of at least 2"),
    ("waste-free indivisible", lambda t, g: ["fit", "--data", str(g), "--particles", "30",
                                             "--waste-free", "4"],
     "--waste-free 4 needs --particles divisible by it"),
    ("threshold 0", lambda t, g: ["fit", "--data", str(g), "--ess-threshold", "0"],
     "--ess-threshold must be a number in (0, 1]"),
    ("threshold 2", lambda t, g: ["fit", "--data", str(g), "--ess-threshold", "2"],
     "--ess-threshold must be a number in (0, 1]"),
    ("hidden letters", lambda t, g: ["fit", "--data", str(g), "--hidden", "a,b"],
     "--hidden must be a comma-separated list of positive integers"),
    ("hidden zero", lambda t, g: ["fit", "--data", str(g), "--hidden", "50,0"],
     "--hidden must be a comma-separated list of positive integers"),
    ("hidden empty item", lambda t, g: ["fit", "--data", str(g), "--hidden", "5,,5"],
     "--hidden must be"),
    ("hidden negative", lambda t, g: ["fit", "--data", str(g), "--hidden=-3"], "--hidden must be"),
    ("config missing", lambda t, g: ["fit", "--data", str(g), "--config", str(t / "c.toml")],
     "config file"),
    ("config invalid toml", lambda t, g: ["fit", "--data", str(g), "--config",
                                          str(_write(t / "c.toml", "particles = = 3\n"))],
     "not valid TOML"),
    ("config unknown key", lambda t, g: ["fit", "--data", str(g), "--config",
                                         str(_write(t / "c.toml", "particle = 3\n"))],
     "unknown key 'particle'"),
    ("config bad value", lambda t, g: ["fit", "--data", str(g), "--config",
                                       str(_write(t / "c.toml", "particles = -4\n"))],
     "--particles must be an integer of at least 2, got -4 (set in config file"),
    ("config wrong type", lambda t, g: ["fit", "--data", str(g), "--config",
                                        str(_write(t / "c.toml", 'step-size = "big"\n'))],
     "--step-size must be a positive number"),
    ("config binary", lambda t, g: ["fit", "--data", str(g), "--config",
                                    str(_write(t / "c.toml", b"\xff\xfe\x00"))],
     "config file"),
    ("config data missing", lambda t, g: ["fit", "--config",
                                          str(_write(t / "c.toml", 'data = "nope.csv"\n'))],
     "does not exist"),
    ("unknown option", lambda t, g: ["fit", "--data", str(g), "--bogus", "1"],
     "unrecognized arguments"),
    ("option without value", lambda t, g: ["fit", "--data", str(g), "--particles"],
     "expected one argument"),
    ("unknown command", lambda t, g: ["frobnicate"], "invalid choice"),
    ("no command", lambda t, g: [], "required"),
    ("uci unknown data set", lambda t, g: ["uci", "nosuchset", "--data-dir", str(t)],
     "unknown UCI data set 'nosuchset'"),
    ("uci bad data dir", lambda t, g: ["uci", "boston", "--data-dir", str(t / "none")],
     "does not exist"),
    ("uci split and splits", lambda t, g: ["uci", "boston", "--split", "1", "--splits", "all"],
     "not allowed with argument"),
    ("uci bad splits", lambda t, g: ["uci", "boston", "--splits", "3-1"], "--splits must be"),
    ("demo bad seed", lambda t, g: ["demo", "--seed", "-1"], "--seed must be"),
    # --select: evidence selection among candidates.
    ("select one value", lambda t, g: _fit(g, "--select", "prior_scale=1"),
     "'prior_scale=1' gives one value; give two or more separated by /"),
    ("select not selectable", lambda t, g: _fit(g, "--select", "particles=8/16"),
     "--select cannot vary 'particles'"),
    ("select no =", lambda t, g: _fit(g, "--select", "prior_scale"),
     "--select must be OPTION=V1/V2/..."),
    ("select bad value", lambda t, g: _fit(g, "--select", "prior_scale=1/x"),
     "--select prior_scale: --prior-scale must be a positive number, got 'x'"),
    ("select bad choice", lambda t, g: _fit(g, "--select", "activation=tanh/nope"),
     "--select activation: unknown activation 'nope'"),
    ("select bad bool", lambda t, g: _fit(g, "--select", "heteroscedastic=false/yes"),
     "--select heteroscedastic: values must be true or false, got 'yes'"),
    ("select same value", lambda t, g: _fit(g, "--select", "prior_scale=1/1.0"),
     "--select prior_scale lists '1.0' twice"),
    ("select twice", lambda t, g: _fit(g, "--select", "prior_scale=1/2",
                                       "--select", "prior-scale=3/4"),
     "--select varies prior_scale twice"),
    ("select and given", lambda t, g: _fit(g, "--select", "prior_scale=1/2", "--prior-scale", "3"),
     "--prior-scale is given and also varied by --select"),
    ("select langevin", lambda t, g: _fit(g, "--select", "prior_scale=1/2", "--method", "langevin"),
     "only the SMC methods estimate"),
    ("select resume", lambda t, g: _fit(g, "--select", "prior_scale=1/2", "--resume"),
     "--select fits several candidates; --resume is for a single fit"),
    ("select bad candidate", lambda t, g: _fit(g, "--noise-std", "1",
                                               "--select", "heteroscedastic=false/true"),
     "--select candidate heteroscedastic=true: --heteroscedastic learns the noise level"),
    ("select too many", lambda t, g: _fit(g, "--select", "prior_scale=" + "/".join("123456789"),
                                          "--select", "noise_shape=" + "/".join("12345678")),
     "--select asks for 72 candidates (every combination); at most 64"),
    ("select in config",
     lambda t, g: _fit(g, "--config", str(_write(t / "c.toml", 'select = "prior_scale=1"\n'))),
     "gives one value"),
    ("uci select langevin", lambda t, g: ["uci", "boston", "--select", "prior_scale=1/2",
                                          "--method", "langevin"],
     "only the SMC methods estimate"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_error_line(
    case: Case, tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, make_argv, match = case
    out = tmp_path / "out"
    argv = make_argv(tmp_path, good)
    if argv and argv[0] in ("fit", "uci"):
        argv += ["--out", str(out)]
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    assert_one_error(cap.err, match)
    assert cap.out == ""
    assert_nothing_written(tmp_path, out)


def test_output_path_is_a_file(tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str]):
    target = _write(tmp_path / "result", "I am a file\n")
    rc = main(["fit", "--data", str(good), "--out", str(target)])
    assert rc == 2
    assert_one_error(capsys.readouterr().err, "is a file")
    assert target.read_text() == "I am a file\n"


def test_output_dir_below_a_file(tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str]):
    _write(tmp_path / "f", "x")
    rc = main(["fit", "--data", str(good), "--out", str(tmp_path / "f" / "run")])
    assert rc == 2
    assert_one_error(capsys.readouterr().err, "is a file")


def test_output_dir_not_empty(tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "out"
    out.mkdir()
    _write(out / "keep.txt", "old result")
    rc = main(["fit", "--data", str(good), "--out", str(out)])
    assert rc == 2
    assert_one_error(capsys.readouterr().err, "--overwrite")
    assert (out / "keep.txt").read_text() == "old result"


def test_internal_error_exits_1_and_writes_nothing(
    tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import langevin_nets.fit as fit_module

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(fit_module, "fit", boom)
    out = tmp_path / "out"
    rc = main(["fit", "--data", str(good), "--method", "langevin", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    line = assert_one_error(err, "error: internal error: RuntimeError: boom second line")
    assert "--debug" in line
    assert_nothing_written(tmp_path, out)
    # With --debug the traceback is shown.
    rc = main(["fit", "--data", str(good), "--method", "langevin", "--out", str(out), "--debug"])
    assert rc == 1
    assert "Traceback" in capsys.readouterr().err


def test_failure_while_writing_leaves_nothing(tmp_path: Path) -> None:
    out = OutputDir(tmp_path / "runs" / "a")
    with pytest.raises(RuntimeError), out.staging() as tmp:
        (tmp / "summary.json").write_text("{}")
        raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []  # not even the parent it created
    with out.staging() as tmp:
        (tmp / "summary.json").write_text("{}")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a"]
    assert (tmp_path / "runs" / "a" / "summary.json").exists()


def test_overwrite_replaces_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "o"
    target.mkdir()
    _write(target / "old.txt", "x")
    with pytest.raises(InputError, match="not empty"):
        OutputDir(target).check()
    with OutputDir(target, overwrite=True).staging() as tmp:
        _write(tmp / "new.txt", "y")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"particles": 0}, ValueError, "particles must be an integer of at least 2, got 0"),
        ({"particles": 2.5}, TypeError, "particles must be an integer of at least 2"),
        ({"method": "nuts"}, ValueError, "unknown method 'nuts' for method"),
        ({"activation": "swish"}, ValueError, "unknown activation"),
        ({"prior": "laplace"}, ValueError, "unknown prior"),
        ({"resampling": "x"}, ValueError, "unknown resampling scheme"),
        ({"step_size": -1.0}, ValueError, "step_size must be a positive number"),
        ({"stages": 0}, ValueError, "stages must be a positive integer"),
        ({"samples": 0}, ValueError, "samples must be a positive integer"),
        ({"noise_std": 0.0}, ValueError, "noise_std must be a positive number"),
        ({"target_ess": 1.5}, ValueError, "target_ess must be a number strictly between 0 and 1"),
        ({"ess_threshold": 0.0}, ValueError, r"ess_threshold must be a number in \(0, 1\]"),
        ({"hidden": "5,x"}, ValueError, "hidden must be a comma-separated list"),
        ({"hidden": [5, 0]}, ValueError, "hidden must be a comma-separated list"),
        ({"hidden": [5.0]}, TypeError, "hidden must be a comma-separated list"),
        ({"particles": "10"}, TypeError, "particles must be an integer of at least 2"),
    ],
)
def test_python_api_rejects_bad_options_before_compiling(
    kwargs: dict, exc: type, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import langevin_nets.fit as fit_module

    def never(*a, **k):
        raise AssertionError("the pipeline ran despite bad input")

    monkeypatch.setattr(fit_module, "_run", never)
    X = np.linspace(0, 1, 10)[:, None]
    with pytest.raises(exc, match=match):
        fit_module.fit(X, X[:, 0], **kwargs)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ((np.ones((1, 2)), np.ones(1)), "at least 2 training rows"),
        ((np.array([[1.0], [np.nan]]), np.ones(2)), "X has a NaN value at row 2, column 1"),
        ((np.ones((3, 1)), np.array([1.0, np.inf, 2.0])), "y has an infinite value at row 2"),
        ((np.ones((3, 1)), np.ones(4)), "y has 4 rows but X has 3"),
        ((np.ones((3, 2)), np.ones(3), np.ones((2, 3))), "X_test has 3 column"),
    ],
)
def test_python_api_rejects_bad_data(data: tuple, match: str, monkeypatch) -> None:
    import langevin_nets.fit as fit_module

    monkeypatch.setattr(fit_module, "_run", lambda *a, **k: None)
    with pytest.raises(ValueError, match=match):
        fit_module.fit(*data, method="langevin")


def _console_script() -> list[str]:
    exe = Path(sys.executable).parent / "langevin-nets"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "langevin_nets.cli"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["fit", "--data", "definitely-missing.csv"], "does not exist"),
        (["fit", "--data", "x.csv", "--no-such-option"], "unrecognized arguments"),
    ],
)
def test_console_script_prints_no_traceback(tmp_path: Path, args: list[str], match: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [*_console_script(), *args, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert_one_error(proc.stderr, match)
    assert proc.stdout == ""
    assert_nothing_written(tmp_path, tmp_path / "out")


def test_python_api_defaults_match_the_command_line() -> None:
    import inspect

    from langevin_nets.fit import fit
    from langevin_nets.io.config import DEFAULTS, MODEL_KEYS

    params = inspect.signature(fit).parameters
    for key in (*MODEL_KEYS, "seed"):
        assert params[key].default == DEFAULTS[key], key


def test_missing_smc_engine_is_a_clean_error(
    tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_smc(name, *args, **kwargs):
        if name == "langevin_nets.smc":
            raise ImportError("No module named 'langevin_nets.smc'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_smc)
    out = tmp_path / "out"
    rc = main(["fit", "--data", str(good), "--method", "smc-data", "--out", str(out)])
    assert rc == 1
    line = assert_one_error(capsys.readouterr().err, "use --method langevin")
    assert "internal error" not in line
    assert_nothing_written(tmp_path, out)
