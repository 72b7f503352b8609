"""Fashion-MNIST side by side for `cargo xtask fashion`.

The Deep Ensembles classifier flock's `classify-bench` trains — M members of
784→200→200→200→10 (ReLU), Adam at 1e-3 cosine-decayed to 0 over the run, batches of 100, 10 %
of the training images held out and each member kept at its epoch of best held-out NLL — written
twice more, as its users would:

- JAX + equinox + optax: members stacked by `eqx.filter_vmap`, every member sees the same
  shuffled batches (as in flock), one jitted epoch (`lax.scan` over the batches, `vmap` over the
  members), the best held-out epoch kept per member;
- scikit-learn's `MLPClassifier` with the same layers, Adam and batch size, one per seed, its own
  `early_stopping` (10 % held out, the best epoch by accuracy kept), probabilities averaged.

Prints one JSON line per peer: test accuracy, NLL, Brier, ECE (15 bins), seconds per epoch (the
first, compiling, epoch reported apart for JAX). Its environment is pinned in requirements.txt.

Usage: python fashion.py DIR [--members 5] [--epochs 20] [--train-images N] [--skip-sklearn]
"""
import argparse
import gzip
import json
import os
import time

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)


def scores(probs, labels):
    n = len(labels)
    p_true = probs[np.arange(n), labels]
    onehot = np.eye(probs.shape[1])[labels]
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    ece = 0.0
    bins = np.minimum((conf * 15).astype(int), 14)
    for b in range(15):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return {
        "accuracy": float(correct.mean()),
        "nll": float(-np.log(np.maximum(p_true, 1e-300)).mean()),
        "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
        "ece": float(ece),
    }


def held_out_split(n, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    held = int(round(0.1 * n))
    return np.sort(order[held:]), np.sort(order[:held])


def run_jax(x, y, x_test, y_test, members, epochs, lr, seed):
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    train_idx, held_idx = held_out_split(len(y), seed)
    xt, yt = jnp.asarray(x[train_idx]), jnp.asarray(y[train_idx])
    xh, yh = jnp.asarray(x[held_idx]), jnp.asarray(y[held_idx])
    batch = 100
    steps = len(train_idx) // batch
    keys = jax.random.split(jax.random.PRNGKey(seed), members)
    make = lambda k: eqx.nn.MLP(784, 10, 200, 3, activation=jax.nn.relu, key=k)
    models = eqx.filter_vmap(make)(keys)
    params, static = eqx.partition(models, eqx.is_array)
    schedule = optax.cosine_decay_schedule(lr, steps * epochs)
    opt = optax.adam(schedule)
    opt_state = jax.vmap(opt.init)(params)

    def loss(p, xb, yb):
        model = eqx.combine(p, static)
        logits = jax.vmap(model)(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def member_step(p, s, xb, yb):
        l, g = jax.value_and_grad(loss)(p, xb, yb)
        updates, s = opt.update(g, s, p)
        return optax.apply_updates(p, updates), s, l

    @jax.jit
    def epoch(p, s, key):
        perm = jax.random.permutation(key, xt.shape[0])[: steps * batch].reshape(steps, batch)

        def body(carry, idx):
            p, s = carry
            p, s, l = jax.vmap(member_step, in_axes=(0, 0, None, None))(p, s, xt[idx], yt[idx])
            return (p, s), l

        (p, s), _ = jax.lax.scan(body, (p, s), perm)
        return p, s

    @jax.jit
    def member_probs(p, xs):
        def one(pm):
            return jax.nn.softmax(jax.vmap(eqx.combine(pm, static))(xs))
        return jax.vmap(one)(p)

    def held_nll(p):
        probs = member_probs(p, xh)
        return -jnp.log(jnp.take_along_axis(probs, yh[None, :, None], axis=2)[..., 0]).mean(axis=1)

    best = params
    best_nll = jnp.full((members,), jnp.inf)
    times = []
    key = jax.random.PRNGKey(seed + 1)
    for _ in range(epochs):
        key, sub = jax.random.split(key)
        t = time.perf_counter()
        params, opt_state = epoch(params, opt_state, sub)
        nll = held_nll(params)
        jax.block_until_ready(nll)
        times.append(time.perf_counter() - t)
        better = nll < best_nll
        best_nll = jnp.where(better, nll, best_nll)
        best = jax.tree_util.tree_map(
            lambda b, c: jnp.where(better.reshape((-1,) + (1,) * (b.ndim - 1)), c, b), best, params
        )
    probs = np.asarray(member_probs(best, jnp.asarray(x_test))).mean(axis=0)
    out = scores(probs, y_test)
    out.update({
        "peer": "jax",
        "members": members,
        "first_epoch_seconds": times[0],
        "seconds_per_epoch": float(np.median(times[1:])) if len(times) > 1 else times[0],
    })
    return out


def run_sklearn(x, y, x_test, y_test, members, epochs, lr, seed):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    probs = np.zeros((len(y_test), 10))
    seconds, iterations = 0.0, 0
    for m in range(members):
        clf = MLPClassifier(
            hidden_layer_sizes=(200, 200, 200), activation="relu", solver="adam",
            batch_size=100, learning_rate_init=lr, max_iter=epochs, shuffle=True,
            early_stopping=True, validation_fraction=0.1, n_iter_no_change=epochs,
            random_state=seed + m,
        )
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x, y)
        seconds += time.perf_counter() - t
        iterations += clf.n_iter_
        probs += clf.predict_proba(x_test)
    out = scores(probs / members, y_test)
    # All members' epochs one after the other: the time an epoch of the whole ensemble takes.
    out.update({"peer": "sklearn", "members": members,
                "seconds_per_epoch": seconds / (iterations / members)})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-images", type=int)
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--skip-jax", action="store_true")
    a = ap.parse_args()
    f = lambda name: os.path.join(a.dir, name)
    x = read_idx(f("train-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255
    y = read_idx(f("train-labels-idx1-ubyte.gz")).astype(np.int32)
    xt = read_idx(f("t10k-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255
    yt = read_idx(f("t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    if a.train_images:
        x, y = x[: a.train_images], y[: a.train_images]
    if not a.skip_jax:
        print(json.dumps(run_jax(x, y, xt, yt, a.members, a.epochs, a.lr, a.seed)), flush=True)
    if not a.skip_sklearn:
        print(json.dumps(run_sklearn(x, y, xt, yt, a.members, a.epochs, a.lr, a.seed)), flush=True)


if __name__ == "__main__":
    main()
