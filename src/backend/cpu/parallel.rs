//! Splitting a matmul's rows across threads: a pool of helper threads natively, the
//! calling thread alone in wasm.

#[cfg(not(target_arch = "wasm32"))]
pub(super) use pool::{for_each_chunk, rows_per_task};
#[cfg(not(target_arch = "wasm32"))]
pub use pool::{set_threads, threads};

/// Rows per task: all of them, because wasm runs the matmul on the calling thread.
#[cfg(target_arch = "wasm32")]
pub(super) fn rows_per_task(rows: usize, _work_per_row: usize) -> usize {
    rows.max(1)
}

/// Calls `f(index, chunk)` for each `chunk_len`-element chunk of `out`, in order.
#[cfg(target_arch = "wasm32")]
pub(super) fn for_each_chunk(out: &mut [f32], chunk_len: usize, f: impl Fn(usize, &mut [f32])) {
    for (index, chunk) in out.chunks_mut(chunk_len).enumerate() {
        f(index, chunk);
    }
}

/// The pool: `threads() - 1` helper threads that work beside the calling thread.
///
/// A decode step of SmolLM2 runs about 200 matmuls, most of 5 to 40 µs each, with a few
/// microseconds of single-threaded work between them. A helper that went to sleep
/// between two matmuls would take longer to wake than the matmul lasts. Helpers
/// therefore poll for `SPIN_TIME` after each job before they park, as llama.cpp's
/// threads poll between operations. On a 2-core Xeon VM, two threads decoded at 80
/// tokens/s on rayon's pool, whose idle threads yield and soon sleep, and at 87 here.
#[cfg(not(target_arch = "wasm32"))]
mod pool {
    use std::any::Any;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// Multiply-adds below which a matmul runs on the calling thread alone.
    const MIN_PARALLEL_WORK: usize = 1 << 17;

    /// How long an idle helper polls for the next job before it parks.
    const SPIN_TIME: Duration = Duration::from_millis(1);

    /// Threads that compute, the calling thread included.
    static THREADS: OnceLock<usize> = OnceLock::new();

    static POOL: OnceLock<Pool> = OnceLock::new();

    /// Sets the number of threads that compute, the calling thread included. It can be
    /// set once, before the first parallel matmul; afterwards it returns the number in
    /// use as the error.
    pub fn set_threads(threads: usize) -> Result<(), usize> {
        let threads = threads.max(1);
        let chosen = *THREADS.get_or_init(|| threads);
        if chosen == threads {
            Ok(())
        } else {
            Err(chosen)
        }
    }

    /// Threads that compute: as set by `set_threads`, else one per available core.
    pub fn threads() -> usize {
        *THREADS.get_or_init(|| {
            std::thread::available_parallelism()
                .map(|cores| cores.get())
                .unwrap_or(1)
        })
    }

    /// Rows per task: enough that there are about four tasks per thread, which balances
    /// uneven progress, rounded up to a multiple of 8 because the SIMD kernels take 8 or
    /// 4 rows at a time. Small matmuls stay on the calling thread as one task.
    pub fn rows_per_task(rows: usize, work_per_row: usize) -> usize {
        let threads = threads();
        if threads > 1 && rows * work_per_row >= MIN_PARALLEL_WORK {
            rows.div_ceil(threads * 4).next_multiple_of(8)
        } else {
            rows.max(1)
        }
    }

