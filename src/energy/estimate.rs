//! Energy of a measured run: power from a profile × measured time, with a low-high band.
//!
//! Attributional energy is the run's share of the device's active power × time. Marginal
//! energy subtracts the same share of the idle power, so it counts only what running the
//! model added. Both come in Wh and J, per task, per item and per 1,000 items, and the band
//! comes from the row's `active_w_low`-`active_w_high` range.

use serde::Serialize;

use super::tables::{GridIntensity, PowerProfile, ProfileKind, ProfileUnit};

const JOULES_PER_WH: f64 = 3600.0;

/// A central estimate with its low and high bounds, in the unit its field names.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct Band {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

impl Band {
    fn scaled(self, factor: f64) -> Band {
        Band {
            estimate: self.estimate * factor,
            low: self.low * factor,
            high: self.high * factor,
        }
    }

    /// Subtracts `amount` from each bound, stopping at zero.
    fn less(self, amount: f64) -> Band {
        Band {
            estimate: (self.estimate - amount).max(0.0),
            low: (self.low - amount).max(0.0),
            high: (self.high - amount).max(0.0),
        }
    }
}

/// Device energy and emissions of a run.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceEnergy {
    pub seconds: f64,
    pub items: usize,
    /// Hardware threads the run kept busy (CPU time over wall time where measured), limited
    /// to `device_threads`.
    pub threads_used: f64,
    /// Hardware threads the share is taken of: the profile's `threads` where the row gives
    /// them, otherwise the count the caller passed.
    pub device_threads: usize,
    /// Multiplier applied to the profile's watts: threads used over device threads for a
    /// device row, threads used for a per-thread row, and 1 for a GPU row.
    pub share: f64,
    pub unit: ProfileUnit,
    pub profile_kind: ProfileKind,
    /// Active power attributed to the run, in W.
    pub power_w: Band,
    /// Idle power attributed to the run, in W.
    pub idle_w: f64,
    /// Attributional energy: active power × time.
    pub attributional_wh: Band,
    /// Marginal energy: (active − idle) power × time.
    pub marginal_wh: Band,
    pub attributional_j: Band,
    pub marginal_j: Band,
    pub attributional_wh_per_item: Band,
    pub marginal_wh_per_item: Band,
    pub attributional_j_per_item: Band,
    pub marginal_j_per_item: Band,
    pub attributional_wh_per_1000: Band,
    pub marginal_wh_per_1000: Band,
    /// Attributional energy of 1,000 items as a percentage of the profile's battery, or
    /// `None` for a profile without `battery_wh`. The battery drains more than this when the
    /// screen or other work draws power at the same time.
    pub battery_pct_per_1000: Option<Band>,
    pub g_co2e: Band,
    pub g_co2e_per_item: Band,
    pub g_co2e_per_1000: Band,
    pub profile_id: String,
    pub grid_code: String,
    pub method: String,
}

/// Share of a profile's watts given to a run, with the thread counts it was computed from.
struct Share {
    factor: f64,
    threads_used: f64,
    device_threads: usize,
}

/// Computes the share of a profile's watts that a run of `threads_used` busy threads gets.
///
/// A device row is scaled by the run's share of hardware threads, as CodeCarbon 3.3.0 scales
/// a CPU's TDP by a process's CPU load over the CPU count in its process tracking mode.
/// The thread count is the row's own `threads` where given, because its watts were measured
/// on that device, and `device_threads` otherwise.
// NOTE: the thread share understates a one-thread run on phones and Apple chips, whose
// performance cores draw more than their share of the package power.
fn run_share(profile: &PowerProfile, threads_used: f64, device_threads: usize) -> Share {
    let device_threads = match (profile.unit, profile.threads) {
        (ProfileUnit::Device, Some(threads)) => threads as usize,
        _ => device_threads.max(1),
    };
    let threads_used = if threads_used.is_finite() {
        threads_used.clamp(0.01, device_threads as f64)
    } else {
        device_threads as f64
    };
    let factor = match profile.unit {
        ProfileUnit::Device => threads_used / device_threads as f64,
        ProfileUnit::PerThread => threads_used,
        ProfileUnit::Gpu => 1.0,
    };
    Share {
        factor,
        threads_used,
        device_threads,
    }
}

