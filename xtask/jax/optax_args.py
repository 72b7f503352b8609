"""Fixtures for optax's optional arguments: `cargo xtask optax-fixtures`.

For every schedule and gradient transformation flock implements, the optional arguments of
optax's signature (read with `inspect`, so a new optax argument fails this script until it is
either exercised here or listed in NOT_APPLICABLE with the reason) are exercised by at least one
case below. The cases are written to `optim/tests/optax_args/` in the layout of the shared
fixtures (`../shared/fixtures/README.md`, `optax/`):

- `schedules.json`: values at steps 0..STEPS for a Python int step (exact, float64) and for an
  int32 step under `jax.jit` (optax's promotion rules and XLA's fused arithmetic);
- one trajectory file per transformation case: `params[t+1] = apply_updates(params[t],
  update(grads[t], state, params[t]))`, members updated independently by `jax.vmap`, the update
  `jax.jit`ted, as pyrox runs it.

Run with the pinned environment of xtask/jax/requirements.txt (x64 enabled).
"""

import ast
import inspect
import json
import pathlib
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

SCHEDULE_STEPS = 200
MEMBERS = 3
STEPS = 40

# Every optional argument is exercised below, except these, which have no flock counterpart.
NOT_APPLICABLE = {
    "mu_dtype": "a dtype: flock keeps every state in the parameters' element type (optax's default)",
    "accumulator_dtype": (
        "a dtype: flock's state has the parameters' element type; MultiSteps' float32 default and "
        "None are both exercised (multisteps_full_precision)"
    ),
    "mask_compatible_extra_args": "extra update arguments: flock's update takes none",
    "should_skip_update_fn": "a Python callable (apply_if_finite covers the non-finite case)",
    "boundaries_and_scales": "exercised with None (piecewise_constant_none)",
}

SCHEDULES = {
    "linear_begin": "optax.linear_schedule(0.1, 0.01, transition_steps=50, transition_begin=10)",
    "polynomial_begin": (
        "optax.polynomial_schedule(0.1, 0.001, power=2, transition_steps=40, transition_begin=15)"
    ),
    "polynomial_fractional_power": (
        "optax.polynomial_schedule(0.1, 0.001, power=1.5, transition_steps=40)"
    ),
    "exponential_decay_begin": (
        "optax.exponential_decay(0.1, transition_steps=10, decay_rate=0.5, transition_begin=7)"
    ),
    "exponential_decay_begin_staircase": (
        "optax.exponential_decay(0.1, transition_steps=10, decay_rate=0.5, transition_begin=5, "
        "staircase=True)"
    ),
    "exponential_decay_begin_end": (
        "optax.exponential_decay(0.1, transition_steps=6, decay_rate=0.8, transition_begin=3, "
        "end_value=0.05)"
    ),
    "exponential_decay_growth_end": (
        "optax.exponential_decay(0.01, transition_steps=10, decay_rate=1.5, end_value=0.05)"
    ),
    "cosine_decay_alpha_exponent": (
        "optax.cosine_decay_schedule(0.1, decay_steps=50, alpha=0.2, exponent=3.0)"
    ),
    "warmup_cosine_decay_exponent": (
        "optax.warmup_cosine_decay_schedule(0.0, 0.1, warmup_steps=10, decay_steps=100, "
        "end_value=0.01, exponent=2.0)"
    ),
    "piecewise_constant_none": "optax.piecewise_constant_schedule(0.1)",
    "cosine_onecycle_options": (
        "optax.cosine_onecycle_schedule(100, 0.1, pct_start=0.2, div_factor=10.0, "
        "final_div_factor=100.0)"
    ),
    "linear_onecycle_options": (
        "optax.linear_onecycle_schedule(100, 0.1, pct_start=0.25, pct_final=0.7, div_factor=5.0, "
        "final_div_factor=50.0)"
    ),
    "join_with_begin": (
        "optax.join_schedules([optax.constant_schedule(0.05), optax.exponential_decay(0.05, "
        "transition_steps=10, decay_rate=0.5, transition_begin=4)], boundaries=[20])"
    ),
}

