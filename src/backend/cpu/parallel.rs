//! Splitting a matmul's rows across threads: rayon's pool natively, the calling thread
//! alone in wasm.

#[cfg(not(target_arch = "wasm32"))]
pub(super) use pool::{for_each_chunk, rows_per_task};

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

#[cfg(not(target_arch = "wasm32"))]
mod pool {
    use std::any::Any;
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// Multiply-adds below which a matmul runs on the calling thread, because handing
    /// work to rayon's pool costs a few microseconds. On a 2-core AMD EPYC VM with AVX2,
    /// one token through a 192x576 Q4_1 matrix took a median 5.0 µs on one thread and
    /// 7.0 µs on two. Through 576x576 it took 14.0 and 13.6 µs, and through 1536x576
    /// 36.6 and 26.7 µs.
    const MIN_PARALLEL_WORK: usize = 1 << 17;

    /// Rows per task: enough that there are about four tasks per pool thread, which
    /// balances uneven progress, rounded up to a multiple of 8 because the SIMD kernels
    /// take 8 or 4 rows at a time. Small matmuls stay on the calling thread as one task.
    pub fn rows_per_task(rows: usize, work_per_row: usize) -> usize {
        let threads = rayon::current_num_threads();
        if threads > 1 && rows * work_per_row >= MIN_PARALLEL_WORK {
            rows.div_ceil(threads * 4).next_multiple_of(8)
        } else {
            rows.max(1)
        }
    }

    /// Calls `f(index, chunk)` for each `chunk_len`-element chunk of `out`.
    ///
    /// With more than one chunk, the calling thread and one rayon job per other pool
    /// thread claim chunks from a shared counter until none are left. The calling thread
    /// then waits only for chunks that a job has claimed, never for a job that has not
    /// started. A pool thread that is slow to wake therefore costs nothing, because the
    /// calling thread takes its chunks. A panic in `f` is raised again on the calling
    /// thread.
    pub fn for_each_chunk(out: &mut [f32], chunk_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
        if out.len() <= chunk_len {
            f(0, out);
            return;
        }
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
        let helpers = rayon::current_num_threads()
            .saturating_sub(1)
            .min(chunks - 1);
        for _ in 0..helpers {
            let claims = Arc::clone(&claims);
            // SAFETY: `work` comes from this call, which returns only after `wait`.
            rayon::spawn(move || unsafe { claims.run(work) });
        }
        // SAFETY: as for the jobs above.
        unsafe { claims.run(work) };
        claims.wait();
        if let Some(panic) = claims.take_panic() {
            resume_unwind(panic);
        }
    }

    /// The `f` of `for_each_chunk`, valid only while `for_each_chunk` runs. `Claims`
    /// calls it for claimed chunks only, which ensures that.
    type ChunkFn = *const (dyn Fn(usize, &mut [f32]) + Sync + 'static);

    /// The output buffer and the function of one `for_each_chunk` call, copied to each
    /// job.
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

    /// `for_each_chunk` on rayon's pool, which has more than one thread on a machine with
    /// more than one core.
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
