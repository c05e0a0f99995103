//! Energy and carbon of one hosted-LLM request with the EcoLogits method.
//!
//! This is a Rust reimplementation of ecologits 0.11.3 (MPL-2.0,
//! <https://github.com/mlco2/ecologits>): the formulas of
//! `ecologits/impacts/llm.py` (`compute_llm_impacts`) and the lookup of
//! `ecologits/tracers/utils.py` (`llm_impacts`), which picks the model's
//! parameter counts and deployment figures, the provider's PUE and datacenter
//! location, and the electricity mix of the zone. The tables are converted from
//! the ecologits wheel by `scripts/convert_ecologits.py` into
//! `data/energy/ecologits/` and compiled in, so the page and the CLI share them.
//!
//! `tests/ecologits.rs` checks every case of `tests/fixtures/ecologits_reference.json`,
//! made with the real ecologits 0.11.3, within 1%.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::estimate::Band;
use crate::error::{Error, Result};

const MODELS_CSV: &str = include_str!("../../data/energy/ecologits/models.csv");
const PROVIDERS_CSV: &str = include_str!("../../data/energy/ecologits/providers.csv");
const MIXES_CSV: &str = include_str!("../../data/energy/ecologits/electricity_mixes.csv");

/// Name and version of the method, stored in every [`HostedImpacts`].
pub const METHOD: &str = "EcoLogits 0.11.3: compute_llm_impacts (ecologits.impacts.llm) \
with the model, provider and electricity mix tables of ecologits 0.11.3";

/// Zone that ecologits uses when neither the request nor the provider gives one.
const WORLD_ZONE: &str = "WOR";

// Constants of ecologits 0.11.3, ecologits/impacts/llm.py. A unit test compares
// them with `llm_constants` in data/energy/ecologits/source.json.
const MODEL_QUANTIZATION_BITS: f64 = 16.0;
const GPU_ENERGY_ALPHA: f64 = 1.1665273170451914e-06;
const GPU_ENERGY_BETA: f64 = -0.011205921025579175;
const GPU_ENERGY_GAMMA: f64 = 4.052928146734005e-05;
const LATENCY_ALPHA: f64 = 0.0006785088094353663;
const LATENCY_BETA: f64 = 0.0003119310311688259;
const LATENCY_GAMMA: f64 = 0.019473717579473387;
/// Memory of one GPU in GB (an NVIDIA H100 80GB in the EcoLogits method).
const GPU_MEMORY_GB: f64 = 80.0;
const GPU_EMBODIED_GWP_KG: f64 = 273.0;
const SERVER_GPUS: f64 = 8.0;
/// Power of the server without its GPUs, in kW.
const SERVER_POWER_KW: f64 = 1.2;
/// Embodied GWP of the server without its GPUs, in kgCO2eq.
const SERVER_EMBODIED_GWP_KG: f64 = 5700.0;
/// Hardware lifespan: 3 years in seconds.
const HARDWARE_LIFESPAN_S: f64 = 3.0 * 365.0 * 24.0 * 60.0 * 60.0;
/// Requests that a server handles concurrently.
const BATCH_SIZE: f64 = 64.0;

/// A parameter count in billions: one value when `min == max`, or the range that
/// EcoLogits gives a model whose architecture is not released.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParameterRange {
    pub min: f64,
    pub max: f64,
}

impl ParameterRange {
    pub fn exact(billions: f64) -> Self {
        ParameterRange {
            min: billions,
            max: billions,
        }
    }

    pub fn is_range(&self) -> bool {
        self.min != self.max
    }
}

/// Total parameters (which set the GPU count) and active parameters (which set
/// the energy per token); they are equal for a dense model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelSize {
    pub total_b: ParameterRange,
    pub active_b: ParameterRange,
}

impl ModelSize {
    /// Size of a dense model with `billions` parameters.
    pub fn dense(billions: f64) -> Self {
        ModelSize {
            total_b: ParameterRange::exact(billions),
            active_b: ParameterRange::exact(billions),
        }
    }

