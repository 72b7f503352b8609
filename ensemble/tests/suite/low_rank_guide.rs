//! The low-rank-plus-diagonal guide's ELBO against a from-scratch computation in f64: draws
//! `θ = loc + W·z + s ⊙ ε` assembled by hand, the model's densities written out, the entropy
//! from the dense covariance `W·Wᵀ + diag(s²)` (log-determinant by elimination, not the
//! capacitance route the library takes) and the analytic KL from the dense Gaussian formula;
//! gradients of the weighted objective against central finite differences.

use flock_autograd::*;
use flock_ensemble::model::*;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

const LN_2PI: f64 = 1.837_877_066_409_345_3;
const N: usize = 7;
const RANK: usize = 2;
const MEMBERS: usize = 2;
const PARTICLES: usize = 2;

/// `y ~ N(x·w + b, σ)`, `w ~ N(0, 1)` (`[2, 1]`), `b ~ N(0.5, 2)` (`[1]`), and with `learned`
/// `σ ~ HalfNormal(1)` (stored as `ln σ`), otherwise `σ = 0.3`.
fn model(
    learned: bool,
) -> impl for<'c, 'g> Fn(&mut ModelContext<'c, 'g, f64>, Var, Var) -> Result<(), AutogradError> + Clone
{
    move |m, x, y| {
        let w = m.sample("w", normal(0.0, 1.0), [2, 1])?;
        let b = m.sample("b", normal(0.5, 2.0), [1])?;
        let sigma = if learned {
            Some(m.sample("sigma", half_normal(1.0), [])?)
        } else {
            None
        };
        let g = m.graph();
        let f = g.matmul(x, w)?;
        let f = g.add(f, b)?;
        let f = g.squeeze_last(f)?;
        match sigma {
            Some(s) => m.observe("y", normal(f, s), y),
            None => m.observe("y", normal(f, 0.3), y),
        }
    }
}

fn data() -> (Vec<f64>, Vec<f64>) {
    let mut rng = Pcg64::seed_from_u64(11);
    let x: Vec<f64> = (0..2 * N).map(|_| rng.random_range(-1.5..1.5)).collect();
    let y: Vec<f64> = (0..N)
        .map(|n| 0.8 * x[2 * n] - 0.4 * x[2 * n + 1] + 0.3 + rng.random_range(-0.2..0.2))
        .collect();
    (x, y)
}

fn log_normal_pdf(v: f64, mu: f64, sigma: f64) -> f64 {
    let z = (v - mu) / sigma;
    -0.5 * z * z - sigma.ln() - 0.5 * LN_2PI
}

fn softplus(r: f64) -> f64 {
    r.max(0.0) + (-r.abs()).exp().ln_1p()
}

/// `ln det` of a positive-definite `n × n` matrix by elimination with partial pivoting.
fn log_det(n: usize, m: &[f64]) -> f64 {
    let mut a = m.to_vec();
    let mut total = 0.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap();
        for j in 0..n {
            a.swap(col * n + j, pivot * n + j);
        }
        let p = a[col * n + col];
        assert!(p != 0.0);
        total += p.abs().ln();
        for i in col + 1..n {
            let f = a[i * n + col] / p;
            for j in col..n {
                a[i * n + j] -= f * a[col * n + j];
            }
        }
    }
    total
}

/// One member's guide, unpacked from its block: per site `(loc, s, Vt [rank × len])`.
struct MemberGuide {
    sites: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)>,
}

impl MemberGuide {
    fn new(elbo: &GuideElbo<f64, impl Model<f64>>, params: &Parameters<f64>, e: usize) -> Self {
        let ids = elbo.guide_ids();
        let sites = (0..elbo.sites().len())
            .map(|k| {
                let loc = params.leaf(e, ids.loc[k]).unwrap().to_vec();
                let s = params
                    .leaf(e, ids.rho[k])
                    .unwrap()
                    .iter()
                    .map(|&r| softplus(r))
                    .collect();
                let vt = params.leaf(e, ids.cov_factor[k]).unwrap().to_vec();
                (loc, s, vt)
            })
            .collect();
        MemberGuide { sites }
    }

