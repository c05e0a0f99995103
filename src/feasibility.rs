//! Whether a finished run's models are practical on the device that ran them: memory
//! against the device's limits, latency per item against the user's budget, load time,
//! decode speed and battery share. The page shows the checks and the verdict with its
//! reasons; every figure comes from the report or from what the browser measured.

use serde::{Deserialize, Serialize};

use crate::energy::Band;
use crate::error::{Error, Result};

/// A wasm32 memory can grow to 4 GiB at most.
pub const WASM32_LIMIT_BYTES: f64 = 4.0 * 1024.0 * 1024.0 * 1024.0;

/// The largest share of the device's memory the models may take, leaving the rest to
/// the system, the browser and other applications. A rule of thumb: mobile systems end
/// background tabs and apps well before memory is full.
pub const DEVICE_MEMORY_SHARE: f64 = 0.5;

/// Measurements the page takes besides the report.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceLimits {
    /// `navigator.deviceMemory` in GiB: rounded and capped by the browser, absent in some.
    pub device_memory_gib: Option<f64>,
    /// The engine's WebAssembly memory after the run: wasm memory never shrinks, so this is its peak.
    pub wasm_memory_bytes: Option<f64>,
    /// Seconds each model took to load, download excluded.
    pub load_seconds: Vec<f64>,
    /// Maximum acceptable wait for one item, in seconds.
    pub budget_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryCheck {
    /// Bytes the models need: the measured wasm memory, or else the model files' size.
    pub needed_bytes: f64,
    /// True when `needed_bytes` was measured rather than taken from the file sizes.
    pub measured: bool,
    pub device_bytes: Option<f64>,
    /// `DEVICE_MEMORY_SHARE` of the device's memory, when the browser reports it.
    pub device_share_bytes: Option<f64>,
    pub wasm_limit_bytes: f64,
    pub fits: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskFeasibility {
    pub task: String,
    pub items: usize,
    pub median_seconds: f64,
    /// The 95th percentile by nearest rank: the slowest item when there are fewer than 20.
    pub p95_seconds: f64,
    pub within_budget: bool,
    pub tokens_per_second: Option<f64>,
    pub battery_pct_per_1000: Option<Band>,
}

/// Reason a run is not feasible, or a check that was skipped.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    OverWasmLimit {
        needed_bytes: f64,
        limit_bytes: f64,
    },
    OverDeviceShare {
        needed_bytes: f64,
        share_bytes: f64,
        device_bytes: f64,
    },
    DeviceMemoryUnknown,
    OverBudget {
        task: String,
        p95_seconds: f64,
        budget_seconds: f64,
    },
    NoItems,
}

#[derive(Debug, Clone, Serialize)]
pub struct Feasibility {
    pub feasible: bool,
    pub budget_seconds: f64,
    pub memory: MemoryCheck,
    pub load_seconds: Option<f64>,
    pub tasks: Vec<TaskFeasibility>,
    /// Failures first, then what could not be checked.
    pub reasons: Vec<Reason>,
}

// The report's fields this module reads; the rest is ignored.
#[derive(Deserialize)]
struct ReportView {
    models: Vec<ModelView>,
    tasks: Vec<TaskView>,
}

#[derive(Deserialize)]
struct ModelView {
    files: Vec<FileView>,
}

#[derive(Deserialize)]
struct FileView {
    bytes: f64,
}

#[derive(Deserialize)]
struct TaskView {
    task: String,
    items: Vec<ItemView>,
    energy: EnergyView,
}

#[derive(Deserialize)]
struct ItemView {
    latency_ms: f64,
    decode_tokens_per_second: Option<f64>,
}