TRAJECTORIES = {
    "sgd_exponential_decay_begin": (
        "optax.sgd(optax.exponential_decay(0.1, transition_steps=10, decay_rate=0.5, "
        "transition_begin=7))"
    ),
    "sgd_exponential_decay_begin_staircase_end": (
        "optax.sgd(optax.exponential_decay(0.1, transition_steps=5, decay_rate=0.7, "
        "transition_begin=4, staircase=True, end_value=0.03))"
    ),
    "sgd_exponential_decay_growth_end": (
        "optax.sgd(optax.exponential_decay(0.01, transition_steps=4, decay_rate=1.5, "
        "end_value=0.05))"
    ),
    "sgd_polynomial_begin": (
        "optax.sgd(optax.polynomial_schedule(0.1, 0.001, power=2, transition_steps=30, "
        "transition_begin=5))"
    ),
    "sgd_linear_begin": (
        "optax.sgd(optax.linear_schedule(0.1, 0.01, transition_steps=20, transition_begin=10))"
    ),
    "adam_warmup_cosine_exponent": (
        "optax.adam(optax.warmup_cosine_decay_schedule(0.0, 0.01, warmup_steps=5, decay_steps=40, "
        "end_value=1e-3, exponent=2.0))"
    ),
    "sgd_cosine_decay_alpha_exponent": (
        "optax.sgd(optax.cosine_decay_schedule(0.1, decay_steps=30, alpha=0.2, exponent=3.0))"
    ),
    "sgd_cosine_onecycle_options": (
        "optax.sgd(optax.cosine_onecycle_schedule(40, 0.1, pct_start=0.2, div_factor=10.0, "
        "final_div_factor=100.0))"
    ),
    "sgd_linear_onecycle_options": (
        "optax.sgd(optax.linear_onecycle_schedule(40, 0.1, pct_start=0.25, pct_final=0.7, "
        "div_factor=5.0, final_div_factor=50.0))"
    ),
    "sgd_piecewise_none": "optax.sgd(optax.piecewise_constant_schedule(0.1))",
    "trace_nesterov": "optax.chain(optax.trace(decay=0.8, nesterov=True), optax.scale(-0.01))",
    "add_decayed_weights_mask": (
        "optax.chain(optax.add_decayed_weights(0.1, mask={'w': True, 'b': False}), "
        "optax.sgd(0.05))"
    ),
    "scale_by_adam_options": (
        "optax.chain(optax.scale_by_adam(b1=0.8, b2=0.95, eps=1e-6, eps_root=1e-9, "
        "nesterov=True), optax.scale(-0.01))"
    ),
    "adam_options": "optax.adam(1e-2, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-10, nesterov=True)",
    "adamw_options": (
        "optax.adamw(1e-2, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-10, weight_decay=0.05, "
        "mask={'w': False, 'b': True}, nesterov=True)"
    ),
    "nadam_without_nesterov": "optax.nadam(1e-2, nesterov=False)",
    "nadamw_without_nesterov": "optax.nadamw(1e-2, weight_decay=0.01, nesterov=False)",
    "nadam_options": "optax.nadam(1e-2, b1=0.85, b2=0.99, eps=1e-7, eps_root=1e-9)",
    "nadamw_options": (
        "optax.nadamw(1e-2, b1=0.85, b2=0.99, eps=1e-7, eps_root=1e-9, weight_decay=0.05, "
        "mask={'w': True, 'b': False})"
    ),
    "amsgrad_options": "optax.amsgrad(1e-2, b1=0.8, b2=0.95, eps=1e-6, eps_root=1e-8)",
    "amsgrad_no_bias_correction_mu": "optax.amsgrad(1e-2, bias_correction_mu=False)",
    "amsgrad_no_bias_correction_nu": "optax.amsgrad(1e-2, bias_correction_nu=False)",
    "scale_by_amsgrad_no_corrections": (
        "optax.chain(optax.scale_by_amsgrad(b1=0.8, b2=0.9, eps=1e-5, eps_root=1e-7, "
        "bias_correction_mu=False, "
        "bias_correction_nu=False), optax.scale(-0.01))"
    ),
    "adabelief_options": (
        "optax.adabelief(1e-2, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-12, nesterov=True)"
    ),
    "scale_by_belief_options": (
        "optax.chain(optax.scale_by_belief(b1=0.85, b2=0.95, eps=1e-10, eps_root=1e-10, "
        "nesterov=True), "
        "optax.scale(-0.01))"
    ),
    "rmsprop_eps_outside_bias_correction": (
        "optax.rmsprop(1e-2, eps=1e-4, eps_in_sqrt=False, bias_correction=True, initial_scale=0.5)"
    ),
    "rmsprop_centered_nesterov": (
        "optax.rmsprop(1e-2, decay=0.8, eps=1e-6, eps_in_sqrt=False, centered=True, momentum=0.8, "
        "nesterov=True)"
    ),
    "rmsprop_centered_bias_correction": (
        "optax.rmsprop(1e-2, decay=0.8, centered=True, bias_correction=True, initial_scale=0.1)"
    ),
    "scale_by_rms_options": (
        "optax.chain(optax.scale_by_rms(decay=0.7, eps=1e-5, initial_scale=0.2, "
        "eps_in_sqrt=False, bias_correction=True), optax.scale(-0.01))"
    ),
    "scale_by_stddev_options": (
        "optax.chain(optax.scale_by_stddev(decay=0.7, eps=1e-5, initial_scale=0.2, "
        "eps_in_sqrt=True, bias_correction=True), optax.scale(-0.01))"
    ),
    "adagrad_options": "optax.adagrad(0.1, initial_accumulator_value=0.5, eps=1e-4)",
    "scale_by_rss_zero_initial": (
        "optax.chain(optax.scale_by_rss(initial_accumulator_value=0.0, eps=1e-9), "
        "optax.scale(-0.1))"
    ),
    "lion_options": (
        "optax.lion(1e-3, b1=0.8, b2=0.95, weight_decay=0.1, mask={'w': True, 'b': False})"
    ),
    "scale_by_lion_smooth": (
        "optax.chain(optax.scale_by_lion(b1=0.8, b2=0.95, mode='smooth', smooth_beta=2.0), "
        "optax.scale(-0.01))"
    ),
    "scale_by_lion_refined": (
        "optax.chain(optax.scale_by_lion(mode='refined'), optax.scale(-0.01))"
    ),
    "scale_by_learning_rate_no_flip": (
        "optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(0.01, flip_sign=False))"
    ),
    "scale_by_trust_ratio_options": (
        "optax.chain(optax.scale_by_adam(), optax.scale_by_trust_ratio(min_norm=0.5, "
        "trust_coefficient=0.01, eps=1e-3), optax.scale(-1.0))"
    ),
    "lamb_options": (
        "optax.lamb(1e-2, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-10, weight_decay=0.01, "
        "mask={'w': True, 'b': False})"
    ),
    "sgd_momentum_schedule_nesterov": (
        "optax.sgd(optax.exponential_decay(0.05, transition_steps=8, decay_rate=0.9, "
        "transition_begin=2), momentum=0.9, nesterov=True)"
    ),
    "multisteps_sum": (
        "optax.MultiSteps(optax.adam(1e-2), every_k_schedule=3, use_grad_mean=False)"
        ".gradient_transformation()"
    ),
    "multisteps_full_precision": (
        "optax.MultiSteps(optax.sgd(0.1), every_k_schedule=2, accumulator_dtype=None)"
        ".gradient_transformation()"
    ),
}