    /// Calls `f(index, chunk)` for each `chunk_len`-element chunk of `out`.
    ///
    /// With more than one chunk, the calling thread and the pool's helpers claim chunks
    /// from a shared counter until none are left. The calling thread then waits only
    /// for chunks that a helper has claimed, never for a helper that has not started.
    /// A helper that is slow to wake therefore costs nothing, because the calling thread
    /// takes its chunks. While another thread's call uses the pool, and inside `f`,
    /// the calling thread does every chunk itself. A panic in `f` is raised again on
    /// the calling thread.
    pub fn for_each_chunk(out: &mut [f32], chunk_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
        let serial = |out: &mut [f32]| {
            for (index, chunk) in out.chunks_mut(chunk_len).enumerate() {
                f(index, chunk);
            }
        };
        if out.len() <= chunk_len || threads() == 1 {
            return serial(out);
        }
        let pool = POOL.get_or_init(|| Pool::start(threads() - 1));
        let Ok(_held) = pool.shared.caller.try_lock() else {
            return serial(out);
        };
        let chunks = out.len().div_ceil(chunk_len);
        let claims = Arc::new(Claims::new(chunks));
        let f: *const (dyn Fn(usize, &mut [f32]) + Sync + '_) = &f;
        let work = Work {
            out: out.as_mut_ptr(),
            len: out.len(),
            chunk_len,
            // SAFETY: only the lifetime changes. `Claims::run` calls `f` for claimed
            // chunks only, and this function returns after every claimed chunk finished.
            f: unsafe {
                std::mem::transmute::<*const (dyn Fn(usize, &mut [f32]) + Sync), ChunkFn>(f)
            },
        };
        pool.shared.publish(Some(Job {
            claims: Arc::clone(&claims),
            work,
        }));
        // SAFETY: `work` comes from this call, which returns only after `wait`.
        unsafe { claims.run(work) };
        claims.wait();
        pool.shared.publish(None);
        if let Some(panic) = claims.take_panic() {
            resume_unwind(panic);
        }
    }

    /// The helpers of the pool. They run until the process ends.
    struct Pool {
        shared: Arc<Shared>,
    }

    impl Pool {
        fn start(helpers: usize) -> Pool {
            let shared = Arc::new(Shared {
                caller: Mutex::new(()),
                job: Mutex::new(None),
                epoch: AtomicUsize::new(0),
                parked: Mutex::new(0),
                wake: Condvar::new(),
            });
            for index in 0..helpers {
                let shared = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name(format!("seedling-cpu-{index}"))
                    .spawn(move || shared.serve());
                // Without a helper the calling thread does every chunk itself, so a
                // failed spawn costs speed only.
                if let Err(error) = spawned {
                    tracing::warn!(%error, "could not start a CPU helper thread");
                }
            }
            Pool { shared }
        }
    }

    /// One `for_each_chunk` call as its helpers see it.
    #[derive(Clone)]
    struct Job {
        claims: Arc<Claims>,
        work: Work,
    }

    /// State shared by the calling thread and the helpers.
    struct Shared {
        /// Held by the `for_each_chunk` call that the helpers serve.
        caller: Mutex<()>,
        /// The job of that call, `None` between calls.
        job: Mutex<Option<Job>>,
        /// Counts jobs published, so that a helper notices a new one while it polls.
        epoch: AtomicUsize,
        /// Helpers waiting on `wake`.
        parked: Mutex<usize>,
        wake: Condvar,
    }

    impl Shared {
        /// Replaces the current job. A new job raises the epoch and wakes parked helpers.
        fn publish(&self, job: Option<Job>) {
            let announce = job.is_some();
            *self.job.lock().unwrap_or_else(|error| error.into_inner()) = job;
            if announce {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                let parked = self
                    .parked
                    .lock()
                    .unwrap_or_else(|error| error.into_inner());
                if *parked > 0 {
                    self.wake.notify_all();
                }
            }
        }

        /// Runs a helper: waits for a job, claims chunks of it, and repeats.
        fn serve(&self) {
            let mut seen = self.epoch.load(Ordering::SeqCst);
            loop {
                seen = self.next_epoch(seen);
                let job = self
                    .job
                    .lock()
                    .unwrap_or_else(|error| error.into_inner())
                    .clone();
                if let Some(job) = job {
                    // SAFETY: the job's `for_each_chunk` call has not returned, or its
                    // claims are all taken and `run` calls nothing.
                    unsafe { job.claims.run(job.work) };
                }
            }
        }

        /// Polls for an epoch other than `seen` for `SPIN_TIME`, then parks until one
        /// comes, and returns it.
        fn next_epoch(&self, seen: usize) -> usize {
            let started = Instant::now();
            let mut polls = 0u32;
            loop {
                let epoch = self.epoch.load(Ordering::SeqCst);
                if epoch != seen {
                    return epoch;
                }
                std::hint::spin_loop();
                polls = polls.wrapping_add(1);
                if polls % 256 == 0 && started.elapsed() >= SPIN_TIME {
                    break;
                }
            }
            let mut parked = self
                .parked
                .lock()
                .unwrap_or_else(|error| error.into_inner());
            *parked += 1;
            // `publish` raises the epoch before it takes this lock, so a job published
            // after the check below finds this helper counted and waiting.
            let mut epoch = self.epoch.load(Ordering::SeqCst);
            while epoch == seen {
                parked = self
                    .wake
                    .wait(parked)
                    .unwrap_or_else(|error| error.into_inner());
                epoch = self.epoch.load(Ordering::SeqCst);
            }
            *parked -= 1;
            epoch
        }
    }

    /// The `f` of `for_each_chunk`, valid only while `for_each_chunk` runs. `Claims`
    /// calls it for claimed chunks only, which ensures that.
    type ChunkFn = *const (dyn Fn(usize, &mut [f32]) + Sync + 'static);

    /// The output buffer and the function of one `for_each_chunk` call, copied to each
    /// helper.
    #[derive(Clone, Copy)]
    struct Work {
        out: *mut f32,
        len: usize,
        chunk_len: usize,
        f: ChunkFn,
    }

    // SAFETY: `Claims::run` gives each chunk of `out` to one thread only, and `f` is
    // `Sync`.
    unsafe impl Send for Work {}
    unsafe impl Sync for Work {}

    /// The shared counters of one `for_each_chunk` call.
    struct Claims {
        chunks: usize,
        /// The next chunk to claim. Values of `chunks` and above claim nothing.
        next: AtomicUsize,
        /// Chunks whose call to `f` has returned or panicked.
        finished: AtomicUsize,
        /// The first panic of `f`, raised again by the calling thread.
        panic: Mutex<Option<Box<dyn Any + Send>>>,
    }

    impl Claims {
        fn new(chunks: usize) -> Self {
            Claims {
                chunks,
                next: AtomicUsize::new(0),
                finished: AtomicUsize::new(0),
                panic: Mutex::new(None),
            }
        }

        /// Claims chunks and calls `work.f` on them until none are left.
        ///
        /// # Safety
        ///
        /// `work` must come from the `for_each_chunk` call that created these claims,
        /// and that call must not return while a claimed chunk is unfinished.
        unsafe fn run(&self, work: Work) {
            loop {
                let index = self.next.fetch_add(1, Ordering::Relaxed);
                if index >= self.chunks {
                    return;
                }
                let start = index * work.chunk_len;
                let len = work.chunk_len.min(work.len - start);
                let chunk = std::slice::from_raw_parts_mut(work.out.add(start), len);
                let call = catch_unwind(AssertUnwindSafe(|| (*work.f)(index, chunk)));
                if let Err(panic) = call {
                    let mut first = self.panic.lock().unwrap_or_else(|error| error.into_inner());
                    first.get_or_insert(panic);
                }
                // Release, so that the writes to the chunk happen before `wait` returns.
                self.finished.fetch_add(1, Ordering::Release);
            }
        }

        /// Waits until every chunk has finished. The calling thread's own `run` has
        /// returned by then, so every chunk is claimed, and jobs that start later claim
        /// nothing.
        fn wait(&self) {
            let mut spins = 0u32;
            while self.finished.load(Ordering::Acquire) < self.chunks {
                spins += 1;
                if spins < 1 << 12 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }

        fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
            self.panic
                .lock()
                .unwrap_or_else(|error| error.into_inner())
                .take()
        }
    }

    /// `for_each_chunk` with the pool's helpers where the machine has more than one
    /// core.
    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn for_each_chunk_visits_every_chunk_once() {
            for (len, chunk_len) in [(1000, 7), (64, 8), (5, 10), (1, 1)] {
                let mut out = vec![0f32; len];
                let calls = AtomicUsize::new(0);
                for_each_chunk(&mut out, chunk_len, |index, chunk| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    assert_eq!(chunk.len(), chunk_len.min(len - index * chunk_len));
                    for value in chunk.iter_mut() {
                        *value += index as f32 + 1.0;
                    }
                });
                let expected_calls = len.div_ceil(chunk_len);
                assert_eq!(
                    calls.into_inner(),
                    expected_calls,
                    "calls for {len}/{chunk_len}"
                );
                for (position, value) in out.iter().enumerate() {
                    let expected = (position / chunk_len) as f32 + 1.0;
                    assert_eq!(*value, expected, "element {position} of {len}/{chunk_len}");
                }
            }
        }

        #[test]
        fn concurrent_calls_each_visit_their_chunks() {
            std::thread::scope(|scope| {
                for caller in 0..4 {
                    scope.spawn(move || {
                        for round in 0..50 {
                            let mut out = vec![0f32; 640];
                            for_each_chunk(&mut out, 8, |index, chunk| {
                                chunk.fill((caller * 1000 + round + index) as f32);
                            });
                            for (position, value) in out.iter().enumerate() {
                                let expected = (caller * 1000 + round + position / 8) as f32;
                                assert_eq!(*value, expected, "caller {caller}, round {round}");
                            }
                        }
                    });
                }
            });
        }

        #[test]
        fn set_threads_rejects_a_second_count() {
            let chosen = threads();
            assert_eq!(set_threads(chosen), Ok(()));
            assert_eq!(set_threads(chosen + 1), Err(chosen));
        }

        #[test]
        fn for_each_chunk_raises_panic_of_f() {
            let mut out = vec![0f32; 100];
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                for_each_chunk(&mut out, 10, |index, _| {
                    if index == 6 {
                        panic!("chunk 6 failed");
                    }
                })
            }));
            let panic = outcome.expect_err("the panic in chunk 6 was lost");
            assert_eq!(panic.downcast_ref::<&str>(), Some(&"chunk 6 failed"));
        }
    }
}
