//! Step-size schedules, each numerically identical to optax's function of the same name.
//!
//! A [`Schedule`] maps the step count (0, 1, 2, …) to a value. Schedules compose
//! ([`join_schedules`], [`sgdr_schedule`]) and are cheap to clone.

use core::f64::consts::PI;
use core::fmt;
use std::sync::Arc;

use crate::OptimError;
use crate::error::check;

/// How a schedule's arithmetic is carried out.
///
/// optax evaluates a schedule inside `scale_by_schedule` on an `int32` step counter, and JAX's
/// type promotion then computes `count / steps` — and, for some schedules, everything after it —
/// in `float32`, even with x64 enabled. [`Precision::Optax`] reproduces that rounding so that
/// training trajectories match optax's bit for bit up to transcendental-function ulps;
/// [`Precision::F64`] is the exact schedule (what optax returns for a Python `int` step).
/// Under `jax.jit` (as pyrox runs every step), XLA also contracts `a·b + c` into one fused
/// multiply-add and turns a division into a multiplication by the reciprocal, which changes the
/// last f32 bit of a warmup's or a one-cycle's learning rate: [`Precision::OptaxJit`] reproduces
/// that (and takes f32 cosines from the C library's `cosf`, as XLA does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Every operation in f64.
    F64,
    /// optax's promotion rules for an `int32` step count, evaluated eagerly.
    Optax,
    /// optax's promotion rules under `jax.jit`: f32 with fused multiply-adds.
    OptaxJit,
}

impl Precision {
    /// Rounds to f32 when emulating optax's `int32 / int` promotion.
    #[inline]
    fn f32(self, x: f64) -> f64 {
        match self {
            Precision::F64 => x,
            Precision::Optax | Precision::OptaxJit => x as f32 as f64,
        }
    }

    /// `cos x`: in the f32 modes, the C library's `cosf` — what XLA calls on the CPU (glibc's
    /// `cosf` is within an ulp but not always correctly rounded; optax's schedules inherit that).
    #[inline]
    fn cos(self, x: f64) -> f64 {
        match self {
            Precision::F64 => x.cos(),
            Precision::Optax | Precision::OptaxJit => f64::from((x as f32).cos()),
        }
    }

    /// `a/b` in f32; XLA compiles a division to a multiplication by the reciprocal.
    #[inline]
    fn ratio(self, a: f64, b: f64) -> f64 {
        match self {
            Precision::OptaxJit => self.f32(self.f32(a) * self.f32(1.0 / b)),
            _ => self.f32(a / b),
        }
    }

    /// `1 − t/steps`: XLA compiles it to `fma(−t, 1/steps, 1)` in f32.
    #[inline]
    fn one_minus_ratio(self, t: f64, steps: f64) -> f64 {
        match self {
            Precision::OptaxJit => self.f32((-t).mul_add(self.f32(1.0 / steps), 1.0)),
            _ => self.f32(1.0 - self.f32(t / steps)),
        }
    }

    /// `a·b + c` in f64, fused into one rounding under `jit` (XLA contracts it).
    #[inline]
    fn mul_add_f64(self, a: f64, b: f64, c: f64) -> f64 {
        match self {
            Precision::OptaxJit => a.mul_add(b, c),
            _ => a * b + c,
        }
    }

    /// `a·b + c`, rounded as the mode's arithmetic does it.
    #[inline]
    fn mul_add(self, a: f64, b: f64, c: f64) -> f64 {
        match self {
            Precision::F64 => a * b + c,
            Precision::Optax => self.f32(self.f32(a * b) + c),
            Precision::OptaxJit => self.f32(a.mul_add(b, c)),
        }
    }
}

type ScheduleFn = dyn Fn(f64, Precision) -> f64 + Send + Sync;

/// A step-size schedule: `count ↦ value`.
#[derive(Clone)]
pub struct Schedule {
    name: &'static str,
    f: Arc<ScheduleFn>,
    /// Whether optax returns float32 for an int32 count (its arithmetic starts from a float32
    /// conversion of the count); a join with such a part is float32 as a whole.
    f32_valued: bool,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({})", self.name)
    }
}

