"""The xtask benchmark workloads in JAX + optax, for `cargo xtask bench --vs-jax`.

Our own code, written the way pyrox's `EnsembleMAP.run` / `EnsembleVI.run` are: the member axis by
`jax.vmap`, the training loop a jitted `lax.scan`. Same data recipe and hyperparameters as
flock's benches. Prints `jax <name> <microseconds>` lines.

Usage: python workloads.py {f32,f64} [--quick]
"""
import os
import sys
import time

PRECISION = sys.argv[1] if len(sys.argv) > 1 else "f64"
if PRECISION == "f64":
    os.environ["JAX_ENABLE_X64"] = "1"
START = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

DTYPE = jnp.float64 if PRECISION == "f64" else jnp.float32


def init_mlp(key, sizes):
    """equinox.nn.MLP's default init: weights and biases uniform in ±1/sqrt(fan_in)."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        key, kw, kb = jax.random.split(key, 3)
        lim = 1.0 / jnp.sqrt(fan_in)
        params.append((
            jax.random.uniform(kw, (fan_out, fan_in), DTYPE, -lim, lim),
            jax.random.uniform(kb, (fan_out,), DTYPE, -lim, lim),
        ))
    return params


def mlp(params, x):
    h = x[:, None]
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i < len(params) - 1:
            h = jnp.tanh(h)
    return h[:, 0]


def log_joint(params, x, y):
    f = mlp(params, x)
    ll = -0.5 * jnp.sum((y - f) ** 2) / 0.1**2
    lp = -0.5 * sum(jnp.sum(w**2) + jnp.sum(b**2) for w, b in params)
    return ll, lp


def map_run(members, sizes, n, batch, lr, steps):
    """An ensemble MAP run as pyrox's EnsembleMAP.run: vmap over members, lax.scan over steps."""
    x = jnp.linspace(-10.0, 10.0, n, dtype=DTYPE)
    y = jnp.sin(x) / jnp.where(x == 0, 1.0, x)
    opt = optax.adam(lr)
    keys = jax.random.split(jax.random.PRNGKey(0), members)
    params = jax.vmap(lambda k: init_mlp(k, sizes))(keys)
    state = jax.vmap(opt.init)(params)
    scale = n / batch if batch < n else 1.0

    def loss(p, xb, yb):
        ll, lp = log_joint(p, xb, yb)
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
    """Mean-field VI of the seed's model, 1 particle, as EnsembleVI.run: vmap + lax.scan."""
    hidden, sigma = 32, 0.1
    x = jnp.linspace(-10.0, 10.0, 80, dtype=DTYPE)
    y = jnp.sin(x) / jnp.where(x == 0, 1.0, x)
    shapes = {"W1": (1, hidden), "b1": (hidden,), "W2": (hidden, hidden), "b2": (hidden,),
              "W3": (hidden, 1), "b3": (1,)}
    opt = optax.adam(lr)

    def init(key):
        ks = jax.random.split(key, len(shapes))
        loc = {k: 0.5 * jax.random.normal(kk, s, DTYPE) for kk, (k, s) in zip(ks, shapes.items())}
        rho = {k: jnp.full(s, jnp.log(jnp.expm1(0.1)), DTYPE) for k, s in shapes.items()}
        return {"loc": loc, "rho": rho}

    def neg_elbo(v, key):
        ks = jax.random.split(key, len(shapes))
        theta, logq, logp = {}, 0.0, 0.0
        for kk, k in zip(ks, shapes):
            s = jax.nn.softplus(v["rho"][k])
            eps = jax.random.normal(kk, shapes[k], DTYPE)
            theta[k] = v["loc"][k] + s * eps
            logq += jnp.sum(jax.scipy.stats.norm.logpdf(theta[k], v["loc"][k], s))
            logp += jnp.sum(jax.scipy.stats.norm.logpdf(theta[k], 0.0, 1.0))
        h = jnp.tanh(x[:, None] @ theta["W1"] + theta["b1"])
        h = jnp.tanh(h @ theta["W2"] + theta["b2"])
        f = (h @ theta["W3"] + theta["b3"])[:, 0]
        ll = jnp.sum(jax.scipy.stats.norm.logpdf(y, f, sigma))
        return -(ll - (logq - logp))

    keys = jax.random.split(jax.random.PRNGKey(0), members)
    params = jax.vmap(init)(keys)
    state = jax.vmap(opt.init)(params)

    def step(carry, key):
        params, state = carry
        mkeys = jax.random.split(key, members)
        losses, grads = jax.vmap(jax.value_and_grad(neg_elbo))(params, mkeys)
        updates, state = jax.vmap(opt.update)(grads, state, params)
        return (optax.apply_updates(params, updates), state), losses

    @jax.jit
    def run(params, state, key):
        return jax.lax.scan(step, (params, state), jax.random.split(key, steps))

    return run, params, state


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
seed_steps = 1500
# Cold: from process start (imports included) to the first result of 1,500 steps.
run, params, state = map_run(16, [1, 32, 32, 1], 80, 80, 5e-3, seed_steps)
jax.block_until_ready(run(params, state, jax.random.PRNGKey(0)))
print(f"jax seed workload cold {PRECISION} {(time.perf_counter() - START) * 1e6:.3f}", flush=True)
per_step(f"seed step {PRECISION}", lambda: map_run(16, [1, 32, 32, 1], 80, 80, 5e-3, seed_steps), seed_steps)
scale_steps = 200 if quick else 2000
per_step(f"scale step {PRECISION}", lambda: map_run(64, [1, 64, 64, 1], 4096, 256, 1e-3, scale_steps), scale_steps)
per_step(f"wide step {PRECISION}", lambda: map_run(16, [1, 128, 128, 1], 80, 80, 5e-3, 300 if quick else 1500), 300 if quick else 1500)
if PRECISION == "f64":
    per_step("VI step f64", lambda: vi_run(16, seed_steps), seed_steps)
