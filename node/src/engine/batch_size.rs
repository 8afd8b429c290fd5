//! How many sequences a GGUF model decodes at once when its configuration does not say: measured
//! at load. One decode step reads every weight once whatever the batch, so on a CPU a step of 8
//! sequences costs far less than 8 steps of one; how much less depends on the model, the quant
//! format and the machine. The load times one step at 1, 2, 4, … sequences and keeps doubling
//! while a doubling still raises the aggregate tokens per second by [`MIN_GAIN`], within what
//! memory leaves room for. A fixed default (it was 4) queues users on a model that would have
//! batched them for nearly nothing.

use std::time::{Duration, Instant};

use super::sequence::{Feed, StepModel};

/// The largest batch tried.
pub const MAX_AUTO: usize = 16;

/// A doubling is taken when the aggregate decode rate grows by at least this factor.
const MIN_GAIN: f64 = 1.10;

/// One decode step's time with `batch` sequences.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    pub batch: usize,
    pub step: Duration,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.batch as f64 / self.step.as_secs_f64().max(1e-9)
    }
}

/// The batch to use from `measured` (doubling batch sizes, ascending): the last one reached by
/// doublings that each raised the aggregate rate by [`MIN_GAIN`].
pub fn pick(measured: &[Measured]) -> usize {
    let mut best = measured.first().map_or(1, |m| m.batch);
    for pair in measured.windows(2) {
        if pair[1].rate() < pair[0].rate() * MIN_GAIN {
            break;
        }
        best = pair[1].batch;
    }
    best
}

/// Times one decode step (one token per sequence, after one already in each state) at each
/// doubling batch size up to `cap`, stopping at the first doubling that no longer pays, and
/// returns the chosen batch with what was measured. Each size is timed twice and the faster
/// kept, so a moment of contention does not decide it.
pub fn auto_sequences<M: StepModel>(model: &M, cap: usize) -> (usize, Vec<Measured>) {
    let cap = cap.clamp(1, MAX_AUTO);
    let mut measured: Vec<Measured> = Vec::new();
    let mut batch = 1;
    while batch <= cap {
        let Some(step) = time_step(model, batch) else {
            break;
        };
        measured.push(Measured { batch, step });
        if measured.len() >= 2 && pick(&measured) != batch {
            break;
        }
        batch *= 2;
    }
    (pick(&measured).min(cap), measured)
}

fn time_step<M: StepModel>(model: &M, batch: usize) -> Option<Duration> {
    let mut states: Vec<M::State> = (0..batch).map(|_| model.new_state()).collect();
    let token = [0u32];
    let pass = |pos: usize, states: &mut [M::State]| {
        let mut feeds: Vec<Feed<'_, M::State>> = states
            .iter_mut()
            .map(|state| Feed {
                tokens: &token,
                pos,
                state,
                logits: true,
            })
            .collect();
        let start = Instant::now();
        model.forward(&mut feeds).ok()?;
        Some(start.elapsed())
    };
    // The first pass fills each state's first position (and warms the weights into cache).
    pass(0, &mut states)?;
    let a = pass(1, &mut states)?;
    let b = pass(2, &mut states)?;
    Some(a.min(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(batch: usize, ms: u64) -> Measured {
        Measured {
            batch,
            step: Duration::from_millis(ms),
        }
    }

    #[test]
    fn doubling_goes_on_while_it_pays() {
        // (steps, chosen)
        let cases: Vec<(Vec<Measured>, usize)> = vec![
            (vec![], 1),
            (vec![m(1, 10)], 1),
            // Weight-bound: a bigger batch costs little more.
            (vec![m(1, 10), m(2, 11), m(4, 12), m(8, 15), m(16, 22)], 16),
            // Compute-bound from 4 on: 8 sequences take twice as long as 4.
            (vec![m(1, 10), m(2, 12), m(4, 16), m(8, 32)], 4),
            // A gain under 10% stops it.
            (vec![m(1, 10), m(2, 19)], 1),
        ];
        for (i, (steps, want)) in cases.into_iter().enumerate() {
            assert_eq!(pick(&steps), want, "case {i}");
        }
    }
}
