//! The batches the training loop steps on, in order — large ones gathered a step ahead on a
//! second thread, so that copying the next batch's rows out of the data set overlaps the current
//! step instead of standing between two steps.

use core::ops::{ControlFlow, Range};
use std::sync::mpsc::{channel, sync_channel};

use flock_autograd::Batch;
use flock_ensemble::{Batches, EnsembleError};

/// Values (inputs and targets) a step's batch must gather for it to be gathered ahead: 256 KiB
/// of f32, a copy of the order of a thread's wake-up (10–20 µs on the 2-core development
/// machine, see [`ParallelLogJoint`](flock_ensemble::ParallelLogJoint)), below which handing
/// batches between threads would cost what it saves. A Fashion-MNIST step's batch (5 members ×
/// 100 images × 785 values) is 392,500 values gathered from rows scattered over 188 MB —
/// gathering it ahead made a 3-epoch fit ≈ 5 % faster (seven alternated pairs); the seed's (80
/// rows × 2) is 160.
pub(crate) const GATHER_AHEAD_VALUES: usize = 64 * 1024;

/// Whether [`feed_batches`] should gather `batches` ahead: they gather rows (full batches are
/// the data itself) and at least [`GATHER_AHEAD_VALUES`] values per step.
pub(crate) fn gather_ahead<T>(batches: &Batches, data: Batch<'_, T>) -> bool {
    let rows = data.rows.max(1);
    let values_per_row = (data.x.len() + data.y.len()) / rows;
    let gathered = batches.gathered_rows();
    gathered > 0 && gathered * values_per_row >= GATHER_AHEAD_VALUES
}

/// Calls `body(step, batch)` for each step of `steps` with the next batch of `batches` (drawn
/// from `data`), until `body` breaks or fails. With `ahead` (see [`gather_ahead`]), a scoped
/// thread gathers each batch while `body` runs on the one before — two buffers taking turns — so
/// `body` sees exactly the batches, in exactly the order, of the plain loop.
///
/// # Errors
/// The first error of `body`, or of drawing a batch.
pub(crate) fn feed_batches<T, E>(
    batches: &mut Batches,
    data: Batch<'_, T>,
    steps: Range<usize>,
    ahead: bool,
    mut body: impl FnMut(usize, Batch<'_, T>) -> Result<ControlFlow<()>, E>,
) -> Result<(), E>
where
    T: Copy + Send + Sync,
    E: From<EnsembleError>,
{
    if !ahead || batches.gathered_rows() == 0 {
        return feed_in_turn(batches, data, steps, body);
    }
    let gathered_ahead = std::thread::scope(|scope| -> Result<bool, E> {
        // Filled buffers with their batch's rows and members, one waiting at most; the emptied
        // ones come back to be filled again.
        let (filled_tx, filled) = sync_channel(1);
        let (emptied, emptied_rx) = channel::<(Vec<T>, Vec<T>)>();
        for _ in 0..2 {
            emptied
                .send((Vec::new(), Vec::new()))
                .expect("the receiver is alive");
        }
        let count = steps.len();
        let batches = &mut *batches;
        let spawned = std::thread::Builder::new()
            .name("flock-batches".into())
            .spawn_scoped(scope, move || {
                for _ in 0..count {
                    // Both ends close when the loop stops early: then so does this thread.
                    let Ok((mut x, mut y)) = emptied_rx.recv() else {
                        return;
                    };
                    let drawn = batches
                        .next(data, &mut x, &mut y)
                        .map(|b| (b.rows, b.per_member));
                    if filled_tx.send(drawn.map(|shape| (x, y, shape))).is_err() {
                        return;
                    }
                }
            });
        if spawned.is_err() {
            return Ok(false);
        }
        for step in steps.clone() {
            // It sends a batch for every step; it can only have stopped by panicking (the
            // scope then re-raises that panic).
            let Ok(drawn) = filled.recv() else {
                panic!("the batch-gathering thread stopped before step {step}");
            };
            let (x, y, (rows, per_member)) = drawn?;
            let batch = match per_member {
                Some(members) => Batch::per_member(&x, &y, rows, members),
                None => Batch::new(&x, &y, rows),
            }
            .map_err(EnsembleError::from)?;
            let flow = body(step, batch)?;
            // The gathering thread has ended after the last batch; nothing then takes these.
            let _ = emptied.send((x, y));
            if flow.is_break() {
                break;
            }
        }
        Ok(true)
    })?;
    if gathered_ahead {
        Ok(())
    } else {
        // The system would not make a thread: the same batches, gathered in turn.
        feed_in_turn(batches, data, steps, body)
    }
}

/// [`feed_batches`] on this thread alone: each batch gathered before its step.
fn feed_in_turn<T: Copy, E: From<EnsembleError>>(
    batches: &mut Batches,
    data: Batch<'_, T>,
    steps: Range<usize>,
    mut body: impl FnMut(usize, Batch<'_, T>) -> Result<ControlFlow<()>, E>,
) -> Result<(), E> {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for step in steps {
        let batch = batches.next(data, &mut x, &mut y)?;
        if body(step, batch)?.is_break() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flock_ensemble::{DataOrder, Sampling};

    /// Every step's batch gathered ahead is the plain loop's, in either order, stopping early
    /// included; full batches are never gathered ahead.
    #[test]
    fn batches_gathered_ahead_are_the_plain_loops() {
        let x: Vec<f64> = (0..300).map(f64::from).collect();
        let y: Vec<f64> = (0..100).map(|v| -f64::from(v)).collect();
        let data = Batch::new(&x, &y, 100).unwrap();
        for order in [DataOrder::Shared, DataOrder::PerMember] {
            let walk = |ahead: bool, stop_after: usize| {
                let mut batches =
                    Batches::new(100, 7, Sampling::WithoutReplacement, 3, 4, order).unwrap();
                let mut seen = Vec::new();
                feed_batches::<f64, EnsembleError>(&mut batches, data, 5..40, ahead, |s, b| {
                    seen.push((s, b.rows, b.per_member, b.x.to_vec(), b.y.to_vec()));
                    Ok(if s + 1 == stop_after {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    })
                })
                .unwrap();
                seen
            };
            let plain = walk(false, 40);
            assert_eq!(plain.len(), 35);
            assert_eq!(walk(true, 40), plain, "{order:?}");
            assert_eq!(
                walk(true, 12),
                plain[..7].to_vec(),
                "{order:?} stopped early"
            );
        }
        let full = Batches::new(
            100,
            100,
            Sampling::WithoutReplacement,
            3,
            4,
            DataOrder::Shared,
        )
        .unwrap();
        assert!(!gather_ahead(&full, data));
    }

    /// The threshold: a Fashion-MNIST-sized step gathers ahead, the seed's does not.
    #[test]
    fn only_large_batches_are_gathered_ahead() {
        let pixels = vec![0f32; 1000 * 784];
        let labels = vec![0f32; 1000];
        let images = Batch::new(&pixels, &labels, 1000).unwrap();
        let fashion = Batches::new(
            1000,
            100,
            Sampling::WithoutReplacement,
            0,
            5,
            DataOrder::PerMember,
        )
        .unwrap();
        assert!(gather_ahead(&fashion, images));
        let x = vec![0f32; 80];
        let seed = Batches::new(
            80,
            40,
            Sampling::WithoutReplacement,
            0,
            16,
            DataOrder::Shared,
        )
        .unwrap();
        assert!(!gather_ahead(&seed, Batch::new(&x, &x, 80).unwrap()));
    }
}
