//! The main job, shared by the page and the CLI: run real items through the small
//! models, time them, score them, and attach the energy estimate.

use futures_util::stream::{self, LocalBoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::clock::{elapsed_ms, Instant};
use crate::data::gsm8k::Gsm8kItem;
use crate::data::humaneval::Problem;
use crate::data::stories::StoryItem;
use crate::data::uci_sentiment::SentimentItem;
use crate::energy::grid::{choose_grid, GridChoice};
use crate::energy::{
    estimate_device, Band, DeviceEnergy, GridIntensity, PowerProfile, PublishedFigure,
};
use crate::error::Result;
use crate::hosted::{
    CancelFlag, EstimatePlan, Failure, FailureKind, HostedClient, HostedReply, Transport,
};
use crate::inputs::DataInput;
use crate::models::bert::SentenceEncoder;
use crate::models::head::LinearHead;
use crate::models::llama::{CausalLm, GenerateOptions, Generation, StopReason};
use crate::models::sampling::Sampling;
use crate::report::{
    Contrast, EmbeddingRecord, EmbeddingRun, FileRecord, HostedEnergy, HostedItem, ItemFailure,
    ItemRecord, ModelRecord, TaskResult,
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
    /// Points of the main metric (as a fraction: 0.05 is 5 points) the small model may
    /// fall behind the hosted one and still count as comparable.
    #[serde(default = "default_margin")]
    pub verdict_margin: f64,
}

fn default_margin() -> f64 {
    crate::verdict::DEFAULT_MARGIN
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
            verdict_margin: crate::verdict::DEFAULT_MARGIN,
        }
    }
}

/// One reply to a prompt, from the small model or the hosted one, timed.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    pub latency_ms: f64,
    /// The small model's prompt processing, or the hosted model's time to first token
    /// (0 when the reply was not streamed).
    pub prefill_ms: f64,
    pub tokens_in: usize,
    pub tokens_out: usize,
    pub decode_tokens_per_second: Option<f64>,
    /// The budget of new tokens cut the reply.
    pub truncated: bool,
    pub hosted: Option<HostedItem>,
}

/// Outcome a runner receives for each prompt: a reply, or a hosted request that failed
/// (an item left unscored). Errors of the small model end the run.
pub type ReplyOutcome = std::result::Result<Reply, Failure>;

/// Answers a task's prompts in order, as a stream, so that each item is scored and
/// reported as soon as its reply arrives.
pub trait Responder {
    fn replies<'a>(&'a self, prompts: Vec<String>) -> LocalBoxStream<'a, Result<ReplyOutcome>>;
}

/// The small chat model, greedy, one prompt after another.
pub struct SmallModel<'a, B: Backend> {
    pub model: &'a CausalLm<B>,
    pub options: GenerateOptions,
    pub cancel: &'a CancelFlag,
}

impl<B: Backend> Responder for SmallModel<'_, B> {
    fn replies<'a>(&'a self, prompts: Vec<String>) -> LocalBoxStream<'a, Result<ReplyOutcome>> {
        stream::iter(prompts)
            .then(move |prompt| async move {
                if self.cancel.is_cancelled() {
                    return Ok(Err(cancelled_failure()));
                }
                let start = Instant::now();
                let chat = self.model.chat_prompt(None, &prompt)?;
                let prompt_ids = self.model.tokenizer().encode_prompt(&chat)?;
                let generation = self
                    .model
                    .generate(&prompt_ids, &self.options, |_| {})
                    .await?;
                Ok(Ok(generation_reply(generation, elapsed_ms(start))))
            })
            .boxed_local()
    }
}

fn cancelled_failure() -> Failure {
    Failure {
        kind: FailureKind::Cancelled,
        message: "cancelled".into(),
        attempts: 0,
    }
}

fn generation_reply(generation: Generation, latency_ms: f64) -> Reply {
    Reply {
        decode_tokens_per_second: generation.decode_tokens_per_second(),
        truncated: generation.stop_reason == StopReason::MaxTokens,
        prefill_ms: generation.prefill_ms,
        tokens_in: generation.prompt_tokens,
        tokens_out: generation.token_ids.len(),
        text: generation.text,
        latency_ms,
        hosted: None,
    }
}

/// Counts the tokens of a text when the server gives no `usage`.
pub type TokenCounter<'a> = &'a dyn Fn(&str) -> Option<usize>;

/// The hosted model through its API, with the client's concurrency limit; each reply
/// carries its EcoLogits estimate.
pub struct HostedModel<'a, T: Transport> {
    pub client: &'a HostedClient<T>,
    pub plan: &'a EstimatePlan,
    /// Token counter for replies without `usage` (the small model's tokenizer). Without
    /// one, characters / 4 is the estimate.
    pub counter: Option<TokenCounter<'a>>,
}

