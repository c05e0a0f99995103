//! The cited data tables: power profiles, grid intensities and published per-prompt figures.

use serde::{Deserialize, Serialize};

use super::detect::MatchRule;
use crate::error::{Error, Result};

const POWER_PROFILES_CSV: &str = include_str!("../../data/energy/power_profiles.csv");
const GRID_INTENSITY_CSV: &str = include_str!("../../data/energy/grid_intensity.csv");
const PUBLISHED_CSV: &str = include_str!("../../data/energy/published_per_prompt.csv");

/// Device classes a profile row can describe. Each class has one generic row, matched by
/// `class=<name>`, that device detection falls back to.
pub const PROFILE_CLASSES: &[&str] = &[
    "phone",
    "tablet",
    "laptop",
    "desktop",
    "sbc",
    "server",
    "server-vcpu",
];

/// Scope of a profile's watts, which sets the share of them that a run is given.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProfileUnit {
    /// The whole device: a CPU run gets its share of the device's hardware threads.
    Device,
    /// One hardware thread: a run gets the watts times the threads it kept busy.
    PerThread,
    /// A GPU, or the whole PC while its GPU runs: a run on that GPU gets all of it.
    Gpu,
}

/// Whether a row's load figures were measured on hardware or derived from a rating.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    Measured,
    Derived,
}

/// One row of `power_profiles.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerProfile {
    pub id: String,
    /// One of [`PROFILE_CLASSES`].
    pub class: String,
    /// Human-readable device name.
    pub label: String,
    /// Detection rule in the grammar of [`crate::energy::detect::MatchRule`].
    #[serde(rename = "match")]
    pub match_rule: String,
    pub unit: ProfileUnit,
    pub idle_w: f64,
    /// Sustained power under an ML or CPU-heavy load, with its low-high range.
    pub active_w: f64,
    pub active_w_low: f64,
    pub active_w_high: f64,
    /// Rated power (TDP, TGP or board power) where the row uses one.
    pub tdp_w: Option<f64>,
    /// Measurement or rating point: package, SoC, GPU, board, module or wall.
    pub boundary: String,
    /// Battery capacity. Empty for a device without one or whose pack the sources do not give.
    pub battery_wh: Option<f64>,
    /// Hardware threads of the measured device. A device-unit run is scaled by its share of
    /// these, or of the caller's thread count when this is empty.
    pub threads: Option<u32>,
    pub kind: ProfileKind,
    /// One or two sentences on how the figures follow from the sources.
    pub derivation: String,
    /// One or more https URLs, separated by spaces.
    pub source_url: String,
    /// YYYY-MM or YYYY-MM-DD.
    pub source_date: String,
}

impl PowerProfile {
    /// Returns the row's source URLs.
    pub fn source_urls(&self) -> impl Iterator<Item = &str> {
        self.source_url.split_whitespace()
    }
}

/// One row of `grid_intensity.csv`: average grid carbon intensity of a country or region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GridIntensity {
    /// ISO 3166 alpha-3 code, or a region name such as `WORLD`.
    pub code: String,
    /// ISO 3166 alpha-2 code; empty for a region.
    pub alpha2: String,
    pub name: String,
    pub name_fr: String,
    pub g_co2e_per_kwh: f64,
    pub year: String,
    pub source: String,
    pub source_url: String,
    pub licence: String,
    pub retrieved: String,
}

/// One row of `published_per_prompt.csv`: a hosted LLM's published energy per prompt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishedFigure {
    pub id: String,
    pub label: String,
    pub provider: String,
    pub wh_per_prompt: f64,
    pub g_co2e_per_prompt: Option<f64>,
    pub scope: String,
    pub published: String,
    pub source_url: String,
    pub method: String,
}

pub(crate) fn parse_table<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<Vec<T>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for (index, row) in reader.deserialize().enumerate() {
        // Line 1 is the header.
        let row = row.map_err(|e| Error::InvalidData {
            file: file.to_string(),
            line: index + 2,
            reason: e.to_string(),
        })?;
        rows.push(row);
    }
    Ok(rows)
}