    /// Rejects counts that are not positive and finite, and ranges with min > max.
    pub fn validate(&self) -> Result<()> {
        for (name, range) in [("total", self.total_b), ("active", self.active_b)] {
            let valid = range.min.is_finite()
                && range.max.is_finite()
                && range.min > 0.0
                && range.min <= range.max;
            if !valid {
                return Err(Error::InvalidOption {
                    option: "model size",
                    value: format!("{name} {}-{} billion parameters", range.min, range.max),
                    expected: "positive, finite parameter counts in billions with min <= max"
                        .into(),
                });
            }
        }
        Ok(())
    }
}

/// Serving speed of a model as ecologits 0.11.3 lists it, where known.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Deployment {
    /// Output tokens per second.
    pub tps: Option<f64>,
    /// Time to first token, in seconds.
    pub ttft_s: Option<f64>,
}

/// One row of `data/energy/ecologits/models.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct HostedModel {
    pub provider: String,
    pub name: String,
    /// `dense` or `moe` (mixture of experts).
    pub architecture: String,
    pub size: ModelSize,
    pub deployment: Deployment,
    /// EcoLogits warning codes, such as `model-arch-not-released`.
    pub warnings: Vec<String>,
    /// The listed name that this name is an alias of.
    pub alias_of: Option<String>,
}

/// Datacenter defaults of a provider, from `PROVIDER_CONFIG_MAP` in ecologits 0.11.3
/// `ecologits/tracers/utils.py`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderDefaults {
    pub provider: String,
    /// ISO 3166-1 alpha-3 code of the electricity mix zone.
    pub datacenter_location: String,
    pub pue_min: f64,
    pub pue_max: f64,
}

/// GWP impact factor of a zone's electricity mix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ElectricityMix {
    /// ISO 3166-1 alpha-3 code, or `WOR` for the world average.
    pub zone: String,
    pub gwp_kg_co2eq_per_kwh: f64,
}

/// One hosted-LLM request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostedRequest {
    /// EcoLogits provider name: anthropic, cohere, google_genai, huggingface_hub, mistralai or openai.
    pub provider: String,
    pub model: String,
    pub output_tokens: u64,
    /// Measured request latency in seconds. `f64::INFINITY` means not measured,
    /// as ecologits substitutes `math.inf` for a missing latency.
    pub request_latency_s: f64,
    /// Electricity mix zone (ISO 3166-1 alpha-3, or `WOR`). `None` takes the provider's datacenter location.
    pub zone: Option<String>,
}

/// Source of the generation latency of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencySource {
    /// The measured request latency, shorter than the modelled one.
    Measured,
    /// The model's tokens per second and time to first token.
    Deployment,
    /// The EcoLogits latency regression on active parameters, plus the time to first token where listed.
    Regression,
}

/// Origin of the parameter counts of an estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeSource {
    ModelTable,
    Caller,
}

/// Impacts of one hosted-LLM request. In each `Band`, `low` and `high` are
/// ecologits' min and max, and `estimate` is their mean, as in ecologits'
/// `RangeValue.mean`. The three are equal when nothing is a range.
#[derive(Debug, Clone, Serialize)]
pub struct HostedImpacts {
    pub provider: String,
    pub model: String,
    pub output_tokens: u64,
    pub size: ModelSize,
    pub size_source: SizeSource,
    pub deployment: Deployment,
    pub request_latency_s: f64,
    /// Generation latency of the runs at the smallest and largest parameter counts, in seconds.
    pub generation_latency_s: Band,
    pub latency_source_low: LatencySource,
    pub latency_source_high: LatencySource,
    pub gpu_count_low: u64,
    pub gpu_count_high: u64,
    pub pue: Band,
    pub zone: String,
    pub electricity_gwp_kg_per_kwh: f64,
    /// Request energy including the datacenter overhead (PUE), in kWh.
    pub energy_kwh: Band,
    /// Usage-phase GWP: energy × the zone's electricity factor, in kgCO2eq.
    pub usage_gwp_kg: Band,
    /// Embodied GWP of the server and GPUs allocated to the request, in kgCO2eq.
    pub embodied_gwp_kg: Band,
    /// Usage plus embodied GWP, in kgCO2eq.
    pub gwp_kg: Band,
    /// EcoLogits warning codes of the model.
    pub warnings: Vec<String>,
    pub method: String,
}

// --- Formulas of ecologits 0.11.3, ecologits/impacts/llm.py ---------------------