impl Schedule {
    /// A schedule from any function of the step count (evaluated in f64 in both precisions).
    pub fn from_fn(name: &'static str, f: impl Fn(f64) -> f64 + Send + Sync + 'static) -> Self {
        Schedule {
            name,
            f: Arc::new(move |c, _| f(c)),
            f32_valued: false,
        }
    }
    fn new(name: &'static str, f: impl Fn(f64, Precision) -> f64 + Send + Sync + 'static) -> Self {
        Schedule {
            name,
            f: Arc::new(f),
            f32_valued: false,
        }
    }
    fn f32_valued(mut self) -> Self {
        self.f32_valued = true;
        self
    }
    /// The value at step `count`, exactly (optax's value for a Python `int` step).
    pub fn value(&self, count: u64) -> f64 {
        (self.f)(count as f64, Precision::F64)
    }
    /// The value at step `count` in the given precision.
    pub fn value_in(&self, count: u64, precision: Precision) -> f64 {
        (self.f)(count as f64, precision)
    }
    fn at(&self, count: f64, precision: Precision) -> f64 {
        (self.f)(count, precision)
    }
}

/// `value` at every step.
pub fn constant_schedule(value: f64) -> Schedule {
    Schedule::from_fn("constant", move |_| value)
}

/// `power == 1` polynomial: from `init_value` to `end_value` over `transition_steps` steps after
/// `transition_begin`.
pub fn linear_schedule(
    init_value: f64,
    end_value: f64,
    transition_steps: u64,
    transition_begin: u64,
) -> Schedule {
    polynomial_schedule(
        init_value,
        end_value,
        1.0,
        transition_steps,
        transition_begin,
    )
}

/// `(init − end)·(1 − t/T)^power + end` with `t = clip(count − begin, 0, T)`; constant
/// `init_value` when `transition_steps == 0`.
pub fn polynomial_schedule(
    init_value: f64,
    end_value: f64,
    power: f64,
    transition_steps: u64,
    transition_begin: u64,
) -> Schedule {
    if transition_steps == 0 {
        return constant_schedule(init_value);
    }
    let (steps, begin) = (transition_steps as f64, transition_begin as f64);
    Schedule::new("polynomial", move |count, pr| {
        let t = (count - begin).clamp(0.0, steps);
        let frac = pr.one_minus_ratio(t, steps);
        let p = if power.fract() == 0.0 && power.abs() < 64.0 {
            frac.powi(power as i32)
        } else {
            // Under jit, `1 − T·fl(1/T)` rounds to −1.5e-8 at the end of the transition, and
            // optax's fractional power of it is NaN from there on. flock deliberately departs
            // from optax here: the base is clamped at 0, so the value is `end_value`.
            frac.max(0.0).powf(power)
        };
        let (init, end) = (pr.f32(init_value), pr.f32(end_value));
        pr.mul_add(pr.f32(init - end), pr.f32(p), end)
    })
    .f32_valued()
}

/// `init·((1 − α)·(½(1 + cos(π·min(count, T)/T)))^exponent + α)`.
pub fn cosine_decay_schedule(
    init_value: f64,
    decay_steps: u64,
    alpha: f64,
    exponent: f64,
) -> Result<Schedule, OptimError> {
    check(
        "decay_steps",
        decay_steps as f64,
        decay_steps > 0,
        "a positive number of steps",
    )?;
    let steps = decay_steps as f64;
    // optax converts the int32 count to a weakly typed float here, so with x64 the whole
    // schedule is f64 (only its `(1 − α)·x + α` is fused under jit).
    Ok(Schedule::new("cosine_decay", move |count, pr| {
        let t = count.min(steps);
        let cosine = 0.5 * (1.0 + (PI * t / steps).cos());
        let pow = if exponent == 1.0 {
            cosine
        } else {
            cosine.powf(exponent)
        };
        init_value * pr.mul_add_f64(1.0 - alpha, pow, alpha)
    }))
}

/// Linear warmup from `init_value` to `peak_value` over `warmup_steps`, then cosine decay to
/// `end_value` at `decay_steps` (total, including warmup).
pub fn warmup_cosine_decay_schedule(
    init_value: f64,
    peak_value: f64,
    warmup_steps: u64,
    decay_steps: u64,
    end_value: f64,
    exponent: f64,
) -> Result<Schedule, OptimError> {
    check(
        "decay_steps",
        decay_steps as f64,
        decay_steps > warmup_steps,
        "more decay steps than warmup steps",
    )?;
    let alpha = if peak_value == 0.0 {
        0.0
    } else {
        end_value / peak_value
    };
    let schedules = vec![
        linear_schedule(init_value, peak_value, warmup_steps, 0),
        cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent)?,
    ];
    Ok(join_schedules(schedules, vec![warmup_steps]))
}

