//! `seedling`: the native command-line tool, on the same engine as the page.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::io::Write;
    use std::path::PathBuf;
    use std::process::ExitCode;

    use anyhow::{bail, Context};
    use clap::{Parser, Subcommand};
    use seedling::data::{gsm8k, seeded_subset, uci_sentiment};
    use seedling::eval::{self, EvalSettings, RunParts};
    use seedling::manifest::defaults;
    use seedling::models::llama::GenerateOptions;
    use seedling::models::sampling::Sampling;
    use seedling::native::{self, Defaults};
    use seedling::report::{ModelRecord, Runtime};

    #[derive(Parser)]
    #[command(
        name = "seedling",
        version,
        about = "Run small language models on this device and estimate their energy and carbon"
    )]
    struct Cli {
        /// Repository root holding models/ and data/ (found from the current folder by default).
        #[arg(long, global = true)]
        root: Option<PathBuf>,
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Print sentence embeddings as JSON lines.
        Embed {
            /// Texts to embed; one embedding per text.
            #[arg(required = true)]
            texts: Vec<String>,
            /// A sentence-transformers folder or base URL instead of the default all-MiniLM-L6-v2.
            #[arg(long)]
            model: Option<String>,
            /// Token limit including special tokens (default: the model's max_seq_length, 256 for MiniLM; at most 512).
            #[arg(long)]
            max_length: Option<usize>,
        },
        /// Generate a reply to a prompt with the chat model.
        Generate {
            /// The user message, wrapped in the model's chat template unless --raw is given.
            prompt: String,
            /// A GGUF file path or URL instead of the default SmolLM2-135M-Instruct.
            #[arg(long)]
            model: Option<String>,
            /// Expected SHA-256 of --model; loading stops on a mismatch.
            #[arg(long)]
            sha256: Option<String>,
            #[arg(long, default_value_t = 128)]
            max_new_tokens: usize,
            /// Sampling temperature; 0 means greedy.
            #[arg(long, default_value_t = 0.0)]
            temperature: f32,
            /// Nucleus sampling threshold, used when temperature > 0.
            #[arg(long, default_value_t = 0.95)]
            top_p: f32,
            /// Seed for sampling, used when temperature > 0.
            #[arg(long, default_value_t = 2026)]
            seed: u64,
            /// Send the prompt as is, without the chat template.
            #[arg(long)]
            raw: bool,
        },
        /// Train a task's linear head on its training split and write it to models/heads/.
        Finetune {
            /// The task whose head to train: sentiment.
            #[arg(long)]
            task: String,
            /// Train on a seeded subset of this many training examples (a smoke test); default: all.
            #[arg(long)]
            train_limit: Option<usize>,
            #[arg(long, default_value_t = 300)]
            epochs: usize,
            #[arg(long, default_value_t = 2.0)]
            learning_rate: f64,
            #[arg(long, default_value_t = 1e-4)]
            weight_decay: f64,
            /// Folder for <task>.safetensors and <task>.json.
            #[arg(long, default_value = "models/heads")]
            out: PathBuf,
        },
        /// Run the main job and write a JSON report.
        Eval {
            /// Comma-separated tasks: gsm8k, sentiment, embed.
            #[arg(long, default_value = "gsm8k,sentiment,embed", value_delimiter = ',')]
            tasks: Vec<String>,
            /// Items per task.
            #[arg(long, default_value_t = 5)]
            limit: usize,
            /// Seed of the item subsets.
            #[arg(long, default_value_t = 2026)]
            seed: u64,
            /// Maximum tokens generated per GSM8K item.
            #[arg(long, default_value_t = 256)]
            max_new_tokens: usize,
            /// Power profile id from data/energy/power_profiles.csv.
            #[arg(long)]
            profile: Option<String>,
            /// Grid code from data/energy/grid_intensity.csv.
            #[arg(long)]
            grid: Option<String>,
            /// Report path; its folder is created if missing.
            #[arg(long, default_value = "reports/report.json")]
            out: PathBuf,
        },
    }

    pub fn main() -> ExitCode {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_writer(std::io::stderr)
            .init();
        let cli = Cli::parse();
        match run(cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }

    fn root(cli_root: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
        match cli_root {
            Some(root) => Ok(root.clone()),
            None => Ok(native::find_root()?),
        }
    }

    fn run(cli: Cli) -> anyhow::Result<()> {
        match &cli.command {
            Command::Embed {
                texts,
                model,
                max_length,
            } => {
                let mut encoder = match model {
                    Some(source) => native::load_encoder_from(source)?,
                    None => Defaults::open(&root(&cli.root)?)?.encoder()?.0,
                };
                if let Some(max_length) = max_length {
                    encoder.set_max_length(*max_length)?;
                }
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let embeddings = pollster::block_on(encoder.embed(&refs))?;
                let mut stdout = std::io::stdout().lock();
                for (text, embedding) in texts.iter().zip(embeddings) {
                    if embedding.truncated {
                        eprintln!(
                            "warning: text truncated from {} to {} tokens (max_length {})",
                            embedding.tokens_untruncated,
                            embedding.token_ids.len(),
                            encoder.max_length()
                        );
                    }
                    let line = serde_json::json!({ "text": text, "embedding": embedding });
                    writeln!(stdout, "{line}")?;
                }
            }
            Command::Generate {
                prompt,
                model,
                sha256,
                max_new_tokens,
                temperature,
                top_p,
                seed,
                raw,
            } => {
                if *max_new_tokens == 0 {
                    bail!("--max-new-tokens must be at least 1");
                }
                if !(temperature.is_finite() && *temperature >= 0.0) {
                    bail!("invalid --temperature {temperature}: use 0 for greedy decoding or a positive number");
                }
                let llm = match model {
                    Some(source) => native::load_llm_from(source, sha256.as_deref())?,
                    None => Defaults::open(&root(&cli.root)?)?.llm()?.0,
                };
                let rendered = if *raw {
                    prompt.clone()
                } else {
                    llm.chat_prompt(None, prompt)?
                };
                let ids = llm.tokenizer().encode_prompt(&rendered)?;
                let sampling = if *temperature > 0.0 {
                    Sampling::Random {
                        temperature: *temperature,
                        top_p: *top_p,
                        seed: *seed,
                    }
                } else {
                    Sampling::Greedy
                };
                let options = GenerateOptions {
                    max_new_tokens: *max_new_tokens,
                    sampling,
                    stop_at_eos: true,
                };
                let generation = pollster::block_on(llm.generate(&ids, &options, |_| {}))?;
                println!("{}", generation.text);
                eprintln!(
                    "prompt {} tokens, generated {} tokens, prefill {:.0} ms, decode {:.1} tokens/s, stop: {:?}",
                    generation.prompt_tokens,
                    generation.token_ids.len(),
                    generation.prefill_ms,
                    generation.decode_tokens_per_second().unwrap_or(0.0),
                    generation.stop_reason
                );
            }
            Command::Finetune {
                task,
                train_limit,
                epochs,
                learning_rate,
                weight_decay,
                out,
            } => {
                if task != "sentiment" {
                    bail!("unknown task {task:?} for finetune; available: sentiment");
                }
                let options = seedling::train::TrainOptions {
                    epochs: *epochs,
                    learning_rate: *learning_rate,
                    weight_decay: *weight_decay,
                };
                let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
                let record = seedling::finetune::finetune_sentiment(
                    &root(&cli.root)?,
                    out,
                    *train_limit,
                    &options,
                    &format!("seedling {command}"),
                )?;
                println!(
                    "trained on {} examples in {:.1} s; held-out accuracy {:.3} (95% interval {:.3}-{:.3}), macro-F1 {:.3} on {} examples; head written to {}",
                    record.train_examples,
                    record.training_seconds,
                    record.held_out_accuracy,
                    record.held_out_interval.0,
                    record.held_out_interval.1,
                    record.held_out_macro_f1,
                    record.test_examples,
                    out.display()
                );
            }
            Command::Eval {
                tasks,
                limit,
                seed,
                max_new_tokens,
                profile,
                grid,
                out,
            } => {
                run_eval(
                    &root(&cli.root)?,
                    tasks,
                    *limit,
                    *seed,
                    *max_new_tokens,
                    profile.as_deref(),
                    grid.as_deref(),
                    out,
                )?;
            }
        }
        Ok(())
    }

    /// Re-estimates a task's energy with the threads it kept busy, measured as process
    /// CPU time over the task's wall time, as CodeCarbon attributes CPU power per process.
    fn measured_energy(
        energy: &seedling::energy::DeviceEnergy,
        cpu_before: f64,
        profile: &seedling::energy::PowerProfile,
        grid: &seedling::energy::GridIntensity,
    ) -> seedling::energy::DeviceEnergy {
        let busy = (native::cpu_seconds() - cpu_before) / energy.seconds.max(1e-9);
        seedling::energy::estimate_device(
            profile,
            grid,
            energy.seconds,
            energy.items,
            busy,
            energy.device_threads,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn run_eval(
        root: &std::path::Path,
        tasks: &[String],
        limit: usize,
        seed: u64,
        max_new_tokens: usize,
        profile: Option<&str>,
        grid: Option<&str>,
        out: &std::path::Path,
    ) -> anyhow::Result<()> {
        for task in tasks {
            if !["gsm8k", "sentiment", "embed"].contains(&task.as_str()) {
                bail!("unknown task {task:?}; available: gsm8k, sentiment, embed");
            }
        }
        if limit == 0 || max_new_tokens == 0 {
            bail!("--limit and --max-new-tokens must be at least 1 (got {limit} and {max_new_tokens})");
        }
        // Fail before a long run, not after it, when the report cannot be written.
        if let Some(folder) = out.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("cannot create the report folder {}", folder.display()))?;
        }
        let defaults = Defaults::open(root)?;
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let settings = EvalSettings {
            limit,
            seed,
            max_new_tokens,
            threads_used: threads as f64,
            device_threads: threads,
        };
        let (profile, grid) = eval::energy_context(profile, grid)?;
        let mut models = Vec::new();
        let mut datasets = Vec::new();
        let mut results = Vec::new();
        let mut embeddings = None;
        let mut busy = Vec::new();

        if tasks.iter().any(|t| t == "gsm8k") {
            let (llm, record) = defaults.llm()?;
            models.push(ModelRecord {
                name: "SmolLM2-135M-Instruct".into(),
                files: vec![record],
            });
            let (bytes, record) = defaults.data_file(defaults::GSM8K)?;
            datasets.push(record);
            let all = gsm8k::parse(
                defaults::GSM8K,
                std::str::from_utf8(&bytes).context("GSM8K file is not UTF-8")?,
            )?;
            let items: Vec<_> = seeded_subset(all.len(), limit, seed)
                .into_iter()
                .map(|i| all[i].clone())
                .collect();
            let total = items.len();
            let mut done = 0;
            let cpu_before = native::cpu_seconds();
            let mut result = pollster::block_on(eval::run_gsm8k(
                &llm,
                "SmolLM2-135M-Instruct",
                &items,
                &settings,
                &profile,
                &grid,
                |record| {
                    done += 1;
                    eprintln!(
                        "gsm8k {done}/{total} {} predicted {}, reference {} ({:.1} s)",
                        record.id,
                        record.prediction.as_deref().unwrap_or("nothing"),
                        record.reference,
                        record.latency_ms / 1000.0
                    );
                },
            ))?;
            result.energy = measured_energy(&result.energy, cpu_before, &profile, &grid);
            busy.push(result.energy.threads_used);
            results.push(result);
        }

        if tasks.iter().any(|t| t == "sentiment") {
            let (encoder, files) = defaults.encoder()?;
            let (head, head_record) =
                seedling::finetune::load_head(&root.join("models/heads"), "sentiment")?;
            let mut model_files = files;
            model_files.push(seedling::report::FileRecord {
                name: format!("heads/{}", head_record.file),
                sha256: head_record.sha256.clone(),
                bytes: head.weight.len() * 4,
            });
            models.push(ModelRecord {
                name: "all-MiniLM-L6-v2 + sentiment head".into(),
                files: model_files,
            });
            let (all, records) = seedling::finetune::uci_items(&defaults)?;
            datasets.extend(records);
            let held_out = seedling::tasks::sentiment::split(&all).test;
            let items: Vec<_> = seeded_subset(held_out.len(), limit, seed)
                .into_iter()
                .map(|i| all[held_out[i]].clone())
                .collect();
            let cpu_before = native::cpu_seconds();
            let mut result = pollster::block_on(eval::run_sentiment(
                &encoder,
                &head,
                "all-MiniLM-L6-v2 + head",
                &items,
                &settings,
                &profile,
                &grid,
                |_| {},
            ))?;
            result.energy = measured_energy(&result.energy, cpu_before, &profile, &grid);
            busy.push(result.energy.threads_used);
            results.push(result);
        }

        if tasks.iter().any(|t| t == "embed") {
            let (encoder, files) = defaults.encoder()?;
            models.push(ModelRecord {
                name: "all-MiniLM-L6-v2".into(),
                files,
            });
            let mut all = Vec::new();
            for (source, dest) in defaults::UCI_SOURCES {
                let (bytes, record) = defaults.data_file(dest)?;
                datasets.push(record);
                all.extend(uci_sentiment::parse(
                    dest,
                    source,
                    std::str::from_utf8(&bytes).context("UCI file is not UTF-8")?,
                )?);
            }
            let items: Vec<_> = seeded_subset(all.len(), limit, seed)
                .into_iter()
                .map(|i| all[i].clone())
                .collect();
            let cpu_before = native::cpu_seconds();
            let mut run = pollster::block_on(eval::run_embeddings(
                &encoder,
                "all-MiniLM-L6-v2",
                &items,
                &settings,
                &profile,
                &grid,
                |_| {},
            ))?;
            run.energy = measured_energy(&run.energy, cpu_before, &profile, &grid);
            busy.push(run.energy.threads_used);
            embeddings = Some(run);
        }

        let runtime = Runtime {
            target: "native".into(),
            backend: "cpu".into(),
            threads_used: busy.iter().copied().fold(0.0, f64::max),
            device_threads: threads,
            user_agent: None,
        };
        let report = eval::assemble_report(RunParts {
            runtime,
            settings,
            models,
            datasets,
            tasks: results,
            embeddings,
            profile,
            grid,
        })?;
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
        println!("{}", report.summary_table());
        println!("report written to {}", out.display());
        Ok(())
    }
}