    /// All latent values in order: `(loc, s)` flattened, and the dense `W` (`D × rank`).
    fn flat(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut loc, mut s, mut w) = (Vec::new(), Vec::new(), Vec::new());
        for (l, sc, vt) in &self.sites {
            let len = l.len();
            loc.extend_from_slice(l);
            s.extend_from_slice(sc);
            // W = diag(s)·V.
            for j in 0..len {
                for i in 0..RANK {
                    w.push(sc[j] * vt[i * len + j]);
                }
            }
        }
        (loc, s, w)
    }

    /// The dense covariance `W·Wᵀ + diag(s²)` (`D × D`) and the means.
    fn covariance(&self) -> (Vec<f64>, Vec<f64>) {
        let (loc, s, w) = self.flat();
        let d = loc.len();
        let mut cov = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] = (0..RANK).map(|r| w[i * RANK + r] * w[j * RANK + r]).sum();
            }
            cov[i * d + i] += s[i] * s[i];
        }
        (cov, loc)
    }

    /// `½·D·(1 + ln 2π) + ½ ln det(W·Wᵀ + diag(s²))` from the dense covariance.
    fn entropy(&self) -> f64 {
        let (cov, loc) = self.covariance();
        let d = loc.len();
        0.5 * d as f64 * (1.0 + LN_2PI) + 0.5 * log_det(d, &cov)
    }

    /// `KL(N(loc, W·Wᵀ + diag(s²)) ‖ N(μ, diag(σ²)))` by the dense Gaussian formula.
    fn kl(&self, prior: &[(f64, f64)]) -> f64 {
        let (cov, loc) = self.covariance();
        let d = loc.len();
        let mut total = -(d as f64) - log_det(d, &cov);
        for i in 0..d {
            let (mu, sigma) = prior[i];
            let v = sigma * sigma;
            total += cov[i * d + i] / v + (loc[i] - mu).powi(2) / v + v.ln();
        }
        0.5 * total
    }
}

struct Setup<M> {
    elbo: GuideElbo<f64, M>,
    params: Parameters<f64>,
    noise: Vec<f64>,
}

fn setup<M: Model<f64>>(model: M, kl: KlEstimator, x: &[f64], y: &[f64]) -> Setup<M> {
    let batch = Batch::new(x, y, N).unwrap();
    let mut elbo = GuideElbo::with_guide(
        model,
        batch,
        Guide::LowRank { rank: RANK },
        PARTICLES,
        kl,
        0,
    )
    .unwrap();
    let layout = elbo.layout().clone();
    let mut rng = Pcg64::seed_from_u64(5);
    let values: Vec<f64> = (0..MEMBERS * layout.member_size())
        .map(|_| rng.random_range(-0.8..0.8))
        .collect();
    let params = Parameters::from_values(layout, MEMBERS, values).unwrap();
    let d = elbo.model_size();
    let noise: Vec<f64> = (0..PARTICLES * MEMBERS * (d + RANK))
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    elbo.set_noise(Some(noise.clone()));
    Setup {
        elbo,
        params,
        noise,
    }
}

/// The library's `(ℓ, −KL)` per member and the gradient of `wℓ·ℓ + wπ·(−KL)`.
fn evaluate<M: Model<f64>>(
    elbo: &mut GuideElbo<f64, M>,
    params: &[f64],
    x: &[f64],
    y: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut ll, mut mkl) = (vec![0.0; MEMBERS], vec![0.0; MEMBERS]);
    let mut grad = vec![0.0; params.len()];
    elbo.evaluate(
        MEMBERS,
        params,
        Batch::new(x, y, N).unwrap(),
        Weights {
            loglik: -1.0,
            logprior: -0.7,
        },
        LogJointOutput {
            loglik: &mut ll,
            logprior: &mut mkl,
            grad: &mut grad,
        },
    )
    .unwrap();
    (ll, mkl, grad)
}

