//! All exact scores (19-level width curve included) for M = 16 and M = 320 components over
//! N = 200 points, single-threaded. Run: `cargo bench -p flock-metrics --bench scores`.

use flock_metrics::{MixturePredictive, Sigma, exact_scores};

fn main() {
    divan::main();
}

fn predictive(m: usize, n: usize) -> (MixturePredictive, Vec<f64>) {
    let x: Vec<f64> = (0..n)
        .map(|i| -12.0 + 24.0 * i as f64 / (n - 1) as f64)
        .collect();
    let means: Vec<f64> = (0..m)
        .flat_map(|k| {
            x.iter()
                .map(move |&v| (v.sin() / v) + 0.05 * ((k as f64 * 0.37 + v).sin()))
                .collect::<Vec<_>>()
        })
        .collect();
    let y_obs: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v.sin() / v + 0.1 * ((i * 7919 % 200) as f64 / 100.0 - 1.0))
        .collect();
    (
        MixturePredictive::new(&means, m, n, Sigma::Shared(0.1)).unwrap(),
        y_obs,
    )
}

#[divan::bench(args = [16, 320])]
fn all_exact_scores(bencher: divan::Bencher<'_, '_>, m: usize) {
    let (pred, y_obs) = predictive(m, 200);
    bencher.bench_local(|| exact_scores(divan::black_box(&pred), &y_obs, None).unwrap());
}
