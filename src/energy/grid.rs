//! Choosing the grid intensity row: the user's pick, or a guess from the browser's
//! locale or time zone that is labelled as a guess, or the world average.

use serde::Serialize;

use super::tables::{grid_intensities, GridIntensity};
use crate::error::{Error, Result};

const TIME_ZONES_CSV: &str = include_str!("../../data/energy/time_zones.csv");

/// The grid row a run uses and how it was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct GridChoice {
    pub grid: GridIntensity,
    /// `user` (picked), `locale` or `time_zone` (guessed), or `fallback` (world average).
    pub chosen_by: &'static str,
    pub guessed: bool,
    pub reason: String,
}

/// Returns the country (ISO alpha-2) of an IANA time zone, from the tz database's `zone.tab`.
pub fn country_of_time_zone(time_zone: &str) -> Option<String> {
    TIME_ZONES_CSV.lines().skip(1).find_map(|line| {
        let (zone, country) = line.split_once(',')?;
        (zone == time_zone).then(|| country.to_string())
    })
}

/// Returns the region subtag of a BCP 47 locale such as `fr-FR` or `en-Latn-US`.
fn region_of_locale(locale: &str) -> Option<String> {
    locale
        .split(['-', '_'])
        .skip(1)
        .find(|part| part.len() == 2 && part.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|part| part.to_ascii_uppercase())
}

/// Chooses the grid row: `code` when the user picked one (alpha-3, alpha-2 or a region
/// name), else a guess from the locale's region, else from the time zone, else the
/// world average. An unknown picked code is an error that lists how to find the codes.
pub fn choose_grid(
    code: Option<&str>,
    locale: Option<&str>,
    time_zone: Option<&str>,
) -> Result<GridChoice> {
    let rows = grid_intensities()?;
    let by_alpha2 = |alpha2: &str| rows.iter().find(|row| row.alpha2 == alpha2).cloned();
    if let Some(code) = code {
        let requested = code.trim().to_ascii_uppercase();
        let row = rows
            .iter()
            .find(|row| {
                row.code == requested || (!row.alpha2.is_empty() && row.alpha2 == requested)
            })
            .cloned()
            .ok_or_else(|| Error::InvalidOption {
                option: "grid",
                value: code.to_string(),
                expected: "an ISO 3166 country code such as FRA or FR, or a region such as \
                           WORLD or EU, as listed in data/energy/grid_intensity.csv"
                    .into(),
            })?;
        return Ok(GridChoice {
            reason: format!("picked: {}", row.name),
            grid: row,
            chosen_by: "user",
            guessed: false,
        });
    }
    if let Some((locale, row)) = locale
        .and_then(|l| region_of_locale(l).map(|region| (l, region)))
        .and_then(|(l, region)| by_alpha2(&region).map(|row| (l, row)))
    {
        return Ok(GridChoice {
            reason: format!("guessed from the browser's language {locale}: {}", row.name),
            grid: row,
            chosen_by: "locale",
            guessed: true,
        });
    }
    if let Some((zone, row)) = time_zone
        .and_then(|zone| country_of_time_zone(zone).map(|country| (zone, country)))
        .and_then(|(zone, country)| by_alpha2(&country).map(|row| (zone, row)))
    {
        return Ok(GridChoice {
            reason: format!("guessed from the time zone {zone}: {}", row.name),
            grid: row,
            chosen_by: "time_zone",
            guessed: true,
        });
    }
    let world = rows
        .into_iter()
        .find(|row| row.code == "WORLD")
        .ok_or_else(|| Error::InvalidConfig {
            file: "grid_intensity.csv".into(),
            reason: "the WORLD row is missing".into(),
        })?;
    Ok(GridChoice {
        reason: "no country picked or guessed: world average".into(),
        grid: world,
        chosen_by: "fallback",
        guessed: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_code_wins_in_either_form() {
        let alpha3 = choose_grid(Some("fra"), Some("en-US"), None).unwrap();
        assert_eq!(alpha3.grid.code, "FRA");
        assert!(!alpha3.guessed);
        let alpha2 = choose_grid(Some("FR"), None, None).unwrap();
        assert_eq!(alpha2.grid.code, "FRA");
        assert_eq!(
            choose_grid(Some("EU"), None, None).unwrap().grid.name_fr,
            "Union européenne"
        );
    }

    #[test]
    fn unknown_code_names_the_value() {
        let message = choose_grid(Some("Atlantis"), None, None)
            .unwrap_err()
            .to_string();
        assert!(message.contains("Atlantis"), "{message}");
        assert!(message.contains("grid_intensity.csv"), "{message}");
    }

    #[test]
    fn guess_from_locale_then_time_zone() {
        let from_locale = choose_grid(None, Some("fr-CA"), Some("Europe/Paris")).unwrap();
        assert_eq!(from_locale.grid.code, "CAN");
        assert!(from_locale.guessed);
        assert_eq!(from_locale.chosen_by, "locale");
        let from_zone = choose_grid(None, Some("fr"), Some("Europe/Paris")).unwrap();
        assert_eq!(from_zone.grid.code, "FRA");
        assert_eq!(from_zone.chosen_by, "time_zone");
        assert!(
            from_zone.reason.contains("Europe/Paris"),
            "{}",
            from_zone.reason
        );
    }

    #[test]
    fn nothing_known_falls_back_to_world() {
        let choice = choose_grid(None, Some("fr"), Some("Mars/Olympus")).unwrap();
        assert_eq!(choice.grid.code, "WORLD");
        assert!(!choice.guessed);
    }

    #[test]
    fn time_zone_table_covers_common_zones() {
        assert_eq!(
            country_of_time_zone("America/New_York").as_deref(),
            Some("US")
        );
        assert_eq!(country_of_time_zone("Africa/Dakar").as_deref(), Some("SN"));
        assert_eq!(country_of_time_zone("Nowhere"), None);
    }
}
