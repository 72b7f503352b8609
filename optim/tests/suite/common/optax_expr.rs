//! A small parser from the optax expressions in the fixtures (`optax.adamw(1e-2,
//! weight_decay=1e-2)`, …) to flock objects. It accepts the calls and keyword arguments of
//! optax's public API for the transformations flock implements, with optax's defaults — which
//! makes it the proof that flock's names and defaults are optax's.

use flock_optim::*;

#[derive(Clone, Debug)]
pub enum Expr {
    Num(f64),
    Bool(bool),
    None,
    Str(String),
    Name(String),
    List(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    Call {
        callee: Box<Expr>,
        args: Vec<Expr>,
        kwargs: Vec<(String, Expr)>,
    },
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] as char).is_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) {
        assert!(
            self.eat(c),
            "expected '{}' at {} in {}",
            c as char,
            self.i,
            String::from_utf8_lossy(self.s)
        );
    }
    fn ident(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric()
                || self.s[self.i] == b'_'
                || self.s[self.i] == b'.')
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn primary(&mut self) -> Expr {
        match self.peek().expect("unexpected end") {
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                while !self.eat(b']') {
                    items.push(self.expr());
                    self.eat(b',');
                }
                Expr::List(items)
            }
            b'{' => {
                self.i += 1;
                let mut items = Vec::new();
                while !self.eat(b'}') {
                    let k = self.expr();
                    self.expect(b':');
                    items.push((k, self.expr()));
                    self.eat(b',');
                }
                Expr::Dict(items)
            }
            b'\'' | b'"' => {
                let q = self.s[self.i];
                self.i += 1;
                let start = self.i;
                while self.s[self.i] != q {
                    self.i += 1;
                }
                self.i += 1;
                Expr::Str(String::from_utf8_lossy(&self.s[start..self.i - 1]).into_owned())
            }
            c if c.is_ascii_digit() || c == b'-' || c == b'.' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_digit() || b".eE-+".contains(&self.s[self.i]))
                {
                    self.i += 1;
                }
                Expr::Num(
                    std::str::from_utf8(&self.s[start..self.i])
                        .unwrap()
                        .parse()
                        .unwrap(),
                )
            }
            _ => match self.ident().as_str() {
                "True" => Expr::Bool(true),
                "False" => Expr::Bool(false),
                "None" => Expr::None,
                name => Expr::Name(name.to_owned()),
            },
        }
    }
    fn expr(&mut self) -> Expr {
        let mut e = self.primary();
        loop {
            if self.eat(b'(') {
                let (mut args, mut kwargs) = (Vec::new(), Vec::new());
                while !self.eat(b')') {
                    let save = self.i;
                    let name = self.ident();
                    if !name.is_empty() && self.peek() == Some(b'=') {
                        self.i += 1;
                        kwargs.push((name, self.expr()));
                    } else {
                        self.i = save;
                        args.push(self.expr());
                    }
                    self.eat(b',');
                }
                e = Expr::Call {
                    callee: Box::new(e),
                    args,
                    kwargs,
                };
            } else if self.peek() == Some(b'.') {
                self.i += 1;
                let method = self.ident();
                // `receiver.method(...)`: a call whose first argument is the receiver.
                self.expect(b'(');
                self.expect(b')');
                e = Expr::Call {
                    callee: Box::new(Expr::Name(method)),
                    args: vec![e],
                    kwargs: Vec::new(),
                };
            } else if self.eat(b'*') {
                let n = self.primary();
                let (Expr::List(items), Expr::Num(n)) = (&e, n) else {
                    panic!("only list * int is supported")
                };
                e = Expr::List((0..n as usize).flat_map(|_| items.clone()).collect());
            } else {
                return e;
            }
        }
    }
}

pub fn parse(s: &str) -> Expr {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    let e = p.expr();
    assert_eq!(p.peek(), None, "trailing input in {s}");
    e
}

/// Positional-or-keyword arguments of one call, consumed by name with optax's defaults.
pub struct Args {
    name: String,
    positional: Vec<Expr>,
    kwargs: Vec<(String, Expr)>,
    next: usize,
}