/// Energy of one GPU for the request in kWh (`gpu_energy`): per output token,
/// α·e^(β·B)·P_active + γ Wh with batch size B = 64.
fn gpu_energy_kwh(active_b: f64, output_tokens: f64) -> f64 {
    let wh_per_token =
        GPU_ENERGY_ALPHA * (GPU_ENERGY_BETA * BATCH_SIZE).exp() * active_b + GPU_ENERGY_GAMMA;
    output_tokens * (wh_per_token / 1000.0)
}

/// Generation latency in seconds (`generation_latency`): tokens / tps + ttft when
/// the model lists its tokens per second, else tokens × (α·P_active + β·B + γ) + ttft,
/// capped by the measured request latency.
fn generation_latency_s(
    active_b: f64,
    output_tokens: f64,
    request_latency_s: f64,
    deployment: Deployment,
) -> (f64, LatencySource) {
    let (seconds_per_token, source) = match deployment.tps {
        Some(tps) => (1.0 / tps, LatencySource::Deployment),
        None => (
            LATENCY_ALPHA * active_b + LATENCY_BETA * BATCH_SIZE + LATENCY_GAMMA,
            LatencySource::Regression,
        ),
    };
    let modelled = output_tokens * seconds_per_token + deployment.ttft_s.unwrap_or(0.0);
    if request_latency_s < modelled {
        (request_latency_s, LatencySource::Measured)
    } else {
        (modelled, source)
    }
}

/// GPUs needed to hold the model (`gpu_required_count`): 1.2 × P_total × 16 bits / 8
/// GB over 80 GB per GPU, rounded up, then up to a power of two.
fn gpu_required_count(total_b: f64) -> u64 {
    let required_memory_gb = 1.2 * total_b * MODEL_QUANTIZATION_BITS / 8.0;
    let gpus = (required_memory_gb / GPU_MEMORY_GB).ceil() as u64;
    gpus.max(1).next_power_of_two()
}

/// Energy of the server without its GPUs in kWh (`server_energy`): its power for
/// the generation latency, shared by the GPUs in use and by the batch.
fn server_energy_kwh(generation_latency_s: f64, gpu_count: u64) -> f64 {
    (generation_latency_s / 3600.0)
        * SERVER_POWER_KW
        * (gpu_count as f64 / SERVER_GPUS)
        * (1.0 / BATCH_SIZE)
}

/// IT energy of the request in kWh before the datacenter overhead (`request_it_energy`).
fn request_it_energy_kwh(server_energy_kwh: f64, gpu_count: u64, gpu_energy_kwh: f64) -> f64 {
    server_energy_kwh + gpu_count as f64 * gpu_energy_kwh
}

/// Embodied GWP in kgCO2eq (`server_gpu_embodied_gwp`, `request_embodied_gwp`): the
/// server share and the GPUs in use, amortized over the lifespan and the batch.
fn request_embodied_gwp_kg(generation_latency_s: f64, gpu_count: u64) -> f64 {
    let gpus = gpu_count as f64;
    let hardware_gwp_kg =
        (gpus / SERVER_GPUS) * SERVER_EMBODIED_GWP_KG + gpus * GPU_EMBODIED_GWP_KG;
    generation_latency_s * hardware_gwp_kg / (HARDWARE_LIFESPAN_S * BATCH_SIZE)
}

/// One evaluation of the formulas at one pair of parameter counts.
struct Run {
    latency_s: f64,
    latency_source: LatencySource,
    gpu_count: u64,
    it_energy_kwh: f64,
    embodied_gwp_kg: f64,
}

fn run(
    total_b: f64,
    active_b: f64,
    output_tokens: f64,
    request_latency_s: f64,
    deployment: Deployment,
) -> Run {
    let (latency_s, latency_source) =
        generation_latency_s(active_b, output_tokens, request_latency_s, deployment);
    let gpu_count = gpu_required_count(total_b);
    let server_kwh = server_energy_kwh(latency_s, gpu_count);
    let gpu_kwh = gpu_energy_kwh(active_b, output_tokens);
    Run {
        latency_s,
        latency_source,
        gpu_count,
        it_energy_kwh: request_it_energy_kwh(server_kwh, gpu_count, gpu_kwh),
        embodied_gwp_kg: request_embodied_gwp_kg(latency_s, gpu_count),
    }
}

