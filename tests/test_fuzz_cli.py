"""Property-based tests of the command line's input boundary (hypothesis).

Generated CSV files (and test files) and generated option values go through
``main(["fit", ...])`` in process. The property: the command either accepts the input or
exits 2 with exactly one ``error:`` line on stderr; never a traceback, an internal error,
a hang, or anything left on disk.

"Accepts" means the input got through every check (options, CSV parsing, column
selection, ``fit``'s own validation, standardisation, building the model and posterior)
to the sampler: the sampler is replaced by a stub that checks what it receives (finite,
consistent arrays) and stops the run there. The samplers themselves are tested elsewhere;
here they would cost a compilation per example.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import signal
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from langevin_nets.cli import main

FIT = importlib.import_module("langevin_nets.fit")  # the module (the package re-exports fit())
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
TIME_LIMIT_S = 30


class Accepted(BaseException):
    """The input reached the sampler (a BaseException: main() must not swallow it)."""


class Hung(BaseException):
    pass


def _sampler_stub(cfg, posterior, *args, **kwargs):
    X, y = np.asarray(posterior.X), np.asarray(posterior.y)
    assert X.ndim == 2 and X.shape[0] >= 2 and y.shape == (X.shape[0], 1)
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y)), "non-finite data reached the sampler"
    assert posterior.dim == posterior.model.dim >= 1
    raise Accepted


def run_cli(argv: list[str], workdir: Path, inputs: set[str]) -> str:
    """Run ``main(argv)``; check the property; return "accepted" or "refused"."""
    err = io.StringIO()

    def hung(*_):
        raise Hung(f"no answer within {TIME_LIMIT_S} s: {argv}")

    old = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT_S)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                mock.patch.object(FIT, "_run_smc", _sampler_stub), \
                mock.patch.object(FIT, "_run_langevin", _sampler_stub):  # fmt: skip
            try:
                rc = main(argv)
            except Accepted:
                rc = None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    text = err.getvalue()
    assert "Traceback" not in text, text
    if rc is not None:
        lines = text.splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, rc, text)
    # Nothing written: no output directory, no staging directory, no checkpoint.
    assert {p.name for p in workdir.iterdir()} == inputs, argv
    outcome = "accepted" if rc is None else "refused"
    if currently_in_test_context():
        event(outcome)  # shown by --hypothesis-show-statistics
    return outcome


# -- CSV files ---------------------------------------------------------------------------------

_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["1e308", "-1e308", "1e-320", "nan", "inf", "-inf", "1_000", "0x1p3",
                     " 2 ", "+3", ".5", "5.", "1e", "--1", "١٢"]),  # fmt: skip
)
_TEXT = st.text(alphabet=' ,"\n\r\t;ab1.-e\x00é\ufeff', max_size=6)
_CELL = st.one_of(_NUMBERS, _NUMBERS, _NUMBERS, _TEXT)
_NAME = st.one_of(st.sampled_from(["x", "y", "z", "x1", "target"]), _TEXT)


@st.composite
def csv_text(draw) -> bytes:
    """Mostly CSV-shaped text (sometimes ragged or odd), sometimes arbitrary bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=60))
    ncol = draw(st.integers(1, 4))
    header = draw(st.lists(_NAME, min_size=ncol, max_size=ncol))
    nrow = draw(st.integers(0, 6))
    rows = [
        draw(st.lists(_CELL, min_size=ncol, max_size=ncol))
        if draw(st.integers(0, 9))
        else draw(st.lists(_CELL, max_size=5))  # ragged
        for _ in range(nrow)
    ]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(",".join(r) for r in [header, *rows]) + newline
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@st.composite
def clean_csv(draw) -> bytes:
    """Well-formed numeric CSV files (so that many examples get past parsing)."""
    ncol = draw(st.integers(2, 3))
    nrow = draw(st.integers(1, 6))
    values = st.one_of(st.floats(-1e6, 1e6), st.floats(allow_nan=False, allow_infinity=False))
    cells = draw(st.lists(st.lists(values, min_size=ncol, max_size=ncol), min_size=nrow,
                          max_size=nrow))  # fmt: skip
    if draw(st.booleans()):  # a constant or extreme column
        fill = draw(st.sampled_from([0.0, 1.0, 1e300, -1e300, 5e-324]))
        col = draw(st.integers(0, ncol - 1))
        for r in cells:
            r[col] = fill
    header = ["a", "b", "c"][:ncol]
    lines = [",".join(header)] + [",".join(repr(v) for v in r) for r in cells]
    return ("\n".join(lines) + "\n").encode()


SMALL = ["--hidden", "2", "--particles", "4", "--steps", "1", "--quiet"]