/// Estimates the energy of a run of `seconds` over `items` items that kept `threads_used`
/// of the device's `device_threads` busy.
///
/// A device row is scaled by the run's share of hardware threads (see the row's `threads`),
/// a per-thread row is multiplied by the threads used, and a GPU row is given in full. A
/// negative or non-finite `seconds` counts as zero, and `items` of zero counts as one for
/// the per-item figures.
pub fn estimate_device(
    profile: &PowerProfile,
    grid: &GridIntensity,
    seconds: f64,
    items: usize,
    threads_used: f64,
    device_threads: usize,
) -> DeviceEnergy {
    let share = run_share(profile, threads_used, device_threads);
    let power_w = Band {
        estimate: profile.active_w,
        low: profile.active_w_low,
        high: profile.active_w_high,
    }
    .scaled(share.factor);
    let idle_w = profile.idle_w * share.factor;

    let seconds = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    let hours = seconds / 3600.0;
    let attributional_wh = power_w.scaled(hours);
    let marginal_wh = power_w.less(idle_w).scaled(hours);

    let per_item = 1.0 / items.max(1) as f64;
    let per_1000 = per_item * 1000.0;
    let attributional_wh_per_1000 = attributional_wh.scaled(per_1000);
    let battery_pct_per_1000 = profile
        .battery_wh
        .map(|battery_wh| attributional_wh_per_1000.scaled(100.0 / battery_wh));
    let g_co2e = attributional_wh.scaled(grid.g_co2e_per_kwh / 1000.0);

    DeviceEnergy {
        seconds,
        items,
        threads_used: share.threads_used,
        device_threads: share.device_threads,
        share: share.factor,
        unit: profile.unit,
        profile_kind: profile.kind,
        power_w,
        idle_w,
        attributional_wh,
        marginal_wh,
        attributional_j: attributional_wh.scaled(JOULES_PER_WH),
        marginal_j: marginal_wh.scaled(JOULES_PER_WH),
        attributional_wh_per_item: attributional_wh.scaled(per_item),
        marginal_wh_per_item: marginal_wh.scaled(per_item),
        attributional_j_per_item: attributional_wh.scaled(per_item * JOULES_PER_WH),
        marginal_j_per_item: marginal_wh.scaled(per_item * JOULES_PER_WH),
        attributional_wh_per_1000,
        marginal_wh_per_1000: marginal_wh.scaled(per_1000),
        battery_pct_per_1000,
        g_co2e,
        g_co2e_per_item: g_co2e.scaled(per_item),
        g_co2e_per_1000: g_co2e.scaled(per_1000),
        profile_id: profile.id.clone(),
        grid_code: grid.code.clone(),
        method: method_text(profile.unit).into(),
    }
}