fn band(low: f64, high: f64) -> Band {
    Band {
        estimate: (low + high) / 2.0,
        low,
        high,
    }
}

/// Estimates the impacts of `request` as ecologits 0.11.3 `llm_impacts` does.
///
/// `model_size_override` replaces the listed parameter counts, or gives them for a
/// model that ecologits does not list; a listed model keeps its deployment figures.
/// Like `compute_llm_impacts`, the formulas run once at the smallest parameter
/// counts with the lowest PUE and once at the largest with the highest PUE; the
/// two runs give the low and high ends of every band.
pub fn estimate(
    request: &HostedRequest,
    model_size_override: Option<ModelSize>,
) -> Result<HostedImpacts> {
    if request.request_latency_s.is_nan() || request.request_latency_s < 0.0 {
        return Err(Error::InvalidOption {
            option: "request latency (s)",
            value: request.request_latency_s.to_string(),
            expected: "a duration of 0 s or more; use infinity when the latency was not measured"
                .into(),
        });
    }
    let provider = provider_defaults(&request.provider)?;
    let found = find_model(&request.provider, &request.model);
    let (listed, size, size_source) = match model_size_override {
        Some(size) => {
            size.validate()?;
            (found.ok(), size, SizeSource::Caller)
        }
        None => {
            let model = found?;
            (Some(model), model.size, SizeSource::ModelTable)
        }
    };
    let deployment = listed.map(|model| model.deployment).unwrap_or_default();
    let zone = request
        .zone
        .as_deref()
        .unwrap_or(if provider.datacenter_location.is_empty() {
            WORLD_ZONE
        } else {
            &provider.datacenter_location
        });
    let mix = electricity_mix(zone)?;

    let tokens = request.output_tokens as f64;
    let low = run(
        size.total_b.min,
        size.active_b.min,
        tokens,
        request.request_latency_s,
        deployment,
    );
    let high = run(
        size.total_b.max,
        size.active_b.max,
        tokens,
        request.request_latency_s,
        deployment,
    );

    let energy_low = provider.pue_min * low.it_energy_kwh;
    let energy_high = provider.pue_max * high.it_energy_kwh;
    let usage_low = energy_low * mix.gwp_kg_co2eq_per_kwh;
    let usage_high = energy_high * mix.gwp_kg_co2eq_per_kwh;

    Ok(HostedImpacts {
        provider: request.provider.clone(),
        model: request.model.clone(),
        output_tokens: request.output_tokens,
        size,
        size_source,
        deployment,
        request_latency_s: request.request_latency_s,
        generation_latency_s: band(low.latency_s, high.latency_s),
        latency_source_low: low.latency_source,
        latency_source_high: high.latency_source,
        gpu_count_low: low.gpu_count,
        gpu_count_high: high.gpu_count,
        pue: band(provider.pue_min, provider.pue_max),
        zone: mix.zone.clone(),
        electricity_gwp_kg_per_kwh: mix.gwp_kg_co2eq_per_kwh,
        energy_kwh: band(energy_low, energy_high),
        usage_gwp_kg: band(usage_low, usage_high),
        embodied_gwp_kg: band(low.embodied_gwp_kg, high.embodied_gwp_kg),
        gwp_kg: band(
            usage_low + low.embodied_gwp_kg,
            usage_high + high.embodied_gwp_kg,
        ),
        warnings: listed
            .map(|model| model.warnings.clone())
            .unwrap_or_default(),
        method: METHOD.to_string(),
    })
}

// --- Tables ------------------------------------------------------------------------

/// The three tables, parsed once. A parse error is kept as (file, line, reason)
/// because `Error` is not `Clone`.
struct Tables {
    models: Vec<HostedModel>,
    providers: Vec<ProviderDefaults>,
    mixes: Vec<ElectricityMix>,
}

type TableError = (&'static str, usize, String);

fn tables() -> Result<&'static Tables> {
    static TABLES: OnceLock<std::result::Result<Tables, TableError>> = OnceLock::new();
    TABLES
        .get_or_init(parse_tables)
        .as_ref()
        .map_err(|(file, line, reason)| Error::InvalidData {
            file: format!("data/energy/ecologits/{file}"),
            line: *line,
            reason: reason.clone(),
        })
}

