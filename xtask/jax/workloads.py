"""The xtask benchmark workloads in JAX + equinox + optax (+ numpyro for VI), for
`cargo xtask bench --vs-jax`.

Our own code, written the way pyrox's `EnsembleMAP.run` / `EnsembleVI.run` are: members are
`eqx.nn.MLP`s stacked by `eqx.filter_vmap`, the member axis by `jax.vmap`, the training loop a
jitted `lax.scan`; VI is numpyro's `SVI` with an `AutoNormal` guide (init scale 0.1) and
`Trace_ELBO`, one SVI state per member. Same data recipe and hyperparameters as flock's benches.
Prints `jax <id> <microseconds>` lines; the ids (`seed_step.f64`, `scale_step.f32`, …) are the
keys `cargo xtask bench` matches with flock's figures. The environment is pinned in
`requirements.txt`.

Usage: python workloads.py {f32,f64} [--quick] [--only WORKLOAD]
(`--only wide_step`: that workload alone, for `cargo xtask vs-jax`'s alternated pairs.)
"""
import os
import sys
import time

PRECISION = sys.argv[1] if len(sys.argv) > 1 else "f64"
if PRECISION == "f64":
    os.environ["JAX_ENABLE_X64"] = "1"
START = time.perf_counter()

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import optax  # noqa: E402
from numpyro.infer import SVI, Trace_ELBO  # noqa: E402
from numpyro.infer.autoguide import AutoNormal  # noqa: E402

DTYPE = jnp.float64 if PRECISION == "f64" else jnp.float32


def init_mlp(key, sizes):
    """One member: an `eqx.nn.MLP` (equinox's default init) with tanh hidden layers."""
    return eqx.nn.MLP(
        in_size="scalar", out_size="scalar", width_size=sizes[1], depth=len(sizes) - 2,
        activation=jnp.tanh, key=key, dtype=DTYPE,
    )


def log_joint(params, static, x, y):
    f = jax.vmap(eqx.combine(params, static))(x)
    ll = -0.5 * jnp.sum((y - f) ** 2) / 0.1**2
    lp = -0.5 * sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(params))
    return ll, lp


def map_run(members, sizes, n, batch, lr, steps):
    """An ensemble MAP run as pyrox's EnsembleMAP.run: vmap over members, lax.scan over steps."""
    x = jnp.linspace(-10.0, 10.0, n, dtype=DTYPE)
    y = jnp.sin(x) / jnp.where(x == 0, 1.0, x)
    opt = optax.adam(lr)
    keys = jax.random.split(jax.random.PRNGKey(0), members)
    ensemble = eqx.filter_vmap(lambda k: init_mlp(k, sizes))(keys)
    params, static = eqx.partition(ensemble, eqx.is_inexact_array)
    state = jax.vmap(opt.init)(params)
    scale = n / batch if batch < n else 1.0

    def loss(p, xb, yb):
        ll, lp = log_joint(p, static, xb, yb)
        return -scale * ll - lp

    def step(carry, key):
        params, state = carry
        if batch < n:
            idx = jax.random.randint(key, (batch,), 0, n)
            xb, yb = x[idx], y[idx]
        else:
            xb, yb = x, y
        losses, grads = jax.vmap(jax.value_and_grad(loss), in_axes=(0, None, None))(params, xb, yb)
        updates, state = jax.vmap(opt.update)(grads, state, params)
        return (optax.apply_updates(params, updates), state), losses

    @jax.jit
    def run(params, state, key):
        return jax.lax.scan(step, (params, state), jax.random.split(key, steps))

    return run, params, state


def vi_run(members, steps, lr=5e-3):
    """Mean-field VI of the seed's model, 1 particle, as EnsembleVI.run: numpyro SVI with an
    AutoNormal guide per member, vmap over members + lax.scan over steps."""
    hidden, sigma = 32, 0.1
    x = jnp.linspace(-10.0, 10.0, 80, dtype=DTYPE)
    y = jnp.sin(x) / jnp.where(x == 0, 1.0, x)

    def model(x, y=None):
        w1 = numpyro.sample("W1", dist.Normal(jnp.zeros((1, hidden), DTYPE), 1.0).to_event(2))
        b1 = numpyro.sample("b1", dist.Normal(jnp.zeros(hidden, DTYPE), 1.0).to_event(1))
        w2 = numpyro.sample("W2", dist.Normal(jnp.zeros((hidden, hidden), DTYPE), 1.0).to_event(2))
        b2 = numpyro.sample("b2", dist.Normal(jnp.zeros(hidden, DTYPE), 1.0).to_event(1))
        w3 = numpyro.sample("W3", dist.Normal(jnp.zeros((hidden, 1), DTYPE), 1.0).to_event(2))
        b3 = numpyro.sample("b3", dist.Normal(jnp.zeros(1, DTYPE), 1.0).to_event(1))
        h = jnp.tanh(x[:, None] @ w1 + b1)
        h = jnp.tanh(h @ w2 + b2)
        f = (h @ w3 + b3)[:, 0]
        numpyro.sample("y", dist.Normal(f, sigma), obs=y)

    guide = AutoNormal(model, init_scale=0.1)
    svi = SVI(model, guide, optax.adam(lr), Trace_ELBO(num_particles=1))
    keys = jax.random.split(jax.random.PRNGKey(0), members)
    states = jax.vmap(lambda k: svi.init(k, x, y))(keys)

    def step(states, _):
        states, losses = jax.vmap(lambda s: svi.update(s, x, y))(states)
        return states, losses

    @jax.jit
    def run(states, _unused, key):
        return jax.lax.scan(step, states, None, length=steps)

    return run, states, None


def per_step(name, make, steps):
    run, params, state = make()
    out = run(params, state, jax.random.PRNGKey(1))  # compile + warm up
    jax.block_until_ready(out)
    best = []
    for _ in range(3):
        t = time.perf_counter()
        jax.block_until_ready(run(params, state, jax.random.PRNGKey(2)))
        best.append((time.perf_counter() - t) / steps * 1e6)
    best.sort()
    print(f"jax {name} {best[1]:.3f}", flush=True)


quick = "--quick" in sys.argv
only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None


def wanted(workload):
    return only is None or only == workload


seed_steps = 1500
if wanted("seed_cold"):
    # Cold: from process start (imports included) to the first result of 1,500 steps.
    run, params, state = map_run(16, [1, 32, 32, 1], 80, 80, 5e-3, seed_steps)
    jax.block_until_ready(run(params, state, jax.random.PRNGKey(0)))
    print(f"jax seed_cold.{PRECISION} {(time.perf_counter() - START) * 1e6:.3f}", flush=True)
if wanted("seed_step"):
    per_step(f"seed_step.{PRECISION}", lambda: map_run(16, [1, 32, 32, 1], 80, 80, 5e-3, seed_steps), seed_steps)
scale_steps = 200 if quick else 2000
if wanted("scale_step"):
    per_step(f"scale_step.{PRECISION}", lambda: map_run(64, [1, 64, 64, 1], 4096, 256, 1e-3, scale_steps), scale_steps)
if wanted("wide_step"):
    per_step(f"wide_step.{PRECISION}", lambda: map_run(16, [1, 128, 128, 1], 80, 80, 5e-3, 300 if quick else 1500), 300 if quick else 1500)
if wanted("vi_step"):
    per_step(f"vi_step.{PRECISION}", lambda: vi_run(16, seed_steps), seed_steps)