/// Draw `s` of member `e` by hand: the latent values per site (raw, before `exp`).
fn draw(guide: &MemberGuide, noise: &[f64], s: usize, e: usize) -> Vec<Vec<f64>> {
    let d: usize = guide.sites.iter().map(|t| t.0.len()).sum();
    let block = &noise[s * MEMBERS * (d + RANK)..(s + 1) * MEMBERS * (d + RANK)];
    let z = &block[MEMBERS * d + e * RANK..MEMBERS * d + (e + 1) * RANK];
    let mut offset = 0;
    guide
        .sites
        .iter()
        .map(|(loc, sc, vt)| {
            let len = loc.len();
            let eps = &block[offset + e * len..offset + (e + 1) * len];
            offset += MEMBERS * len;
            (0..len)
                .map(|j| {
                    let vz: f64 = (0..RANK).map(|i| vt[i * len + j] * z[i]).sum();
                    loc[j] + sc[j] * (eps[j] + vz)
                })
                .collect()
        })
        .collect()
}

fn check_gradient<M: Model<f64>>(setup: &mut Setup<M>, x: &[f64], y: &[f64]) {
    let params = setup.params.values().to_vec();
    let (_, _, grad) = evaluate(&mut setup.elbo, &params, x, y);
    let objective = |elbo: &mut GuideElbo<f64, M>, p: &[f64]| {
        let (ll, mkl, _) = evaluate(elbo, p, x, y);
        (0..MEMBERS)
            .map(|e| -ll[e] - 0.7 * mkl[e])
            .collect::<Vec<_>>()
    };
    let p = setup.params.layout().member_size();
    let scale = grad.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let mut work = params.clone();
    for i in 0..p {
        let h = 1e-6;
        for e in 0..MEMBERS {
            work[e * p + i] = params[e * p + i] + h;
        }
        let plus = objective(&mut setup.elbo, &work);
        for e in 0..MEMBERS {
            work[e * p + i] = params[e * p + i] - h;
        }
        let minus = objective(&mut setup.elbo, &work);
        for e in 0..MEMBERS {
            work[e * p + i] = params[e * p + i];
            let fd = (plus[e] - minus[e]) / (2.0 * h);
            assert!(
                (fd - grad[e * p + i]).abs() <= 1e-6 * scale,
                "member {e}, parameter {i}: tape {} vs finite differences {fd}",
                grad[e * p + i]
            );
        }
    }
}

#[test]
fn monte_carlo_elbo_matches_a_dense_computation() {
    let (x, y) = data();
    let mut setup = setup(model(true), KlEstimator::MonteCarlo, &x, &y);
    let params = setup.params.values().to_vec();
    let (ll, minus_kl, _) = evaluate(&mut setup.elbo, &params, &x, &y);
    for e in 0..MEMBERS {
        let guide = MemberGuide::new(&setup.elbo, &setup.params, e);
        let (mut ll_sum, mut lp_sum) = (0.0, 0.0);
        for s in 0..PARTICLES {
            let theta = draw(&guide, &setup.noise, s, e);
            let (w, b, log_sigma) = (&theta[0], theta[1][0], theta[2][0]);
            let sigma = log_sigma.exp();
            ll_sum += (0..N)
                .map(|n| {
                    let f = x[2 * n] * w[0] + x[2 * n + 1] * w[1] + b;
                    log_normal_pdf(y[n], f, sigma)
                })
                .sum::<f64>();
            lp_sum += w.iter().map(|&v| log_normal_pdf(v, 0.0, 1.0)).sum::<f64>()
                + log_normal_pdf(b, 0.5, 2.0)
                + log_normal_pdf(sigma, 0.0, 1.0)
                + core::f64::consts::LN_2
                + log_sigma;
        }
        let expected_ll = ll_sum / PARTICLES as f64;
        let expected_mkl = lp_sum / PARTICLES as f64 + guide.entropy();
        assert!(
            (ll[e] - expected_ll).abs() <= 1e-12 * expected_ll.abs().max(1.0),
            "member {e}: loglik {} vs {expected_ll}",
            ll[e]
        );
        assert!(
            (minus_kl[e] - expected_mkl).abs() <= 1e-12 * expected_mkl.abs().max(1.0),
            "member {e}: −KL {} vs {expected_mkl}",
            minus_kl[e]
        );
    }
    check_gradient(&mut setup, &x, &y);
}

