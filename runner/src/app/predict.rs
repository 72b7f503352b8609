//! `flock predict`: a model file's predictions for the rows of a table, as CSV — a regressor's
//! predictive mean, stds and quantiles (and conformal intervals), a classifier's class
//! probabilities, predicted class, entropy and mutual information (and conformal sets).

use std::path::Path;

use serde_json::json;

use super::cli::{BoxError, PredictArgs};
use super::fit::{feature_columns, gather};
use super::refuse_to_overwrite;
use crate::any_model::AnyModel;
use crate::files::write_atomically;
use crate::regressor::Matrix;
use crate::table::{csv_field, parse_columns_named, read, read_named_table};

/// The predictive quantiles a regressor's predictions get without `--quantiles`: a central 95 %
/// interval.
const DEFAULT_QUANTILES: [f64; 2] = [0.025, 0.975];

/// `flock predict`.
pub(crate) fn predict_command(args: &PredictArgs) -> Result<(), BoxError> {
    let data: &Path = &args.data;
    refuse_to_overwrite(
        "--out",
        &args.out,
        &[("model", &args.model), ("data file", data)],
    )?;
    let model = AnyModel::load(&args.model)?;
    // The model's features by name when both sides have names (other columns — a target,
    // text labels — are ignored); else the columns given, or all.
    let by_name = match (args.features.as_deref(), model.feature_names()) {
        (None, Some(names)) => parse_columns_named(&read(data)?, data, names)?,
        _ => None,
    };
    let (table, columns) = match by_name {
        Some(table) => {
            let all = (0..table.table.cols).collect();
            (table, all)
        }
        None => {
            let table = read_named_table(data)?;
            let columns = feature_columns(&table, data, args.features.as_deref(), None)?;
            (table, columns)
        }
    };
    if columns.len() != model.features() {
        return Err(format!(
            "{}: {} feature columns, the model takes {} (choose them with --features)",
            data.display(),
            columns.len(),
            model.features()
        )
        .into());
    }
    let rows: Vec<usize> = (0..table.table.rows).collect();
    let values: Vec<f64> = gather(&table, &rows, &columns);
    let x = Matrix::new(&values, columns.len())?;
    let csv = match &model {
        AnyModel::Regressor(m) => {
            let levels = args.quantiles.as_deref().unwrap_or(&DEFAULT_QUANTILES);
            if let Some(q) = levels.iter().find(|q| !(**q > 0.0 && **q < 1.0)) {
                return Err(format!("--quantiles: {q} is not strictly between 0 and 1").into());
            }
            let p = m.predict(x)?;
            let quantiles = levels
                .iter()
                .map(|&q| p.quantile(q))
                .collect::<Result<Vec<_>, _>>()?;
            let interval = args
                .conformal
                .map(|alpha| m.conformal_interval(x, alpha))
                .transpose()?;
            let (epistemic, aleatoric) = (p.epistemic_std(), p.aleatoric_std());
            let mut csv = String::from("mean,total_std,epistemic_std,aleatoric_std");
            for q in levels {
                csv.push_str(&format!(",q{q}"));
            }
            if interval.is_some() {
                csv.push_str(",conformal_lower,conformal_upper");
            }
            csv.push('\n');
            for i in 0..p.len() {
                csv.push_str(&format!(
                    "{},{},{},{}",
                    p.mean()[i],
                    p.std()[i],
                    epistemic[i],
                    aleatoric[i]
                ));
                for values in &quantiles {
                    csv.push_str(&format!(",{}", values[i]));
                }
                if let Some((lo, hi)) = &interval {
                    csv.push_str(&format!(",{},{}", lo[i], hi[i]));
                }
                csv.push('\n');
            }
            csv
        }
        AnyModel::Classifier(m) => {
            if args.quantiles.is_some() {
                return Err(format!(
                    "--quantiles: {} is a classifier, whose predictions are class \
                     probabilities (quantiles are a regressor's)",
                    args.model.display()
                )
                .into());
            }
            let p = m.predict_proba(x)?;
            let names: Vec<String> = match m.class_names() {
                Some(names) => names.to_vec(),
                None => (0..m.classes()).map(|k| k.to_string()).collect(),
            };
            let sets = args
                .conformal
                .map(|alpha| m.prediction_sets(x, alpha))
                .transpose()?;
            let mut csv = String::from("predicted");
            for name in &names {
                csv.push_str(&format!(",{}", csv_field(&format!("p_{name}"))));
            }
            csv.push_str(",entropy,expected_entropy,mutual_information");
            if sets.is_some() {
                csv.push_str(",conformal_set");
            }
            csv.push('\n');
            let (h, eh, mi) = (p.entropy(), p.expected_entropy(), p.mutual_information());
            let k = p.classes();
            for (i, predicted) in p.predicted_names().iter().enumerate() {
                csv.push_str(&csv_field(predicted));
                for prob in &p.probs()[i * k..(i + 1) * k] {
                    csv.push_str(&format!(",{prob}"));
                }
                csv.push_str(&format!(",{},{},{}", h[i], eh[i], mi[i]));
                if let Some(sets) = &sets {
                    let set: Vec<&str> = sets[i].iter().map(|&c| names[c].as_str()).collect();
                    csv.push_str(&format!(",{}", csv_field(&set.join("|"))));
                }
                csv.push('\n');
            }
            csv
        }
    };
    let out = &args.out;
    write_atomically(out, csv.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
    let count = rows.len();
    if args.json {
        let task = match model {
            AnyModel::Regressor(_) => "regress",
            AnyModel::Classifier(_) => "classify",
        };
        println!(
            "{}",
            json!({"task": task, "predictions": count, "out": out.display().to_string()})
        );
    } else {
        println!("{count} predictions: {}", out.display());
    }
    Ok(())
}
