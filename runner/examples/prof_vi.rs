use flock_autograd::Batch;
use flock_ensemble::{MemberRng, standard_normal};
use flock_optim::{AdamConfig, adam};
use flock_runner::patterns::seed_model;
use flock_runner::vi::{EnsembleVI, ViConfig};
fn main() {
    let x: Vec<f64> = (0..80).map(|i| -10.0 + 20.0 * i as f64 / 80.0).collect();
    let y: Vec<f64> = x.iter().map(|&v| flock_runner::seed::sinc(v)).collect();
    let data = Batch::new(&x, &y, 80).unwrap();
    let size = 32 + 32 + 32 * 32 + 32 + 32 + 1;
    let loc_init =
        move |rng: &mut MemberRng| (0..size).map(|_| 0.5 * standard_normal(rng)).collect();
    let mut vi = EnsembleVI::new(
        seed_model,
        data,
        loc_init,
        adam(5e-3, AdamConfig::default()).unwrap(),
        ViConfig::default(),
    )
    .unwrap();
    let mut state = vi.init(0).unwrap();
    let n: usize = std::env::args()
        .nth(1)
        .map(|v| v.parse().unwrap())
        .unwrap_or(3000);
    let t = std::time::Instant::now();
    for _ in 0..n {
        vi.update(&mut state, data, 1.0).unwrap();
    }
    println!("{:.1} us/step", t.elapsed().as_secs_f64() / n as f64 * 1e6);
}
