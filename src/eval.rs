//! The main job, shared by the page and the CLI: run real items through the small
//! models, time them, score them, and attach the energy estimate.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::clock::{elapsed_ms, Instant};
use crate::data::gsm8k::Gsm8kItem;
use crate::data::humaneval::Problem;
use crate::data::stories::StoryItem;
use crate::data::uci_sentiment::SentimentItem;
use crate::energy::grid::{choose_grid, GridChoice};
use crate::energy::{estimate_device, DeviceEnergy, GridIntensity, PowerProfile, PublishedFigure};
use crate::error::Result;
use crate::inputs::DataInput;
use crate::models::bert::SentenceEncoder;
use crate::models::head::LinearHead;
use crate::models::llama::{CausalLm, GenerateOptions, Generation, StopReason};
use crate::models::sampling::Sampling;
use crate::report::{
    Contrast, EmbeddingRecord, EmbeddingRun, FileRecord, ItemRecord, ModelRecord, TaskResult,
};
use crate::tasks::code_summary::{self, SummaryItem};
use crate::tasks::gsm8k;
use crate::tasks::humaneval::{self, CodeExecutor};
use crate::tasks::story;

/// Settings shared by every task of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSettings {
    pub limit: usize,
    pub seed: u64,
    pub max_new_tokens: usize,
    /// Hardware threads kept busy: 1 for the single-threaded wasm build.
    pub threads_used: f64,
    pub device_threads: usize,
    /// Queries over which one-off costs (downloads, training) are spread.
    #[serde(default = "default_amortised_queries")]
    pub amortised_queries: u64,
    /// Bytes of the runtime the page downloaded (its WebAssembly, scripts and Pyodide);
    /// 0 for the CLI, which is installed once like any program.
    #[serde(default)]
    pub runtime_download_bytes: u64,
}

fn default_amortised_queries() -> u64 {
    1000
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
            amortised_queries: default_amortised_queries(),
            runtime_download_bytes: 0,
        }
    }
}

/// Runs one greedy chat completion by the small model, timed from prompt to last token.
async fn complete<B: Backend>(
    model: &CausalLm<B>,
    user_message: &str,
    options: &GenerateOptions,
) -> Result<(Generation, f64)> {
    let start = Instant::now();
    let prompt = model.chat_prompt(None, user_message)?;
    let prompt_ids = model.tokenizer().encode_prompt(&prompt)?;
    let generation = model.generate(&prompt_ids, options, |_| {}).await?;
    Ok((generation, elapsed_ms(start)))
}

fn greedy(settings: &EvalSettings) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: settings.max_new_tokens,
        sampling: Sampling::Greedy,
        stop_at_eos: true,
    }
}

/// Builds the record of one generated output; `prediction`, `reference` and `score` come from the task.
fn generation_record(
    id: &str,
    input: &str,
    generation: Generation,
    latency_ms: f64,
    prediction: Option<String>,
    reference: &str,
    score: f64,
) -> ItemRecord {
    ItemRecord {
        id: id.to_string(),
        input: input.to_string(),
        decode_tokens_per_second: generation.decode_tokens_per_second(),
        truncated: generation.stop_reason == StopReason::MaxTokens,
        output: generation.text,
        prediction,
        reference: reference.to_string(),
        score,
        latency_ms,
        prefill_ms: generation.prefill_ms,
        tokens_in: generation.prompt_tokens,
        tokens_out: generation.token_ids.len(),
        detail: None,
        metrics: Default::default(),
    }
}

/// The inputs every task runner shares: the model's name in the report, the run's
/// settings and the energy rows.
pub struct TaskContext<'a> {
    pub model_name: String,
    pub settings: &'a EvalSettings,
    pub profile: &'a PowerProfile,
    pub grid: &'a GridIntensity,
}

impl TaskContext<'_> {
    fn energy(&self, seconds: f64, items: usize) -> DeviceEnergy {
        self.settings
            .energy(self.profile, self.grid, seconds, items)
    }
}

/// The parts of a task's result that its records do not give.
struct Aggregate {
    task: &'static str,
    prompt_version: &'static str,
    metric: &'static str,
    interval: (f64, f64),
    extra_metrics: std::collections::BTreeMap<String, f64>,
}