# The functions flock implements (optim/src), whose optional arguments must all be exercised.
IMPLEMENTED = [
    "constant_schedule", "linear_schedule", "polynomial_schedule", "cosine_decay_schedule",
    "warmup_cosine_decay_schedule", "warmup_constant_schedule", "exponential_decay",
    "piecewise_constant_schedule", "join_schedules", "cosine_onecycle_schedule",
    "linear_onecycle_schedule", "sgdr_schedule",
    "identity", "scale", "clip", "clip_by_global_norm", "trace", "add_decayed_weights",
    "scale_by_adam", "scale_by_amsgrad", "scale_by_belief", "scale_by_rms", "scale_by_stddev",
    "scale_by_rss", "scale_by_lion", "scale_by_learning_rate", "scale_by_trust_ratio", "masked",
    "apply_if_finite", "MultiSteps", "chain",
    "sgd", "adam", "nadam", "adamw", "nadamw", "amsgrad", "adabelief", "rmsprop", "adagrad",
    "lion", "lamb",
]


def optional_arguments():
    """`{function: [optional argument, ...]}` from optax's signatures."""
    out = {}
    for name in IMPLEMENTED:
        sig = inspect.signature(getattr(optax, name))
        out[name] = [
            p.name for p in sig.parameters.values() if p.default is not inspect.Parameter.empty
        ]
    return out