@SETTINGS
@given(
    data=st.one_of(csv_text(), clean_csv()),
    test=st.one_of(st.none(), csv_text(), clean_csv()),
    columns=st.lists(st.sampled_from(["--target", "--features"]), max_size=2, unique=True),
    names=st.lists(st.sampled_from(["a", "b", "c", "x", "y", "a,b", "b,a", "", ","]),
                   min_size=2, max_size=2),  # fmt: skip
    method=st.sampled_from(["smc-adaptive", "langevin"]),
    standardize=st.booleans(),
)
def test_generated_csv_files(data, test, columns, names, method, standardize):
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        (work / "d.csv").write_bytes(data)
        argv = ["fit", "--data", str(work / "d.csv"), "--method", method, *SMALL,
                "--out", str(work / "out")]  # fmt: skip
        inputs = {"d.csv"}
        if test is not None:
            (work / "t.csv").write_bytes(test)
            argv += ["--test", str(work / "t.csv")]
            inputs.add("t.csv")
        for opt, name in zip(columns, names, strict=False):
            argv += [opt, name]
        if not standardize:
            argv.append("--no-standardize")
        run_cli(argv, work, inputs)


# -- option values -----------------------------------------------------------------------------

_INT = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["", " ", "abc", "1.5", "2.0", "1e3", "0x10", "nan", "inf", "-0", "+4",
                     "99999999999999999999", "٣"]),  # fmt: skip
)
_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "abc", "1e-320", "1e400", "0", "-0.0", "0.5", "1", "2", "1,5"]),
)
OPTIONS = {
    "--method": st.sampled_from(["smc-adaptive", "smc-data", "smc-geometric", "langevin",
                                 "hmc", ""]),  # fmt: skip
    "--hidden": st.sampled_from(["", "3", "2,2", "0", "-1", "a", "3,,3", " 4 ", "1e3", ","]),
    "--activation": st.sampled_from(["tanh", "relu", "nope", ""]),
    "--prior": st.sampled_from(["normal", "fan_in", "flat"]),
    "--resampling": st.sampled_from(["systematic", "residual", "bogus"]),
    "--seed": st.one_of(_INT, st.sampled_from(["4294967295", "4294967296", "-1"])),
    "--test-fraction": _FLOAT,
    "--target": st.sampled_from(["y", "x", "nope", ""]),
    "--features": st.sampled_from(["x", "y", "x,x", "", "nope"]),
    "--config": st.sampled_from(["missing.toml", "cfg.toml"]),
    "--noise-floor": st.one_of(_FLOAT, st.sampled_from(["auto", "AUTO", " auto ", "aut"])),
    **{o: _INT for o in ("--particles", "--steps", "--stages", "--batch-size", "--samples",
                         "--burnin", "--thin", "--chains", "--map-steps",
                         "--checkpoint-every")},  # fmt: skip
    **{o: _FLOAT for o in ("--target-ess", "--ess-threshold", "--step-size", "--friction",
                           "--mass", "--prior-scale", "--noise-shape", "--noise-std")},
}
FLAGS = ["--resume", "--overwrite", "--standardize", "--no-standardize", "--metropolis",
         "--no-metropolis", "--bogus-flag"]  # fmt: skip
GOOD_CSV = "x,y\n" + "".join(f"{i / 7!r},{(i * i) % 5 - 2.5!r}\n" for i in range(8))
CONFIGS = st.sampled_from(["particles = 3\n", "particles = 'x'\n", "bogus = 1\n", "[[x]]\n",
                           "seed = -1\n", "not toml at all", "hidden = [2]\nresume = true\n"])


@SETTINGS
@given(
    options=st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.none(), max_size=5).flatmap(
        lambda keys: st.fixed_dictionaries({k: OPTIONS[k] for k in keys})
    ),
    flags=st.lists(st.sampled_from(FLAGS), max_size=2, unique=True),
    config=CONFIGS,
)
def test_generated_option_values(options, flags, config):
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        (work / "d.csv").write_text(GOOD_CSV)
        (work / "cfg.toml").write_text(config)
        argv = ["fit", "--data", str(work / "d.csv"), "--quiet", "--out", str(work / "out")]
        for opt, value in options.items():
            if opt == "--config":
                value = str(work / value)
            argv.append(f"{opt}={value}")  # "=" so that values starting with "-" are values
        argv += flags
        run_cli(argv, work, {"d.csv", "cfg.toml"})


def test_valid_inputs_are_accepted(tmp_path):
    # The property above could hold by refusing everything: the good inputs get through.
    (tmp_path / "d.csv").write_text(GOOD_CSV)
    for method in ("smc-adaptive", "langevin"):
        argv = ["fit", "--data", str(tmp_path / "d.csv"), "--method", method, *SMALL,
                "--checkpoint-every", "2", "--resume", "--out", str(tmp_path / "out")]
        assert run_cli(argv, tmp_path, {"d.csv"}) == "accepted"


def test_data_too_large_for_the_computation_is_refused(tmp_path, capsys):
    # Found by test_generated_csv_files: a finite spread whose square overflows made the
    # standardisation fail with an internal error (exit 1).
    (tmp_path / "d.csv").write_text("a,b\n0,0\n0,0\n0,1e160\n")
    base = ["fit", "--data", str(tmp_path / "d.csv"), *SMALL, "--out", str(tmp_path / "o")]
    assert run_cli(base, tmp_path, {"d.csv"}) == "refused"
    # Without standardisation, values whose squares overflow float32 are refused too.
    (tmp_path / "d.csv").write_text("a,b\n0,0\n0,1\n0,3e19\n")
    assert run_cli(base, tmp_path, {"d.csv"}) == "accepted"
    assert run_cli([*base, "--no-standardize"], tmp_path, {"d.csv"}) == "refused"