impl<T: Transport> HostedModel<'_, T> {
    fn count(&self, text: &str) -> (usize, &'static str) {
        match self.counter.and_then(|count| count(text)) {
            Some(tokens) => (tokens, "counted"),
            None => (text.chars().count().div_ceil(4), "estimated"),
        }
    }

    fn reply(&self, prompt: &str, answer: HostedReply) -> Result<Reply> {
        let completion = answer.completion;
        let (tokens_in, tokens_out, usage) = match completion.usage {
            Some(usage) => (usage.prompt_tokens, usage.completion_tokens, "server"),
            None => {
                let (tokens_in, _) = self.count(prompt);
                let (tokens_out, how) = self.count(&completion.text);
                (tokens_in, tokens_out, how)
            }
        };
        let impacts = self.plan.estimate(
            &self.client.settings().model,
            tokens_out,
            answer.latency_ms / 1000.0,
        )?;
        let to_wh = |band: Band| Band {
            estimate: band.estimate * 1000.0,
            low: band.low * 1000.0,
            high: band.high * 1000.0,
        };
        // Streamed replies are timed from the first token on, like the small model's
        // decode; a whole reply only has its total time.
        let decode_ms = answer.latency_ms - answer.ttft_ms.unwrap_or(0.0);
        Ok(Reply {
            decode_tokens_per_second: (tokens_out > 1 && decode_ms > 0.0)
                .then(|| tokens_out as f64 / (decode_ms / 1000.0)),
            truncated: completion.finish_reason.as_deref() == Some("length"),
            prefill_ms: answer.ttft_ms.unwrap_or(0.0),
            tokens_in,
            tokens_out,
            text: completion.text,
            latency_ms: answer.latency_ms,
            hosted: Some(HostedItem {
                ttft_ms: answer.ttft_ms,
                usage: usage.to_string(),
                attempts: answer.attempts,
                energy_wh: to_wh(impacts.energy_kwh),
                usage_g_co2e: to_wh(impacts.usage_gwp_kg),
                embodied_g_co2e: to_wh(impacts.embodied_gwp_kg),
            }),
        })
    }
}

impl<T: Transport> Responder for HostedModel<'_, T> {
    fn replies<'a>(&'a self, prompts: Vec<String>) -> LocalBoxStream<'a, Result<ReplyOutcome>> {
        let concurrency = self.client.settings().concurrency.max(1);
        stream::iter(prompts.into_iter().enumerate())
            .map(move |(index, prompt)| async move {
                match self.client.complete(index, &prompt).await {
                    Ok(answer) => self.reply(&prompt, answer).map(Ok),
                    Err(failure) => Ok(Err(failure)),
                }
            })
            .buffered(concurrency)
            .boxed_local()
    }
}

fn greedy(settings: &EvalSettings) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: settings.max_new_tokens,
        sampling: Sampling::Greedy,
        stop_at_eos: true,
    }
}