#[derive(Deserialize)]
struct EnergyView {
    battery_pct_per_1000: Option<Band>,
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(sorted: &[f64]) -> f64 {
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// Checks a finished report (as the JSON the page holds) against the device's limits.
pub fn assess(report: &serde_json::Value, limits: &DeviceLimits) -> Result<Feasibility> {
    if !(limits.budget_seconds.is_finite() && limits.budget_seconds > 0.0) {
        return Err(Error::InvalidOption {
            option: "latency budget",
            value: limits.budget_seconds.to_string(),
            expected: "a number of seconds above 0, e.g. 5".into(),
        });
    }
    let view: ReportView = serde_json::from_value(report.clone())?;

    let file_bytes: f64 = view
        .models
        .iter()
        .flat_map(|m| &m.files)
        .map(|f| f.bytes)
        .sum();
    let measured = limits
        .wasm_memory_bytes
        .filter(|bytes| bytes.is_finite() && *bytes > 0.0);
    let needed_bytes = measured.unwrap_or(file_bytes);
    let device_bytes = limits
        .device_memory_gib
        .filter(|gib| gib.is_finite() && *gib > 0.0)
        .map(|gib| gib * 1024.0 * 1024.0 * 1024.0);
    let device_share_bytes = device_bytes.map(|bytes| bytes * DEVICE_MEMORY_SHARE);

    let mut reasons = Vec::new();
    if needed_bytes > WASM32_LIMIT_BYTES {
        reasons.push(Reason::OverWasmLimit {
            needed_bytes,
            limit_bytes: WASM32_LIMIT_BYTES,
        });
    }
    if let (Some(device_bytes), Some(share_bytes)) = (device_bytes, device_share_bytes) {
        if needed_bytes > share_bytes {
            reasons.push(Reason::OverDeviceShare {
                needed_bytes,
                share_bytes,
                device_bytes,
            });
        }
    }
    let memory = MemoryCheck {
        needed_bytes,
        measured: measured.is_some(),
        device_bytes,
        device_share_bytes,
        wasm_limit_bytes: WASM32_LIMIT_BYTES,
        fits: reasons.is_empty(),
    };

    let mut tasks = Vec::new();
    for task in &view.tasks {
        if task.items.is_empty() {
            continue;
        }
        let mut seconds: Vec<f64> = task
            .items
            .iter()
            .map(|item| item.latency_ms / 1000.0)
            .collect();
        seconds.sort_by(f64::total_cmp);
        let p95_seconds = percentile(&seconds, 0.95);
        let speeds: Vec<f64> = task
            .items
            .iter()
            .filter_map(|item| item.decode_tokens_per_second)
            .collect();
        let within_budget = p95_seconds <= limits.budget_seconds;
        if !within_budget {
            reasons.push(Reason::OverBudget {
                task: task.task.clone(),
                p95_seconds,
                budget_seconds: limits.budget_seconds,
            });
        }
        tasks.push(TaskFeasibility {
            task: task.task.clone(),
            items: seconds.len(),
            median_seconds: median(&seconds),
            p95_seconds,
            within_budget,
            tokens_per_second: (!speeds.is_empty())
                .then(|| speeds.iter().sum::<f64>() / speeds.len() as f64),
            battery_pct_per_1000: task.energy.battery_pct_per_1000,
        });
    }
    if tasks.is_empty() {
        reasons.push(Reason::NoItems);
    }
    let feasible = reasons.is_empty();
    if device_bytes.is_none() {
        reasons.push(Reason::DeviceMemoryUnknown);
    }
    let load_seconds = (!limits.load_seconds.is_empty()).then(|| limits.load_seconds.iter().sum());

    Ok(Feasibility {
        feasible,
        budget_seconds: limits.budget_seconds,
        memory,
        load_seconds,
        tasks,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Builds a report with the fields `assess` reads: two model files and two tasks.
    fn report(gsm8k_ms: &[f64]) -> serde_json::Value {
        let items: Vec<_> = gsm8k_ms
            .iter()
            .map(|ms| json!({ "latency_ms": ms, "decode_tokens_per_second": 20.0 }))
            .collect();
        json!({
            "models": [{ "files": [{ "bytes": 98_362_432.0 }] }, { "files": [{ "bytes": 90_868_376.0 }] }],
            "tasks": [
                { "task": "gsm8k", "items": items,
                  "energy": { "battery_pct_per_1000": { "estimate": 2.0, "low": 1.0, "high": 3.0 } } },
                { "task": "sentiment", "items": [{ "latency_ms": 40.0, "decode_tokens_per_second": null }],
                  "energy": { "battery_pct_per_1000": null } },
            ],
        })
    }

    fn limits(budget: f64) -> DeviceLimits {
        DeviceLimits {
            device_memory_gib: Some(8.0),
            budget_seconds: budget,
            ..Default::default()
        }
    }

    #[test]
    fn fast_small_run_is_feasible() {
        let result = assess(&report(&[1000.0, 2000.0, 3000.0]), &limits(5.0)).unwrap();
        assert!(result.feasible, "{:?}", result.reasons);
        assert!(result.reasons.is_empty());
        assert_eq!(result.memory.needed_bytes, 98_362_432.0 + 90_868_376.0);
        assert!(!result.memory.measured);
        let gsm8k = &result.tasks[0];
        assert_eq!(gsm8k.median_seconds, 2.0);
        assert_eq!(gsm8k.p95_seconds, 3.0);
        assert_eq!(gsm8k.tokens_per_second, Some(20.0));
        assert_eq!(gsm8k.battery_pct_per_1000.unwrap().estimate, 2.0);
        assert_eq!(result.tasks[1].tokens_per_second, None);
    }

    #[test]
    fn slow_item_over_budget_names_the_task() {
        let result = assess(&report(&[1000.0, 9000.0]), &limits(5.0)).unwrap();
        assert!(!result.feasible);
        assert_eq!(
            result.reasons,
            vec![Reason::OverBudget {
                task: "gsm8k".into(),
                p95_seconds: 9.0,
                budget_seconds: 5.0
            }]
        );
        assert!(result.tasks[1].within_budget);
    }

    #[test]
    fn p95_ignores_one_slow_item_in_twenty() {
        let mut ms = vec![1000.0; 19];
        ms.push(60_000.0);
        let result = assess(&report(&ms), &limits(5.0)).unwrap();
        assert_eq!(result.tasks[0].p95_seconds, 1.0);
        assert!(result.feasible);
    }

    #[test]
    fn measured_memory_over_half_the_device_fails() {
        let mut device = limits(5.0);
        device.device_memory_gib = Some(1.0);
        device.wasm_memory_bytes = Some(700.0 * 1024.0 * 1024.0);
        let result = assess(&report(&[1000.0]), &device).unwrap();
        assert!(!result.feasible);
        assert!(result.memory.measured);
        assert!(
            matches!(result.reasons[0], Reason::OverDeviceShare { .. }),
            "{:?}",
            result.reasons
        );
    }

    #[test]
    fn unknown_device_memory_noted_without_failing() {
        let mut device = limits(5.0);
        device.device_memory_gib = None;
        let result = assess(&report(&[1000.0]), &device).unwrap();
        assert!(result.feasible);
        assert_eq!(result.reasons, vec![Reason::DeviceMemoryUnknown]);
    }

    #[test]
    fn memory_beyond_wasm32_fails() {
        let mut device = limits(5.0);
        device.wasm_memory_bytes = Some(5.0 * 1024.0 * 1024.0 * 1024.0);
        device.device_memory_gib = Some(64.0);
        let result = assess(&report(&[1000.0]), &device).unwrap();
        assert!(matches!(result.reasons[0], Reason::OverWasmLimit { .. }));
    }

    #[test]
    fn zero_budget_rejected_with_the_value() {
        let message = assess(&report(&[1000.0]), &limits(0.0))
            .unwrap_err()
            .to_string();
        assert!(message.contains("latency budget"), "{message}");
        assert!(message.contains("above 0"), "{message}");
    }

    #[test]
    fn run_without_items_is_not_feasible() {
        let empty = json!({ "models": [], "tasks": [] });
        let result = assess(&empty, &limits(5.0)).unwrap();
        assert!(!result.feasible);
        assert_eq!(result.reasons, vec![Reason::NoItems]);
    }
}