fn method_text(unit: ProfileUnit) -> &'static str {
    match unit {
        ProfileUnit::Device => {
            "energy = profile active power x share of the device's hardware threads x measured \
             time; marginal energy subtracts the same share of idle power; \
             CO2e = energy x grid intensity"
        }
        ProfileUnit::PerThread => {
            "energy = profile active power per thread x busy threads x measured time; marginal \
             energy subtracts idle power per thread x busy threads; \
             CO2e = energy x grid intensity"
        }
        ProfileUnit::Gpu => {
            "energy = profile active power of the GPU system x measured time; marginal energy \
             subtracts its idle power; CO2e = energy x grid intensity"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::tables::{grid_intensities, power_profiles};

    /// WORLD grid intensity from `grid_intensity.csv`, 472.94 g/kWh at the time of writing.
    fn world() -> GridIntensity {
        grid_intensities()
            .unwrap()
            .into_iter()
            .find(|row| row.code == "WORLD")
            .unwrap()
    }

    /// Builds a device row with active 40 W (30-50 W), idle 5 W and no thread count or battery.
    fn device_profile() -> PowerProfile {
        let mut profile = power_profiles()
            .unwrap()
            .into_iter()
            .find(|p| p.id == "generic-desktop")
            .unwrap();
        profile.unit = ProfileUnit::Device;
        profile.active_w = 40.0;
        profile.active_w_low = 30.0;
        profile.active_w_high = 50.0;
        profile.idle_w = 5.0;
        profile.threads = None;
        profile.battery_wh = None;
        profile
    }

    fn assert_close(actual: f64, expected: f64, label: &str) {
        assert!(
            (actual - expected).abs() < 1e-9 * expected.abs().max(1.0),
            "{label}: {actual} != {expected}"
        );
    }

    fn assert_band(band: Band, expected: [f64; 3], label: &str) {
        assert_close(band.low, expected[0], &format!("{label} low"));
        assert_close(band.estimate, expected[1], &format!("{label} estimate"));
        assert_close(band.high, expected[2], &format!("{label} high"));
    }

    #[test]
    fn per_thread_profile_worked_example() {
        let profile = power_profiles()
            .unwrap()
            .into_iter()
            .find(|p| p.id == "generic-x86-server-vcpu")
            .unwrap();
        // 1 thread at 2.19 W (1.31-3.06 W) for 36 s = 0.01 h, over 4 items.
        let energy = estimate_device(&profile, &world(), 36.0, 4, 1.0, 2);
        assert_close(energy.share, 1.0, "share");
        assert_eq!(energy.device_threads, 2);
        assert_band(energy.attributional_wh, [0.0131, 0.0219, 0.0306], "Wh");
        // 0.0219 Wh × 3600 J/Wh = 78.84 J.
        assert_close(energy.attributional_j.estimate, 78.84, "J");
        // Marginal: (2.19 − 0.22) W × 0.01 h = 0.0197 Wh.
        assert_close(energy.marginal_wh.estimate, 0.0197, "marginal Wh");
        assert_close(
            energy.attributional_wh_per_item.estimate,
            0.005475,
            "Wh per item",
        );
        assert_close(
            energy.attributional_wh_per_1000.estimate,
            5.475,
            "Wh per 1000",
        );
        assert_close(
            energy.marginal_wh_per_1000.estimate,
            4.925,
            "marginal Wh per 1000",
        );
        // 0.0219 Wh × 472.94 g/kWh / 1000 = 0.010357386 g.
        assert_close(energy.g_co2e.estimate, 0.0219 * 0.47294, "g CO2e");
        assert_eq!(energy.battery_pct_per_1000, None);
    }

    #[test]
    fn per_thread_profile_multiplies_threads() {
        let profile = power_profiles()
            .unwrap()
            .into_iter()
            .find(|p| p.id == "generic-x86-server-vcpu")
            .unwrap();
        // 3 of 4 threads: 3 × 2.19 W = 6.57 W, so 1 h uses 6.57 Wh.
        let energy = estimate_device(&profile, &world(), 3600.0, 1, 3.0, 4);
        assert_close(energy.power_w.estimate, 6.57, "W");
        assert_close(energy.idle_w, 0.66, "idle W");
        assert_close(energy.attributional_wh.estimate, 6.57, "Wh");
    }

    #[test]
    fn device_profile_attributional_worked_example() {
        // 2 of 8 threads: share 0.25, so 10 W (7.5-12.5 W). 36 s = 0.01 h gives 0.1 Wh
        // (0.075-0.125 Wh) = 360 J (270-450 J). Over 4 items that is 0.025 Wh = 90 J per
        // item and 25 Wh per 1,000 items.
        let energy = estimate_device(&device_profile(), &world(), 36.0, 4, 2.0, 8);
        assert_close(energy.share, 0.25, "share");
        assert_band(energy.power_w, [7.5, 10.0, 12.5], "W");
        assert_band(energy.attributional_wh, [0.075, 0.1, 0.125], "Wh");
        assert_band(energy.attributional_j, [270.0, 360.0, 450.0], "J");

        assert_band(
            energy.attributional_wh_per_item,
            [0.01875, 0.025, 0.03125],
            "Wh per item",
        );
        assert_band(
            energy.attributional_j_per_item,
            [67.5, 90.0, 112.5],
            "J per item",
        );
        assert_band(
            energy.attributional_wh_per_1000,
            [18.75, 25.0, 31.25],
            "Wh per 1000",
        );

        // 0.1 Wh × 472.94 g/kWh / 1000 = 0.047294 g, or 0.0118235 g per item.
        assert_close(energy.g_co2e.estimate, 0.047294, "g CO2e");
        assert_close(
            energy.g_co2e_per_item.estimate,
            0.0118235,
            "g CO2e per item",
        );
        assert_close(energy.g_co2e_per_1000.estimate, 11.8235, "g CO2e per 1000");
    }

    #[test]
    fn device_profile_marginal_worked_example() {
        // Idle share 0.25 × 5 W = 1.25 W. Marginal power (10 − 1.25) W = 8.75 W, bounds
        // 6.25 W and 11.25 W. Over 0.01 h that is 0.0875 Wh (0.0625-0.1125 Wh) = 315 J.
        let energy = estimate_device(&device_profile(), &world(), 36.0, 4, 2.0, 8);
        assert_close(energy.idle_w, 1.25, "idle W");
        assert_band(energy.marginal_wh, [0.0625, 0.0875, 0.1125], "marginal Wh");
        assert_band(energy.marginal_j, [225.0, 315.0, 405.0], "marginal J");
        assert_close(energy.marginal_wh_per_item.estimate, 0.021875, "per item");
        assert_close(energy.marginal_j_per_item.estimate, 78.75, "J per item");
        assert_close(energy.marginal_wh_per_1000.estimate, 21.875, "per 1000");
    }

    #[test]
    fn battery_share_worked_example() {
        // 25 Wh (18.75-31.25 Wh) per 1,000 items on a 50 Wh battery is 50 % (37.5-62.5 %).
        let mut profile = device_profile();
        profile.battery_wh = Some(50.0);
        let energy = estimate_device(&profile, &world(), 36.0, 4, 2.0, 8);
        let battery = energy.battery_pct_per_1000.expect("battery share");
        assert_band(battery, [37.5, 50.0, 62.5], "battery %");
    }

    #[test]
    fn row_threads_override_caller_count() {
        // The row was measured on a 4-thread device, so 2 busy threads are half of it
        // whatever the caller reports: 0.5 × 40 W = 20 W.
        let mut profile = device_profile();
        profile.threads = Some(4);
        let energy = estimate_device(&profile, &world(), 3600.0, 1, 2.0, 8);
        assert_eq!(energy.device_threads, 4);
        assert_close(energy.share, 0.5, "share");
        assert_close(energy.power_w.estimate, 20.0, "W");

        // 6 busy threads on a 4-thread row are limited to 4: the whole device.
        let energy = estimate_device(&profile, &world(), 3600.0, 1, 6.0, 8);
        assert_close(energy.threads_used, 4.0, "threads used");
        assert_close(energy.share, 1.0, "share");
        assert_close(energy.attributional_wh.estimate, 40.0, "Wh");
    }

    #[test]
    fn gpu_profile_ignores_thread_share() {
        // A GPU row is given in full: 200 W for 18 s = 0.005 h is 1 Wh over 10 items,
        // 0.1 Wh each. Marginal: (200 − 30) W × 0.005 h = 0.85 Wh.
        let mut profile = device_profile();
        profile.unit = ProfileUnit::Gpu;
        profile.active_w = 200.0;
        profile.active_w_low = 150.0;
        profile.active_w_high = 250.0;
        profile.idle_w = 30.0;
        let energy = estimate_device(&profile, &world(), 18.0, 10, 1.0, 16);
        assert_close(energy.share, 1.0, "share");
        assert_band(energy.attributional_wh, [0.75, 1.0, 1.25], "Wh");
        assert_close(
            energy.attributional_wh_per_item.estimate,
            0.1,
            "Wh per item",
        );
        assert_band(energy.marginal_wh, [0.6, 0.85, 1.1], "marginal Wh");
    }

    #[test]
    fn marginal_bound_stops_at_zero() {
        // Low bound 4 W is under the 5 W idle, so its marginal energy is 0, not negative.
        let mut profile = device_profile();
        profile.active_w = 10.0;
        profile.active_w_low = 4.0;
        profile.active_w_high = 12.0;
        let energy = estimate_device(&profile, &world(), 3600.0, 1, 8.0, 8);
        assert_band(energy.marginal_wh, [0.0, 5.0, 7.0], "marginal Wh");
    }

    #[test]
    fn negative_or_nan_time_counts_as_zero() {
        for seconds in [-5.0, f64::NAN] {
            let energy = estimate_device(&device_profile(), &world(), seconds, 1, 1.0, 8);
            assert_eq!(energy.seconds, 0.0);
            assert_eq!(energy.attributional_wh.high, 0.0);
        }
    }

    #[test]
    fn zero_items_count_as_one() {
        let energy = estimate_device(&device_profile(), &world(), 36.0, 0, 2.0, 8);
        assert_close(
            energy.attributional_wh_per_item.estimate,
            0.1,
            "Wh per item",
        );
    }
}