/// Builds the record of one reply; `prediction`, `reference` and `score` come from the task.
fn reply_record(
    id: &str,
    input: &str,
    reply: Reply,
    prediction: Option<String>,
    reference: &str,
    score: f64,
) -> ItemRecord {
    ItemRecord {
        id: id.to_string(),
        input: input.to_string(),
        output: reply.text,
        prediction,
        reference: reference.to_string(),
        score,
        latency_ms: reply.latency_ms,
        prefill_ms: reply.prefill_ms,
        tokens_in: reply.tokens_in,
        tokens_out: reply.tokens_out,
        decode_tokens_per_second: reply.decode_tokens_per_second,
        truncated: reply.truncated,
        detail: None,
        metrics: Default::default(),
        hosted: reply.hosted,
        backend: None,
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

/// A task's scored records, and what its result needs besides them.
pub struct Scored {
    pub task: &'static str,
    pub prompt_version: &'static str,
    pub metric: &'static str,
    pub interval: (f64, f64),
    pub extra_metrics: std::collections::BTreeMap<String, f64>,
    pub records: Vec<ItemRecord>,
    pub failures: Vec<ItemFailure>,
    /// Items the task planned.
    pub planned: usize,
}

impl Scored {
    fn seconds(&self) -> f64 {
        // Adding 0.0 turns the empty sum's -0.0 into 0.0.
        self.records.iter().map(|r| r.latency_ms).sum::<f64>() / 1000.0 + 0.0
    }

    fn mean_score(&self) -> f64 {
        if self.records.is_empty() {
            0.0
        } else {
            self.records.iter().map(|r| r.score).sum::<f64>() / self.records.len() as f64
        }
    }

    /// Builds the small model's result: the scores with the device energy of the task's time.
    pub fn into_device_result(self, context: &TaskContext<'_>) -> TaskResult {
        let seconds = self.seconds();
        let energy = context.energy(seconds, self.records.len());
        self.into_result(context.model_name.clone(), energy)
    }

    /// Builds the hosted model's result: the scores with the sum of its requests' estimates.
    pub fn into_hosted_result(
        self,
        model: String,
        plan: &EstimatePlan,
    ) -> TaskResult<HostedEnergy> {
        let energy = HostedEnergy::of(&self.records, self.seconds(), plan);
        self.into_result(model, energy)
    }

    fn into_result<E>(self, model: String, energy: E) -> TaskResult<E> {
        let seconds = self.seconds();
        TaskResult {
            task: self.task.into(),
            model,
            prompt_version: self.prompt_version.into(),
            metric: self.metric.into(),
            score: self.mean_score(),
            interval: Some(self.interval),
            extra_metrics: self.extra_metrics,
            seconds,
            energy,
            planned_items: self.planned,
            failures: self.failures,
            items: self.records,
            user_data: false,
            backend: String::new(),
        }
    }
}

/// Receives a task's replies in order, keeps the failures apart, and decides when to stop:
/// at a failure that every later request would share, or after three in a row.
struct Replies<'a> {
    stream: LocalBoxStream<'a, Result<ReplyOutcome>>,
    failures: Vec<ItemFailure>,
    consecutive: usize,
    stopped: bool,
}

const CONSECUTIVE_FAILURES_TO_STOP: usize = 3;

impl<'a> Replies<'a> {
    fn new(responder: &'a impl Responder, prompts: Vec<String>) -> Self {
        Self {
            stream: responder.replies(prompts),
            failures: Vec::new(),
            consecutive: 0,
            stopped: false,
        }
    }

    /// Returns the next item's reply; `Ok(None)` when the item failed or the task stops
    /// (check `stopped`).
    async fn next(&mut self, item_id: &str) -> Result<Option<Reply>> {
        if self.stopped {
            return Ok(None);
        }
        match self.stream.next().await {
            None => {
                self.stopped = true;
                Ok(None)
            }
            Some(outcome) => match outcome? {
                Ok(reply) => {
                    self.consecutive = 0;
                    Ok(Some(reply))
                }
                Err(failure) => {
                    tracing::info!(id = item_id, kind = ?failure.kind, "{}", failure.message);
                    self.consecutive += 1;
                    self.stopped = failure.kind.stops_run()
                        || self.consecutive >= CONSECUTIVE_FAILURES_TO_STOP;
                    self.failures.push(ItemFailure {
                        id: item_id.to_string(),
                        kind: failure.kind,
                        message: failure.message,
                        attempts: failure.attempts,
                    });
                    Ok(None)
                }
            },
        }
    }
}

fn wilson_of(records: &[ItemRecord]) -> (f64, f64) {
    let passed = records.iter().filter(|r| r.score > 0.0).count();
    let interval = crate::tasks::metrics::classification::wilson(passed, records.len());
    (interval.low, interval.high)
}

/// Requests each GSM8K solution and scores it by exact match of the final number.
pub async fn run_gsm8k(
    responder: &impl Responder,
    items: &[Gsm8kItem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<Scored> {
    let prompts = items
        .iter()
        .map(|item| gsm8k::prompt(&item.question))
        .collect();
    let mut replies = Replies::new(responder, prompts);
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        let Some(reply) = replies.next(&item.id).await? else {
            if replies.stopped {
                break;
            }
            continue;
        };
        let prediction = gsm8k::parse_final_number(&reply.text);
        let correct = gsm8k::exact_match(prediction.as_deref(), &item.answer);
        let record = reply_record(
            &item.id,
            &item.question,
            reply,
            prediction,
            &item.answer,
            if correct { 1.0 } else { 0.0 },
        );
        tracing::info!(id = %record.id, correct, latency_ms = record.latency_ms, tokens_out = record.tokens_out, "gsm8k item done");
        on_item(&record);
        records.push(record);
    }
    Ok(Scored {
        task: "gsm8k",
        prompt_version: gsm8k::PROMPT_VERSION,
        metric: gsm8k::METRIC,
        interval: wilson_of(&records),
        extra_metrics: Default::default(),
        records,
        failures: replies.failures,
        planned: items.len(),
    })
}

/// Asks for a one-sentence summary of each function and scores it against the
/// docstring's first sentence by ROUGE-L F1, with corpus BLEU beside it.
pub async fn run_code_summary(
    responder: &impl Responder,
    seed: u64,
    items: &[SummaryItem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<Scored> {
    use crate::tasks::metrics::{bleu::corpus_bleu, interval::bootstrap_mean, rouge::rouge_l};

    let prompts = items
        .iter()
        .map(|item| code_summary::prompt(&item.code))
        .collect();
    let mut replies = Replies::new(responder, prompts);
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        let Some(reply) = replies.next(&item.id).await? else {
            if replies.stopped {
                break;
            }
            continue;
        };
        let summary = code_summary::parse_summary(&reply.text);
        let score = rouge_l(&item.reference, &summary).fmeasure;
        let record = reply_record(
            &item.id,
            &item.code,
            reply,
            Some(summary),
            &item.reference,
            score,
        );
        tracing::info!(id = %record.id, score, latency_ms = record.latency_ms, "code-summary item done");
        on_item(&record);
        records.push(record);
    }
    let scores: Vec<f64> = records.iter().map(|r| r.score).collect();
    let bleu = corpus_bleu(
        records
            .iter()
            .map(|r| (r.prediction.as_deref().unwrap_or(""), r.reference.as_str())),
    );
    Ok(Scored {
        task: "code-summary",
        prompt_version: code_summary::PROMPT_VERSION,
        metric: code_summary::METRIC,
        interval: bootstrap_mean(&scores, seed),
        extra_metrics: [("bleu".to_string(), bleu)].into(),
        records,
        failures: replies.failures,
        planned: items.len(),
    })
}

/// Asks for a story from each background and scores it against the reference.
/// The item's score is the BERTScore-style F1 over the encoder's token states. Beside it
/// come the cosine of the two sentence embeddings and, when `perplexity_model` is given
/// (the small model), its perplexity on the reference as its reply. Scoring time is not
/// part of the item's latency or energy.
pub async fn run_story<B: Backend>(
    responder: &impl Responder,
    encoder: &SentenceEncoder<B>,
    perplexity_model: Option<&CausalLm<B>>,
    seed: u64,
    items: &[StoryItem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<Scored> {
    use crate::tasks::metrics::{bertscore::greedy_match, interval::bootstrap_mean};

    let prompts = items
        .iter()
        .map(|item| story::prompt(&item.background))
        .collect();
    let mut replies = Replies::new(responder, prompts);
    let mut records = Vec::with_capacity(items.len());
    let mut log_perplexities = Vec::with_capacity(items.len());
    for item in items {
        let Some(reply) = replies.next(&item.id).await? else {
            if replies.stopped {
                break;
            }
            continue;
        };
        let written = story::parse_story(&reply.text);
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
        let mut metrics: std::collections::BTreeMap<String, f64> = [
            ("bertscore_precision".to_string(), bert.precision),
            ("bertscore_recall".to_string(), bert.recall),
            ("sentence_cosine".to_string(), cosine),
        ]
        .into();
        if let Some(model) = perplexity_model {
            let prompt_ids = model
                .tokenizer()
                .encode_prompt(&model.chat_prompt(None, &story::prompt(&item.background))?)?;
            let reference_ids = model.tokenizer().encode_text(&item.reference)?;
            let perplexity = model.perplexity(&prompt_ids, &reference_ids).await?;
            log_perplexities.push(perplexity.ln());
            metrics.insert("reference_perplexity".to_string(), perplexity);
        }
        let mut record = reply_record(
            &item.id,
            &item.background,
            reply,
            Some(written),
            &item.reference,
            bert.f1,
        );
        record.metrics = metrics;
        tracing::info!(id = %record.id, f1 = bert.f1, cosine, latency_ms = record.latency_ms, "story item done");
        on_item(&record);
        records.push(record);
    }
    let scores: Vec<f64> = records.iter().map(|r| r.score).collect();
    let mean_of = |name: &str| {
        records.iter().map(|r| r.metrics[name]).sum::<f64>() / records.len().max(1) as f64
    };
    let mut extra_metrics: std::collections::BTreeMap<String, f64> = [
        ("sentence_cosine".to_string(), mean_of("sentence_cosine")),
        (
            "bertscore_precision".to_string(),
            mean_of("bertscore_precision"),
        ),
        ("bertscore_recall".to_string(), mean_of("bertscore_recall")),
    ]
    .into();
    if !log_perplexities.is_empty() {
        extra_metrics.insert(
            "reference_perplexity_geometric_mean".to_string(),
            (log_perplexities.iter().sum::<f64>() / log_perplexities.len() as f64).exp(),
        );
    }
    Ok(Scored {
        task: "story",
        prompt_version: story::PROMPT_VERSION,
        metric: story::METRIC,
        interval: bootstrap_mean(&scores, seed),
        extra_metrics,
        records,
        failures: replies.failures,
        planned: items.len(),
    })
}

/// Asks for each HumanEval function's completion, runs the program with the problem's
/// tests through `executor`, and scores pass@1 (one greedy sample per problem).
/// The execution time is not part of the item's latency or energy.
pub async fn run_humaneval<E: CodeExecutor>(
    responder: &impl Responder,
    executor: &E,
    problems: &[Problem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<Scored> {
    let prompts = problems
        .iter()
        .map(|problem| humaneval::prompt(&problem.prompt))
        .collect();
    let mut replies = Replies::new(responder, prompts);
    let mut records = Vec::with_capacity(problems.len());
    for problem in problems {
        let Some(reply) = replies.next(&problem.task_id).await? else {
            if replies.stopped {
                break;
            }
            continue;
        };
        let completion = humaneval::extract_completion(&reply.text, &problem.entry_point);
        let program = humaneval::program(problem, &completion);
        let outcome = executor.execute(&program, humaneval::TIMEOUT_MS).await?;
        let mut record = reply_record(
            &problem.task_id,
            &problem.prompt,
            reply,
            Some(completion),
            &problem.canonical_solution,
            if outcome.passed { 1.0 } else { 0.0 },
        );
        tracing::info!(id = %record.id, result = %outcome.result, latency_ms = record.latency_ms, "humaneval item done");
        record.detail = Some(outcome.result);
        on_item(&record);
        records.push(record);
    }
    Ok(Scored {
        task: "humaneval",
        prompt_version: humaneval::PROMPT_VERSION,
        metric: humaneval::METRIC,
        interval: wilson_of(&records),
        extra_metrics: Default::default(),
        records,
        failures: replies.failures,
        planned: problems.len(),
    })
}

/// Asks a chat model (the hosted one) for each sentence's sentiment in one word and
/// scores it against the label. A reply naming neither label counts as wrong.
pub async fn run_sentiment_prompted(
    responder: &impl Responder,
    items: &[SentimentItem],
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<Scored> {
    use crate::tasks::metrics::classification::{macro_f1, wilson};
    use crate::tasks::sentiment;

    let prompts = items
        .iter()
        .map(|item| sentiment::prompt(&item.text))
        .collect();
    let mut replies = Replies::new(responder, prompts);
    let mut records = Vec::with_capacity(items.len());
    let (mut predictions, mut truth) = (Vec::new(), Vec::new());
    for item in items {
        let Some(reply) = replies.next(&item.id).await? else {
            if replies.stopped {
                break;
            }
            continue;
        };
        let predicted = sentiment::parse_label(&reply.text);
        // An unparsable reply is scored as the wrong label for macro-F1.
        predictions.push(predicted.unwrap_or(1 - item.label));
        truth.push(item.label);
        let record = reply_record(
            &item.id,
            &item.text,
            reply,
            predicted.map(|label| sentiment::LABELS[label as usize].to_string()),
            sentiment::LABELS[item.label as usize],
            if predicted == Some(item.label) {
                1.0
            } else {
                0.0
            },
        );
        on_item(&record);
        records.push(record);
    }
    let correct = records.iter().filter(|r| r.score > 0.0).count();
    let interval = wilson(correct, records.len());
    Ok(Scored {
        task: "sentiment",
        prompt_version: sentiment::PROMPT_VERSION,
        metric: sentiment::METRIC,
        interval: (interval.low, interval.high),
        extra_metrics: [("macro_f1".to_string(), macro_f1(&predictions, &truth, 2))].into(),
        records,
        failures: replies.failures,
        planned: items.len(),
    })
}

/// Embeds each sentence on its own (batch 1, as a user's query would be) and times it.
pub async fn run_embeddings<B: Backend>(
    encoder: &SentenceEncoder<B>,
    context: &TaskContext<'_>,
    items: &[SentimentItem],
    cancel: &CancelFlag,
    mut on_item: impl FnMut(&EmbeddingRecord),
) -> Result<EmbeddingRun> {
    let mut records = Vec::with_capacity(items.len());
    let mut total_ms = 0.0;
    for item in items {
        if cancel.is_cancelled() {
            break;
        }
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
    cancel: &CancelFlag,
    mut on_item: impl FnMut(&ItemRecord),
) -> Result<TaskResult> {
    use crate::tasks::metrics::classification::{macro_f1, wilson};
    use crate::tasks::sentiment;

    let mut records = Vec::with_capacity(items.len());
    let mut predictions = Vec::with_capacity(items.len());
    let mut truth = Vec::with_capacity(items.len());
    let mut total_ms = 0.0;
    for item in items {
        if cancel.is_cancelled() {
            break;
        }
        truth.push(item.label);
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
            hosted: None,
            backend: None,
        };
        on_item(&record);
        records.push(record);
    }

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
        planned_items: items.len(),
        failures: Vec::new(),
        user_data: false,
        backend: String::new(),
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

impl<B: Backend> Loaded<B> {
    /// Returns where the models compute right now (`webgpu` or `cpu`).
    pub fn backend_name(&self) -> &'static str {
        match (&self.llm, &self.encoder) {
            (Some((llm, _)), _) => llm.backend().name(),
            (None, Some((encoder, _))) => encoder.backend().name(),
            (None, None) => "cpu",
        }
    }
}

/// Names where a task's items ran: one backend, or the item from which a second took over.
fn backend_summary(names: &[&'static str]) -> String {
    let Some(first) = names.first() else {
        return String::new();
    };
    let mut summary = first.to_string();
    for (index, pair) in names.windows(2).enumerate() {
        if pair[0] != pair[1] {
            summary.push_str(&format!(", then {} from item {}", pair[1], index + 2));
        }
    }
    summary
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
    /// Reports an item the hosted model replied to (`record`) or failed (`failure`).
    fn hosted_item(
        &mut self,
        _task: &str,
        _done: usize,
        _total: usize,
        _record: Option<&serde_json::Value>,
        _failure: Option<&ItemFailure>,
    ) {
    }
    fn task_started(&mut self, _task: &str) {}
    fn task_finished(&mut self, _task: &str, _energy: &mut DeviceEnergy) {}
}

/// The hosted model a run compares against, with what its estimate uses.
pub struct HostedBaseline<'a, T: Transport> {
    pub client: &'a HostedClient<T>,
    pub plan: &'a EstimatePlan,
}

/// Everything a run is asked to do, besides its models.
pub struct RunRequest<'a> {
    pub tasks: &'a [String],
    pub data: &'a std::collections::BTreeMap<String, Vec<DataInput>>,
    pub settings: EvalSettings,
    pub profile: PowerProfile,
    pub grid: GridChoice,
    pub runtime: crate::report::Runtime,
    /// Stops the run between items; what finished stays in the report.
    pub cancel: CancelFlag,
}

/// Returns the code executor, or the error that explains how to allow code execution.
fn check_executor<E>(executor: Option<&E>) -> Result<&E> {
    executor.ok_or_else(|| {
        crate::error::Error::Execution(
            "the humaneval task runs model-written Python to score it; allow this with \
             --execute-untrusted-code (the CLI then runs python3 in a temporary folder \
             with time and memory limits), or leave humaneval out of --tasks"
                .into(),
        )
    })
}

/// Runs the items of one task through `responder`, whichever model it is.
#[allow(clippy::too_many_arguments)]
async fn answer_task<B: Backend, E: CodeExecutor>(
    items: &crate::inputs::TaskItems,
    responder: &impl Responder,
    encoder: Option<&SentenceEncoder<B>>,
    perplexity_model: Option<&CausalLm<B>>,
    executor: Option<&E>,
    seed: u64,
    on_item: impl FnMut(&ItemRecord),
) -> Result<Option<Scored>> {
    use crate::inputs::TaskItems;
    let scored = match items {
        TaskItems::Gsm8k(items) => run_gsm8k(responder, items, on_item).await?,
        TaskItems::CodeSummary(items) => run_code_summary(responder, seed, items, on_item).await?,
        TaskItems::HumanEval(problems) => {
            run_humaneval(responder, check_executor(executor)?, problems, on_item).await?
        }
        TaskItems::Story(items) => {
            let Some(encoder) = encoder else {
                return Ok(None);
            };
            run_story(responder, encoder, perplexity_model, seed, items, on_item).await?
        }
        TaskItems::Sentiment(items) => run_sentiment_prompted(responder, items, on_item).await?,
        TaskItems::Embed(_) => return Ok(None),
    };
    Ok(Some(scored))
}

/// Runs each requested task on its data with the loaded models, then (when `hosted`
/// is given) the same items through the hosted model, and assembles the report.
/// HumanEval needs an `executor`; without one the run stops with an error that explains
/// how to allow code execution.
pub async fn run_tasks<B: Backend, E: CodeExecutor, T: Transport>(
    loaded: &Loaded<B>,
    executor: Option<&E>,
    hosted: Option<HostedBaseline<'_, T>>,
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
        cancel,
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
    // Prepare every task's items first, so a bad data file stops the run before any work.
    let mut prepared_tasks = Vec::with_capacity(tasks.len());
    for task in tasks {
        let inputs = data.get(task.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        prepared_tasks.push((
            task.as_str(),
            prepare(task, inputs, settings.limit, settings.seed)?,
        ));
    }
    if prepared_tasks
        .iter()
        .any(|(_, p)| matches!(p.items, TaskItems::HumanEval(_)))
    {
        check_executor(executor)?;
    }
    let token_counter = |text: &str| {
        loaded
            .llm
            .as_ref()
            .and_then(|(model, _)| model.tokenizer().encode_text(text).ok())
            .map(|ids| ids.len())
    };
    let hosted_model = hosted.as_ref().map(|baseline| HostedModel {
        client: baseline.client,
        plan: baseline.plan,
        counter: Some(&token_counter),
    });

    let mut models: Vec<ModelRecord> = Vec::new();
    let mut datasets: Vec<FileRecord> = Vec::new();
    let mut results = Vec::new();
    let mut hosted_results = Vec::new();
    let mut hosted_stopped: Option<String> = None;
    let mut embeddings = None;
    for (task_name, prepared) in prepared_tasks {
        if cancel.is_cancelled() {
            break;
        }
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
        observer.task_started(task_name);
        let mut item_backends: Vec<&'static str> = Vec::new();
        let mut on_item = |record: &ItemRecord| {
            done += 1;
            let backend = loaded.backend_name();
            item_backends.push(backend);
            let mut value = serde_json::to_value(record).unwrap_or_default();
            value["backend"] = backend.into();
            observer.item(task_name, done, total, &value);
        };
        let llm = || {
            loaded
                .llm
                .as_ref()
                .ok_or_else(|| missing(task_name, "the chat model"))
        };
        let encoder = loaded.encoder.as_ref().map(|(encoder, _)| encoder);
        let mut result = match &prepared.items {
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
                run_sentiment(encoder, head, &context(&name), items, &cancel, &mut on_item).await?
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
                let mut run = run_embeddings(
                    encoder,
                    &context(&record.name),
                    items,
                    &cancel,
                    &mut on_embedding,
                )
                .await?;
                observer.task_finished(task_name, &mut run.energy);
                embeddings = Some(run);
                continue;
            }
            items => {
                let (model, record) = llm()?;
                add_model(record.clone());
                if matches!(items, TaskItems::Story(_)) {
                    let (_, encoder_record) = loaded
                        .encoder
                        .as_ref()
                        .ok_or_else(|| missing(task_name, "the encoder"))?;
                    add_model(encoder_record.clone());
                }
                let small = SmallModel {
                    model,
                    options: greedy(&settings),
                    cancel: &cancel,
                };
                let scored = answer_task(
                    items,
                    &small,
                    encoder,
                    Some(model),
                    executor,
                    settings.seed,
                    &mut on_item,
                )
                .await?
                .ok_or_else(|| missing(task_name, "the encoder"))?;
                scored.into_device_result(&context(&record.name))
            }
        };
        observer.task_finished(task_name, &mut result.energy);
        result.user_data = prepared.user_file;
        for (record, backend) in result.items.iter_mut().zip(&item_backends) {
            record.backend = Some(backend.to_string());
        }
        result.backend = backend_summary(&item_backends);
        results.push(result);

        let (Some(baseline), Some(responder)) = (&hosted, &hosted_model) else {
            continue;
        };
        if hosted_stopped.is_some() || cancel.is_cancelled() {
            continue;
        }
        let mut done = 0;
        let mut on_hosted = |record: &ItemRecord| {
            done += 1;
            let value = serde_json::to_value(record).unwrap_or_default();
            observer.hosted_item(task_name, done, total, Some(&value), None);
        };
        let Some(scored) = answer_task(
            &prepared.items,
            responder,
            encoder,
            None,
            executor,
            settings.seed,
            &mut on_hosted,
        )
        .await?
        else {
            continue;
        };
        for failure in &scored.failures {
            observer.hosted_item(task_name, 0, total, None, Some(failure));
        }
        if let Some(last) = scored.failures.last() {
            let answered = scored.records.len() + scored.failures.len();
            if last.kind.stops_run()
                || (answered < scored.planned && last.kind != FailureKind::Cancelled)
            {
                hosted_stopped = Some(last.message.clone());
            }
        }
        let mut hosted_result =
            scored.into_hosted_result(baseline.client.settings().model.clone(), baseline.plan);
        hosted_result.backend = "hosted".into();
        hosted_result.user_data = prepared.user_file;
        hosted_results.push(hosted_result);
    }
    let training: Vec<(String, crate::energy::Band)> = loaded
        .head_training
        .iter()
        .filter(|(name, _)| models.iter().any(|m| m.name.contains(name.as_str())))
        .cloned()
        .collect();
    let hosted_run = hosted.map(|baseline| {
        let settings = baseline.client.settings();
        crate::report::HostedRun {
            base_url: baseline.client.endpoint().base.clone(),
            model: settings.model.clone(),
            stream: settings.stream,
            max_tokens: settings.max_tokens,
            concurrency: settings.concurrency,
            estimate: baseline.plan.clone(),
            tasks: hosted_results,
            stopped: hosted_stopped,
        }
    });
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
        hosted: hosted_run,
        cancelled: cancel.is_cancelled(),
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
    pub hosted: Option<crate::report::HostedRun>,
    pub cancelled: bool,
}

/// The note a report carries when no hosted model was configured.
pub const NO_HOSTED_NOTE: &str = "no hosted model was configured, so there is no live baseline: the published per-prompt figures below stand in for one, and they were not measured on these prompts";

/// Compares the two models on each task both ran, per query and over the items both
/// replied to, with and without the small model's one-off costs.
fn compare(
    small: &[TaskResult],
    hosted: Option<&crate::report::HostedRun>,
    one_off_wh_per_query: f64,
    g_per_wh: f64,
    margin: f64,
) -> Vec<crate::report::TaskComparison> {
    let Some(hosted) = hosted else {
        return Vec::new();
    };
    let ratio = |hosted: f64, small: f64| (small > 0.0).then(|| hosted / small);
    small
        .iter()
        .filter_map(|task| {
            let other = hosted.tasks.iter().find(|h| h.task == task.task)?;
            let paired: Vec<(f64, f64)> = task
                .items
                .iter()
                .filter_map(|item| {
                    let answer = other.items.iter().find(|h| h.id == item.id)?;
                    Some((item.score, answer.score))
                })
                .collect();
            if paired.is_empty() {
                return None;
            }
            let count = paired.len() as f64;
            let small_score = paired.iter().map(|(s, _)| s).sum::<f64>() / count;
            let hosted_score = paired.iter().map(|(_, h)| h).sum::<f64>() / count;
            let small_wh = task.energy.attributional_wh_per_item;
            let with_one_off = small_wh.estimate + one_off_wh_per_query;
            let hosted_wh = other.energy.wh_per_item.estimate;
            let hosted_g = other.energy.g_co2e_per_item.estimate;
            let difference = small_score - hosted_score;
            let judgement = crate::verdict::judge(
                difference,
                crate::verdict::difference_interval(&paired),
                margin,
                paired.len(),
            );
            Some(crate::report::TaskComparison {
                task: task.task.clone(),
                metric: task.metric.clone(),
                items_compared: paired.len(),
                small_score,
                hosted_score,
                difference,
                judgement,
                small_wh_per_item: small_wh,
                small_wh_per_item_with_one_off: with_one_off,
                hosted_wh_per_item: other.energy.wh_per_item,
                energy_ratio: ratio(hosted_wh, small_wh.estimate),
                energy_ratio_with_one_off: ratio(hosted_wh, with_one_off),
                small_g_co2e_per_item: task.energy.g_co2e_per_item,
                hosted_g_co2e_per_item: other.energy.g_co2e_per_item,
                carbon_ratio: ratio(hosted_g, task.energy.g_co2e_per_item.estimate),
                carbon_ratio_with_one_off: ratio(hosted_g, with_one_off * g_per_wh),
            })
        })
        .collect()
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
    let comparisons = compare(
        &parts.tasks,
        parts.hosted.as_ref(),
        one_off.wh_per_query.estimate,
        parts.grid.grid.g_co2e_per_kwh / 1000.0,
        parts.settings.verdict_margin,
    );
    let headline = (!comparisons.is_empty()).then(|| {
        let outcomes: Vec<crate::verdict::TaskOutcome> = comparisons
            .iter()
            .map(|c| crate::verdict::TaskOutcome {
                verdict: c.judgement.verdict,
                small_g_co2e_per_item: c.small_g_co2e_per_item.estimate,
                hosted_g_co2e_per_item: c.hosted_g_co2e_per_item.estimate,
            })
            .collect();
        crate::verdict::headline(&outcomes)
    });
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
        comparisons,
        headline,
        hosted_note: parts.hosted.is_none().then(|| NO_HOSTED_NOTE.to_string()),
        hosted: parts.hosted,
        cancelled: parts.cancelled,
        one_off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_summary_names_the_item_where_the_cpu_took_over() {
        assert_eq!(backend_summary(&[]), "");
        assert_eq!(backend_summary(&["webgpu", "webgpu"]), "webgpu");
        assert_eq!(
            backend_summary(&["webgpu", "webgpu", "cpu", "cpu"]),
            "webgpu, then cpu from item 3"
        );
    }
}