/// Rejects a profile row that lacks a source or a date, has a negative or non-finite
/// figure, a low bound above its high bound, an idle draw above its active draw, an
/// unknown class or an invalid match rule.
pub fn validate_profile(profile: &PowerProfile, line: usize) -> Result<()> {
    let invalid = |reason: String| Error::InvalidData {
        file: "power_profiles.csv".into(),
        line,
        reason: format!("row {}: {reason}", profile.id),
    };

    if profile.id.is_empty()
        || !profile
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(invalid(format!(
            "id {:?} must be non-empty lower-case letters, digits and hyphens",
            profile.id
        )));
    }
    if !PROFILE_CLASSES.contains(&profile.class.as_str()) {
        return Err(invalid(format!(
            "class {:?} is not one of {}",
            profile.class,
            PROFILE_CLASSES.join(", ")
        )));
    }
    if profile.label.trim().is_empty() || profile.derivation.trim().is_empty() {
        return Err(invalid("label and derivation must not be empty".into()));
    }
    if profile.source_urls().next().is_none() {
        return Err(invalid(format!(
            "source_url {:?} is missing; give at least one https URL",
            profile.source_url
        )));
    }
    if let Some(url) = profile
        .source_urls()
        .find(|url| !url.starts_with("https://"))
    {
        return Err(invalid(format!("source_url {url:?} is not an https URL")));
    }
    if !is_source_date(&profile.source_date) {
        return Err(invalid(format!(
            "source_date {:?} is not a YYYY-MM or YYYY-MM-DD date",
            profile.source_date
        )));
    }

    let figures = [
        ("idle_w", Some(profile.idle_w)),
        ("active_w", Some(profile.active_w)),
        ("active_w_low", Some(profile.active_w_low)),
        ("active_w_high", Some(profile.active_w_high)),
        ("tdp_w", profile.tdp_w),
        ("battery_wh", profile.battery_wh),
    ];
    for (name, value) in figures {
        if let Some(value) = value {
            if !value.is_finite() || value < 0.0 {
                return Err(invalid(format!(
                    "{name} is {value}; figures must be finite and not negative"
                )));
            }
        }
    }
    if profile.active_w_low > profile.active_w_high {
        return Err(invalid(format!(
            "active_w_low {} exceeds active_w_high {}",
            profile.active_w_low, profile.active_w_high
        )));
    }
    if !(profile.active_w_low <= profile.active_w && profile.active_w <= profile.active_w_high) {
        return Err(invalid(format!(
            "active_w {} must lie within [active_w_low, active_w_high] = [{}, {}]",
            profile.active_w, profile.active_w_low, profile.active_w_high
        )));
    }
    if profile.idle_w > profile.active_w {
        return Err(invalid(format!(
            "idle_w {} exceeds active_w {}",
            profile.idle_w, profile.active_w
        )));
    }
    if profile.battery_wh == Some(0.0) || profile.threads == Some(0) {
        return Err(invalid(
            "battery_wh and threads must be positive or left empty".into(),
        ));
    }
    if let Err(reason) = MatchRule::parse(&profile.match_rule) {
        return Err(invalid(format!(
            "match {:?} is invalid: {reason}",
            profile.match_rule
        )));
    }
    Ok(())
}

