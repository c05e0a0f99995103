//! The JSON report written by the page and the CLI: one record per item, per-task
//! aggregates, the energy estimate and everything needed to reproduce the run.

use serde::{Deserialize, Serialize};

use crate::energy::{Band, DeviceEnergy, GridIntensity, PowerProfile, PublishedFigure};

pub const SCHEMA: &str = "seedling-report/1";

/// A file that went into the run, identified by its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub name: String,
    pub sha256: String,
    pub bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    pub files: Vec<FileRecord>,
}

/// The platform and backend of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Runtime {
    /// `wasm32` in the browser, `native` for the CLI.
    pub target: String,
    /// Backend the run started on: `webgpu` or `cpu`.
    pub backend: String,
    /// The GPU adapter, when the run started on one (name, API, software or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Reason the run moved from the GPU to the CPU, when it did. Each task's `backend`
    /// and each item's record where the move fell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fell_back: Option<String>,
    pub threads_used: f64,
    pub device_threads: usize,
    pub user_agent: Option<String>,
}

/// One evaluated item.
#[derive(Debug, Clone, Serialize)]
pub struct ItemRecord {
    pub id: String,
    pub input: String,
    pub output: String,
    pub prediction: Option<String>,
    pub reference: String,
    pub score: f64,
    pub latency_ms: f64,
    pub prefill_ms: f64,
    pub tokens_in: usize,
    pub tokens_out: usize,
    pub decode_tokens_per_second: Option<f64>,
    /// The input or the output was cut at a length limit (the encoder's maximum
    /// length, or the new-token budget before the model finished its reply).
    pub truncated: bool,
    /// The decision behind the score where there is one, e.g. the code execution's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Secondary per-item metrics by name, e.g. `sentence_cosine`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The request's details when the reply came from a hosted model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosted: Option<HostedItem>,
    /// The small model's backend for this item: `webgpu` or `cpu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

/// One hosted request: how it went and its EcoLogits estimate.
#[derive(Debug, Clone, Serialize)]
pub struct HostedItem {
    /// Time to the first streamed text, in ms; `None` for a reply that was not streamed.
    pub ttft_ms: Option<f64>,
    /// Source of the token counts: `server` (its `usage`), `counted` (the small
    /// model's tokenizer) or `estimated` (characters / 4).
    pub usage: String,
    pub attempts: u32,
    /// Request energy with the datacenter overhead, in Wh.
    pub energy_wh: Band,
    /// Usage-phase emissions: energy × the datacenter zone's electricity factor, in gCO2e.
    pub usage_g_co2e: Band,
    /// The request's share of the servers' and GPUs' manufacturing, in gCO2e.
    pub embodied_g_co2e: Band,
}

/// An item left unscored because its hosted request failed.
#[derive(Debug, Clone, Serialize)]
pub struct ItemFailure {
    pub id: String,
    pub kind: crate::hosted::FailureKind,
    pub message: String,
    pub attempts: u32,
}

/// The summed EcoLogits estimates of a hosted task's requests.
#[derive(Debug, Clone, Serialize)]
pub struct HostedEnergy {
    pub seconds: f64,
    pub items: usize,
    pub energy_wh: Band,
    pub wh_per_item: Band,
    pub wh_per_1000: Band,
    /// Usage-phase emissions, comparable with the device's (which leave out manufacturing).
    pub g_co2e: Band,
    pub g_co2e_per_item: Band,
    pub g_co2e_per_1000: Band,
    pub embodied_g_co2e_per_item: Band,
    pub provider: String,
    pub zone: String,
    pub method: String,
}

impl HostedEnergy {
    /// Sums the estimates carried by `records`.
    pub fn of(records: &[ItemRecord], seconds: f64, plan: &crate::hosted::EstimatePlan) -> Self {
        let zero = Band {
            estimate: 0.0,
            low: 0.0,
            high: 0.0,
        };
        let add = |a: Band, b: Band| Band {
            estimate: a.estimate + b.estimate,
            low: a.low + b.low,
            high: a.high + b.high,
        };
        let scale = |band: Band, factor: f64| Band {
            estimate: band.estimate * factor,
            low: band.low * factor,
            high: band.high * factor,
        };
        let (mut wh, mut g, mut embodied) = (zero, zero, zero);
        for item in records.iter().filter_map(|r| r.hosted.as_ref()) {
            wh = add(wh, item.energy_wh);
            g = add(g, item.usage_g_co2e);
            embodied = add(embodied, item.embodied_g_co2e);
        }
        let per_item = 1.0 / records.len().max(1) as f64;
        HostedEnergy {
            seconds,
            items: records.len(),
            energy_wh: wh,
            wh_per_item: scale(wh, per_item),
            wh_per_1000: scale(wh, per_item * 1000.0),
            g_co2e: g,
            g_co2e_per_item: scale(g, per_item),
            g_co2e_per_1000: scale(g, per_item * 1000.0),
            embodied_g_co2e_per_item: scale(embodied, per_item),
            provider: plan.provider.clone(),
            zone: plan.zone.clone(),
            method: crate::energy::ecologits::METHOD.to_string(),
        }
    }
}

/// One task's scores and energy: the small model's with [`DeviceEnergy`], the hosted
/// model's with [`HostedEnergy`].
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult<E = DeviceEnergy> {
    pub task: String,
    pub model: String,
    pub prompt_version: String,
    pub metric: String,
    /// Mean of the item scores: the task's main metric.
    pub score: f64,
    /// 95% interval of the main metric (Wilson score interval for proportions).
    pub interval: Option<(f64, f64)>,
    /// Secondary metrics by name, e.g. `macro_f1`.
    pub extra_metrics: std::collections::BTreeMap<String, f64>,
    pub items: Vec<ItemRecord>,
    pub seconds: f64,
    pub energy: E,
    /// Items the task planned; fewer are scored when some failed or the run stopped.
    pub planned_items: usize,
    /// Items left unscored because their hosted request failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ItemFailure>,
    /// The items came from the user's own file rather than the default data set.
    pub user_data: bool,
    /// Backend the items ran on: `webgpu`, `cpu`, `hosted`, or a move such as
    /// `webgpu, then cpu from item 4` after the GPU device was lost.
    pub backend: String,
}

/// The hosted model's answers to the same items, with the same prompts and scorers.
#[derive(Debug, Clone, Serialize)]
pub struct HostedRun {
    /// The API's base URL (never the key).
    pub base_url: String,
    pub model: String,
    pub stream: bool,
    pub max_tokens: usize,
    pub concurrency: usize,
    pub estimate: crate::hosted::EstimatePlan,
    pub tasks: Vec<TaskResult<HostedEnergy>>,
    /// Reason the hosted run stopped before its last item, if it did.
    pub stopped: Option<String>,
}

/// Comparison of the small and the hosted model on one task, per query, over the items both replied to.
#[derive(Debug, Clone, Serialize)]
pub struct TaskComparison {
    pub task: String,
    pub metric: String,
    /// Items both models replied to. The scores are means over these only.
    pub items_compared: usize,
    pub small_score: f64,
    pub hosted_score: f64,
    /// Small minus hosted score, in the metric's units: positive when the small model scores higher.
    pub difference: f64,
    /// Better, comparable, worse or inconclusive, with the paired interval and the rule.
    pub judgement: crate::verdict::Judgement,
    /// The small model's energy per query for its own work.
    pub small_wh_per_item: Band,
    /// The same plus the run's one-off costs (downloads, training) spread over the
    /// amortised queries. The one-off costs cover every model the run loaded.
    pub small_wh_per_item_with_one_off: f64,
    pub hosted_wh_per_item: Band,
    /// Hosted over small Wh per query (central estimates), one-off costs left out.
    pub energy_ratio: Option<f64>,
    /// Hosted over small Wh per query with the small model's one-off costs spread in.
    pub energy_ratio_with_one_off: Option<f64>,
    pub small_g_co2e_per_item: Band,
    pub hosted_g_co2e_per_item: Band,
    pub carbon_ratio: Option<f64>,
    pub carbon_ratio_with_one_off: Option<f64>,
}

/// One embedded sentence (not scored: shows what the encoder does and how fast).
#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingRecord {
    pub id: String,
    pub text: String,
    pub tokens: usize,
    pub truncated: bool,
    pub latency_ms: f64,
    /// The first values of the 384-dimensional vector.
    pub head: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbeddingRun {
    pub model: String,
    pub items: Vec<EmbeddingRecord>,
    pub seconds: f64,
    pub energy: DeviceEnergy,
}

/// The way a report's grid intensity was chosen: by the user, guessed from the locale
/// or the time zone, or the world average as a fallback.
#[derive(Debug, Clone, Serialize)]
pub struct GridChoiceNote {
    pub chosen_by: String,
    pub guessed: bool,
    pub reason: String,
}

/// Energy measured by the machine's own counters over one task.
#[derive(Debug, Clone, Serialize)]
pub struct MeasuredEnergy {
    pub task: String,
    pub joules: f64,
    pub wh: f64,
    /// The counters summed, e.g. `package-0`.
    pub zones: Vec<String>,
    pub boundary: String,
}

/// Whether the run's energy was also measured, and if not, why not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PowerMeasurement {
    /// `rapl` natively; `none` in the browser, which exposes no energy counter.
    pub method: String,
    pub available: bool,
    pub reason: Option<String>,
    pub tasks: Vec<MeasuredEnergy>,
}

