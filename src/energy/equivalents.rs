//! Everyday equivalents of a carbon figure: smartphone charges, kilometres by car,
//! e-mails, hours of video. Each comes from `data/energy/equivalents.csv`, whose rows
//! carry their source, date and scope, so the page can cite what it compares with.

use serde::{Deserialize, Serialize};

use super::tables::parse_table;
use crate::error::{Error, Result};

// NOTE: the two US EPA rows quote the EPA page's figures as two public projects cite them.
// The page itself could not be opened from the build machine, so they are unchecked.
const EQUIVALENTS_CSV: &str = include_str!("../../data/energy/equivalents.csv");

/// One row of `equivalents.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Equivalent {
    pub id: String,
    /// `all`, or the one page language (`en`, `fr`) the row is shown in.
    pub audience: String,
    pub g_co2e_per_unit: f64,
    pub unit_en: String,
    pub unit_fr: String,
    /// Scope of the figure: operational electricity only, or a whole life cycle.
    pub scope: String,
    pub source: String,
    pub source_url: String,
    /// The source's own date where it gives one.
    pub published: String,
    pub retrieved: String,
    pub derivation: String,
}

/// A carbon figure expressed in one equivalent.
#[derive(Debug, Clone, Serialize)]
pub struct Expressed {
    pub id: String,
    /// How many units the figure amounts to.
    pub count: f64,
    pub unit: String,
    pub scope: String,
    pub source: String,
    pub source_url: String,
    pub published: String,
    pub retrieved: String,
}

/// Parses the shipped rows and checks that each has a positive figure, a source URL, a
/// retrieval date and a known audience.
pub fn equivalents() -> Result<Vec<Equivalent>> {
    let rows: Vec<Equivalent> = parse_table("equivalents.csv", EQUIVALENTS_CSV)?;
    for (index, row) in rows.iter().enumerate() {
        let problem = if !(row.g_co2e_per_unit.is_finite() && row.g_co2e_per_unit > 0.0) {
            Some("g_co2e_per_unit must be a positive number")
        } else if !row.source_url.starts_with("https://") {
            Some("source_url must be an https URL")
        } else if row.retrieved.is_empty() {
            Some("retrieved needs the date the figure was read")
        } else if !["all", "en", "fr"].contains(&row.audience.as_str()) {
            Some("audience must be all, en or fr")
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(Error::InvalidData {
                file: "equivalents.csv".into(),
                line: index + 2,
                reason: format!("row {}: {reason}", row.id),
            });
        }
    }
    Ok(rows)
}

/// `g_co2e` in each equivalent shown to readers of `language` (`fr`, otherwise English).
pub fn express(g_co2e: f64, language: &str) -> Result<Vec<Expressed>> {
    if !(g_co2e.is_finite() && g_co2e >= 0.0) {
        return Err(Error::InvalidOption {
            option: "g CO2e for everyday equivalents",
            value: g_co2e.to_string(),
            expected: "a finite figure of 0 or more".into(),
        });
    }
    let french = language.starts_with("fr");
    let audience = if french { "fr" } else { "en" };
    Ok(equivalents()?
        .into_iter()
        .filter(|row| row.audience == "all" || row.audience == audience)
        .map(|row| Expressed {
            count: g_co2e / row.g_co2e_per_unit,
            unit: if french { row.unit_fr } else { row.unit_en },
            id: row.id,
            scope: row.scope,
            source: row.source,
            source_url: row.source_url,
            published: row.published,
            retrieved: row.retrieved,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rows_validate() {
        let rows = equivalents().unwrap();
        assert!(rows.iter().any(|row| row.id == "smartphone-charge"));
        assert!(rows
            .iter()
            .all(|row| !row.scope.is_empty() && !row.derivation.is_empty()));
    }

    #[test]
    fn each_language_gets_one_car_figure() {
        let english = express(1000.0, "en").unwrap();
        let french = express(1000.0, "fr-FR").unwrap();
        let cars = |rows: &[Expressed]| rows.iter().filter(|r| r.id.starts_with("car-km")).count();
        assert_eq!(cars(&english), 1);
        assert_eq!(cars(&french), 1);
        let car = french.iter().find(|r| r.id == "car-km-fr").unwrap();
        assert_eq!(car.unit, "km en voiture");
        // 1 kg over 217.6 g per km.
        assert!((car.count - 1000.0 / 217.6).abs() < 1e-9, "{}", car.count);
    }

    #[test]
    fn counts_scale_with_the_figure() {
        let one = express(12.4, "en").unwrap();
        let phone = one.iter().find(|r| r.id == "smartphone-charge").unwrap();
        assert!((phone.count - 1.0).abs() < 1e-12);
        let ten = express(124.0, "en").unwrap();
        let phone = ten.iter().find(|r| r.id == "smartphone-charge").unwrap();
        assert!((phone.count - 10.0).abs() < 1e-9);
    }

    #[test]
    fn negative_or_infinite_figure_rejected() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let message = express(bad, "en").unwrap_err().to_string();
            assert!(message.contains("finite figure of 0 or more"), "{message}");
        }
    }
}