#[test]
fn analytic_kl_matches_the_dense_gaussian_formula() {
    let (x, y) = data();
    let mut setup = setup(model(false), KlEstimator::Analytic, &x, &y);
    let params = setup.params.values().to_vec();
    let (_, minus_kl, _) = evaluate(&mut setup.elbo, &params, &x, &y);
    let prior = [(0.0, 1.0), (0.0, 1.0), (0.5, 2.0)];
    for (e, &got) in minus_kl.iter().enumerate() {
        let expected = -MemberGuide::new(&setup.elbo, &setup.params, e).kl(&prior);
        assert!(
            (got - expected).abs() <= 1e-12 * expected.abs().max(1.0),
            "member {e}: −KL {got} vs {expected}"
        );
    }
    check_gradient(&mut setup, &x, &y);
}

#[test]
fn a_zero_factor_gives_the_mean_field_kl() {
    // With W = 0 the low-rank guide is the mean-field one: the same closed-form KL.
    let (x, y) = data();
    let batch = Batch::new(&x, &y, N).unwrap();
    let mut low = GuideElbo::with_guide(
        model(false),
        batch,
        Guide::LowRank { rank: 3 },
        1,
        KlEstimator::Analytic,
        9,
    )
    .unwrap();
    let mut mean_field = GuideElbo::new(model(false), batch, 1, KlEstimator::Analytic, 9).unwrap();
    let loc = [0.3, -0.2, 0.1];
    let low_block = low.init_member(&loc, 0.2).unwrap();
    let mf_block = mean_field.init_member(&loc, 0.2).unwrap();
    assert_eq!(low_block.len(), (2 + 3) * 3);
    let (mut a, mut b) = ([0.0; 1], [0.0; 1]);
    let mut g = vec![0.0; low_block.len()];
    let mut g2 = vec![0.0; mf_block.len()];
    let w = Weights {
        loglik: -1.0,
        logprior: -1.0,
    };
    let (mut ll_a, mut ll_b) = ([0.0; 1], [0.0; 1]);
    low.evaluate(
        1,
        &low_block,
        batch,
        w,
        LogJointOutput {
            loglik: &mut ll_a,
            logprior: &mut a,
            grad: &mut g,
        },
    )
    .unwrap();
    mean_field
        .evaluate(
            1,
            &mf_block,
            batch,
            w,
            LogJointOutput {
                loglik: &mut ll_b,
                logprior: &mut b,
                grad: &mut g2,
            },
        )
        .unwrap();
    assert!(
        (a[0] - b[0]).abs() <= 1e-13 * b[0].abs(),
        "{} vs {}",
        a[0],
        b[0]
    );
}

