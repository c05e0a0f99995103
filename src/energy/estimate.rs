//! Energy of a measured run: power from a profile × measured time, with a low-high band.

use serde::Serialize;

use super::tables::{GridIntensity, PowerProfile, ProfileScope};

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
}

/// Device energy and emissions of a run.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceEnergy {
    pub seconds: f64,
    pub items: usize,
    /// Hardware threads the run kept busy (CPU time over wall time where measured) and the device's total.
    pub threads_used: f64,
    pub device_threads: usize,
    /// Power attributed to the run, in W.
    pub power_w: Band,
    /// Attributional energy: active power × time.
    pub attributional_wh: Band,
    /// Marginal energy: (active − idle) power × time.
    pub marginal_wh: Band,
    pub attributional_wh_per_item: Band,
    pub attributional_wh_per_1000: Band,
    pub g_co2e: Band,
    pub g_co2e_per_item: Band,
    pub profile_id: String,
    pub grid_code: String,
    pub method: String,
}

/// Estimates the energy of a run of `seconds` that kept `threads_used` of the device's
/// `device_threads` busy. A device-wide profile is scaled by the share of threads, as
/// CodeCarbon scales CPU power per process; a per-thread profile is multiplied by the
/// threads used.
pub fn estimate_device(
    profile: &PowerProfile,
    grid: &GridIntensity,
    seconds: f64,
    items: usize,
    threads_used: f64,
    device_threads: usize,
) -> DeviceEnergy {
    let threads_used = threads_used.clamp(0.01, device_threads.max(1) as f64);
    let device_threads = device_threads.max(1);
    let factor = match profile.scope {
        ProfileScope::PerThread => threads_used,
        ProfileScope::Device => threads_used / device_threads as f64,
    };
    let power_w = Band {
        estimate: profile.active_w,
        low: profile.active_w_low,
        high: profile.active_w_high,
    }
    .scaled(factor);
    let idle_w = profile.idle_w * factor;
    let hours = seconds / 3600.0;

    let attributional_wh = power_w.scaled(hours);
    let marginal_wh = Band {
        estimate: (power_w.estimate - idle_w).max(0.0) * hours,
        low: (power_w.low - idle_w).max(0.0) * hours,
        high: (power_w.high - idle_w).max(0.0) * hours,
    };
    let per_item = 1.0 / items.max(1) as f64;
    let g_co2e = attributional_wh.scaled(grid.g_co2e_per_kwh / 1000.0);

    DeviceEnergy {
        seconds,
        items,
        threads_used,
        device_threads,
        power_w,
        attributional_wh,
        marginal_wh,
        attributional_wh_per_item: attributional_wh.scaled(per_item),
        attributional_wh_per_1000: attributional_wh.scaled(per_item * 1000.0),
        g_co2e,
        g_co2e_per_item: g_co2e.scaled(per_item),
        profile_id: profile.id.clone(),
        grid_code: grid.code.clone(),
        method: "energy = profile active power x share of hardware threads x measured time; \
                 CO2e = energy x grid intensity"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::tables::{grid_intensities, power_profiles};

    fn world() -> GridIntensity {
        grid_intensities()
            .unwrap()
            .into_iter()
            .find(|row| row.code == "WORLD")
            .unwrap()
    }

    #[test]
    fn per_thread_profile_worked_example() {
        let profile = power_profiles()
            .unwrap()
            .into_iter()
            .find(|p| p.id == "generic-x86-server-vcpu")
            .unwrap();
        // 1 thread at 2.19 W for 36 s over 4 items: 2.19 W × 0.01 h = 0.0219 Wh.
        let energy = estimate_device(&profile, &world(), 36.0, 4, 1.0, 2);
        assert!((energy.attributional_wh.estimate - 0.0219).abs() < 1e-9);
        assert!((energy.attributional_wh.low - 0.0131).abs() < 1e-9);
        assert!((energy.attributional_wh.high - 0.0306).abs() < 1e-9);
        // Marginal: (2.19 − 0.22) W × 0.01 h.
        assert!((energy.marginal_wh.estimate - 0.0197).abs() < 1e-9);
        assert!((energy.attributional_wh_per_item.estimate - 0.005475).abs() < 1e-9);
        assert!((energy.attributional_wh_per_1000.estimate - 5.475).abs() < 1e-9);
        // 0.0219 Wh × 472.94 g/kWh / 1000 = 0.010357386 g.
        assert!((energy.g_co2e.estimate - 0.0219 * 0.47294).abs() < 1e-12);
    }

    #[test]
    fn device_profile_scaled_by_thread_share() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.scope = ProfileScope::Device;
        profile.active_w = 40.0;
        profile.active_w_low = 30.0;
        profile.active_w_high = 50.0;
        profile.idle_w = 5.0;
        let energy = estimate_device(&profile, &world(), 3600.0, 1, 2.0, 8);
        assert!((energy.power_w.estimate - 10.0).abs() < 1e-12);
        assert!((energy.attributional_wh.estimate - 10.0).abs() < 1e-12);
        assert!((energy.marginal_wh.estimate - 8.75).abs() < 1e-12);
    }
}