/// A row of `models.csv` as written by `scripts/convert_ecologits.py`.
#[derive(Deserialize)]
struct ModelRow {
    provider: String,
    name: String,
    architecture: String,
    total_b_min: f64,
    total_b_max: f64,
    active_b_min: f64,
    active_b_max: f64,
    tps: Option<f64>,
    ttft_s: Option<f64>,
    warnings: String,
    alias_of: Option<String>,
}

fn parse_csv<T: for<'de> Deserialize<'de>>(
    file: &'static str,
    text: &str,
) -> std::result::Result<Vec<T>, TableError> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .deserialize()
        .enumerate()
        // Line 1 is the header.
        .map(|(index, row)| row.map_err(|e| (file, index + 2, e.to_string())))
        .collect()
}

fn parse_tables() -> std::result::Result<Tables, TableError> {
    let providers: Vec<ProviderDefaults> = parse_csv("providers.csv", PROVIDERS_CSV)?;
    for (index, provider) in providers.iter().enumerate() {
        if !(provider.pue_min >= 1.0 && provider.pue_min <= provider.pue_max) {
            return Err((
                "providers.csv",
                index + 2,
                format!("PUE of {} must satisfy 1 <= min <= max", provider.provider),
            ));
        }
    }

    let mixes: Vec<ElectricityMix> = parse_csv("electricity_mixes.csv", MIXES_CSV)?;
    for (index, mix) in mixes.iter().enumerate() {
        if !(mix.gwp_kg_co2eq_per_kwh >= 0.0 && mix.gwp_kg_co2eq_per_kwh.is_finite()) {
            return Err((
                "electricity_mixes.csv",
                index + 2,
                format!("GWP factor of {} must be finite and not negative", mix.zone),
            ));
        }
    }

    let rows: Vec<ModelRow> = parse_csv("models.csv", MODELS_CSV)?;
    let mut models = Vec::with_capacity(rows.len());
    for (index, row) in rows.into_iter().enumerate() {
        let line = index + 2;
        let model = HostedModel {
            size: ModelSize {
                total_b: ParameterRange {
                    min: row.total_b_min,
                    max: row.total_b_max,
                },
                active_b: ParameterRange {
                    min: row.active_b_min,
                    max: row.active_b_max,
                },
            },
            deployment: Deployment {
                tps: row.tps,
                ttft_s: row.ttft_s,
            },
            warnings: row
                .warnings
                .split(';')
                .filter(|code| !code.is_empty())
                .map(str::to_string)
                .collect(),
            provider: row.provider,
            name: row.name,
            architecture: row.architecture,
            alias_of: row.alias_of,
        };
        model
            .size
            .validate()
            .map_err(|e| ("models.csv", line, format!("{}: {e}", model.name)))?;
        if model
            .deployment
            .tps
            .is_some_and(|tps| tps.is_nan() || tps <= 0.0)
        {
            return Err((
                "models.csv",
                line,
                format!("{}: tps must be positive", model.name),
            ));
        }
        if !providers.iter().any(|p| p.provider == model.provider) {
            return Err((
                "models.csv",
                line,
                format!(
                    "{}: provider {} has no row in providers.csv",
                    model.name, model.provider
                ),
            ));
        }
        models.push(model);
    }
    Ok(Tables {
        models,
        providers,
        mixes,
    })
}

/// Returns every model that ecologits 0.11.3 lists, aliases included.
pub fn models() -> Result<&'static [HostedModel]> {
    Ok(&tables()?.models)
}