#[test]
fn rank_zero_is_rejected() {
    let (x, y) = data();
    let batch = Batch::new(&x, &y, N).unwrap();
    let err = GuideElbo::with_guide(
        model(false),
        batch,
        Guide::LowRank { rank: 0 },
        1,
        KlEstimator::MonteCarlo,
        0,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rank"), "{err}");
}

/// A two-layer tanh network's sites (matrices, vectors, a `[1]`), as the seed's model has them.
fn mlp_model(
    hidden: usize,
) -> impl for<'c, 'g> Fn(&mut ModelContext<'c, 'g, f64>, Var, Var) -> Result<(), AutogradError> + Clone
{
    move |m, x, y| {
        let w1 = m.sample("W1", normal(0.0, 1.0), [2, hidden])?;
        let b1 = m.sample("b1", normal(0.0, 1.0), [hidden])?;
        let w2 = m.sample("W2", normal(0.0, 1.0), [hidden, 1])?;
        let b2 = m.sample("b2", normal(0.0, 1.0), [1])?;
        let g = m.graph();
        let h = g.matmul(x, w1)?;
        let h = g.add(h, b1)?;
        let h = g.tanh(h);
        let f = g.matmul(h, w2)?;
        let f = g.add(f, b2)?;
        let f = g.squeeze_last(f)?;
        m.observe("y", normal(f, 0.3), y)
    }
}

#[test]
fn gradients_of_a_network_model_match_finite_differences() {
    let (x, y) = data();
    for kl in [KlEstimator::MonteCarlo, KlEstimator::Analytic] {
        let mut setup = setup(mlp_model(3), kl, &x, &y);
        check_gradient(&mut setup, &x, &y);
    }
}

/// The linear model of [`model`] (σ fixed) for any element type.
fn model_in<T: flock_kernels::Element>(
    m: &mut ModelContext<'_, '_, T>,
    x: Var,
    y: Var,
) -> Result<(), AutogradError> {
    let c = |v: f64| Arg::Const(T::from_f64(v));
    let w = m.sample(
        "w",
        Distribution::Normal {
            loc: c(0.0),
            scale: c(1.0),
        },
        [2, 1],
    )?;
    let b = m.sample(
        "b",
        Distribution::Normal {
            loc: c(0.5),
            scale: c(2.0),
        },
        [1],
    )?;
    let g = m.graph();
    let f = g.matmul(x, w)?;
    let f = g.add(f, b)?;
    let f = g.squeeze_last(f)?;
    m.observe(
        "y",
        Distribution::Normal {
            loc: Arg::Var(f),
            scale: c(0.3),
        },
        y,
    )
}

/// The ELBO in f32 agrees with f64 on the same parameters and noise (both KL estimators).
#[test]
fn f32_agrees_with_f64() {
    let (x, y) = data();
    let (x32, y32): (Vec<f32>, Vec<f32>) = (
        x.iter().map(|&v| v as f32).collect(),
        y.iter().map(|&v| v as f32).collect(),
    );
    for kl in [KlEstimator::MonteCarlo, KlEstimator::Analytic] {
        let mut setup = setup(model_in::<f64>, kl, &x, &y);
        let params = setup.params.values().to_vec();
        let (ll, mkl, grad) = evaluate(&mut setup.elbo, &params, &x, &y);
        let batch = Batch::new(&x32, &y32, N).unwrap();
        let mut elbo = GuideElbo::with_guide(
            model_in::<f32>,
            batch,
            Guide::LowRank { rank: RANK },
            PARTICLES,
            kl,
            0,
        )
        .unwrap();
        elbo.set_noise(Some(setup.noise.iter().map(|&v| v as f32).collect()));
        let p32: Vec<f32> = params.iter().map(|&v| v as f32).collect();
        let (mut ll32, mut mkl32) = (vec![0.0f32; MEMBERS], vec![0.0f32; MEMBERS]);
        let mut grad32 = vec![0.0f32; p32.len()];
        elbo.evaluate(
            MEMBERS,
            &p32,
            batch,
            Weights {
                loglik: -1.0,
                logprior: -0.7,
            },
            LogJointOutput {
                loglik: &mut ll32,
                logprior: &mut mkl32,
                grad: &mut grad32,
            },
        )
        .unwrap();
        for e in 0..MEMBERS {
            assert!((f64::from(ll32[e]) - ll[e]).abs() <= 1e-4 * ll[e].abs().max(1.0));
            assert!((f64::from(mkl32[e]) - mkl[e]).abs() <= 1e-4 * mkl[e].abs().max(1.0));
        }
        let scale = grad.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (a, b) in grad32.iter().zip(&grad) {
            assert!((f64::from(*a) - b).abs() <= 1e-4 * scale, "{a} vs {b}");
        }
    }
}