impl Args {
    fn take(&mut self, key: &str) -> Option<Expr> {
        if let Some(pos) = self.kwargs.iter().position(|(k, _)| k == key) {
            return Some(self.kwargs.remove(pos).1);
        }
        let v = self.positional.get(self.next).cloned();
        if v.is_some() {
            self.next += 1;
        }
        v
    }
    pub fn num(&mut self, key: &str, default: Option<f64>) -> f64 {
        match self.take(key) {
            Some(Expr::Num(n)) => n,
            Some(Expr::Bool(b)) => b as u8 as f64,
            None => default.unwrap_or_else(|| panic!("{}: missing {key}", self.name)),
            Some(other) => panic!("{}: {key} = {other:?} is not a number", self.name),
        }
    }
    pub fn opt_num(&mut self, key: &str) -> Option<f64> {
        match self.take(key) {
            Some(Expr::Num(n)) => Some(n),
            None | Some(Expr::None) => None,
            Some(other) => panic!("{}: {key} = {other:?}", self.name),
        }
    }
    pub fn flag(&mut self, key: &str, default: bool) -> bool {
        match self.take(key) {
            Some(Expr::Bool(b)) => b,
            None => default,
            Some(other) => panic!("{}: {key} = {other:?}", self.name),
        }
    }
    pub fn expr(&mut self, key: &str) -> Option<Expr> {
        self.take(key)
    }
    fn done(self) {
        assert!(
            self.kwargs.is_empty(),
            "{}: unsupported keyword arguments {:?}",
            self.name,
            self.kwargs
        );
        assert!(
            self.next >= self.positional.len(),
            "{}: unused positional arguments",
            self.name
        );
    }
}

fn call(e: &Expr) -> (String, Args) {
    match e {
        Expr::Call {
            callee,
            args,
            kwargs,
        } => {
            let name = match &**callee {
                Expr::Name(n) => n.trim_start_matches("optax.").to_owned(),
                Expr::Call {
                    callee,
                    args: inner,
                    ..
                } => {
                    // `inject_hyperparams(optax.adam)(...)` → "inject_hyperparams:adam"
                    let Expr::Name(outer) = &**callee else {
                        panic!("unsupported callee")
                    };
                    let Expr::Name(opt) = &inner[0] else {
                        panic!("unsupported callee")
                    };
                    format!(
                        "{}:{}",
                        outer.trim_start_matches("optax."),
                        opt.trim_start_matches("optax.")
                    )
                }
                other => panic!("unsupported callee {other:?}"),
            };
            (
                name.clone(),
                Args {
                    name,
                    positional: args.clone(),
                    kwargs: kwargs.clone(),
                    next: 0,
                },
            )
        }
        Expr::Name(n) => {
            let name = n.trim_start_matches("optax.").to_owned();
            (
                name.clone(),
                Args {
                    name,
                    positional: vec![],
                    kwargs: vec![],
                    next: 0,
                },
            )
        }
        other => panic!("expected a call, found {other:?}"),
    }
}

