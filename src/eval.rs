//! The main job, shared by the page and the CLI: run real items through the small
//! models, time them, score them, and attach the energy estimate.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::clock::{elapsed_ms, Instant};
use crate::data::gsm8k::Gsm8kItem;
use crate::data::uci_sentiment::SentimentItem;
use crate::energy::{estimate_device, DeviceEnergy, GridIntensity, PowerProfile, PublishedFigure};
use crate::error::Result;
use crate::models::bert::SentenceEncoder;
use crate::models::llama::{CausalLm, GenerateOptions};
use crate::models::sampling::Sampling;
use crate::report::{Contrast, EmbeddingRecord, EmbeddingRun, ItemRecord, TaskResult};
use crate::tasks::gsm8k;

/// Settings shared by every task of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSettings {
    pub limit: usize,
    pub seed: u64,
    pub max_new_tokens: usize,
    /// Hardware threads kept busy: 1 for the single-threaded wasm build.
    pub threads_used: f64,
    pub device_threads: usize,
}

impl EvalSettings {
    /// Estimates the device energy of `items` items that took `seconds` under these settings.
    pub fn energy(
        &self,
        profile: &PowerProfile,
        grid: &GridIntensity,
        seconds: f64,
        items: usize,
    ) -> DeviceEnergy {
        estimate_device(
            profile,
            grid,
            seconds,
            items,
            self.threads_used,
            self.device_threads,
        )
    }
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            limit: 5,
            seed: 2026,
            max_new_tokens: 256,
            threads_used: 1.0,
            device_threads: 1,
        }
    }
}