/// Linear warmup from `init_value` to `peak_value`, then constant.
pub fn warmup_constant_schedule(init_value: f64, peak_value: f64, warmup_steps: u64) -> Schedule {
    join_schedules(
        vec![
            linear_schedule(init_value, peak_value, warmup_steps, 0),
            constant_schedule(peak_value),
        ],
        vec![warmup_steps],
    )
}

/// Options of [`exponential_decay`] beyond the required ones (optax's keyword arguments).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExponentialDecay {
    /// Steps before decay starts.
    pub transition_begin: u64,
    /// Decay in whole steps of `transition_steps`.
    pub staircase: bool,
    /// A floor (or ceiling, when `decay_rate > 1`) on the value.
    pub end_value: Option<f64>,
}

/// `init·rate^((count − begin)/T)` (floored exponent when `staircase`), `init` before `begin`.
pub fn exponential_decay(
    init_value: f64,
    transition_steps: u64,
    decay_rate: f64,
    options: ExponentialDecay,
) -> Result<Schedule, OptimError> {
    check(
        "transition_steps",
        transition_steps as f64,
        transition_steps > 0,
        "a positive number of steps",
    )?;
    check(
        "decay_rate",
        decay_rate,
        decay_rate != 0.0,
        "a non-zero rate",
    )?;
    let (steps, begin) = (transition_steps as f64, options.transition_begin as f64);
    Ok(Schedule::new("exponential_decay", move |count, pr| {
        let decreased = count - begin;
        // Under jit, XLA divides by the constant `T` as a multiplication by `fl(1/T)`: from the
        // first decayed step on, `(count − begin)/T` can differ from the division by an ulp.
        let mut p = pr.ratio(decreased, steps);
        if options.staircase {
            p = p.floor();
        }
        let init = pr.f32(init_value);
        let v = if decreased <= 0.0 {
            init
        } else {
            pr.f32(init * pr.f32(pr.f32(decay_rate).powf(p)))
        };
        match options.end_value {
            Some(end) if decay_rate < 1.0 => v.max(pr.f32(end)),
            Some(end) => v.min(pr.f32(end)),
            None => v,
        }
    })
    .f32_valued())
}

/// `init_value`, multiplied by `scale` from step `boundary` on, for each `(boundary, scale)`.
pub fn piecewise_constant_schedule(
    init_value: f64,
    boundaries_and_scales: &[(u64, f64)],
) -> Schedule {
    let mut sorted = boundaries_and_scales.to_vec();
    sorted.sort_by_key(|b| b.0);
    Schedule::from_fn("piecewise_constant", move |count| {
        let mut v = init_value;
        for &(threshold, scale) in &sorted {
            // optax: indicator = max(0, sign(threshold − count)), i.e. 1 strictly before it.
            let indicator = if (threshold as f64) > count { 1.0 } else { 0.0 };
            v = v * indicator + (1.0 - indicator) * scale * v;
        }
        v
    })
}

/// `schedules[0]` until `boundaries[0]`, then `schedules[1]` restarted at 0, and so on.
///
/// optax selects with `jnp.where`, so when any part is float32 for an int32 count, every part's
/// value is rounded to float32.
pub fn join_schedules(schedules: Vec<Schedule>, boundaries: Vec<u64>) -> Schedule {
    let f32_valued = schedules.iter().any(|s| s.f32_valued);
    let joined = Schedule::new("join_schedules", move |step, pr| {
        let mut output = schedules[0].at(step, pr);
        for (&boundary, schedule) in boundaries.iter().zip(&schedules[1..]) {
            if step >= boundary as f64 {
                output = schedule.at(step - boundary as f64, pr);
            }
        }
        if f32_valued { pr.f32(output) } else { output }
    });
    if f32_valued {
        joined.f32_valued()
    } else {
        joined
    }
}

#[derive(Clone, Copy)]
enum Interpolation {
    Linear,
    Cosine,
}