/// A schedule expression.
pub fn schedule(e: &Expr) -> Schedule {
    let (name, mut a) = call(e);
    let u = |x: f64| x as u64;
    let s = match name.as_str() {
        "constant_schedule" => constant_schedule(a.num("value", None)),
        "linear_schedule" => {
            let (i, e, t, b) = (
                a.num("init_value", None),
                a.num("end_value", None),
                a.num("transition_steps", None),
                a.num("transition_begin", Some(0.0)),
            );
            linear_schedule(i, e, u(t), u(b))
        }
        "polynomial_schedule" => {
            let (i, e, p, t, b) = (
                a.num("init_value", None),
                a.num("end_value", None),
                a.num("power", None),
                a.num("transition_steps", None),
                a.num("transition_begin", Some(0.0)),
            );
            polynomial_schedule(i, e, p, u(t), u(b))
        }
        "cosine_decay_schedule" => {
            let (i, d, al, ex) = (
                a.num("init_value", None),
                a.num("decay_steps", None),
                a.num("alpha", Some(0.0)),
                a.num("exponent", Some(1.0)),
            );
            cosine_decay_schedule(i, u(d), al, ex).unwrap()
        }
        "warmup_cosine_decay_schedule" => {
            let (i, p, w, d, en, ex) = (
                a.num("init_value", None),
                a.num("peak_value", None),
                a.num("warmup_steps", None),
                a.num("decay_steps", None),
                a.num("end_value", Some(0.0)),
                a.num("exponent", Some(1.0)),
            );
            warmup_cosine_decay_schedule(i, p, u(w), u(d), en, ex).unwrap()
        }
        "warmup_constant_schedule" => {
            let (i, p, w) = (
                a.num("init_value", None),
                a.num("peak_value", None),
                a.num("warmup_steps", None),
            );
            warmup_constant_schedule(i, p, u(w))
        }
        "exponential_decay" => {
            let (i, t, r) = (
                a.num("init_value", None),
                a.num("transition_steps", None),
                a.num("decay_rate", None),
            );
            let opts = schedule::ExponentialDecay {
                transition_begin: u(a.num("transition_begin", Some(0.0))),
                staircase: a.flag("staircase", false),
                end_value: a.opt_num("end_value"),
            };
            exponential_decay(i, u(t), r, opts).unwrap()
        }
        "piecewise_constant_schedule" => {
            let init = a.num("init_value", None);
            let pairs = match a.expr("boundaries_and_scales") {
                Some(Expr::Dict(items)) => items
                    .iter()
                    .map(|(k, v)| match (k, v) {
                        (Expr::Num(k), Expr::Num(v)) => (u(*k), *v),
                        _ => panic!("bad boundaries_and_scales"),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            piecewise_constant_schedule(init, &pairs)
        }
        "join_schedules" => {
            let Some(Expr::List(s)) = a.expr("schedules") else {
                panic!("join_schedules needs schedules")
            };
            let Some(Expr::List(b)) = a.expr("boundaries") else {
                panic!("join_schedules needs boundaries")
            };
            let b = b
                .iter()
                .map(|x| {
                    if let Expr::Num(n) = x {
                        u(*n)
                    } else {
                        panic!()
                    }
                })
                .collect();
            join_schedules(s.iter().map(schedule).collect(), b)
        }
        "cosine_onecycle_schedule" | "linear_onecycle_schedule" => {
            let (t, p) = (a.num("transition_steps", None), a.num("peak_value", None));
            let d = schedule::OneCycle::default();
            let opts = schedule::OneCycle {
                pct_start: a.num("pct_start", Some(d.pct_start)),
                pct_final: if name.starts_with("linear") {
                    a.num("pct_final", Some(d.pct_final))
                } else {
                    d.pct_final
                },
                div_factor: a.num("div_factor", Some(d.div_factor)),
                final_div_factor: a.num("final_div_factor", Some(d.final_div_factor)),
            };
            if name.starts_with("cosine") {
                cosine_onecycle_schedule(u(t), p, opts)
            } else {
                linear_onecycle_schedule(u(t), p, opts)
            }
        }
        "sgdr_schedule" => {
            let Some(Expr::List(items)) = a.expr("cosine_kwargs") else {
                panic!("sgdr needs a list")
            };
            let cycles: Vec<_> = items
                .iter()
                .map(|d| {
                    let (_, mut k) = call(d);
                    schedule::WarmupCosine {
                        init_value: k.num("init_value", None),
                        peak_value: k.num("peak_value", None),
                        warmup_steps: u(k.num("warmup_steps", None)),
                        decay_steps: u(k.num("decay_steps", None)),
                        end_value: k.num("end_value", Some(0.0)),
                    }
                })
                .collect();
            sgdr_schedule(&cycles).unwrap()
        }
        other => panic!("unsupported schedule {other}"),
    };
    a.done();
    s
}

fn learning_rate(e: Expr) -> LearningRate {
    match e {
        Expr::Num(n) => LearningRate::from(n),
        other => LearningRate::from(schedule(&other)),
    }
}

fn mask(e: Option<Expr>) -> Option<LeafMask> {
    match e {
        None | Some(Expr::None) => None,
        Some(Expr::Dict(items)) => {
            let names: Vec<String> = items
                .into_iter()
                .filter_map(|(k, v)| match (k, v) {
                    (Expr::Str(k), Expr::Bool(true)) => Some(k),
                    _ => None,
                })
                .collect();
            Some(LeafMask::only(names))
        }
        Some(other) => panic!("unsupported mask {other:?}"),
    }
}

fn adam_config(a: &mut Args, defaults: AdamConfig) -> AdamConfig {
    AdamConfig {
        b1: a.num("b1", Some(defaults.b1)),
        b2: a.num("b2", Some(defaults.b2)),
        eps: a.num("eps", Some(defaults.eps)),
        eps_root: a.num("eps_root", Some(defaults.eps_root)),
        nesterov: a.flag("nesterov", defaults.nesterov),
    }
}

fn rms_config(a: &mut Args) -> RmsConfig {
    let d = RmsConfig::default();
    RmsConfig {
        decay: a.num("decay", Some(d.decay)),
        eps: a.num("eps", Some(d.eps)),
        initial_scale: a.num("initial_scale", Some(d.initial_scale)),
        eps_in_sqrt: a.flag("eps_in_sqrt", d.eps_in_sqrt),
        bias_correction: a.flag("bias_correction", d.bias_correction),
    }
}

/// `scale_by_amsgrad` with its bias-correction flags (also the core of the `amsgrad` alias).
fn amsgrad_transform(a: &mut Args) -> ScaleByAmsgrad {
    let mut t = scale_by_amsgrad(adam_config(a, AdamConfig::default())).unwrap();
    if !a.flag("bias_correction_mu", true) {
        t = t.without_mu_bias_correction();
    }
    if !a.flag("bias_correction_nu", true) {
        t = t.without_nu_bias_correction();
    }
    t
}

type Boxed = BoxedTransformation<f64>;

/// A transformation expression, with optax's defaults for everything not given.
pub fn transformation(e: &Expr) -> Boxed {
    let (name, mut a) = call(e);
    let out: Boxed = match name.as_str() {
        "chain" => {
            let parts: Vec<Expr> = std::mem::take(&mut a.positional);
            let mut it = parts.iter().rev();
            let mut acc = transformation(it.next().expect("empty chain"));
            for p in it {
                acc = Boxed::new(chain(transformation(p), acc));
            }
            acc
        }
        "identity" => Boxed::new(identity()),
        "scale" => Boxed::new(scale(a.num("step_size", None))),
        "clip" => Boxed::new(clip(a.num("max_delta", None)).unwrap()),
        "clip_by_global_norm" => Boxed::new(clip_by_global_norm(a.num("max_norm", None)).unwrap()),
        "trace" => {
            let d = a.num("decay", None);
            Boxed::new(trace(d, a.flag("nesterov", false)).unwrap())
        }
        "add_decayed_weights" => {
            let wd = a.num("weight_decay", Some(0.0));
            Boxed::new(add_decayed_weights(wd, mask(a.expr("mask"))).unwrap())
        }
        "scale_by_adam" => {
            Boxed::new(scale_by_adam(adam_config(&mut a, AdamConfig::default())).unwrap())
        }
        "scale_by_learning_rate" => {
            let lr = scale_by_learning_rate(learning_rate(a.expr("learning_rate").unwrap()));
            if a.flag("flip_sign", true) {
                Boxed::new(lr.unwrap())
            } else {
                Boxed::new(lr.unwrap().without_sign_flip())
            }
        }
        "sgd" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            let m = a.opt_num("momentum");
            Boxed::new(sgd(lr, m, a.flag("nesterov", false)).unwrap())
        }
        "adam" | "nadam" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            // optax's nadam is adam with `nesterov=True` by default (and may be given False).
            let defaults = AdamConfig {
                nesterov: name == "nadam",
                ..AdamConfig::default()
            };
            let cfg = adam_config(&mut a, defaults);
            if cfg.nesterov && name == "nadam" {
                Boxed::new(nadam(lr, cfg).unwrap())
            } else {
                Boxed::new(adam(lr, cfg).unwrap())
            }
        }
        "amsgrad" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            let cfg = adam_config(&mut a, AdamConfig::default());
            let (mu, nu) = (
                a.flag("bias_correction_mu", true),
                a.flag("bias_correction_nu", true),
            );
            if mu && nu {
                Boxed::new(amsgrad(lr, cfg).unwrap())
            } else {
                // optax's alias is this chain; flock's `amsgrad` keeps optax's defaults.
                let mut t = scale_by_amsgrad(cfg).unwrap();
                if !mu {
                    t = t.without_mu_bias_correction();
                }
                if !nu {
                    t = t.without_nu_bias_correction();
                }
                Boxed::new(chain(t, scale_by_learning_rate(lr).unwrap()))
            }
        }
        "scale_by_amsgrad" => Boxed::new(amsgrad_transform(&mut a)),
        "scale_by_belief" => {
            Boxed::new(scale_by_belief(adam_config(&mut a, AdamConfig::belief())).unwrap())
        }
        "scale_by_rms" | "scale_by_stddev" => {
            let cfg = rms_config(&mut a);
            if name == "scale_by_rms" {
                Boxed::new(scale_by_rms(cfg).unwrap())
            } else {
                Boxed::new(scale_by_stddev(cfg).unwrap())
            }
        }
        "scale_by_rss" => {
            let (init, eps) = (
                a.num("initial_accumulator_value", Some(0.1)),
                a.num("eps", Some(1e-7)),
            );
            Boxed::new(scale_by_rss(init, eps).unwrap())
        }
        "scale_by_lion" => {
            let (b1, b2) = (a.num("b1", Some(0.9)), a.num("b2", Some(0.99)));
            let beta = a.num("smooth_beta", Some(1.0));
            let sign = match a.expr("mode") {
                None => LionSign::Hard,
                Some(Expr::Str(m)) => match m.as_str() {
                    "hard" => LionSign::Hard,
                    "smooth" => LionSign::Smooth { beta },
                    "refined" => LionSign::Refined,
                    other => panic!("scale_by_lion: mode {other}"),
                },
                Some(other) => panic!("scale_by_lion: mode {other:?}"),
            };
            Boxed::new(scale_by_lion(b1, b2).unwrap().with_sign(sign).unwrap())
        }
        "scale_by_trust_ratio" => Boxed::new(
            scale_by_trust_ratio(
                a.num("min_norm", Some(0.0)),
                a.num("trust_coefficient", Some(1.0)),
                a.num("eps", Some(0.0)),
            )
            .unwrap(),
        ),
        "adamw" | "nadamw" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            let defaults = AdamConfig {
                nesterov: name == "nadamw",
                ..AdamConfig::default()
            };
            let cfg = adam_config(&mut a, defaults);
            let wd = a.num("weight_decay", Some(1e-4));
            let m = mask(a.expr("mask"));
            if cfg.nesterov && name == "nadamw" {
                Boxed::new(nadamw(lr, cfg, wd, m).unwrap())
            } else {
                Boxed::new(adamw(lr, cfg, wd, m).unwrap())
            }
        }
        "adabelief" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            Boxed::new(adabelief(lr, adam_config(&mut a, AdamConfig::belief())).unwrap())
        }
        "lamb" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            let cfg = adam_config(
                &mut a,
                AdamConfig {
                    eps: 1e-6,
                    ..AdamConfig::default()
                },
            );
            let wd = a.num("weight_decay", Some(0.0));
            Boxed::new(lamb(lr, cfg, wd, mask(a.expr("mask"))).unwrap())
        }
        "lion" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            let (b1, b2) = (a.num("b1", Some(0.9)), a.num("b2", Some(0.99)));
            let wd = a.num("weight_decay", Some(1e-3));
            Boxed::new(lion(lr, b1, b2, wd, mask(a.expr("mask"))).unwrap())
        }
        "rmsprop" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            let cfg = rms_config(&mut a);
            let centered = a.flag("centered", false);
            let momentum = a.opt_num("momentum");
            Boxed::new(rmsprop(lr, cfg, centered, momentum, a.flag("nesterov", false)).unwrap())
        }
        "adagrad" => {
            let lr = learning_rate(a.expr("learning_rate").unwrap());
            let (init, eps) = (
                a.num("initial_accumulator_value", Some(0.1)),
                a.num("eps", Some(1e-7)),
            );
            Boxed::new(adagrad(lr, init, eps).unwrap())
        }
        "apply_if_finite" => {
            let inner = transformation(&a.expr("inner").unwrap());
            let k = a.num("max_consecutive_errors", None);
            Boxed::new(apply_if_finite(inner, k as u32))
        }
        "gradient_transformation" => {
            // `optax.MultiSteps(opt, every_k_schedule=k).gradient_transformation()`
            let (ms, mut m) = call(&a.expr("self").unwrap());
            assert_eq!(ms, "MultiSteps");
            let inner = transformation(&m.expr("opt").unwrap());
            let k = m.num("every_k_schedule", None);
            let mut ms = multi_steps(inner, k as u64).unwrap();
            if !m.flag("use_grad_mean", true) {
                ms = ms.with_gradient_sum();
            }
            match m.expr("accumulator_dtype") {
                None => {}                                                     // optax's float32 default
                Some(Expr::None) => ms = ms.with_full_precision_accumulator(), // the update's dtype
                Some(other) => panic!("MultiSteps: accumulator_dtype {other:?}"),
            }
            m.done();
            Boxed::new(ms)
        }
        "inject_hyperparams:adam" => {
            let lr = match a.expr("learning_rate").unwrap() {
                Expr::Num(n) => LearningRate::Injected(PerMember::Shared(n)),
                _ => panic!("inject_hyperparams: learning_rate must be a number"),
            };
            let cfg = adam_config(&mut a, AdamConfig::default());
            Boxed::new(adam(lr, cfg).unwrap())
        }
        other => panic!("unsupported optax call {other}"),
    };
    a.done();
    out
}