def arguments_given(expr):
    """`{(function, argument)}` for every optax call in `expr`, positional or keyword."""
    given = set()
    for node in ast.walk(ast.parse(expr, mode="eval")):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "optax"):
            continue
        name = node.func.attr
        params = inspect.signature(getattr(optax, name)).parameters.values()
        positional = [p.name for p in params if p.kind != inspect.Parameter.VAR_POSITIONAL]
        given.update((name, n) for n in positional[: len(node.args)])
        given.update((name, k.arg) for k in node.keywords)
    return given


def coverage(cases):
    """The (function, optional argument) pairs no case passes and NOT_APPLICABLE does not list."""
    given = set().union(*(arguments_given(e) for e in cases))
    return [
        f"{name}({arg}=…)"
        for name, args in optional_arguments().items()
        for arg in args
        if arg not in NOT_APPLICABLE and (name, arg) not in given
    ]


def schedule_values(expr):
    sched = eval(expr, {"optax": optax})  # noqa: S307 - our own literal expressions
    exact = [float(sched(t)) for t in range(SCHEDULE_STEPS + 1)]
    jitted = jax.jit(sched)
    jit_int32 = [float(jitted(jnp.asarray(t, jnp.int32))) for t in range(SCHEDULE_STEPS + 1)]
    # JSON has no NaN: null, as in the shared fixtures (optax's jitted fractional-power
    # polynomial_schedule is NaN from the end of its transition: 1 − T·fl(1/T) < 0).
    jit_int32 = [None if np.isnan(v) else v for v in jit_int32]
    return {"optax": expr, "values": exact, "values_jit_int32": jit_int32}


def tolist(tree):
    return jax.tree.map(lambda a: np.asarray(a).tolist(), tree)


def trajectory(name, expr, seed):
    opt = eval(expr, {"optax": optax})  # noqa: S307 - our own literal expressions
    rng = np.random.default_rng(seed)
    params = {
        "w": jnp.asarray(rng.normal(size=(MEMBERS, 4, 2))),
        "b": jnp.asarray(rng.normal(size=(MEMBERS, 2))),
    }
    grads = [
        {"w": jnp.asarray(rng.normal(size=(MEMBERS, 4, 2))),
         "b": jnp.asarray(rng.normal(size=(MEMBERS, 2)))}
        for _ in range(STEPS)
    ]
    state = jax.vmap(opt.init)(params)

    @jax.jit
    def step(p, s, g):
        u, s = jax.vmap(opt.update)(g, s, p)
        return optax.apply_updates(p, u), s

    history = [params]
    for g in grads:
        params, state = step(params, state, g)
        history.append(params)
    return {
        "name": name,
        "optax": expr,
        "members": MEMBERS,
        "steps": STEPS,
        "description": (
            "Generated by xtask/jax/optax_args.py. Each member is updated independently "
            "(jax.vmap of update over the leading member axis, as pyrox does), the step jitted. "
            "params[t+1] = apply_updates(params[t], update(grads[t], state, params[t]))."
        ),
        "params0": tolist(history[0]),
        "grads": [
            {k: np.asarray(g[k]).reshape(MEMBERS, -1).tolist() for k in ("w", "b")}
            for g in grads
        ],
        "grads_layout": "grads[t][leaf][member] is the member's gradient flattened in row-major order",
        "params": [tolist(p) for p in history],
    }


def main():
    out = pathlib.Path(sys.argv[1])
    missing = coverage(list(SCHEDULES.values()) + list(TRAJECTORIES.values()))
    if missing:
        sys.exit("optional arguments no case exercises: " + ", ".join(missing))
    out.mkdir(parents=True, exist_ok=True)
    schedules = {name: schedule_values(e) for name, e in SCHEDULES.items()}
    (out / "schedules.json").write_text(json.dumps({
        "description": (
            "Generated by xtask/jax/optax_args.py: values at steps 0..%d for a Python int step "
            "(values) and for an int32 step under jax.jit (values_jit_int32)." % SCHEDULE_STEPS
        ),
        "schedules": schedules,
    }, indent=1) + "\n")
    for i, (name, expr) in enumerate(TRAJECTORIES.items()):
        (out / f"{name}.json").write_text(json.dumps(trajectory(name, expr, 1000 + i)) + "\n")
    args = optional_arguments()
    listed = sum(len(v) for v in args.values())
    print(f"{len(schedules)} schedules and {len(TRAJECTORIES)} trajectories written to {out}; "
          f"{listed} optional arguments over {len(args)} functions, every one exercised or listed "
          f"as not applicable")
    for name, a in args.items():
        if a:
            print(f"  {name}: {', '.join(a)}")


if __name__ == "__main__":
    main()