/// Returns the provider's PUE and datacenter location.
pub fn provider_defaults(provider: &str) -> Result<&'static ProviderDefaults> {
    let tables = tables()?;
    tables
        .providers
        .iter()
        .find(|row| row.provider == provider)
        .ok_or_else(|| Error::InvalidOption {
            option: "provider",
            value: provider.to_string(),
            expected: format!(
                "one of the providers that ecologits 0.11.3 covers: {}",
                tables
                    .providers
                    .iter()
                    .map(|row| row.provider.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// Returns the GWP factor of a zone's electricity mix. The code is matched without regard to case.
pub fn electricity_mix(zone: &str) -> Result<&'static ElectricityMix> {
    let code = zone.trim().to_ascii_uppercase();
    tables()?
        .mixes
        .iter()
        .find(|mix| mix.zone == code)
        .ok_or_else(|| Error::InvalidOption {
            option: "electricity mix zone",
            value: zone.to_string(),
            expected: "an ISO 3166-1 alpha-3 country code that ecologits 0.11.3 has a mix for (such as USA, FRA, SWE), or WOR for the world average".into(),
        })
}

/// Returns the listed row of a model, aliases included. Names are matched exactly, as ecologits does.
pub fn find_model(provider: &str, model: &str) -> Result<&'static HostedModel> {
    provider_defaults(provider)?;
    let tables = tables()?;
    if let Some(row) = tables
        .models
        .iter()
        .find(|row| row.provider == provider && row.name == model)
    {
        return Ok(row);
    }
    let similar = similar_names(&tables.models, provider, model);
    let hint = if similar.is_empty() {
        String::new()
    } else {
        format!(" (similar listed names: {})", similar.join(", "))
    };
    Err(Error::InvalidOption {
        option: "model",
        value: format!("{provider}/{model}"),
        expected: format!(
            "a model that ecologits 0.11.3 lists for {provider}{hint}. For another model, give its size: \
             the parameter count in billions (total and active for a mixture of experts, a value or a min-max range), \
             or the size of a listed model of the same class"
        ),
    })
}

/// Returns the parameter counts of a listed model.
pub fn lookup_model(provider: &str, model: &str) -> Result<ModelSize> {
    Ok(find_model(provider, model)?.size)
}

/// Up to three names of the provider's models that share the longest prefix with `model`.
fn similar_names(models: &[HostedModel], provider: &str, model: &str) -> Vec<String> {
    let common_prefix = |name: &str| {
        name.chars()
            .zip(model.chars())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let mut candidates: Vec<(usize, &str)> = models
        .iter()
        .filter(|row| row.provider == provider)
        .map(|row| (common_prefix(&row.name), row.name.as_str()))
        .filter(|(length, _)| *length >= 3)
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    candidates
        .into_iter()
        .take(3)
        .map(|(_, name)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        ((actual - expected) / expected).abs() <= tolerance
    }

    #[test]
    fn gpu_energy_worked_example() {
        // 8 B active parameters, 250 output tokens:
        // e^(-0.0112059 × 64) = 0.488127
        // per token 1.16653e-6 × 0.488127 × 8 + 4.05293e-5 = 4.50846e-5 Wh
        // 250 × 4.50846e-5 / 1000 = 1.12711e-5 kWh
        let kwh = gpu_energy_kwh(8.0, 250.0);
        assert!(close(kwh, 1.12711e-5, 1e-5), "{kwh}");
    }

    #[test]
    fn latency_from_deployment_figures() {
        // 250 tokens at 79 tokens/s plus 0.54 s to the first token = 3.70456 s,
        // shorter than the 10 s measured.
        let deployment = Deployment {
            tps: Some(79.0),
            ttft_s: Some(0.54),
        };
        let (seconds, source) = generation_latency_s(8.0, 250.0, 10.0, deployment);
        assert!(close(seconds, 3.70456, 1e-5), "{seconds}");
        assert_eq!(source, LatencySource::Deployment);
    }

    #[test]
    fn latency_from_regression() {
        // 8.03 B active: 6.78509e-4 × 8.03 + 3.11931e-4 × 64 + 0.0194737 = 0.0448857 s per token,
        // so 200 tokens take 8.97715 s, shorter than the 60 s measured.
        let (seconds, source) = generation_latency_s(8.03, 200.0, 60.0, Deployment::default());
        assert!(close(seconds, 8.97715, 1e-5), "{seconds}");
        assert_eq!(source, LatencySource::Regression);
    }

    #[test]
    fn latency_capped_by_measurement() {
        // The regression gives 8.97715 s, but the whole request took 2 s.
        let (seconds, source) = generation_latency_s(8.03, 200.0, 2.0, Deployment::default());
        assert_eq!(seconds, 2.0);
        assert_eq!(source, LatencySource::Measured);
    }

    #[test]
    fn latency_regression_adds_ttft() {
        // No tps, ttft 15.05 s: 50 × (6.78509e-4 × 44 + 3.11931e-4 × 64 + 0.0194737) + 15.05 = 18.5146 s.
        let deployment = Deployment {
            tps: None,
            ttft_s: Some(15.05),
        };
        let (seconds, source) = generation_latency_s(44.0, 50.0, f64::INFINITY, deployment);
        assert!(close(seconds, 18.5146, 1e-5), "{seconds}");
        assert_eq!(source, LatencySource::Regression);
    }

    #[test]
    fn gpu_count_rounds_to_power_of_two() {
        // 1.2 × P × 16 / 8 GB over 80 GB, rounded up, then to a power of two.
        assert_eq!(gpu_required_count(8.0), 1); // 19.2 GB: 0.24 GPU
        assert_eq!(gpu_required_count(34.0), 2); // 81.6 GB: 1.02 GPUs
        assert_eq!(gpu_required_count(405.85), 16); // 974.04 GB: 12.2 GPUs, 13 -> 16
        assert_eq!(gpu_required_count(440.0), 16); // 1056 GB: 13.2 GPUs, 14 -> 16
        assert_eq!(gpu_required_count(2000.0), 64); // 4800 GB: exactly 60 GPUs -> 64
    }

    #[test]
    fn server_energy_worked_example() {
        // 3.70456 s / 3600 × 1.2 kW × (1 GPU / 8) / 64 = 2.41182e-6 kWh
        let kwh = server_energy_kwh(3.70456, 1);
        assert!(close(kwh, 2.41182e-6, 1e-5), "{kwh}");
    }

    #[test]
    fn request_energy_worked_example() {
        // IT energy 2.41182e-6 + 1 × 1.12711e-5 = 1.36829e-5 kWh, and × PUE 1.2 = 1.64195e-5 kWh
        let it = request_it_energy_kwh(2.41182e-6, 1, 1.12711e-5);
        assert!(close(it, 1.36829e-5, 1e-5), "{it}");
        assert!(close(1.2 * it, 1.64195e-5, 1e-5));
    }

    #[test]
    fn embodied_gwp_worked_example() {
        // 1 GPU: 1/8 × 5700 + 1 × 273 = 985.5 kgCO2eq of hardware;
        // 3.70456 s × 985.5 / (94 608 000 s × 64) = 6.02955e-7 kgCO2eq
        let kg = request_embodied_gwp_kg(3.70456, 1);
        assert!(close(kg, 6.02955e-7, 1e-5), "{kg}");
    }

    #[test]
    fn usage_gwp_worked_example() {
        // gpt-4o-mini (8-28 B, 79 tok/s, 0.54 s), 250 tokens, openai (PUE 1.2, USA 0.3844 kgCO2eq/kWh).
        // Low end: 1.64195e-5 kWh × 0.3844 = 6.31166e-6 kgCO2eq.
        let request = HostedRequest {
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            output_tokens: 250,
            request_latency_s: 10.0,
            zone: None,
        };
        let impacts = estimate(&request, None).unwrap();
        assert!(
            close(impacts.energy_kwh.low, 1.64195e-5, 1e-5),
            "{:?}",
            impacts.energy_kwh
        );
        assert!(
            close(impacts.usage_gwp_kg.low, 6.31166e-6, 1e-5),
            "{:?}",
            impacts.usage_gwp_kg
        );
        assert_eq!(impacts.zone, "USA");
        assert_eq!(impacts.pue.low, 1.2);
        assert!(impacts.energy_kwh.high > impacts.energy_kwh.low);
    }

    #[test]
    fn pue_range_widens_band() {
        // anthropic's PUE is 1.09-1.14: the low end uses 1.09 and the high end 1.14.
        let request = HostedRequest {
            provider: "anthropic".into(),
            model: "claude-sonnet-4-5".into(),
            output_tokens: 500,
            request_latency_s: 3.0,
            zone: None,
        };
        let impacts = estimate(&request, Some(ModelSize::dense(100.0))).unwrap();
        assert_eq!((impacts.pue.low, impacts.pue.high), (1.09, 1.14));
        let ratio = impacts.energy_kwh.high / impacts.energy_kwh.low;
        assert!(close(ratio, 1.14 / 1.09, 1e-12), "{ratio}");
    }

    #[test]
    fn tables_parse() {
        assert!(models().unwrap().len() > 300);
        assert!(electricity_mix("WOR").is_ok());
        assert!(electricity_mix("fra").is_ok());
        let mistral = provider_defaults("mistralai").unwrap();
        assert_eq!(mistral.datacenter_location, "SWE");
    }

    #[test]
    fn alias_resolves_to_listed_size() {
        let alias = find_model("anthropic", "claude-sonnet-4-5").unwrap();
        let listed = find_model("anthropic", "claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(alias.size, listed.size);
        assert_eq!(
            alias.alias_of.as_deref(),
            Some("claude-sonnet-4-5-20250929")
        );
    }

    #[test]
    fn unknown_model_asks_for_size() {
        let message = lookup_model("openai", "gpt-4o-mimi")
            .unwrap_err()
            .to_string();
        assert!(message.contains("openai/gpt-4o-mimi"), "{message}");
        assert!(message.contains("parameter count"), "{message}");
        assert!(message.contains("gpt-4o-mini"), "{message}");
    }

    #[test]
    fn unknown_provider_rejected() {
        let message = lookup_model("acme", "model").unwrap_err().to_string();
        assert!(message.contains("acme"), "{message}");
        assert!(message.contains("openai"), "{message}");
    }

    #[test]
    fn unknown_zone_rejected() {
        let request = HostedRequest {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            output_tokens: 10,
            request_latency_s: 1.0,
            zone: Some("XYZ".into()),
        };
        let message = estimate(&request, None).unwrap_err().to_string();
        assert!(message.contains("XYZ"), "{message}");
    }

    #[test]
    fn negative_latency_rejected() {
        let request = HostedRequest {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            output_tokens: 10,
            request_latency_s: -1.0,
            zone: None,
        };
        assert!(estimate(&request, None).is_err());
    }

    #[test]
    fn invalid_override_rejected() {
        let request = HostedRequest {
            provider: "openai".into(),
            model: "unlisted".into(),
            output_tokens: 10,
            request_latency_s: 1.0,
            zone: None,
        };
        let size = ModelSize {
            total_b: ParameterRange {
                min: 20.0,
                max: 10.0,
            },
            active_b: ParameterRange::exact(10.0),
        };
        assert!(estimate(&request, Some(size)).is_err());
        assert!(estimate(&request, Some(ModelSize::dense(0.0))).is_err());
    }

    #[test]
    fn constants_match_converted_source() {
        let source: serde_json::Value =
            serde_json::from_str(include_str!("../../data/energy/ecologits/source.json")).unwrap();
        assert_eq!(source["version"], "0.11.3");
        let constants = &source["llm_constants"];
        let pairs = [
            ("MODEL_QUANTIZATION_BITS", MODEL_QUANTIZATION_BITS),
            ("GPU_ENERGY_ALPHA", GPU_ENERGY_ALPHA),
            ("GPU_ENERGY_BETA", GPU_ENERGY_BETA),
            ("GPU_ENERGY_GAMMA", GPU_ENERGY_GAMMA),
            ("LATENCY_ALPHA", LATENCY_ALPHA),
            ("LATENCY_BETA", LATENCY_BETA),
            ("LATENCY_GAMMA", LATENCY_GAMMA),
            ("GPU_MEMORY", GPU_MEMORY_GB),
            ("GPU_EMBODIED_IMPACT_GWP", GPU_EMBODIED_GWP_KG),
            ("SERVER_GPUS", SERVER_GPUS),
            ("SERVER_POWER", SERVER_POWER_KW),
            ("SERVER_EMBODIED_IMPACT_GWP", SERVER_EMBODIED_GWP_KG),
            ("HARDWARE_LIFESPAN", HARDWARE_LIFESPAN_S),
            ("BATCH_SIZE", BATCH_SIZE),
        ];
        for (name, value) in pairs {
            // serde_json's default float parser can be one ulp off the correctly
            // rounded value, so the check allows 1e-15 relative.
            let recorded = constants[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(
                close(recorded, value, 1e-15),
                "{name}: source.json {recorded}, code {value}"
            );
        }
    }
}
