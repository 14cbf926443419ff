"""Tests of the classic (original sandbox) API in langevin_nets.classic."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from langevin_nets.classic import (
    GaussianDenseNN,
    baoab,
    init_nn_params,
    nn_predict,
    positanh,
    relu,
    tanh,
)
from langevin_nets.datasets import toy_problem
from langevin_nets.errors import DivergenceError
from langevin_nets.kernels.baoab import sample_momentum

# The original README example, verbatim (N, key and nsteps are left for the caller).
README_EXAMPLE = """
from langevin_nets import GaussianDenseNN
from jax import random
import jax.numpy as np
INPUTS = np.linspace(0,1, N).reshape((N,1))
def true_response(x):
    return 4*np.sin(x - 2) + np.sin(8*x - 2 ) - 4*x**2
TARGET =  true_response(INPUTS) + random.normal(key,(N,1)) * 0.5
nn = GaussianDenseNN(INPUTS, TARGET, (1,50,50,1), prior_weight_scale=1, prior_error_scale=1, seed=0)
nn.get_map(nsteps=1000)
nn.reinit_integrator(dt=0.001, beta=1, mass=10, gamma=100)
nn.seed += 1
key = random.PRNGKey(nn.seed)
split_keys = random.split(key, nsteps)
nn.seed += 1
for i in range(nsteps):
    nn.step(key=split_keys[i])
nn.reinit_integrator(dt=0.001, beta=1, mass=1, gamma=10)
key = random.PRNGKey(nn.seed); split_keys = random.split(key, nsteps); nn.seed += 1
predictions = []
for i in range(nsteps):
    nn.step(key=split_keys[i])
    if i % 100 == 0:
        predictions.append(nn.predict())
