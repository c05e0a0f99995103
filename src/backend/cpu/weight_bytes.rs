//! Storage for quantized weight matrices, in transparent huge pages on Linux.
//!
//! A decode step reads every weight once, about 100 MB for SmolLM2 in Q4_1. In 4 KiB
//! pages that is 25,000 pages per token, far more than the TLB covers, so each page
//! costs a page walk. On a 2-core Xeon VM, decoding on one thread went from about 50 to
//! about 60 tokens/s when the weights lay in 2 MiB pages instead. A single matrix is
//! smaller than a huge page (576 × 576 Q4_1 is 207 KiB), so matrices are packed one
//! after another into shared regions of `REGION_BYTES`, each aligned to a huge page and
//! marked with `MADV_HUGEPAGE`.
//!
//! Elsewhere (wasm, other systems) each matrix keeps its own `Vec<u8>`.

use std::ops::Deref;

/// The bytes of one weight matrix, immutable once copied in.
pub struct WeightBytes {
    #[cfg(target_os = "linux")]
    region: std::sync::Arc<huge::Region>,
    #[cfg(target_os = "linux")]
    start: usize,
    #[cfg(target_os = "linux")]
    len: usize,
    #[cfg(not(target_os = "linux"))]
    bytes: Vec<u8>,
}

impl WeightBytes {
    /// Copies `bytes` into weight storage.
    pub fn copy_of(bytes: &[u8]) -> WeightBytes {
        #[cfg(target_os = "linux")]
        {
            let (region, start) = huge::place(bytes);
            WeightBytes {
                region,
                start,
                len: bytes.len(),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            WeightBytes {
                bytes: bytes.to_vec(),
            }
        }
    }
}

impl Deref for WeightBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `place` reserved `start..start + len` of the region for these bytes
            // alone and wrote them before returning; nothing writes there again.
            unsafe { std::slice::from_raw_parts(self.region.base().add(self.start), self.len) }
        }
        #[cfg(not(target_os = "linux"))]
        {
            &self.bytes
        }
    }
}

#[cfg(target_os = "linux")]
mod huge {
    use std::sync::{Arc, Mutex, Weak};

    /// The huge page size of x86-64 and of arm64 with 4 KiB base pages.
    const HUGE_PAGE: usize = 2 << 20;

    /// Bytes per shared region: 16 huge pages. A larger matrix gets a region of its own.
    pub(super) const REGION_BYTES: usize = 16 * HUGE_PAGE;

    /// Alignment of each matrix within a region, one cache line.
    const ALIGN: usize = 64;

    /// An anonymous mapping of `len` bytes starting on a huge page boundary.
    pub struct Region {
        base: *mut u8,
        len: usize,
    }

    // SAFETY: a region is plain memory. `place` writes each byte once, under the lock,
    // before any `WeightBytes` hands it out; afterwards it is only read.
    unsafe impl Send for Region {}
    unsafe impl Sync for Region {}

    impl Region {
        pub fn base(&self) -> *mut u8 {
            self.base
        }

        /// Maps `len` bytes (a multiple of `HUGE_PAGE`) aligned to `HUGE_PAGE`, by
        /// mapping one huge page more and unmapping the unaligned ends. Aborts like any
        /// allocation when the system has no memory left.
        fn map(len: usize) -> Region {
            let padded = len + HUGE_PAGE;
            // SAFETY: an anonymous private mapping with no address hint touches no
            // existing memory.
            let mapped = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    padded,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if mapped == libc::MAP_FAILED {
                std::alloc::handle_alloc_error(
                    std::alloc::Layout::from_size_align(len, HUGE_PAGE)
                        .expect("HUGE_PAGE is a power of two"),
                );
            }

            let address = mapped as usize;
            let base = address.next_multiple_of(HUGE_PAGE);
            let head = base - address;
            let tail = padded - head - len;
            // SAFETY: both ranges lie inside the mapping above and outside the region
            // kept. Failing to unmap them would only leave address space mapped.
            unsafe {
                if head > 0 {
                    libc::munmap(mapped, head);
                }
                if tail > 0 {
                    libc::munmap((base + len) as *mut libc::c_void, tail);
                }
                // Advice only: where transparent huge pages are off, the region keeps
                // 4 KiB pages and everything works the same, only slower.
                libc::madvise(base as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
            }

            Region {
                base: base as *mut u8,
                len,
            }
        }
    }

    impl Drop for Region {
        fn drop(&mut self) {
            // SAFETY: `map` created this mapping, and every `WeightBytes` in it keeps an
            // `Arc` to this region, so none remains once the region drops.
            unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
        }
    }

    /// The region that new matrices go into and the bytes already used in it. It is
    /// held weakly, so that a region is unmapped once the matrices in it are dropped.
    static OPEN: Mutex<Option<(Weak<Region>, usize)>> = Mutex::new(None);

    /// Copies `bytes` into a region and returns that region and the offset of the copy.
    pub fn place(bytes: &[u8]) -> (Arc<Region>, usize) {
        let mut open = OPEN.lock().unwrap_or_else(|error| error.into_inner());
        let reusable = open.as_ref().and_then(|(region, used)| {
            let region = region.upgrade()?;
            let start = used.next_multiple_of(ALIGN);
            (start + bytes.len() <= region.len).then_some((region, start))
        });
        let (region, start) = reusable.unwrap_or_else(|| {
            let len = REGION_BYTES.max(bytes.len().next_multiple_of(HUGE_PAGE));
            (Arc::new(Region::map(len)), 0)
        });
        // SAFETY: `start..start + bytes.len()` lies inside the region and past every
        // range handed out before, because `used` only grows while the lock is held.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), region.base.add(start), bytes.len())
        };
        *open = Some((Arc::downgrade(&region), start + bytes.len()));
        (region, start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_their_bytes() {
        let inputs: Vec<Vec<u8>> = [1usize, 63, 64, 1000, 5 << 20, 40 << 20]
            .iter()
            .enumerate()
            .map(|(index, &len)| (0..len).map(|at| (at * 31 + index) as u8).collect())
            .collect();
        let copies: Vec<WeightBytes> = inputs
            .iter()
            .map(|bytes| WeightBytes::copy_of(bytes))
            .collect();
        for (input, copy) in inputs.iter().zip(&copies) {
            assert_eq!(&copy[..], &input[..], "a copy of {} bytes", input.len());
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn copies_start_aligned_in_huge_page_regions() {
        for len in [1, 100, 3 << 20] {
            let copy = WeightBytes::copy_of(&vec![7; len]);
            assert_eq!(
                copy.as_ptr() as usize % 64,
                0,
                "start of a copy of {len} bytes"
            );
            let base = copy.region.base() as usize;
            assert_eq!(base % (2 << 20), 0, "region base {base:#x}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn region_unmapped_after_last_copy() {
        // A copy of exactly one region's size fills a region of its own, so copies from
        // tests running at the same time cannot land in it.
        let copy = WeightBytes::copy_of(&vec![3; super::huge::REGION_BYTES]);
        let region = std::sync::Arc::downgrade(&copy.region);
        assert_eq!(region.strong_count(), 1);
        drop(copy);
        assert!(
            region.upgrade().is_none(),
            "the region outlived its only copy"
        );
    }
}
