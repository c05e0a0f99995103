//! The cited data tables: power profiles, grid intensities and published per-prompt figures.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const POWER_PROFILES_CSV: &str = include_str!("../../data/energy/power_profiles.csv");
const GRID_INTENSITY_CSV: &str = include_str!("../../data/energy/grid_intensity.csv");
const PUBLISHED_CSV: &str = include_str!("../../data/energy/published_per_prompt.csv");

/// Whether a profile's watts describe the whole device or one hardware thread.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProfileScope {
    Device,
    PerThread,
}

/// One row of `power_profiles.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PowerProfile {
    pub id: String,
    pub class: String,
    /// How the row is matched to a detected device.
    #[serde(rename = "match")]
    pub match_rule: String,
    pub scope: ProfileScope,
    pub idle_w: f64,
    /// Sustained power under ML load, with its low-high range.
    pub active_w: f64,
    pub active_w_low: f64,
    pub active_w_high: f64,
    pub tdp_w: Option<f64>,
    /// What was measured: package, board or wall.
    pub boundary: String,
    pub battery_wh: Option<f64>,
    pub source_url: String,
    pub source_date: String,
    pub derivation: String,
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

fn parse_table<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<Vec<T>> {
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

/// Rejects a profile row that lacks a source or a date, or whose numbers are inconsistent.
pub fn validate_profile(profile: &PowerProfile, line: usize) -> Result<()> {
    let invalid = |reason: String| Error::InvalidData {
        file: "power_profiles.csv".into(),
        line,
        reason,
    };
    if !profile.source_url.starts_with("https://") {
        return Err(invalid(format!(
            "row {}: source_url {:?} is not an https URL",
            profile.id, profile.source_url
        )));
    }
    if profile.source_date.len() < 7
        || !profile
            .source_date
            .chars()
            .take(4)
            .all(|c| c.is_ascii_digit())
    {
        return Err(invalid(format!(
            "row {}: source_date {:?} is not a YYYY-MM[-DD] date",
            profile.id, profile.source_date
        )));
    }
    if !(profile.active_w_low <= profile.active_w && profile.active_w <= profile.active_w_high) {
        return Err(invalid(format!(
            "row {}: active_w must lie within [active_w_low, active_w_high]",
            profile.id
        )));
    }
    if profile.idle_w < 0.0 || profile.idle_w > profile.active_w {
        return Err(invalid(format!(
            "row {}: idle_w must be between 0 and active_w",
            profile.id
        )));
    }
    Ok(())
}

pub fn power_profiles() -> Result<Vec<PowerProfile>> {
    let profiles: Vec<PowerProfile> = parse_table("power_profiles.csv", POWER_PROFILES_CSV)?;
    for (index, profile) in profiles.iter().enumerate() {
        validate_profile(profile, index + 2)?;
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
    fn profile_without_date_rejected() {
        let mut profile = power_profiles().unwrap().remove(0);
        profile.source_date = String::new();
        let message = validate_profile(&profile, 2).unwrap_err().to_string();
        assert!(message.contains("source_date"), "{message}");
    }
}