/// Runs GSM8K `items` through the model with greedy decoding and scores each by exact match of the final number.
pub async fn run_gsm8k<B: Backend>(
    model: &CausalLm<B>,
    model_name: &str,
    items: &[Gsm8kItem],
    settings: &EvalSettings,
    profile: &PowerProfile,
    grid: &GridIntensity,
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<TaskResult> {
    let options = GenerateOptions {
        max_new_tokens: settings.max_new_tokens,
        sampling: Sampling::Greedy,
        stop_at_eos: true,
    };
    let mut records = Vec::with_capacity(items.len());
    let mut total_ms = 0.0;

    for item in items {
        let start = Instant::now();
        let prompt = model.chat_prompt(None, &gsm8k::prompt(&item.question))?;
        let prompt_ids = model.tokenizer().encode_prompt(&prompt)?;
        let generation = model.generate(&prompt_ids, &options, |_| {}).await?;
        let latency_ms = elapsed_ms(start);
        total_ms += latency_ms;

        let prediction = gsm8k::parse_final_number(&generation.text);
        let correct = gsm8k::exact_match(prediction.as_deref(), &item.answer);
        let record = ItemRecord {
            id: item.id.clone(),
            input: item.question.clone(),
            decode_tokens_per_second: generation.decode_tokens_per_second(),
            output: generation.text,
            prediction,
            reference: item.answer.clone(),
            score: if correct { 1.0 } else { 0.0 },
            latency_ms,
            prefill_ms: generation.prefill_ms,
            tokens_in: generation.prompt_tokens,
            tokens_out: generation.token_ids.len(),
        };
        tracing::info!(id = %record.id, correct, latency_ms, tokens_out = record.tokens_out, "gsm8k item done");
        on_item(&record);
        records.push(record);
    }

    let seconds = total_ms / 1000.0;
    let score = if records.is_empty() {
        0.0
    } else {
        records.iter().map(|r| r.score).sum::<f64>() / records.len() as f64
    };
    let correct = records.iter().filter(|r| r.score > 0.0).count();
    let interval = crate::tasks::metrics::classification::wilson(correct, records.len());
    Ok(TaskResult {
        task: "gsm8k".into(),
        model: model_name.into(),
        prompt_version: gsm8k::PROMPT_VERSION.into(),
        metric: gsm8k::METRIC.into(),
        score,
        interval: Some((interval.low, interval.high)),
        extra_metrics: Default::default(),
        energy: settings.energy(profile, grid, seconds, records.len()),
        items: records,
        seconds,
    })
}

/// Embeds each sentence on its own (batch 1, as a user's query would be) and times it.
pub async fn run_embeddings<B: Backend>(
    encoder: &SentenceEncoder<B>,
    model_name: &str,
    items: &[SentimentItem],
    settings: &EvalSettings,
    profile: &PowerProfile,
    grid: &GridIntensity,
    mut on_item: impl FnMut(&EmbeddingRecord),
) -> Result<EmbeddingRun> {
    let mut records = Vec::with_capacity(items.len());
    let mut total_ms = 0.0;
    for item in items {
        let start = Instant::now();
        let embedding = encoder.embed(&[item.text.as_str()]).await?.remove(0);
        let latency_ms = elapsed_ms(start);
        total_ms += latency_ms;
        let record = EmbeddingRecord {
            id: item.id.clone(),
            text: item.text.clone(),
            tokens: embedding.token_ids.len(),
            truncated: embedding.truncated,
            latency_ms,
            head: embedding.vector.iter().take(4).copied().collect(),
        };
        on_item(&record);
        records.push(record);
    }
    let seconds = total_ms / 1000.0;
    Ok(EmbeddingRun {
        model: model_name.into(),
        energy: settings.energy(profile, grid, seconds, records.len()),
        items: records,
        seconds,
    })
}

/// Classifies held-out UCI sentences with the encoder and a trained head; each item
/// scores 1 when the predicted label equals the true one.
pub async fn run_sentiment<B: Backend>(
    encoder: &SentenceEncoder<B>,
    head: &crate::models::head::LinearHead,
    model_name: &str,
    items: &[SentimentItem],
    settings: &EvalSettings,
    profile: &PowerProfile,
    grid: &GridIntensity,
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<TaskResult> {
    use crate::tasks::metrics::classification::{macro_f1, wilson};
    use crate::tasks::sentiment;

    let mut records = Vec::with_capacity(items.len());
    let mut predictions = Vec::with_capacity(items.len());
    let mut total_ms = 0.0;
    for item in items {
        let start = Instant::now();
        let embedding = encoder.embed(&[item.text.as_str()]).await?.remove(0);
        let probabilities = head.probabilities(&embedding.vector)?;
        let latency_ms = elapsed_ms(start);
        total_ms += latency_ms;

        let predicted = crate::models::sampling::argmax(&probabilities) as u8;
        predictions.push(predicted);
        let record = ItemRecord {
            id: item.id.clone(),
            input: item.text.clone(),
            output: format!(
                "{} ({:.3})",
                sentiment::LABELS[predicted as usize],
                probabilities[predicted as usize]
            ),
            prediction: Some(sentiment::LABELS[predicted as usize].to_string()),
            reference: sentiment::LABELS[item.label as usize].to_string(),
            score: if predicted == item.label { 1.0 } else { 0.0 },
            latency_ms,
            prefill_ms: latency_ms,
            tokens_in: embedding.token_ids.len(),
            tokens_out: 0,
            decode_tokens_per_second: None,
        };
        on_item(&record);
        records.push(record);
    }

    let truth: Vec<u8> = items.iter().map(|item| item.label).collect();
    let correct = records.iter().filter(|r| r.score > 0.0).count();
    let seconds = total_ms / 1000.0;
    let mut result = TaskResult {
        task: "sentiment".into(),
        model: model_name.into(),
        prompt_version: sentiment::PROMPT_VERSION.into(),
        metric: sentiment::METRIC.into(),
        score: wilson(correct, records.len()).value,
        energy: settings.energy(profile, grid, seconds, records.len()),
        items: records,
        seconds,
        interval: None,
        extra_metrics: Default::default(),
    };
    let interval = wilson(correct, truth.len());
    result.interval = Some((interval.low, interval.high));
    result
        .extra_metrics
        .insert("macro_f1".into(), macro_f1(&predictions, &truth, 2));
    Ok(result)
}

/// Sets each published per-prompt figure beside the small model's energy per item.
pub fn contrasts(figures: Vec<PublishedFigure>, small_wh_per_item: Option<f64>) -> Vec<Contrast> {
    figures
        .into_iter()
        .map(|figure| Contrast {
            energy_ratio: small_wh_per_item
                .filter(|wh| *wh > 0.0)
                .map(|wh| figure.wh_per_prompt / wh),
            figure,
        })
        .collect()
}

/// Looks up the profile and grid rows a run uses: the given ids, or the generic CPU row and the world average.
pub fn energy_context(
    profile_id: Option<&str>,
    grid_code: Option<&str>,
) -> Result<(PowerProfile, GridIntensity)> {
    use crate::error::Error;

    let profile_id = profile_id.unwrap_or(DEFAULT_PROFILE);
    let grid_code = grid_code.unwrap_or("WORLD");
    let profiles = crate::energy::power_profiles()?;
    let known: Vec<String> = profiles.iter().map(|p| p.id.clone()).collect();
    let profile = profiles
        .into_iter()
        .find(|p| p.id == profile_id)
        .ok_or_else(|| Error::InvalidOption {
            option: "profile",
            value: profile_id.to_string(),
            expected: format!("one of {}", known.join(", ")),
        })?;
    let grids = crate::energy::grid_intensities()?;
    let known: Vec<String> = grids.iter().map(|g| g.code.clone()).collect();
    let grid = grids
        .into_iter()
        .find(|g| g.code == grid_code)
        .ok_or_else(|| Error::InvalidOption {
            option: "grid",
            value: grid_code.to_string(),
            expected: format!("one of {}", known.join(", ")),
        })?;
    Ok((profile, grid))
}

/// The profile used until device detection picks one: a generic server vCPU.
// NOTE: laptops and phones are estimated with this server row too, so their figures
// can be off by more than the row's ±40% band.
pub const DEFAULT_PROFILE: &str = "generic-x86-server-vcpu";

/// Everything a finished run produced, assembled into a report.
pub struct RunParts {
    pub runtime: crate::report::Runtime,
    pub settings: EvalSettings,
    pub models: Vec<crate::report::ModelRecord>,
    pub datasets: Vec<crate::report::FileRecord>,
    pub tasks: Vec<TaskResult>,
    pub embeddings: Option<EmbeddingRun>,
    pub profile: PowerProfile,
    pub grid: GridIntensity,
}

pub fn assemble_report(parts: RunParts) -> Result<crate::report::Report> {
    let small_wh = parts
        .tasks
        .first()
        .map(|task| task.energy.attributional_wh_per_item.estimate);
    Ok(crate::report::Report {
        schema: crate::report::SCHEMA,
        seedling_version: env!("CARGO_PKG_VERSION"),
        created_unix_ms: web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        runtime: parts.runtime,
        seed: parts.settings.seed,
        limit: parts.settings.limit,
        max_new_tokens: parts.settings.max_new_tokens,
        models: parts.models,
        datasets: parts.datasets,
        tasks: parts.tasks,
        embeddings: parts.embeddings,
        profile: parts.profile,
        grid: parts.grid,
        hosted_reference: contrasts(crate::energy::published_figures()?, small_wh),
    })
}
