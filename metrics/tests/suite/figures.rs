//! Both figure formats render for the seed fixture's Pattern A predictions into valid,
//! non-trivial images.

use flock_fixtures::field_numbers;
use flock_metrics::*;

#[test]
fn seed_figure_renders_as_svg_and_png() {
    let seed = flock_fixtures::dir("seed");
    let data = flock_fixtures::load(&seed.join("data.json")).unwrap();
    let fx = flock_fixtures::load(&seed.join("pattern_a.json")).unwrap();
    let f = |k: &str| field_numbers(&data, k).unwrap();
    let (x, y, x_test, y_truth, y_obs) =
        (f("X"), f("y"), f("X_test"), f("y_truth"), f("y_test_noisy"));
    let means = field_numbers(&fx, "pred_means").unwrap();
    let n = x_test.len();
    let pred = MixturePredictive::new(&means, means.len() / n, n, Sigma::Shared(0.1)).unwrap();
    let scores = exact_scores(&pred, &y_obs, Some(&y_truth)).unwrap();
    let panel = FitPanel {
        label: "A — from scratch".into(),
        x_test: &x_test,
        member_means: &means,
        y_truth: Some(&y_truth),
        y_obs: &y_obs,
        train: (&x, &y),
        scores: &scores,
    };
    let panels = [panel.clone(), panel];
    let encode = |name: &str| -> Result<Vec<u8>, FigureError> {
        encode_figure(figure_svg(&panels), FigureFormat::of(name.as_ref())?)
    };

    let svg = String::from_utf8(encode("seed.svg").unwrap()).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // 16 member curves + mean + truth per fit panel, 2 diagonals/curves per calibration panel.
    assert_eq!(svg.matches("<polyline").count(), 2 * (16 + 2 + 2));
    assert!(
        svg.contains("RMSE-truth=0.0612"),
        "the title carries the scores"
    );

    let png = encode("seed.png").unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (2 * 940, 2 * 590));
    assert!(
        png.len() > 50_000,
        "a drawn figure, not a blank canvas ({} bytes)",
        png.len()
    );
    assert!(matches!(encode("seed.jpg"), Err(FigureError::Format(_))));
}
