//! Wall-clock timing that works natively and in the browser, where `std::time::Instant` panics.

pub use web_time::Instant;

/// Milliseconds elapsed since `start`, as a float.
pub fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