/// Published per-prompt figures for hosted LLMs, shown beside the small model's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Contrast {
    pub figure: PublishedFigure,
    /// Published Wh per prompt divided by the small model's Wh per item plus its one-off
    /// costs per query (central estimates).
    pub energy_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub seedling_version: &'static str,
    pub created_unix_ms: u64,
    pub runtime: Runtime,
    pub seed: u64,
    pub limit: usize,
    pub max_new_tokens: usize,
    pub models: Vec<ModelRecord>,
    pub datasets: Vec<FileRecord>,
    pub tasks: Vec<TaskResult>,
    pub embeddings: Option<EmbeddingRun>,
    pub profile: PowerProfile,
    pub grid: GridIntensity,
    /// The way the grid row was chosen, and whether it is a guess.
    pub grid_choice: GridChoiceNote,
    pub measurement: PowerMeasurement,
    /// Downloads and training, kept apart from the per-query figures.
    pub one_off: crate::energy::one_off::OneOffCosts,
    pub hosted_reference: Vec<Contrast>,
    /// The live hosted baseline, when one was configured.
    pub hosted: Option<HostedRun>,
    /// Per-task comparison of the two models, for each task both ran.
    pub comparisons: Vec<TaskComparison>,
    /// How many tasks the small model is good enough on, and at how much less carbon;
    /// absent without a hosted baseline.
    pub headline: Option<crate::verdict::Headline>,
    /// Set when no hosted model was configured: the published figures stand in for it.
    pub hosted_note: Option<String>,
    /// The run was cancelled; the results finished before it are all here.
    pub cancelled: bool,
}

