//! One forward + backward of the seed's log-joint (E = 16 members, B = 80 points,
//! MLP 1→32→32→1 with tanh, Gaussian likelihood, standard-normal prior on every weight), single
//! threaded, in f32 and f64. Run: `cargo bench -p flock-autograd --bench log_joint`.

use flock_autograd::*;
use flock_kernels::Element;
use rand::SeedableRng;

fn main() {
    divan::main();
}

struct Setup<T> {
    layout: ParamLayout,
    mlp: Mlp,
    params: Vec<T>,
    x: Vec<T>,
    y: Vec<T>,
}

const MEMBERS: usize = 16;
const BATCH: usize = 80;

fn setup<T: Element>() -> Setup<T> {
    let mut layout = ParamLayout::new();
    let mlp = Mlp::new(
        &mut layout,
        "",
        MlpConfig::new(1, 1, 32, 2, Activation::Tanh),
    )
    .unwrap();
    let mut params = Parameters::<T>::zeros(layout.clone(), MEMBERS);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    for e in 0..MEMBERS {
        mlp.init_member(&layout, &mut rng, params.member_mut(e))
            .unwrap();
    }
    let x: Vec<T> = (0..BATCH)
        .map(|i| T::from_f64(-10.0 + 20.0 * i as f64 / BATCH as f64))
        .collect();
    let y: Vec<T> = x
        .iter()
        .map(|&v| T::from_f64(v.to_f64().sin() / v.to_f64()))
        .collect();
    Setup {
        layout,
        mlp,
        params: params.into_values(),
        x,
        y,
    }
}

#[divan::bench(types = [f32, f64], sample_count = 100, sample_size = 20)]
fn seed_log_joint_forward_backward<T: Element>(bencher: divan::Bencher<'_, '_>) {
    let s = setup::<T>();
    let mlp = s.mlp.clone();
    let mut lj = TapeLogJoint::new(s.layout.clone(), move |g: &mut Graph<'_, T>, x, y| {
        let f = mlp.forward(g, x)?;
        let f = g.squeeze_last(f)?;
        let r = g.sub(y, f)?;
        let sse = g.sum_squares(r);
        let theta = g.all_params();
        let ss = g.sum_squares(theta);
        Ok((g.scale(sse, -50.0), g.scale(ss, -0.5)))
    });
    let (mut ll, mut lp) = (vec![T::ZERO; MEMBERS], vec![T::ZERO; MEMBERS]);
    let mut grad = vec![T::ZERO; s.params.len()];
    let weights = Weights {
        loglik: -T::ONE,
        logprior: -T::ONE,
    };
    bencher.bench_local(|| {
        lj.evaluate(
            MEMBERS,
            divan::black_box(&s.params),
            Batch::new(&s.x, &s.y, BATCH).unwrap(),
            weights,
            LogJointOutput {
                loglik: &mut ll,
                logprior: &mut lp,
                grad: &mut grad,
            },
        )
        .unwrap();
    });
}