"""

SHAPES = (1, 6, 6, 1)


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    # On recent GPUs float32 matmuls may default to TF32 (~1e-3 relative error); the
    # comparisons with NumPy/SciPy below assume true float32. No effect on CPU.
    with jax.default_matmul_precision("highest"):
        yield


@pytest.fixture(scope="module")
def toy():
    X, y, _ = toy_problem(n=30, noise=0.5, seed=1)
    return X, y


def _params_from_unknowns(u, shapes):
    """Classic layout [sigma, W_0, b_0, W_1, b_1, ...] -> (sigma, [(W, b), ...]) in numpy."""
    u = np.asarray(u, dtype=float)
    params, i = [], 1
    for m, n in zip(shapes[:-1], shapes[1:], strict=True):
        W = u[i : i + m * n].reshape(m, n)
        i += m * n
        b = u[i : i + n]
        i += n
        params.append((W, b))
    assert i == u.size
    return u[0], params


def _forward(params, X, act):
    h = X
    for W, b in params[:-1]:
        h = act(h @ W + b)
    W, b = params[-1]
    return h @ W + b


def _scipy_energy(u, X, y, shapes, weight_scale, error_shape, lam=1.0):
    """-log posterior of the classic coordinates, written independently with scipy."""
    sigma, params = _params_from_unknowns(u, shapes)
    w = np.asarray(u[1:], dtype=float)
    f = _forward(params, X, lambda z: 1.0 + np.tanh(z))
    log_prior = stats.gamma.logpdf(sigma, error_shape) + stats.norm.logpdf(w, 0, weight_scale).sum()
    log_like = lam * stats.norm.logpdf(y, f, sigma).sum()
    return -(log_prior + log_like)


# -- the README example ------------------------------------------------------------------------
def test_readme_example_runs():
    N, nsteps = 50, 200
    ns = {"N": N, "key": jax.random.PRNGKey(0), "nsteps": nsteps}
    exec(README_EXAMPLE, ns)
    preds = ns["predictions"]
    nn = ns["nn"]
    # Records at i = 0 and 100 of the production loop.
    assert len(preds) == 2
    for p in preds:
        assert p.shape == (N, 1)
        assert bool(jnp.all(jnp.isfinite(p)))
    assert nn.nsteps == 2 * nsteps
    assert nn.seed == 3
    assert nn.unknowns.shape == (1 + 2 * 50 + 50 * 50 + 50 + 50 + 1,)
    assert float(nn.unknowns[0]) > 0
    # The settings of the last reinit_integrator are in force.
    assert (nn.dt, nn.beta, nn.mass, nn.gamma) == (0.001, 1.0, 1.0, 10.0)


def test_defaults_and_attributes(toy):
    X, y = toy
    nn = GaussianDenseNN(X, y, SHAPES)
    settings = (nn.mass, nn.beta, nn.gamma, nn.dt, nn.lam, nn.nsteps)
    assert settings == (10.0, 1.0, 100.0, 1e-4, 1.0, 0)
    assert nn.nonlinear is positanh
    assert nn.layer_shapes == SHAPES
    assert nn.inputs.shape == (30, 1) and nn.targets.shape == (30, 1)
    assert nn.momenta.shape == nn.unknowns.shape == (nn.dim,)
    # sigma starts at the prior mean, the weights from init_nn_params with the seed.
    assert float(nn.unknowns[0]) == pytest.approx(1.0)
    params = init_nn_params(SHAPES, 1.0, nn.seed)
    flat = np.concatenate([np.concatenate([np.ravel(W), b]) for W, b in params])
    np.testing.assert_array_equal(np.asarray(nn.unknowns[1:]), flat)


# -- layout and prediction ---------------------------------------------------------------------
def test_unknowns_round_trip_and_predict(toy):
    X, y = toy
    nn = GaussianDenseNN(X, y, SHAPES, seed=4)
    u = nn.unknowns
    nn.unknowns = u
    np.testing.assert_allclose(nn.unknowns, u, rtol=1e-6)
    # A new value: sigma on the natural scale first, then the weights in layer order.
    u2 = np.asarray(u).copy()
    u2[0] = 0.37
    u2[1:] = np.random.default_rng(0).normal(size=u2.size - 1)
    nn.unknowns = u2
    np.testing.assert_allclose(nn.unknowns, u2, rtol=1e-6, atol=1e-7)
    sigma, params = _params_from_unknowns(u2, SHAPES)
    expected = _forward(params, X, lambda z: 1.0 + np.tanh(z))
    np.testing.assert_allclose(nn.predict(), expected, rtol=1e-5, atol=1e-5)
    X_new = np.array([[-1.0], [0.3], [2.0]])
    np.testing.assert_allclose(
        nn.predict(X_new), _forward(params, X_new, lambda z: 1 + np.tanh(z)), rtol=1e-5, atol=1e-5
    )
    # The core model sees sigma through position[0] = log sigma.
    assert float(nn.model.sigma(nn._state.position)) == pytest.approx(0.37, rel=1e-6)
    # Momenta are kept when the unknowns are set.
    p = np.arange(nn.dim, dtype=float) / nn.dim
    nn.momenta = p
    nn.unknowns = u
    np.testing.assert_allclose(nn.momenta, p, rtol=1e-6)


def test_unknowns_validation(toy):
    X, y = toy
    nn = GaussianDenseNN(X, y, SHAPES)
    u = np.asarray(nn.unknowns).copy()
    with pytest.raises(ValueError, match="shape"):
        nn.unknowns = u[:-1]
    u[0] = -0.1
    with pytest.raises(ValueError, match="sigma"):
        nn.unknowns = u
    u[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nn.unknowns = u
    with pytest.raises(ValueError, match="momenta"):
        nn.momenta = np.zeros(3)


def test_bad_arguments(toy):
    X, y = toy
    with pytest.raises(ValueError, match="layer_sizes"):
        GaussianDenseNN(X, y, (2, 5, 1))
    with pytest.raises(ValueError, match="prior_weight_scale"):
        GaussianDenseNN(X, y, SHAPES, prior_weight_scale=0)
    with pytest.raises(ValueError, match="unknown activation"):
        GaussianDenseNN(X, y, SHAPES, nonlinear="swish")
    with pytest.raises(TypeError, match="seed"):
        GaussianDenseNN(X, y, SHAPES, seed=1.5)
    nn = GaussianDenseNN(X, y, SHAPES)
    with pytest.raises(ValueError, match="dt"):
        nn.reinit_integrator(dt=-1)
    with pytest.raises(ValueError, match="mass"):
        nn.reinit_integrator(mass=np.ones(3))
    with pytest.raises(ValueError, match="record_every"):
        nn.run(10, record_every=100)
    with pytest.raises(ValueError, match="new_inputs"):
        nn.batch_log_like(nn.unknowns, np.ones((4, 2)), np.ones((4, 1)))


def test_init_nn_params_and_nn_predict():
    shapes = (3, 200, 100, 1)
    params = init_nn_params(shapes, 2.0, seed=0)
    assert [(W.shape, b.shape) for W, b in params] == [
        ((3, 200), (200,)),
        ((200, 100), (100,)),
        ((100, 1), (1,)),
    ]
    w = np.concatenate([np.concatenate([np.ravel(W), b]) for W, b in params])
    # m = 21001 iid N(0, 4) draws: the sample std has standard error 2 / sqrt(2 m) = 0.0098;
    # allow 4 of them. The mean has standard error 2 / sqrt(m) = 0.014.
    assert np.std(w) == pytest.approx(2.0, abs=4 * 2.0 / np.sqrt(2 * w.size))
    assert abs(np.mean(w)) < 4 * 2.0 / np.sqrt(w.size)
    # Different seeds, different draws; same seed, same draws.
    np.testing.assert_array_equal(params[0][0], init_nn_params(shapes, 2.0, 0)[0][0])
    assert not np.allclose(params[0][0], init_nn_params(shapes, 2.0, 1)[0][0])

    X = np.random.default_rng(1).normal(size=(7, 3))
    small = init_nn_params((3, 4, 2), 1.0, seed=2)
    np_params = [(np.asarray(W, float), np.asarray(b, float)) for W, b in small]
    # Linear output layer (the original squashed it), tanh by default.
    np.testing.assert_allclose(
        nn_predict(small, X), _forward(np_params, X, np.tanh), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        nn_predict(small, X, relu), _forward(np_params, X, lambda z: np.maximum(z, 0)), atol=1e-5
    )
    assert float(positanh(0.0)) == 1.0 and float(tanh(0.0)) == 0.0
    with pytest.raises(ValueError, match="columns"):
        nn_predict(small, X[:, :2])


# -- densities ---------------------------------------------------------------------------------
def test_energy_matches_scipy_core_and_finite_differences(toy):
    X, y = toy
    shapes = (1, 4, 1)
    with jax.enable_x64(True):
        nn = GaussianDenseNN(X, y, shapes, prior_weight_scale=0.8, prior_error_scale=2.5, seed=2)
        u = np.asarray(nn.unknowns).copy()
        u[0] = 0.6
        # 1) Against an independent scipy implementation (float64 throughout).
        e = float(nn.energy(u))
        assert e == pytest.approx(_scipy_energy(u, X, y, shapes, 0.8, 2.5), rel=1e-12)
        assert float(nn.log_prior(u)) + float(nn.log_like(u)) == pytest.approx(-e, rel=1e-12)

        # 2) Against the core posterior after the change of variables s = log sigma: the core
        # density of s carries the Jacobian sigma, so E(u) = -(log pi_core(s, w) - s).
        post = nn.posterior
        core = jnp.concatenate([jnp.log(u[:1]), u[1:]])
        lp_core = float(jax.jit(post.logdensity)(core))
        assert e == pytest.approx(-(lp_core - np.log(u[0])), rel=1e-12)
        g = np.asarray(nn.gradient(u))
        g_core = np.asarray(jax.jit(jax.grad(post.logdensity))(core))
        # dE/dsigma = -(d log pi_core / ds - 1) / sigma; dE/dw = -d log pi_core / dw.
        assert g[0] == pytest.approx(-(g_core[0] - 1.0) / u[0], rel=1e-10)
        np.testing.assert_allclose(g[1:], -g_core[1:], rtol=1e-10, atol=1e-12)

        # 3) Central finite differences, step 1e-5: truncation error ~ h^2 E''' ~ 1e-8,
        # rounding ~ 1e-16 |E| / h ~ 1e-9; both far below the tolerance.
        h = 1e-5
        fd = np.empty_like(u)
        for i in range(u.size):
            du = np.zeros_like(u)
            du[i] = h
            fd[i] = (float(nn.energy(u + du)) - float(nn.energy(u - du))) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)

        # sigma <= 0 is outside the support.
        u_bad = u.copy()
        u_bad[0] = -1.0
        assert float(nn.energy(u_bad)) == np.inf


def test_batch_log_like_matches_scipy(toy):
    X, y = toy
    nn = GaussianDenseNN(X, y, SHAPES, seed=5)
    rng = np.random.default_rng(3)
    X_new = rng.uniform(size=(11, 1))
    y_new = rng.normal(size=(11, 1))
    u = np.asarray(nn.unknowns).copy()
    u[0] = 0.8
    sigma, params = _params_from_unknowns(u, SHAPES)
    f = _forward(params, X_new, lambda z: 1 + np.tanh(z))
    expected = 0.3 * stats.norm.logpdf(y_new, f, sigma).sum()
    assert float(nn.batch_log_like(u, X_new, y_new, lam=0.3)) == pytest.approx(expected, rel=1e-5)
    default = stats.norm.logpdf(y_new, f, sigma).sum()
    assert float(nn.batch_log_like(u, X_new, y_new)) == pytest.approx(default, rel=1e-5)
    # log_like is the training data's, times nn.lam.
    nn.lam = 0.5
    train = 0.5 * stats.norm.logpdf(y, _forward(params, X, lambda z: 1 + np.tanh(z)), sigma).sum()
    assert float(nn.log_like(u)) == pytest.approx(train, rel=1e-5)


def test_lam_tempers_the_sampled_density(toy):
    X, y = toy
    nn = GaussianDenseNN(X, y, SHAPES, seed=6)
    nn.reinit_integrator(dt=1e-3)
    nn.lam = 0.25
    nn.step(jax.random.PRNGKey(0))
    w = jnp.full((30,), 0.25)

    def expected(post, x):
        return float(jax.jit(post.weighted_logdensity)(x, w))

    assert float(nn._state.logdensity) == pytest.approx(
        expected(nn.posterior, nn._state.position), rel=1e-5
    )
    # Changing the data re-evaluates the cached density and force before the next step.
    nn.targets = y + 1.0
    nn.step(jax.random.PRNGKey(1))
    assert float(nn._state.logdensity) == pytest.approx(
        expected(nn.posterior, nn._state.position), rel=1e-5
    )


# -- MAP ---------------------------------------------------------------------------------------
def test_get_map_finds_the_classic_mode(capsys):
    # Bayesian linear regression (layer_shapes (1, 1)) with a learned sigma: minimise the
    # classic energy with scipy and compare. The core-coordinate mode (with the log-sigma
    # Jacobian) has a different sigma: (a - 1) becomes a in the stationarity condition,
    # a shift of ~1/n = 5% here, so the test tells the two apart.
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(20, 1))
    y = 1.5 * X - 0.5 + 0.3 * rng.normal(size=(20, 1))
    shapes = (1, 1)
    with jax.enable_x64(True):
        nn = GaussianDenseNN(X, y, shapes, prior_weight_scale=2.0, prior_error_scale=2.0)
        hist = nn.get_map(step_size=0.02, nsteps=3000, loud=True)
        u_map = np.asarray(nn.unknowns)
    assert "energy" in capsys.readouterr().out
    assert hist.shape == (3000,) and float(hist[-1]) < float(hist[0])

    def energy(v):
        sigma = v[0]
        if sigma <= 0:
            return np.inf
        f = X * v[1] + v[2]
        return -(
            stats.gamma.logpdf(sigma, 2.0)
            + stats.norm.logpdf(v[1:], 0, 2.0).sum()
            + stats.norm.logpdf(y, f, sigma).sum()
        )

    ref = optimize.minimize(energy, x0=np.array([1.0, 0.0, 0.0]), method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})  # fmt: skip
    # Adam reaches the mode to ~1e-9 here; the core-coordinate mode is 5e-3 away in sigma.
    np.testing.assert_allclose(u_map, ref.x, atol=1e-6)


# -- the integrators ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dt", "mass", "gamma", "beta"),
    [(1.5, 1.0, 1.0, 2.0), (1.0, 4.0, 5.0, 0.5)],
)
def test_classic_baoab_harmonic_oscillator(dt, mass, gamma, beta):
    # Energy U = k q^2 / 2. BAOAB samples the position of a harmonic oscillator exactly
    # for any stable step (Leimkuhler & Matthews 2013), so Var q = 1 / (beta k) even at
    # dt * omega = 1.5, where a first-order scheme is far off.
    k_spring = 1.0
    integrator = baoab(dt, beta=beta, mass=mass, gamma=gamma)

    def chain(key):
        def body(c, kk):
            q, p = c
            return integrator(k_spring * q, q, p, kk), None

        # 300 steps >> the relaxation time (~ 1 / gamma and 2 gamma / omega^2 time units).
        (q, _), _ = jax.lax.scan(body, (0.0, 0.0), jax.random.split(key, 300))
        return q

    num = 40_000
    q = np.asarray(jax.jit(jax.vmap(chain))(jax.random.split(jax.random.PRNGKey(0), num)))
    target = 1.0 / (beta * k_spring)
    # One final position per independent chain: iid N(0, target); the sample variance has
    # standard error target * sqrt(2 / (num - 1)) = 0.7% of target. Allow 4 of them.
    se = target * np.sqrt(2.0 / (num - 1))
    assert np.var(q) == pytest.approx(target, abs=4 * se)
    assert abs(np.mean(q)) < 4 * np.sqrt(target / num)


def test_classic_baoab_one_step_by_hand():
    dt, beta, mass, gamma = 0.1, 2.0, 3.0, 4.0
    integrator = baoab(dt, beta=beta, mass=mass, gamma=gamma)
    key = jax.random.PRNGKey(7)
    q0, p0, g = jnp.array([0.5, -1.0]), jnp.array([0.2, 0.3]), jnp.array([1.0, -2.0])
    q, p = integrator(g, q0, p0, key)
    xi = np.asarray(jax.random.normal(key, (2,)))
    c = np.exp(-gamma * dt)
    p1 = np.asarray(p0) - dt * np.asarray(g)
    q1 = np.asarray(q0) + 0.5 * dt * p1 / mass
    p2 = c * p1 + np.sqrt((1 - c**2) / beta) * np.sqrt(mass) * xi
    q2 = q1 + 0.5 * dt * p2 / mass
    np.testing.assert_allclose(q, q2, rtol=1e-6)
    np.testing.assert_allclose(p, p2, rtol=1e-6)


def test_step_compiles_once(toy):
    X, y = toy
    nn = GaussianDenseNN(X, y, SHAPES, seed=7)
    nn.reinit_integrator(dt=1e-3, mass=1.0, gamma=10.0)
    nn.step(jax.random.PRNGKey(0))
    traces = nn.num_step_traces
    keys = jax.random.split(jax.random.PRNGKey(1), 20)
    for i, k in enumerate(keys):
        if i == 10:  # new settings are arguments of the compiled step, not constants
            nn.reinit_integrator(dt=2e-3, beta=2.0, mass=3.0, gamma=5.0)
            nn.lam = 0.5
        nn.step(k)
    assert nn.num_step_traces == traces
    assert nn.nsteps == 21
    # Without a key, one comes from the seed, which then advances.
    seed = nn.seed
    nn.step()
    assert nn.seed == seed + 1


def test_step_raises_on_divergence(toy):
    X, y = toy
    nn = GaussianDenseNN(X, y, SHAPES, seed=8)
    nn.reinit_integrator(dt=1e6, mass=1e-6, gamma=0.0)
    u = nn.unknowns
    with pytest.raises(DivergenceError, match="dt"):
        for i in range(5):
            nn.step(jax.random.PRNGKey(i))
    assert bool(jnp.all(jnp.isfinite(nn.unknowns)))
    assert nn.unknowns.shape == u.shape


def test_run_matches_step_loop_exactly(toy):
    # run() is the core langevin scan over the same kernel function (kernels.baoab.step)
    # that step() jit-compiles, so with the same keys and the same starting momentum it
    # follows the same path, up to float rounding. The keys are derived as langevin derives
    # them (split into init / burn-in / production; one key per step, or per record then
    # per step; then one per chain) and run's initial momentum, a draw from
    # N(0, mass / beta), is reproduced. 250 steps with record_every=100: the 50 leftover
    # steps run first (langevin's burn-in), then records at steps 150 and 250.
    X, y = toy
    nn = GaussianDenseNN(X, y, SHAPES, seed=3)
    nn.reinit_integrator(dt=1e-3, beta=1.0, mass=2.0, gamma=10.0)
    u0 = nn.unknowns
    nsteps, every = 250, 100
    preds = nn.run(nsteps, record_every=every)  # no key: PRNGKey(seed), then seed += 1
    assert preds.shape == (2, 30, 1)
    assert bool(jnp.all(jnp.isfinite(preds)))
    assert nn.nsteps == nsteps and nn.seed == 4
    u_run, p_run, trace = nn.unknowns, nn.momenta, nn.last_trace
    assert trace.positions.shape == (2, nn.dim)
    # The recorded predictions are the network at the recorded positions.
    np.testing.assert_allclose(preds[-1], nn.predict(), atol=1e-6)
    # run hands langevin the same function objects until the data or lam change (so that
    # langevin may reuse its compiled sampler), new ones after.
    fns = nn._sampler_fns()
    assert nn._sampler_fns() is fns
    nn.lam = 1.0
    assert nn._sampler_fns() is not fns

    nn.unknowns = u0
    k_init, k_burn, k_prod = jax.random.split(jax.random.PRNGKey(3), 3)
    nn.momenta = sample_momentum(jax.random.split(k_init, 1)[0], nn._state.position, 2.0, 1.0)
    for k_step in jax.random.split(k_burn, nsteps % every):
        nn.step(jax.random.split(k_step, 1)[0])
    records = []
    for k_record in jax.random.split(k_prod, nsteps // every):
        for k_step in jax.random.split(k_record, every):
            nn.step(jax.random.split(k_step, 1)[0])
        records.append(nn.predict())
    # float32: the two compiled programs may round differently (~1e-7 per step), and 250
    # steps of this damped system keep that at the 1e-6 level.
    np.testing.assert_allclose(u_run, nn.unknowns, atol=1e-5)
    np.testing.assert_allclose(p_run, nn.momenta, atol=1e-5)
    np.testing.assert_allclose(preds, np.stack(records), atol=1e-5)


# -- SMC, classic signatures -------------------------------------------------------------------
@pytest.fixture(scope="module")
def smc_data():
    X, y, _ = toy_problem(n=50, noise=0.5, seed=0)
    # 10 of the README's 50 points; (1, 10, 10, 1) networks instead of (1, 50, 50, 1).
    return X[::5], y[::5]


def test_smc_data_addition_readme_example(smc_data):
    pytest.importorskip("langevin_nets.smc")
    from langevin_nets.classic import smc_data_addition

    INPUTS, TARGET = smc_data
    nsteps, nreplicas = 5, 16
    nn, replica_unknowns, sample_sizes, resample_times = smc_data_addition(
        INPUTS, TARGET, nreplicas, layer_shapes=(1, 10, 10, 1), draw_param_scale=0.5,
        draw_error_scale=0.5, ess_frac=0.7, nsteps=nsteps, seed=0, loud=False,
    )  # fmt: skip
    assert isinstance(nn, GaussianDenseNN)
    assert nn.inputs.shape == (10, 1)  # all the data, none lost
    assert len(replica_unknowns) == nreplicas
    for u in replica_unknowns:
        assert u.shape == (nn.dim,)
        assert bool(jnp.all(jnp.isfinite(u))) and float(u[0]) > 0
    # One point per stage, ending with all of them.
    assert sample_sizes == list(range(1, 11))
    assert all(isinstance(t, int) for t in resample_times)
    assert resample_times == sorted(set(resample_times))
    assert all(0 <= t < len(sample_sizes) for t in resample_times)
    nn.unknowns = replica_unknowns[3]
    np.testing.assert_allclose(nn.unknowns, replica_unknowns[3], rtol=1e-6)
    assert nn.predict().shape == (10, 1)


def test_smc_geometric_likelihood_readme_example(smc_data):
    pytest.importorskip("langevin_nets.smc")
    from langevin_nets.classic import smc_geometric_likelihood

    INPUTS, TARGET = smc_data
    nsteps, nreplicas = 5, 16
    nn, replica_unknowns, resample_times = smc_geometric_likelihood(
        INPUTS, TARGET, nreplicas=nreplicas, layer_shapes=(1, 10, 10, 1), nstages=len(INPUTS),
        draw_param_scale=0.5, draw_error_scale=0.5, ess_frac=0.7, nsteps=nsteps, seed=0,
        loud=False,
    )  # fmt: skip
    assert nn.inputs.shape == (10, 1)
    assert len(replica_unknowns) == nreplicas
    assert all(u.shape == (nn.dim,) and float(u[0]) > 0 for u in replica_unknowns)
    assert all(0 <= t < len(INPUTS) for t in resample_times)
    assert resample_times == sorted(set(resample_times))