/// CodeCarbon's `emissions.csv` columns, in its order.
pub const CODECARBON_COLUMNS: [&str; 32] = [
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "on_cloud",
    "pue",
];

/// Formats a ratio as "3.20x" below 10 and "42x" above, with two significant digits
/// below 0.1 so that a small ratio does not read as 0.
fn times(ratio: Option<f64>) -> String {
    match ratio {
        None => "n/a".to_string(),
        Some(r) if r >= 10.0 => format!("{r:.0}x"),
        Some(r) if r >= 0.1 => format!("{r:.2}x"),
        Some(r) if r > 0.0 => {
            let decimals = (1.0 - r.log10().floor()) as usize;
            format!("{r:.decimals$}x")
        }
        Some(r) => format!("{r}x"),
    }
}

/// Formats Unix milliseconds as an ISO 8601 UTC timestamp, as CodeCarbon writes it.
fn iso_timestamp(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let days = (seconds / 86_400) as i64;
    let of_day = seconds % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

impl Report {
    /// Writes one CodeCarbon-compatible `emissions.csv` row per task (and one for the
    /// embeddings), in its field names and units: seconds, kWh, W and kg CO2eq. The
    /// device's energy goes in the CPU columns, since Seedling's runs are CPU runs.
    pub fn emissions_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record(CODECARBON_COLUMNS);
        let mut runs: Vec<(&str, &DeviceEnergy)> = self
            .tasks
            .iter()
            .map(|task| (task.task.as_str(), &task.energy))
            .collect();
        if let Some(run) = &self.embeddings {
            runs.push(("embed", &run.energy));
        }
        for (task, energy) in runs {
            let kwh = energy.attributional_wh.estimate / 1000.0;
            let kg = kwh * self.grid.g_co2e_per_kwh / 1000.0;
            let seconds = energy.seconds.max(1e-9);
            let row = [
                iso_timestamp(self.created_unix_ms),
                "seedling".to_string(),
                format!("seedling-{}", self.created_unix_ms),
                task.to_string(),
                format!("{}", energy.seconds),
                format!("{kg}"),
                format!("{}", kg / seconds),
                format!("{}", kwh * 3.6e6 / seconds),
                "0".into(),
                "0".into(),
                format!("{kwh}"),
                "0".into(),
                "0".into(),
                format!("{kwh}"),
                self.grid.name.clone(),
                self.grid.code.clone(),
                String::new(),
                String::new(),
                String::new(),
                self.runtime.target.clone(),
                String::new(),
                String::new(),
                format!("{}", self.runtime.device_threads),
                self.profile.id.clone(),
                "0".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "process".into(),
                "N".into(),
                "1".into(),
            ];
            let _ = writer.write_record(&row);
        }
        String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// Formats the per-task results as a plain-text table.
    pub fn summary_table(&self) -> String {
        let mut lines = vec![format!(
            "{:<12} {:<34} {:>5} {:>8} {:>8} {:>28} {:>12}",
            "task", "model", "items", "score", "s/item", "Wh/item (low-high)", "gCO2e/item"
        )];
        for task in &self.tasks {
            let items = task.items.len().max(1);
            let wh = task.energy.attributional_wh_per_item;
            lines.push(format!(
                "{:<12} {:<34} {:>5} {:>8.3} {:>8.2} {:>28} {:>12.6}",
                task.task,
                task.model,
                task.items.len(),
                task.score,
                task.seconds / items as f64,
                format!("{:.5} ({:.5}-{:.5})", wh.estimate, wh.low, wh.high),
                task.energy.g_co2e_per_item.estimate,
            ));
        }
        if let Some(hosted) = &self.hosted {
            for task in &hosted.tasks {
                let model = format!("hosted {}", task.model);
                let failed = task.failures.len();
                if task.items.is_empty() {
                    lines.push(format!(
                        "{:<12} {model:<34} {:>5} no answers: {failed} failed",
                        task.task, 0
                    ));
                    continue;
                }
                let items = task.items.len();
                let wh = task.energy.wh_per_item;
                lines.push(format!(
                    "{:<12} {:<34} {:>5} {:>8.3} {:>8.2} {:>28} {:>12.6}{}",
                    task.task,
                    model,
                    task.items.len(),
                    task.score,
                    task.seconds / items as f64,
                    format!("{:.5} ({:.5}-{:.5})", wh.estimate, wh.low, wh.high),
                    task.energy.g_co2e_per_item.estimate,
                    if task.failures.is_empty() {
                        String::new()
                    } else {
                        format!("  {} failed", task.failures.len())
                    }
                ));
            }
        }
        if let Some(run) = &self.embeddings {
            let items = run.items.len().max(1);
            lines.push(format!(
                "{:<12} {:<34} {:>5} {:>8} {:>8.3} {:>28} {:>12.8}",
                "embed",
                run.model,
                run.items.len(),
                "-",
                run.seconds / items as f64,
                format!("{:.7}", run.energy.attributional_wh_per_item.estimate),
                run.energy.g_co2e_per_item.estimate,
            ));
        }
        for comparison in &self.comparisons {
            lines.push(format!(
                "{} over {} items both answered: small {:.3} vs hosted {:.3} {} (small minus hosted {:+.3}); \
                 the hosted model uses {} the energy and {} the carbon per query, or {} and {} once the \
                 small model's one-off costs are spread in",
                comparison.task,
                comparison.items_compared,
                comparison.small_score,
                comparison.hosted_score,
                comparison.metric,
                comparison.difference,
                times(comparison.energy_ratio),
                times(comparison.carbon_ratio),
                times(comparison.energy_ratio_with_one_off),
                times(comparison.carbon_ratio_with_one_off),
            ));
            lines.push(format!(
                "  verdict: {:?}, because {}",
                comparison.judgement.verdict, comparison.judgement.reason
            ));
        }
        if let Some(headline) = &self.headline {
            let mut line = format!(
                "{} of {} tasks comparable or better ({} judged, {} inconclusive)",
                headline.good_enough, headline.of, headline.judged, headline.inconclusive
            );
            if let Some(ratio) = headline.carbon_ratio {
                line.push_str(&format!(", at {ratio:.0} times less carbon per query"));
            }
            lines.push(line);
        }
        if let Some(hosted) = &self.hosted {
            lines.push(format!(
                "hosted estimate: {} ({}), datacenter zone {}, size from {}",
                hosted.estimate.provider,
                if hosted.estimate.provider_guessed {
                    "guessed"
                } else {
                    "given"
                },
                hosted.estimate.zone,
                hosted.estimate.size_from
            ));
            if let Some(reason) = &hosted.stopped {
                lines.push(format!("hosted run stopped early: {reason}"));
            }
        }
        if let Some(note) = &self.hosted_note {
            lines.push(format!("note: {note}"));
        }
        let one_off = &self.one_off;
        lines.push(format!(
            "one-off: {:.2} Wh ({:.2}-{:.2}), {:.5} Wh per query over {} queries ({})",
            one_off.total_wh.estimate,
            one_off.total_wh.low,
            one_off.total_wh.high,
            one_off.wh_per_query.estimate,
            one_off.amortised_queries,
            one_off
                .items
                .iter()
                .map(|item| item.description.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for measured in &self.measurement.tasks {
            lines.push(format!(
                "measured {}: {:.5} Wh ({})",
                measured.task, measured.wh, measured.boundary
            ));
        }
        if let Some(reason) = &self.measurement.reason {
            lines.push(format!("not measured: {reason}"));
        }
        for contrast in &self.hosted_reference {
            lines.push(format!(
                "hosted reference: {} {} Wh/prompt ({}){}",
                contrast.figure.label,
                contrast.figure.wh_per_prompt,
                contrast.figure.published,
                contrast
                    .energy_ratio
                    .map(|r| {
                        // Two decimals below 10, so that a ratio under 1 does not read as 0.
                        let ratio = if r < 10.0 {
                            format!("{r:.2}")
                        } else {
                            format!("{r:.0}")
                        };
                        format!(", {ratio}x the small model's Wh/item on the first task, one-off costs spread in")
                    })
                    .unwrap_or_default()
            ));
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamp_matches_known_dates() {
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00");
        // 2000-02-29T12:34:56Z, a leap day.
        assert_eq!(iso_timestamp(951_827_696_000), "2000-02-29T12:34:56");
        // 2026-12-04T23:59:59Z.
        assert_eq!(iso_timestamp(1_796_428_799_000), "2026-12-04T23:59:59");
    }
}
