//! `seedling bench`: times the chat model's prefill and decode, or the encoder's
//! embeddings, on the default models, and prints one JSON object on stdout.
//! `./build.sh bench` (bench/run.mjs) runs it beside llama.cpp.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use seedling::backend::auto::AutoBackend;
use seedling::backend::Backend;
use seedling::clock::{elapsed_ms, Instant};
use seedling::models::llama::GenerateOptions;
use seedling::models::sampling::Sampling;
use seedling::native::Defaults;
use serde_json::json;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Args)]
struct Repetitions {
    /// Threads of the CPU backend (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs (0 loads the model and prints the prompt's token ids only).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

#[derive(Subcommand)]
enum Workload {
    /// Prefill of a prompt, then greedy decoding with the chat model, ignoring
    /// end-of-sequence tokens.
    Llm {
        /// Text file whose first --prompt-tokens tokens form the prompt (no chat template).
        #[arg(long, conflicts_with = "prompt_ids")]
        prompt_file: Option<PathBuf>,
        /// The prompt as comma-separated token ids.
        #[arg(long, value_delimiter = ',')]
        prompt_ids: Option<Vec<u32>>,
        /// Prompt length in tokens when --prompt-file is given.
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        /// Tokens decoded one at a time after the first generated token, which the
        /// prefill produces.
        #[arg(long, default_value_t = 128)]
        decode_tokens: usize,
        #[command(flatten)]
        repetitions: Repetitions,
    },
    /// Sentence embeddings of the batches in a JSON file:
    /// `{"cases": [{"name": "1x512", "texts": ["...", ...]}, ...]}`.
    Embed {
        #[arg(long)]
        texts_file: PathBuf,
        /// Encoder token limit, special tokens included (at most 512 for MiniLM).
        #[arg(long, default_value_t = 512)]
        max_length: usize,
        #[command(flatten)]
        repetitions: Repetitions,
    },
}

/// Peak resident set size of this process (VmHWM), where /proc is available.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Sets the threads that compute: Seedling's CPU helpers, rayon's pool and candle's,
/// which reads RAYON_NUM_THREADS.
fn set_threads(threads: Option<usize>) -> anyhow::Result<usize> {
    let Some(threads) = threads else {
        return Ok(seedling::backend::cpu::threads());
    };
    if threads == 0 {
        bail!("invalid --threads 0: give at least 1");
    }
    if let Err(chosen) = seedling::backend::cpu::set_threads(threads) {
        bail!("failed to set --threads {threads}: the CPU backend already runs {chosen} threads; pass --threads once, before the model loads");
    }
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("failed to set the size of the rayon thread pool")?;
    Ok(threads)
}

fn backend_fields(backend: &AutoBackend) -> serde_json::Value {
    json!({
        "backend": backend.name(),
        "adapter": backend.adapter().map(|adapter| adapter.describe()),
        "software": backend.adapter().map(|adapter| adapter.software),
    })
}

pub fn run(root: &Path, backend_choice: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let report = match &args.workload {
        Workload::Llm {
            prompt_file,
            prompt_ids,
            prompt_tokens,
            decode_tokens,
            repetitions,
        } => {
            let threads = set_threads(repetitions.threads)?;
            let backend = super::open_backend(backend_choice)?;
            let started = Instant::now();
            let (llm, _) = Defaults::open(root)?.llm_on(backend.clone())?;
            let load_ms = elapsed_ms(started);

            let ids = match (prompt_ids, prompt_file) {
                (Some(ids), _) => ids.clone(),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read --prompt-file {}", path.display()))?;
                    let mut ids = llm.tokenizer().encode_prompt(&text)?;
                    if ids.len() < *prompt_tokens {
                        bail!(
                            "--prompt-file {} has {} tokens; give a text of at least {prompt_tokens}",
                            path.display(),
                            ids.len()
                        );
                    }
                    ids.truncate(*prompt_tokens);
                    ids
                }
                (None, None) => bail!("missing prompt: give --prompt-file or --prompt-ids"),
            };
            let options = GenerateOptions {
                max_new_tokens: decode_tokens + 1,
                sampling: Sampling::Greedy,
                stop_at_eos: false,
            };
            let mut runs = Vec::new();
            for index in 0..repetitions.warmup + repetitions.runs {
                let generation = pollster::block_on(llm.generate(&ids, &options, |_| {}))?;
                if index >= repetitions.warmup {
                    runs.push(json!({
                        "prefill_ms": generation.prefill_ms,
                        "decode_ms": generation.decode_ms,
                        "decode_tokens": generation.token_ids.len().saturating_sub(1),
                        "token_ids": generation.token_ids,
                    }));
                }
            }
            json!({
                "workload": "llm",
                "runtime": backend_fields(&backend),
                "threads": threads,
                "load_ms": load_ms,
                "prompt_ids": ids,
                // The prompt as text, for peers that take no token ids. Tokenizing it
                // again can give other ids where the cut splits a word, so callers
                // check the peer's prompt token count.
                "prompt_text": llm.tokenizer().decode(&ids)?,
                "runs": runs,
                "peak_rss_bytes": peak_rss_bytes(),
            })
        }
        Workload::Embed {
            texts_file,
            max_length,
            repetitions,
        } => {
            #[derive(serde::Deserialize)]
            struct Case {
                name: String,
                texts: Vec<String>,
            }
            #[derive(serde::Deserialize)]
            struct Cases {
                cases: Vec<Case>,
            }
            let text = std::fs::read_to_string(texts_file)
                .with_context(|| format!("cannot read --texts-file {}", texts_file.display()))?;
            let cases: Cases = serde_json::from_str(&text)
                .with_context(|| format!("invalid --texts-file {}", texts_file.display()))?;

            let threads = set_threads(repetitions.threads)?;
            let backend = super::open_backend(backend_choice)?;
            let started = Instant::now();
            let (mut encoder, _) = Defaults::open(root)?.encoder_on(backend.clone())?;
            let load_ms = elapsed_ms(started);
            encoder.set_max_length(*max_length)?;

            let mut results = Vec::new();
            for case in &cases.cases {
                let texts: Vec<&str> = case.texts.iter().map(String::as_str).collect();
                let mut runs_ms = Vec::new();
                let mut tokens = Vec::new();
                for index in 0..repetitions.warmup + repetitions.runs {
                    let started = Instant::now();
                    let embeddings = pollster::block_on(encoder.embed(&texts))?;
                    let ms = elapsed_ms(started);
                    tokens = embeddings.iter().map(|e| e.token_ids.len()).collect();
                    if index >= repetitions.warmup {
                        runs_ms.push(ms);
                    }
                }
                results.push(json!({
                    "name": case.name,
                    "batch": texts.len(),
                    "tokens": tokens,
                    "runs_ms": runs_ms,
                }));
            }
            json!({
                "workload": "embed",
                "runtime": backend_fields(&backend),
                "threads": threads,
                "load_ms": load_ms,
                "cases": results,
                "peak_rss_bytes": peak_rss_bytes(),
            })
        }
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