/// Returns whether `text` is a YYYY-MM or YYYY-MM-DD date with a month of 01-12 and a day
/// of 01-31.
fn is_source_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let number = |part: &str, digits: usize| {
        (part.len() == digits && part.chars().all(|c| c.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    let year_and_month = |parts: &[&str]| {
        number(parts[0], 4).is_some() && matches!(number(parts[1], 2), Some(1..=12))
    };
    match parts.len() {
        2 => year_and_month(&parts),
        3 => year_and_month(&parts) && matches!(number(parts[2], 2), Some(1..=31)),
        _ => false,
    }
}

/// Parses and validates `power_profiles.csv`, rejecting a duplicate id.
pub fn power_profiles() -> Result<Vec<PowerProfile>> {
    let profiles: Vec<PowerProfile> = parse_table("power_profiles.csv", POWER_PROFILES_CSV)?;
    let mut seen = std::collections::HashSet::new();
    for (index, profile) in profiles.iter().enumerate() {
        validate_profile(profile, index + 2)?;
        if !seen.insert(profile.id.as_str()) {
            return Err(Error::InvalidData {
                file: "power_profiles.csv".into(),
                line: index + 2,
                reason: format!("row {}: the id appears twice", profile.id),
            });
        }
    }
    Ok(profiles)
}

pub fn grid_intensities() -> Result<Vec<GridIntensity>> {
    parse_table("grid_intensity.csv", GRID_INTENSITY_CSV)
}

pub fn published_figures() -> Result<Vec<PublishedFigure>> {
    parse_table("published_per_prompt.csv", PUBLISHED_CSV)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_tables_parse_and_validate() {
        assert!(!power_profiles().unwrap().is_empty());
        let grid = grid_intensities().unwrap();
        assert!(grid.iter().any(|row| row.code == "WORLD"));
        for row in &grid {
            assert!(row.source_url.starts_with("https://"), "{}", row.code);
            assert!(!row.year.is_empty(), "{}", row.code);
        }
        for figure in published_figures().unwrap() {
            assert!(figure.source_url.starts_with("https://"), "{}", figure.id);
            assert!(!figure.published.is_empty(), "{}", figure.id);
        }
    }

    #[test]
    fn profile_without_source_rejected() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.source_url = String::new();
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("source_url"), "{message}");
    }

    #[test]
    fn profile_with_plain_http_source_rejected() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.source_url = "https://example.org/a http://example.org/b".into();
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("http://example.org/b"), "{message}");
    }

    #[test]
    fn profile_without_date_rejected() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.source_date = String::new();
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("source_date"), "{message}");
    }

    #[test]
    fn profile_date_forms() {
        for good in ["2024-05", "2024-05-07", "2019-12-31"] {
            assert!(is_source_date(good), "{good}");
        }
        for bad in [
            "2024",
            "2024-13",
            "2024-00",
            "2024-5",
            "2024-05-32",
            "24-05",
            "May 2024",
        ] {
            assert!(!is_source_date(bad), "{bad}");
        }
    }

    #[test]
    fn profile_low_above_high_rejected() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.active_w_low = profile.active_w_high + 1.0;
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("exceeds active_w_high"), "{message}");
    }

    #[test]
    fn profile_negative_figure_rejected() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.idle_w = -0.5;
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("idle_w is -0.5"), "{message}");

        let mut profile = power_profiles().unwrap().remove(0);
        profile.battery_wh = Some(-1.0);
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("battery_wh"), "{message}");
    }

    #[test]
    fn profile_with_unknown_class_rejected() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.class = "watch".into();
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("class \"watch\""), "{message}");
    }

    #[test]
    fn profile_with_bad_match_rejected() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.match_rule = "renderer~(unclosed".into();
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("match"), "{message}");
    }

    #[test]
    fn shipped_profiles_meet_coverage() {
        let profiles = power_profiles().unwrap();
        assert!(profiles.len() >= 30, "{} rows", profiles.len());
        let measured = profiles
            .iter()
            .filter(|p| p.kind == ProfileKind::Measured)
            .count();
        assert!(measured >= 15, "{measured} measured rows");
        assert!(profiles.iter().any(|p| p.id == "generic-x86-server-vcpu"));
        for class in PROFILE_CLASSES {
            let rule = format!("class={class}");
            let generic: Vec<&str> = profiles
                .iter()
                .filter(|p| p.match_rule == rule)
                .map(|p| p.id.as_str())
                .collect();
            assert_eq!(generic.len(), 1, "generic rows for {class}: {generic:?}");
        }
    }

    #[test]
    fn shipped_battery_only_on_battery_classes() {
        for profile in power_profiles().unwrap() {
            if profile.battery_wh.is_some() {
                assert!(
                    ["phone", "tablet", "laptop"].contains(&profile.class.as_str()),
                    "{}",
                    profile.id
                );
            }
        }
    }
}
