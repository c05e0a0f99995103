//! One-off costs, shown apart from the per-query figures and amortised over a number of
//! queries the user sets: downloading the models (network and data-centre energy per
//! GB, from `data/energy/one_off.csv`) and training the heads (recorded with them).

use serde::{Deserialize, Serialize};

use super::estimate::Band;
use super::tables::GridIntensity;
use crate::error::{Error, Result};

const ONE_OFF_CSV: &str = include_str!("../../data/energy/one_off.csv");

/// One row of `one_off.csv`: a cited quantity with its low-high range.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OneOffFactor {
    pub quantity: String,
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    pub unit: String,
    pub source: String,
    pub source_url: String,
    pub source_date: String,
    pub derivation: String,
}

/// A one-off cost in Wh and gCO2e, with the bands.
#[derive(Debug, Clone, Serialize)]
pub struct OneOffItem {
    pub description: String,
    pub wh: Band,
    pub g_co2e: Band,
}

/// Every one-off cost of a run and their total spread over `amortised_queries`.
#[derive(Debug, Clone, Serialize)]
pub struct OneOffCosts {
    pub items: Vec<OneOffItem>,
    pub total_wh: Band,
    pub amortised_queries: u64,
    pub wh_per_query: Band,
    pub g_co2e_per_query: Band,
    pub network_factor: OneOffFactor,
}

fn factor(quantity: &str) -> Result<OneOffFactor> {
    let invalid = |reason: String| Error::InvalidConfig {
        file: "data/energy/one_off.csv".into(),
        reason,
    };
    let mut reader = csv::Reader::from_reader(ONE_OFF_CSV.as_bytes());
    for row in reader.deserialize::<OneOffFactor>() {
        let row = row.map_err(|e| invalid(e.to_string()))?;
        if row.quantity == quantity {
            if row.source_url.is_empty() || row.source_date.is_empty() {
                return Err(invalid(format!("row {quantity} has no source URL or date")));
            }
            return Ok(row);
        }
    }
    Err(invalid(format!("no row for {quantity}")))
}

fn band(estimate: f64, low: f64, high: f64) -> Band {
    Band {
        estimate,
        low,
        high,
    }
}

fn carbon(wh: &Band, grid: &GridIntensity) -> Band {
    let per_wh = grid.g_co2e_per_kwh / 1000.0;
    band(wh.estimate * per_wh, wh.low * per_wh, wh.high * per_wh)
}

/// Estimates the one-off costs: the energy of transferring each of `downloads` (what,
/// bytes) over the network and from the data centre, each head's recorded training
/// energy, and their total divided over `amortised_queries` (at least 1).
pub fn one_off_costs(
    downloads: &[(String, u64)],
    training: &[(String, Band)],
    grid: &GridIntensity,
    amortised_queries: u64,
) -> Result<OneOffCosts> {
    let network = factor("network_kwh_per_gb")?;
    let mut items = Vec::new();
    for (label, bytes) in downloads.iter().filter(|(_, bytes)| *bytes > 0) {
        let kwh_to_wh = *bytes as f64 / 1e9 * 1000.0;
        let wh = band(
            network.estimate * kwh_to_wh,
            network.low * kwh_to_wh,
            network.high * kwh_to_wh,
        );
        items.push(OneOffItem {
            description: format!("download of {label} ({:.1} MB)", *bytes as f64 / 1e6),
            g_co2e: carbon(&wh, grid),
            wh,
        });
    }
    for (name, wh) in training {
        items.push(OneOffItem {
            description: format!("training of {name}"),
            g_co2e: carbon(wh, grid),
            wh: *wh,
        });
    }
    let total_wh = items.iter().fold(band(0.0, 0.0, 0.0), |sum, item| {
        band(
            sum.estimate + item.wh.estimate,
            sum.low + item.wh.low,
            sum.high + item.wh.high,
        )
    });
    let queries = amortised_queries.max(1) as f64;
    let wh_per_query = band(
        total_wh.estimate / queries,
        total_wh.low / queries,
        total_wh.high / queries,
    );
    Ok(OneOffCosts {
        g_co2e_per_query: carbon(&wh_per_query, grid),
        items,
        total_wh,
        amortised_queries: amortised_queries.max(1),
        wh_per_query,
        network_factor: network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(g_co2e_per_kwh: f64) -> GridIntensity {
        GridIntensity {
            code: "TEST".into(),
            alpha2: String::new(),
            name: "test grid".into(),
            name_fr: "réseau de test".into(),
            g_co2e_per_kwh,
            year: "2025".into(),
            source: "made for this test".into(),
            source_url: String::new(),
            licence: String::new(),
            retrieved: String::new(),
        }
    }

    #[test]
    fn network_factor_is_cited() {
        let network = factor("network_kwh_per_gb").unwrap();
        assert!(network.low < network.estimate);
        assert!(network.estimate < network.high);
        assert!(network.source_url.starts_with("https://"));
    }

    #[test]
    fn download_and_training_amortised() {
        // 0.5 GB at 0.114 kWh/GB = 57 Wh; plus 3 Wh of training = 60 Wh over 1,000
        // queries = 0.06 Wh each, at 500 g/kWh = 0.03 g each.
        let training = [("sentiment head".to_string(), band(3.0, 2.0, 4.0))];
        let downloads = [("model files".to_string(), 500_000_000)];
        let costs = one_off_costs(&downloads, &training, &grid(500.0), 1000).unwrap();
        assert!((costs.items[0].wh.estimate - 57.0).abs() < 1e-9);
        assert!((costs.total_wh.estimate - 60.0).abs() < 1e-9);
        assert!((costs.wh_per_query.estimate - 0.06).abs() < 1e-12);
        assert!((costs.g_co2e_per_query.estimate - 0.03).abs() < 1e-12);
        assert!(costs.total_wh.low < costs.total_wh.high);
    }

    #[test]
    fn zero_queries_count_as_one() {
        let downloads = [
            ("the runtime".to_string(), 1_000_000_000),
            ("nothing".to_string(), 0),
        ];
        let costs = one_off_costs(&downloads, &[], &grid(100.0), 0).unwrap();
        assert_eq!(costs.items.len(), 1);
        assert_eq!(costs.amortised_queries, 1);
        assert!((costs.wh_per_query.estimate - 114.0).abs() < 1e-9);
    }
}
