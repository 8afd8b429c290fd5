//! Keeps a forward pass's worker threads off the CPU of the thread that runs the pass's share 0.
//!
//! A pass starts its workers afresh and they meet at a spinning barrier after every phase. Linux
//! sometimes places a new worker on the starting thread's own CPU while another CPU is free (seen
//! for seconds at a time in a node on a 2-vCPU VM, with the prefix cache making passes short):
//! the two then take turns on one core, each spinning while the other waits to run, and every
//! token takes about three times as long. A worker that is not allowed on that CPU cannot land
//! there; it may still go anywhere else the process may run.

/// Where this pass's workers may run: the process's CPUs less the starting thread's.
pub(super) struct Spread {
    #[cfg(target_os = "linux")]
    others: Option<libc::cpu_set_t>,
    /// The starting thread's CPU, when it could be read (the test checks against it).
    #[cfg(target_os = "linux")]
    #[cfg_attr(not(test), allow(dead_code))]
    here: Option<usize>,
}

impl Spread {
    /// Taken on the thread that starts the pass, before it starts `threads - 1` workers. Does
    /// nothing where the other CPUs could not hold them all (the machine is oversubscribed: the
    /// kernel's placement is as good as any) or the CPUs cannot be read.
    #[cfg(target_os = "linux")]
    pub fn here(threads: usize) -> Self {
        // SAFETY: sched_getcpu has no arguments.
        let here = usize::try_from(unsafe { libc::sched_getcpu() }).ok();
        let others = (threads > 1)
            .then(|| {
                // SAFETY: plain libc calls on a zeroed cpu_set_t of the size we pass.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    let size = std::mem::size_of::<libc::cpu_set_t>();
                    if libc::sched_getaffinity(0, size, &mut set) != 0 {
                        return None;
                    }
                    let here = here?;
                    if !libc::CPU_ISSET(here, &set) {
                        return None;
                    }
                    libc::CPU_CLR(here, &mut set);
                    (libc::CPU_COUNT(&set) as usize >= threads - 1).then_some(set)
                }
            })
            .flatten();
        Spread { others, here }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn here(_threads: usize) -> Self {
        Spread {}
    }

    /// Called first thing on a worker: it may run only on the other CPUs. Best effort.
    #[cfg(target_os = "linux")]
    pub fn apply(&self) {
        if let Some(set) = &self.others {
            // SAFETY: sets this thread's own affinity from a valid cpu_set_t.
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set);
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn apply(&self) {}
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::Spread;

    #[test]
    fn a_worker_runs_off_the_starting_threads_cpu_when_there_is_room() {
        // SAFETY: reads this thread's affinity into a zeroed set.
        let cpus = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
            libc::CPU_COUNT(&set) as usize
        };
        let spread = Spread::here(2);
        let here = spread.here.expect("this thread's CPU");
        let (allowed_here, runs_on) = std::thread::scope(|s| {
            s.spawn(|| {
                spread.apply();
                // SAFETY: as above, for the worker's own affinity.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
                    (libc::CPU_ISSET(here, &set), libc::sched_getcpu() as usize)
                }
            })
            .join()
            .unwrap()
        });
        if cpus >= 2 {
            assert!(!allowed_here, "the worker may still run on CPU {here}");
            assert_ne!(runs_on, here);
        } else {
            // One CPU: nothing to spread over, and the worker is left where the kernel puts it.
            assert!(allowed_here);
        }
        // A single-threaded pass changes nothing.
        assert!(Spread::here(1).others.is_none());
    }
}