/// optax's `piecewise_interpolate_schedule`: values `init·Π scales` at the boundaries (the first
/// interval starts at 0), interpolated linearly or by a half cosine.
fn piecewise_interpolate(
    kind: Interpolation,
    init_value: f64,
    boundaries_and_scales: &[(u64, f64)],
) -> Schedule {
    let mut sorted = boundaries_and_scales.to_vec();
    sorted.sort_by_key(|b| b.0);
    let mut bounds = vec![0.0];
    let mut values = vec![init_value];
    for &(b, s) in &sorted {
        bounds.push(b as f64);
        values.push(values.last().copied().unwrap_or(init_value) * s);
    }
    Schedule::new("piecewise_interpolate", move |count, pr| {
        let mut out = 0.0;
        for i in 0..bounds.len() - 1 {
            if bounds[i] <= count && count < bounds[i + 1] {
                let pct = pr.ratio(count - bounds[i], (bounds[i + 1] - bounds[i]).max(1.0));
                let (start, end) = (values[i], values[i + 1]);
                out += match kind {
                    Interpolation::Linear => pr.mul_add_f64(pct, end - start, start),
                    Interpolation::Cosine => {
                        let cos_plus_one = pr.f32(pr.cos(pr.f32(pr.f32(PI) * pct)) + 1.0);
                        pr.mul_add_f64((start - end) / 2.0, cos_plus_one, end)
                    }
                };
            }
        }
        if *bounds.last().unwrap_or(&0.0) <= count {
            out += values.last().copied().unwrap_or(init_value);
        }
        out
    })
}

/// Options of the one-cycle schedules (optax's defaults via `Default`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycle {
    /// Fraction of the cycle spent increasing.
    pub pct_start: f64,
    /// (linear only) fraction at which the decrease to `peak/div_factor` ends.
    pub pct_final: f64,
    /// Initial value = `peak / div_factor`.
    pub div_factor: f64,
    /// Final value = `initial / final_div_factor`.
    pub final_div_factor: f64,
}

impl Default for OneCycle {
    fn default() -> Self {
        OneCycle {
            pct_start: 0.3,
            pct_final: 0.85,
            div_factor: 25.0,
            final_div_factor: 1e4,
        }
    }
}

/// Cosine one-cycle (Smith & Topin): up to `peak_value`, then down, over `transition_steps`.
pub fn cosine_onecycle_schedule(
    transition_steps: u64,
    peak_value: f64,
    options: OneCycle,
) -> Schedule {
    let b = [
        (
            (options.pct_start * transition_steps as f64) as u64,
            options.div_factor,
        ),
        (
            transition_steps,
            1.0 / (options.div_factor * options.final_div_factor),
        ),
    ];
    piecewise_interpolate(Interpolation::Cosine, peak_value / options.div_factor, &b)
}

/// Linear one-cycle: up to `peak_value`, down to the start, then to the final value.
pub fn linear_onecycle_schedule(
    transition_steps: u64,
    peak_value: f64,
    options: OneCycle,
) -> Schedule {
    let b = [
        (
            (options.pct_start * transition_steps as f64) as u64,
            options.div_factor,
        ),
        (
            (options.pct_final * transition_steps as f64) as u64,
            1.0 / options.div_factor,
        ),
        (transition_steps, 1.0 / options.final_div_factor),
    ];
    piecewise_interpolate(Interpolation::Linear, peak_value / options.div_factor, &b)
}

/// One warm restart of [`sgdr_schedule`]: the arguments of [`warmup_cosine_decay_schedule`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    /// Value at step 0.
    pub init_value: f64,
    /// Value after warmup.
    pub peak_value: f64,
    /// Warmup length.
    pub warmup_steps: u64,
    /// Cycle length including warmup.
    pub decay_steps: u64,
    /// Value at the end of the cycle.
    pub end_value: f64,
}

/// Stochastic gradient descent with warm restarts: warmup-cosine cycles back to back.
pub fn sgdr_schedule(cycles: &[WarmupCosine]) -> Result<Schedule, OptimError> {
    let mut schedules = Vec::new();
    let mut boundaries = Vec::new();
    let mut step = 0;
    for c in cycles {
        schedules.push(warmup_cosine_decay_schedule(
            c.init_value,
            c.peak_value,
            c.warmup_steps,
            c.decay_steps,
            c.end_value,
            1.0,
        )?);
        step += c.decay_steps;
        boundaries.push(step);
    }
    boundaries.pop();
    Ok(join_schedules(schedules, boundaries))
}
