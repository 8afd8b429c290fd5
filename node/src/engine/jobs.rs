//! The job queue both local engines share (the GGUF scheduler and the synthetic engine). The
//! submitting side ([`JobSender`]) checks the parameters, counts the job as queued and hands it to
//! the engine's thread, or fails it at once when that thread is gone. The thread's side
//! ([`JobQueue`]) receives jobs, ends those cancelled while they wait, starts them in arrival
//! order as slots free up, and fails what is left when the engine is dropped. The counters are
//! what `Engine::active_sequences` and `Engine::queued` report.

use super::{EngineError, GenEvent, GenerateRequest};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// One generation as the engine's thread receives it.
pub struct Job {
    pub req: GenerateRequest,
    pub tx: UnboundedSender<GenEvent>,
    /// When `generate` was called.
    pub received: Instant,
}

#[derive(Debug, Default)]
struct Counters {
    active: AtomicUsize,
    queued: AtomicUsize,
}

/// A job the thread cannot take, and why (sent to its receiver).
pub struct Refused(pub UnboundedSender<GenEvent>, pub EngineError);

/// The engine's side: submits jobs to its thread.
pub struct JobSender {
    jobs: Sender<Job>,
    counters: Arc<Counters>,
}

/// What waits on the thread for a sequence slot.
pub trait Waiting {
    fn is_cancelled(&self) -> bool;
    /// Ends a request that never started (cancelled while it waited).
    fn cancel_unstarted(self);
    fn fail(self, e: EngineError);
}

/// The thread's side: the jobs received and waiting for a slot, in arrival order.
pub struct JobQueue<W> {
    rx: Receiver<Job>,
    counters: Arc<Counters>,
    waiting: VecDeque<W>,
}

/// A queue: the sender for the engine, the receiving side for its thread.
pub fn channel<W>() -> (JobSender, JobQueue<W>) {
    let (jobs, rx) = mpsc::channel();
    let counters = Arc::new(Counters::default());
    let sender = JobSender {
        jobs,
        counters: Arc::clone(&counters),
    };
    let queue = JobQueue {
        rx,
        counters,
        waiting: VecDeque::new(),
    };
    (sender, queue)
}

impl JobSender {
    /// Queues a generation. Parameter errors and a stopped thread are reported on the channel.
    pub fn submit(&self, req: GenerateRequest) -> UnboundedReceiver<GenEvent> {
        let (tx, rx) = unbounded_channel();
        if let Err(e) = req.params.validate() {
            let _ = tx.send(GenEvent::Failed(e.into()));
            return rx;
        }
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            req,
            tx,
            received: Instant::now(),
        };
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            self.counters.queued.fetch_sub(1, Ordering::SeqCst);
            let _ = job.tx.send(GenEvent::Failed(EngineError::Shutdown));
        }
        rx
    }

    /// Sequences being generated now.
    pub fn active(&self) -> usize {
        self.counters.active.load(Ordering::SeqCst)
    }

    /// Jobs waiting for a slot.
    pub fn queued(&self) -> usize {
        self.counters.queued.load(Ordering::SeqCst)
    }
}

impl<W: Waiting> JobQueue<W> {
    /// Takes in new jobs. With nothing running and nothing waiting it blocks for the next one;
    /// otherwise it waits at most `wait` for one, then takes whatever else has arrived.
    /// `accept` turns a job into a waiting entry, or refuses it (a bad prompt): the refusal is
    /// sent once the job no longer counts as queued.
    /// Returns false once the engine is gone (the channel closed).
    pub fn receive(
        &mut self,
        running: usize,
        wait: Duration,
        mut accept: impl FnMut(Job) -> Result<W, Refused>,
    ) -> bool {
        let first = if running == 0 && self.waiting.is_empty() {
            match self.rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return false,
            }
        } else if wait.is_zero() {
            None
        } else {
            match self.rx.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        };
        let mut take = |job| match accept(job) {
            Ok(w) => self.waiting.push_back(w),
            Err(Refused(tx, e)) => {
                self.counters.queued.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send(GenEvent::Failed(e));
            }
        };
        if let Some(job) = first {
            take(job);
        }
        loop {
            match self.rx.try_recv() {
                Ok(job) => take(job),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Ends the waiting entries whose asks were cancelled (or whose receivers went away).
    pub fn drop_cancelled(&mut self) {
        if !self.waiting.iter().any(W::is_cancelled) {
            return;
        }
        let (cancelled, kept): (VecDeque<W>, VecDeque<W>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(W::is_cancelled);
        self.waiting = kept;
        for w in cancelled {
            self.counters.queued.fetch_sub(1, Ordering::SeqCst);
            w.cancel_unstarted();
        }
    }

    /// The next entry to start while `running` is below `max`; counted as active from now on.
    pub fn start_next(&mut self, running: usize, max: usize) -> Option<W> {
        if running >= max {
            return None;
        }
        let w = self.waiting.pop_front()?;
        self.counters.queued.fetch_sub(1, Ordering::SeqCst);
        self.counters.active.fetch_add(1, Ordering::SeqCst);
        Some(w)
    }

    /// A started entry ended.
    pub fn finished(&self) {
        self.counters.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// Fails every waiting entry with [`EngineError::Shutdown`] and zeroes the counters; the
    /// caller fails the ones it was running.
    pub fn shut_down(&mut self) {
        for w in self.waiting.drain(..) {
            w.fail(EngineError::Shutdown);
        }
        self.counters.active.store(0, Ordering::SeqCst);
        self.counters.queued.store(0, Ordering::SeqCst);
    }
}