/// Averages the item scores into the main metric and attaches the energy of the task's time.
fn task_result(
    aggregate: Aggregate,
    context: &TaskContext<'_>,
    records: Vec<ItemRecord>,
) -> TaskResult {
    let seconds = records.iter().map(|r| r.latency_ms).sum::<f64>() / 1000.0;
    let score = if records.is_empty() {
        0.0
    } else {
        records.iter().map(|r| r.score).sum::<f64>() / records.len() as f64
    };
    TaskResult {
        task: aggregate.task.into(),
        model: context.model_name.clone(),
        prompt_version: aggregate.prompt_version.into(),
        metric: aggregate.metric.into(),
        score,
        interval: Some(aggregate.interval),
        extra_metrics: aggregate.extra_metrics,
        energy: context.energy(seconds, records.len()),
        items: records,
        seconds,
        user_data: false,
    }
}

fn wilson_of(records: &[ItemRecord]) -> (f64, f64) {
    let passed = records.iter().filter(|r| r.score > 0.0).count();
    let interval = crate::tasks::metrics::classification::wilson(passed, records.len());
    (interval.low, interval.high)
}

/// Runs GSM8K `items` through the model with greedy decoding and scores each by exact match of the final number.
pub async fn run_gsm8k<B: Backend>(
    model: &CausalLm<B>,
    context: &TaskContext<'_>,
    items: &[Gsm8kItem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<TaskResult> {
    let options = greedy(context.settings);
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        let (generation, latency_ms) =
            complete(model, &gsm8k::prompt(&item.question), &options).await?;
        let prediction = gsm8k::parse_final_number(&generation.text);
        let correct = gsm8k::exact_match(prediction.as_deref(), &item.answer);
        let record = generation_record(
            &item.id,
            &item.question,
            generation,
            latency_ms,
            prediction,
            &item.answer,
            if correct { 1.0 } else { 0.0 },
        );
        tracing::info!(id = %record.id, correct, latency_ms, tokens_out = record.tokens_out, "gsm8k item done");
        on_item(&record);
        records.push(record);
    }
    let aggregate = Aggregate {
        task: "gsm8k",
        prompt_version: gsm8k::PROMPT_VERSION,
        metric: gsm8k::METRIC,
        interval: wilson_of(&records),
        extra_metrics: Default::default(),
    };
    Ok(task_result(aggregate, context, records))
}

/// Asks the model for a one-sentence summary of each function and scores it against
/// the docstring's first sentence by ROUGE-L F1, with corpus BLEU beside it.
pub async fn run_code_summary<B: Backend>(
    model: &CausalLm<B>,
    context: &TaskContext<'_>,
    items: &[SummaryItem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<TaskResult> {
    use crate::tasks::metrics::{bleu::corpus_bleu, interval::bootstrap_mean, rouge::rouge_l};

    let options = greedy(context.settings);
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        let (generation, latency_ms) =
            complete(model, &code_summary::prompt(&item.code), &options).await?;
        let summary = code_summary::parse_summary(&generation.text);
        let score = rouge_l(&item.reference, &summary).fmeasure;
        let record = generation_record(
            &item.id,
            &item.code,
            generation,
            latency_ms,
            Some(summary),
            &item.reference,
            score,
        );
        tracing::info!(id = %record.id, score, latency_ms, "code-summary item done");
        on_item(&record);
        records.push(record);
    }
    let scores: Vec<f64> = records.iter().map(|r| r.score).collect();
    let bleu = corpus_bleu(
        records
            .iter()
            .map(|r| (r.prediction.as_deref().unwrap_or(""), r.reference.as_str())),
    );
    let aggregate = Aggregate {
        task: "code-summary",
        prompt_version: code_summary::PROMPT_VERSION,
        metric: code_summary::METRIC,
        interval: bootstrap_mean(&scores, context.settings.seed),
        extra_metrics: [("bleu".to_string(), bleu)].into(),
    };
    Ok(task_result(aggregate, context, records))
}

/// Asks the model for a story from each background and scores it against the reference.
/// The item's score is the BERTScore-style F1 over the encoder's token states. Beside it
/// come the cosine of the two sentence embeddings and the model's perplexity on the
/// reference as its reply. Scoring time is not part of the item's latency or energy.
#[allow(clippy::too_many_arguments)]
pub async fn run_story<B: Backend>(
    model: &CausalLm<B>,
    encoder: &SentenceEncoder<B>,
    context: &TaskContext<'_>,
    items: &[StoryItem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<TaskResult> {
    use crate::tasks::metrics::{bertscore::greedy_match, interval::bootstrap_mean};

    let options = greedy(context.settings);
    let mut records = Vec::with_capacity(items.len());
    let mut log_perplexities = Vec::with_capacity(items.len());
    for item in items {
        let user_message = story::prompt(&item.background);
        let (generation, latency_ms) = complete(model, &user_message, &options).await?;
        let written = story::parse_story(&generation.text);

        let reference_states = encoder.token_states(&item.reference).await?;
        let (bert, cosine) = if written.is_empty() {
            (greedy_match(&[], &reference_states), 0.0)
        } else {
            let states = encoder.token_states(&written).await?;
            let vectors = encoder
                .embed(&[written.as_str(), item.reference.as_str()])
                .await?;
            let cosine: f32 = vectors[0]
                .vector
                .iter()
                .zip(&vectors[1].vector)
                .map(|(a, b)| a * b)
                .sum();
            (greedy_match(&states, &reference_states), cosine as f64)
        };
        let prompt_ids = model
            .tokenizer()
            .encode_prompt(&model.chat_prompt(None, &user_message)?)?;
        let reference_ids = model.tokenizer().encode_text(&item.reference)?;
        let perplexity = model.perplexity(&prompt_ids, &reference_ids).await?;
        log_perplexities.push(perplexity.ln());

        let mut record = generation_record(
            &item.id,
            &item.background,
            generation,
            latency_ms,
            Some(written),
            &item.reference,
            bert.f1,
        );
        record.metrics = [
            ("bertscore_precision".to_string(), bert.precision),
            ("bertscore_recall".to_string(), bert.recall),
            ("sentence_cosine".to_string(), cosine),
            ("reference_perplexity".to_string(), perplexity),
        ]
        .into();
        tracing::info!(id = %record.id, f1 = bert.f1, cosine, perplexity, latency_ms, "story item done");
        on_item(&record);
        records.push(record);
    }
    let scores: Vec<f64> = records.iter().map(|r| r.score).collect();
    let mean_of = |name: &str| {
        records.iter().map(|r| r.metrics[name]).sum::<f64>() / records.len().max(1) as f64
    };
    let geometric_perplexity =
        (log_perplexities.iter().sum::<f64>() / log_perplexities.len().max(1) as f64).exp();
    let aggregate = Aggregate {
        task: "story",
        prompt_version: story::PROMPT_VERSION,
        metric: story::METRIC,
        interval: bootstrap_mean(&scores, context.settings.seed),
        extra_metrics: [
            ("sentence_cosine".to_string(), mean_of("sentence_cosine")),
            (
                "bertscore_precision".to_string(),
                mean_of("bertscore_precision"),
            ),
            ("bertscore_recall".to_string(), mean_of("bertscore_recall")),
            (
                "reference_perplexity_geometric_mean".to_string(),
                geometric_perplexity,
            ),
        ]
        .into(),
    };
    Ok(task_result(aggregate, context, records))
}

/// Asks the model to complete each HumanEval function, runs the program with the
/// problem's tests through `executor`, and scores pass@1 (one greedy sample per problem).
/// The execution time is not part of the item's latency or energy.
#[allow(clippy::too_many_arguments)]
pub async fn run_humaneval<B: Backend, E: CodeExecutor>(
    model: &CausalLm<B>,
    context: &TaskContext<'_>,
    executor: &E,
    problems: &[Problem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<TaskResult> {
    let options = greedy(context.settings);
    let mut records = Vec::with_capacity(problems.len());
    for problem in problems {
        let (generation, latency_ms) =
            complete(model, &humaneval::prompt(&problem.prompt), &options).await?;
        let completion = humaneval::extract_completion(&generation.text, &problem.entry_point);
        let program = humaneval::program(problem, &completion);
        let outcome = executor.execute(&program, humaneval::TIMEOUT_MS).await?;
        let mut record = generation_record(
            &problem.task_id,
            &problem.prompt,
            generation,
            latency_ms,
            Some(completion),
            &problem.canonical_solution,
            if outcome.passed { 1.0 } else { 0.0 },
        );
        tracing::info!(id = %record.id, result = %outcome.result, latency_ms, "humaneval item done");
        record.detail = Some(outcome.result);
        on_item(&record);
        records.push(record);
    }
    let aggregate = Aggregate {
        task: "humaneval",
        prompt_version: humaneval::PROMPT_VERSION,
        metric: humaneval::METRIC,
        interval: wilson_of(&records),
        extra_metrics: Default::default(),
    };
    Ok(task_result(aggregate, context, records))
}

/// Embeds each sentence on its own (batch 1, as a user's query would be) and times it.
pub async fn run_embeddings<B: Backend>(
    encoder: &SentenceEncoder<B>,
    context: &TaskContext<'_>,
    items: &[SentimentItem],
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
        model: context.model_name.clone(),
        energy: context.energy(seconds, records.len()),
        items: records,
        seconds,
    })
}

/// Classifies held-out UCI sentences with the encoder and a trained head; each item
/// scores 1 when the predicted label equals the true one.
pub async fn run_sentiment<B: Backend>(
    encoder: &SentenceEncoder<B>,
    head: &LinearHead,
    context: &TaskContext<'_>,
    items: &[SentimentItem],
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
            truncated: embedding.truncated,
            detail: None,
            metrics: Default::default(),
        };
        on_item(&record);
        records.push(record);
    }

    let truth: Vec<u8> = items.iter().map(|item| item.label).collect();
    let correct = records.iter().filter(|r| r.score > 0.0).count();
    let seconds = total_ms / 1000.0;
    let mut result = TaskResult {
        task: "sentiment".into(),
        model: context.model_name.clone(),
        prompt_version: sentiment::PROMPT_VERSION.into(),
        metric: sentiment::METRIC.into(),
        score: wilson(correct, records.len()).value,
        energy: context.energy(seconds, records.len()),
        items: records,
        seconds,
        interval: None,
        extra_metrics: Default::default(),
        user_data: false,
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

/// The sources a run's grid intensity is chosen from: the user's pick, else the locale's
/// region or the time zone (labelled as a guess), else the world average.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GridRequest {
    pub code: Option<String>,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
}

/// Looks up the profile row a run uses (the given id, or the generic CPU row) and
/// chooses its grid row.
pub fn energy_context(
    profile_id: Option<&str>,
    grid: &GridRequest,
) -> Result<(PowerProfile, GridChoice)> {
    use crate::error::Error;

    let profile_id = profile_id.unwrap_or(DEFAULT_PROFILE);
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
    let choice = choose_grid(
        grid.code.as_deref(),
        grid.locale.as_deref(),
        grid.time_zone.as_deref(),
    )?;
    Ok((profile, choice))
}

/// The profile used when neither the user nor the page's detection names one: a generic
/// server vCPU, the kind of machine the CLI most often runs on in CI.
// NOTE: the CLI does not detect its machine yet; on a laptop pass --profile, or the
// figures describe a server.
pub const DEFAULT_PROFILE: &str = "generic-x86-server-vcpu";

/// The models a run may use, each with the record the report lists for it.
pub struct Loaded<B: Backend> {
    pub encoder: Option<(SentenceEncoder<B>, ModelRecord)>,
    pub llm: Option<(CausalLm<B>, ModelRecord)>,
    pub sentiment_head: Option<(LinearHead, FileRecord)>,
    /// The training energy recorded with each loaded head, by head name.
    pub head_training: Vec<(String, crate::energy::Band)>,
}

impl<B: Backend> Default for Loaded<B> {
    fn default() -> Self {
        Self {
            encoder: None,
            llm: None,
            sentiment_head: None,
            head_training: Vec::new(),
        }
    }
}

/// Returns which models a task needs: (encoder, chat model, sentiment head).
pub fn models_needed(task: &str) -> (bool, bool, bool) {
    match task {
        "sentiment" => (true, false, true),
        "embed" => (true, false, false),
        "story" => (true, true, false),
        _ => (false, true, false),
    }
}

/// Follows a run: each finished item, and each task's start and end (where the CLI
/// measures process CPU time and re-estimates the task's energy).
pub trait RunObserver {
    fn item(&mut self, _task: &str, _done: usize, _total: usize, _record: &serde_json::Value) {}
    fn task_started(&mut self, _task: &str) {}
    fn task_finished(&mut self, _task: &str, _energy: &mut DeviceEnergy) {}
}

/// Everything a run is asked to do, besides its models.
pub struct RunRequest<'a> {
    pub tasks: &'a [String],
    pub data: &'a std::collections::BTreeMap<String, Vec<DataInput>>,
    pub settings: EvalSettings,
    pub profile: PowerProfile,
    pub grid: GridChoice,
    pub runtime: crate::report::Runtime,
}

/// Runs each requested task on its data with the loaded models and assembles the report.
/// HumanEval needs an `executor`; without one the run stops with an error that explains
/// how to allow code execution.
pub async fn run_tasks<B: Backend, E: CodeExecutor>(
    loaded: &Loaded<B>,
    executor: Option<&E>,
    request: RunRequest<'_>,
    observer: &mut impl RunObserver,
) -> Result<crate::report::Report> {
    use crate::error::Error;
    use crate::inputs::{prepare, TaskItems};

    let RunRequest {
        tasks,
        data,
        settings,
        profile,
        grid,
        runtime,
    } = request;
    let missing = |task: &str, what: &str| Error::InvalidOption {
        option: "tasks",
        value: task.to_string(),
        expected: format!("{what} to be loaded first"),
    };
    let context = |model_name: &str| TaskContext {
        model_name: model_name.to_string(),
        settings: &settings,
        profile: &profile,
        grid: &grid.grid,
    };
    let mut models: Vec<ModelRecord> = Vec::new();
    let mut datasets: Vec<FileRecord> = Vec::new();
    let mut results = Vec::new();
    let mut embeddings = None;
    for task in tasks {
        let inputs = data.get(task.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let prepared = prepare(task, inputs, settings.limit, settings.seed)?;
        for file in prepared.files {
            if !datasets
                .iter()
                .any(|d| d.name == file.name && d.sha256 == file.sha256)
            {
                datasets.push(file);
            }
        }
        let mut add_model = |record: ModelRecord| {
            if !models.iter().any(|m| m.name == record.name) {
                models.push(record);
            }
        };
        let total = prepared.items.len();
        let mut done = 0;
        let task_name = task.as_str();
        observer.task_started(task_name);
        let mut on_item = |record: &ItemRecord| {
            done += 1;
            let value = serde_json::to_value(record).unwrap_or_default();
            observer.item(task_name, done, total, &value);
        };
        let llm = || {
            loaded
                .llm
                .as_ref()
                .ok_or_else(|| missing(task_name, "the chat model"))
        };
        let mut result = match prepared.items {
            TaskItems::Gsm8k(items) => {
                let (model, record) = llm()?;
                add_model(record.clone());
                run_gsm8k(model, &context(&record.name), &items, &mut on_item).await?
            }
            TaskItems::CodeSummary(items) => {
                let (model, record) = llm()?;
                add_model(record.clone());
                run_code_summary(model, &context(&record.name), &items, &mut on_item).await?
            }
            TaskItems::HumanEval(problems) => {
                let (model, record) = llm()?;
                let executor = executor.ok_or_else(|| {
                    Error::Execution(
                        "the humaneval task runs model-written Python to score it; allow this with \
                         --execute-untrusted-code (the CLI then runs python3 in a temporary folder \
                         with time and memory limits), or leave humaneval out of --tasks"
                            .into(),
                    )
                })?;
                add_model(record.clone());
                run_humaneval(
                    model,
                    &context(&record.name),
                    executor,
                    &problems,
                    &mut on_item,
                )
                .await?
            }
            TaskItems::Story(items) => {
                let (model, record) = llm()?;
                let (encoder, encoder_record) = loaded
                    .encoder
                    .as_ref()
                    .ok_or_else(|| missing(task_name, "the encoder"))?;
                add_model(record.clone());
                add_model(encoder_record.clone());
                run_story(model, encoder, &context(&record.name), &items, &mut on_item).await?
            }
            TaskItems::Sentiment(items) => {
                let (encoder, record) = loaded
                    .encoder
                    .as_ref()
                    .ok_or_else(|| missing(task_name, "the encoder"))?;
                let (head, head_file) = loaded
                    .sentiment_head
                    .as_ref()
                    .ok_or_else(|| missing(task_name, "the sentiment head"))?;
                let mut files = record.files.clone();
                files.push(head_file.clone());
                let name = format!("{} + sentiment head", record.name);
                add_model(ModelRecord {
                    name: name.clone(),
                    files,
                });
                run_sentiment(encoder, head, &context(&name), &items, &mut on_item).await?
            }
            TaskItems::Embed(items) => {
                let (encoder, record) = loaded
                    .encoder
                    .as_ref()
                    .ok_or_else(|| missing(task_name, "the encoder"))?;
                add_model(record.clone());
                let mut on_embedding = |item: &EmbeddingRecord| {
                    done += 1;
                    let value = serde_json::to_value(item).unwrap_or_default();
                    observer.item(task_name, done, total, &value);
                };
                let mut run =
                    run_embeddings(encoder, &context(&record.name), &items, &mut on_embedding)
                        .await?;
                observer.task_finished(task_name, &mut run.energy);
                embeddings = Some(run);
                continue;
            }
        };
        observer.task_finished(task_name, &mut result.energy);
        result.user_data = prepared.user_file;
        results.push(result);
    }
    let training: Vec<(String, crate::energy::Band)> = loaded
        .head_training
        .iter()
        .filter(|(name, _)| models.iter().any(|m| m.name.contains(name.as_str())))
        .cloned()
        .collect();
    assemble_report(RunParts {
        runtime,
        settings,
        models,
        datasets,
        tasks: results,
        embeddings,
        profile,
        grid,
        training,
    })
}

/// Everything a finished run produced, assembled into a report.
pub struct RunParts {
    pub runtime: crate::report::Runtime,
    pub settings: EvalSettings,
    pub models: Vec<crate::report::ModelRecord>,
    pub datasets: Vec<crate::report::FileRecord>,
    pub tasks: Vec<TaskResult>,
    pub embeddings: Option<EmbeddingRun>,
    pub profile: PowerProfile,
    pub grid: GridChoice,
    /// The recorded training energy of the heads the run used.
    pub training: Vec<(String, crate::energy::Band)>,
}

pub fn assemble_report(parts: RunParts) -> Result<crate::report::Report> {
    let small_wh = parts
        .tasks
        .first()
        .map(|task| task.energy.attributional_wh_per_item.estimate);
    // Each model file is downloaded once, however many tasks use it.
    let mut downloaded: Vec<&FileRecord> = Vec::new();
    for file in parts.models.iter().flat_map(|model| &model.files) {
        if !downloaded.iter().any(|known| known.sha256 == file.sha256) {
            downloaded.push(file);
        }
    }
    let downloads = [
        (
            "model files".to_string(),
            downloaded.iter().map(|file| file.bytes as u64).sum(),
        ),
        (
            "the runtime".to_string(),
            parts.settings.runtime_download_bytes,
        ),
    ];
    let one_off = crate::energy::one_off::one_off_costs(
        &downloads,
        &parts.training,
        &parts.grid.grid,
        parts.settings.amortised_queries,
    )?;
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
        grid_choice: crate::report::GridChoiceNote {
            chosen_by: parts.grid.chosen_by.to_string(),
            guessed: parts.grid.guessed,
            reason: parts.grid.reason,
        },
        grid: parts.grid.grid,
        measurement: crate::report::PowerMeasurement {
            method: "none".into(),
            available: false,
            reason: Some("this build has no energy counter to read".into()),
            tasks: Vec::new(),
        },
        // The ratio compares per-query energy with the one-off costs spread in, so that
        // no headline hides them.
        hosted_reference: contrasts(
            crate::energy::published_figures()?,
            small_wh.map(|wh| wh + one_off.wh_per_query.estimate),
        ),
        one_off,
    })
}
