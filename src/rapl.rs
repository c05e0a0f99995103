//! Package energy from Linux's RAPL counters (`/sys/class/powercap/intel-rapl:N`), read
//! before and after each task so the report can set a measurement beside the estimate.
//! Virtual machines and most non-Intel/AMD machines expose no counters, and reading them
//! needs root on recent kernels: the report then gives the reason there is no measurement.

use std::path::{Path, PathBuf};

use crate::report::MeasuredEnergy;

const POWERCAP: &str = "/sys/class/powercap";

/// One package-level RAPL zone: its name and counter files.
#[derive(Debug, Clone)]
struct Zone {
    name: String,
    counter: PathBuf,
    /// The counter wraps to zero after this many microjoules.
    range_uj: u64,
}

/// The package zones of this machine, or the reason none can be read.
#[derive(Debug, Clone)]
pub struct Rapl {
    zones: Vec<Zone>,
}

/// A reading of every zone's counter, in microjoules.
#[derive(Debug, Clone)]
pub struct Reading(Vec<u64>);

fn read_u64(path: &Path) -> std::io::Result<u64> {
    std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl Rapl {
    /// Finds the readable package zones under `root` (normally `/sys/class/powercap`).
    pub fn open_at(root: &Path) -> Result<Self, String> {
        let entries = std::fs::read_dir(root)
            .map_err(|e| format!("{} is not readable ({e}): no RAPL counters", root.display()))?;
        let mut zones = Vec::new();
        let mut unreadable = None;
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in names {
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Package zones are `intel-rapl:N`; `intel-rapl:N:M` are sub-zones inside them.
            if !file_name.starts_with("intel-rapl:") || file_name.matches(':').count() != 1 {
                continue;
            }
            let name = std::fs::read_to_string(path.join("name")).unwrap_or_default();
            let counter = path.join("energy_uj");
            match (
                read_u64(&counter),
                read_u64(&path.join("max_energy_range_uj")),
            ) {
                (Ok(_), Ok(range_uj)) => zones.push(Zone {
                    name: name.trim().to_string(),
                    counter,
                    range_uj,
                }),
                (Err(e), _) | (_, Err(e)) => {
                    unreadable = Some(format!("{}: {e}", counter.display()))
                }
            }
        }
        if zones.is_empty() {
            return Err(unreadable.map_or_else(
                || format!("no intel-rapl package zone under {}", root.display()),
                |reason| {
                    format!(
                        "RAPL counters exist but cannot be read ({reason}); run as root to measure"
                    )
                },
            ));
        }
        Ok(Self { zones })
    }

    pub fn open() -> Result<Self, String> {
        Self::open_at(Path::new(POWERCAP))
    }

    pub fn read(&self) -> Reading {
        Reading(
            self.zones
                .iter()
                .map(|zone| read_u64(&zone.counter).unwrap_or(0))
                .collect(),
        )
    }

    /// Energy between two readings, allowing each counter to wrap once.
    pub fn measured(&self, task: &str, before: &Reading, after: &Reading) -> MeasuredEnergy {
        let microjoules: u64 = self
            .zones
            .iter()
            .zip(before.0.iter().zip(&after.0))
            .map(|(zone, (&start, &end))| {
                if end >= start {
                    end - start
                } else {
                    zone.range_uj - start + end
                }
            })
            .sum();
        let joules = microjoules as f64 / 1e6;
        MeasuredEnergy {
            task: task.to_string(),
            joules,
            wh: joules / 3600.0,
            zones: self.zones.iter().map(|zone| zone.name.clone()).collect(),
            boundary: "package (RAPL): the whole machine's CPU packages, not only this process"
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays out a powercap folder like the kernel's, in a temporary folder.
    fn fake_powercap(zones: &[(&str, &str, u64, u64)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (folder, name, energy, range) in zones {
            let zone = root.path().join(folder);
            std::fs::create_dir_all(&zone).unwrap();
            std::fs::write(zone.join("name"), format!("{name}\n")).unwrap();
            std::fs::write(zone.join("energy_uj"), format!("{energy}\n")).unwrap();
            std::fs::write(zone.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
        }
        root
    }

    #[test]
    fn package_zones_are_summed_and_wraps_handled() {
        let root = fake_powercap(&[
            ("intel-rapl:0", "package-0", 1_000_000, 10_000_000),
            ("intel-rapl:0:0", "core", 5, 10_000_000),
            ("intel-rapl:1", "package-1", 9_000_000, 10_000_000),
        ]);
        let rapl = Rapl::open_at(root.path()).unwrap();
        let before = rapl.read();
        std::fs::write(root.path().join("intel-rapl:0/energy_uj"), "4000000").unwrap();
        // Package 1 wrapped: 9 J to the 10 J range, then 0.5 J more.
        std::fs::write(root.path().join("intel-rapl:1/energy_uj"), "500000").unwrap();
        let measured = rapl.measured("gsm8k", &before, &rapl.read());
        assert!((measured.joules - 4.5).abs() < 1e-9, "{measured:?}");
        assert_eq!(measured.zones, vec!["package-0", "package-1"]);
    }

    #[test]
    fn missing_counters_give_a_reason() {
        let empty = tempfile::tempdir().unwrap();
        let reason = Rapl::open_at(empty.path()).unwrap_err();
        assert!(reason.contains("no intel-rapl package zone"), "{reason}");
        let reason = Rapl::open_at(Path::new("/nonexistent/powercap")).unwrap_err();
        assert!(reason.contains("not readable"), "{reason}");
    }
}
