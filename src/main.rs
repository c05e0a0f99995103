//! `seedling`: the native command-line tool, on the same engine as the page.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    mod bench;

    use std::io::Write;
    use std::path::PathBuf;
    use std::process::ExitCode;

    use anyhow::{bail, Context};
    use clap::{Parser, Subcommand};
    use seedling::backend::auto::AutoBackend;
    use seedling::backend::gpu::{GpuBackend, GpuOptions};
    use seedling::backend::Backend;
    use seedling::eval::{self, EvalSettings};
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
        /// Where the models compute: auto (a hardware GPU when there is one, else the
        /// CPU), gpu (any GPU adapter, software renderers included; fails without one)
        /// or cpu.
        #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "gpu", "cpu"])]
        backend: String,
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
        /// Check every GPU kernel against the CPU path and time both (software
        /// adapters included, and labelled as such).
        Kernels {
            /// Timed calls per kernel and backend after one warm-up; the median is printed.
            #[arg(long, default_value_t = 5)]
            iterations: usize,
            /// Also write the results as JSON to this file.
            #[arg(long)]
            json: Option<PathBuf>,
        },
        /// Time the chat model's prefill and decode, or the encoder's embeddings, and
        /// print the timings as JSON (bench/run.mjs, `./build.sh bench`, calls it).
        Bench(bench::BenchArgs),
        /// Run the main job and write a JSON report.
        Eval {
            /// Comma-separated tasks: sentiment, story, gsm8k, code-summary, humaneval, embed.
            /// All of them by default (humaneval only with --execute-untrusted-code, story
            /// only with --data story=PATH).
            #[arg(long, value_delimiter = ',')]
            tasks: Option<Vec<String>>,
            /// Items per task.
            #[arg(long, default_value_t = 5)]
            limit: usize,
            /// Seed of the item subsets.
            #[arg(long, default_value_t = 2026)]
            seed: u64,
            /// Maximum tokens the chat model generates per item.
            #[arg(long, default_value_t = 256)]
            max_new_tokens: usize,
            /// A task's data from your own JSONL file instead of the default set, as
            /// TASK=PATH (repeatable). See the README for each task's fields.
            #[arg(long = "data", value_name = "TASK=PATH")]
            data: Vec<String>,
            /// Allow the humaneval task to run model-written Python with python3, in a
            /// temporary folder with time, memory and file-size limits.
            #[arg(long)]
            execute_untrusted_code: bool,
            /// Queries over which one-off costs (model downloads, head training) are
            /// spread in the per-query figure.
            #[arg(long, default_value_t = 1000)]
            amortise_over: u64,
            /// Points of the main metric the small model may fall behind the hosted one
            /// and still count as comparable (0 to 100).
            #[arg(long, default_value_t = 5.0)]
            margin: f64,
            /// Power profile id from data/energy/power_profiles.csv.
            #[arg(long)]
            profile: Option<String>,
            /// Country or region for grid intensity: ISO code (FRA or FR) or a region
            /// such as WORLD or EU (data/energy/grid_intensity.csv). Guessed from LANG
            /// when absent, and labelled as a guess in the report.
            #[arg(long)]
            grid: Option<String>,
            /// Report path; its folder is created if missing, and a CodeCarbon-compatible
            /// emissions.csv is written beside it.
            #[arg(long, default_value = "reports/report.json")]
            out: PathBuf,
            #[command(flatten)]
            hosted: Box<HostedArgs>,
        },
    }

    /// The hosted LLM that answers the same items (an OpenAI-compatible API).
    #[derive(clap::Args)]
    struct HostedArgs {
        /// Base URL of an OpenAI-compatible API, e.g. https://api.openai.com/v1 or
        /// http://127.0.0.1:8080 (/v1 is added to a bare origin). Without it, the
        /// report shows published per-prompt figures instead of a live baseline.
        #[arg(long = "hosted-url", value_name = "URL")]
        url: Option<String>,
        /// Model name on the server, e.g. gpt-4o-mini.
        #[arg(long = "hosted-model", value_name = "NAME", requires = "url")]
        model: Option<String>,
        /// Environment variable holding the API key (never given on the command line,
        /// where other users could read it).
        #[arg(
            long = "hosted-key-env",
            value_name = "VAR",
            default_value = "SEEDLING_API_KEY"
        )]
        key_env: String,
        /// EcoLogits provider for the energy estimate: openai, mistralai, anthropic,
        /// google_genai, cohere or huggingface_hub. Guessed from the URL by default.
        #[arg(long = "hosted-provider")]
        provider: Option<String>,
        /// Electricity mix zone of the datacenter (ISO alpha-3 such as USA, FRA, or WOR);
        /// the provider's default location when absent.
        #[arg(long = "hosted-zone")]
        zone: Option<String>,
        /// Size of a model EcoLogits does not list: billions of parameters (8),
        /// total:active for a mixture of experts (47:13), or a listed model of the same
        /// class (openai/gpt-4o-mini).
        #[arg(long = "hosted-size")]
        size: Option<String>,
        /// Maximum tokens per hosted reply (the small model's --max-new-tokens by default).
        #[arg(long = "hosted-max-tokens")]
        max_tokens: Option<usize>,
        /// Ask for whole replies instead of streamed ones (no time to first token).
        #[arg(long = "hosted-no-stream")]
        no_stream: bool,
        /// Seconds one attempt may take, from sending to the last byte.
        #[arg(long = "hosted-timeout", default_value_t = 60.0)]
        timeout: f64,
        /// Retries after a 429 or 5xx, with exponential backoff and jitter.
        #[arg(long = "hosted-retries", default_value_t = 4)]
        retries: u32,
        /// Hosted requests in flight at once.
        #[arg(long = "hosted-concurrency", default_value_t = 2)]
        concurrency: usize,
    }

    impl HostedArgs {
        /// Builds the hosted settings, or `None` when no URL was given.
        fn settings(
            &self,
            max_new_tokens: usize,
        ) -> anyhow::Result<Option<seedling::hosted::HostedSettings>> {
            use seedling::hosted::{ApiKey, HostedSettings, SizeHint};
            let Some(url) = &self.url else {
                return Ok(None);
            };
            let Some(model) = &self.model else {
                bail!("--hosted-url needs --hosted-model: the model name the server knows, e.g. gpt-4o-mini");
            };
            if !(self.timeout.is_finite() && self.timeout > 0.0) {
                bail!(
                    "invalid --hosted-timeout {}: give seconds greater than 0, e.g. 60",
                    self.timeout
                );
            }
            let api_key = std::env::var(&self.key_env)
                .map(ApiKey::new)
                .unwrap_or_default();
            Ok(Some(HostedSettings {
                base_url: url.clone(),
                model: model.clone(),
                api_key,
                provider: self.provider.clone(),
                zone: self.zone.clone(),
                size: self.size.as_deref().map(SizeHint::parse).transpose()?,
                max_tokens: self.max_tokens.unwrap_or(max_new_tokens),
                temperature: 0.0,
                stream: !self.no_stream,
                timeout_ms: (self.timeout * 1000.0).round() as u64,
                max_retries: self.retries,
                concurrency: self.concurrency,
            }))
        }
    }

    /// Cancels the run at the first Ctrl-C, so the report keeps what finished; a second
    /// Ctrl-C ends the process at once.
    static CANCEL: std::sync::OnceLock<seedling::hosted::CancelFlag> = std::sync::OnceLock::new();

    extern "C" fn on_interrupt(_: libc::c_int) {
        if let Some(flag) = CANCEL.get() {
            flag.cancel();
        }
        // SAFETY: signal() is async-signal-safe; restoring the default lets a second Ctrl-C end the process.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }

    fn cancel_on_interrupt() -> seedling::hosted::CancelFlag {
        let flag = CANCEL.get_or_init(Default::default).clone();
        // SAFETY: the handler only stores to an atomic and calls signal().
        unsafe {
            libc::signal(
                libc::SIGINT,
                on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
        flag
    }

    pub fn main() -> ExitCode {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
        let cli = Cli::parse();
        match run(cli) {
            // 130 is the shell's code for a process ended by Ctrl-C.
            Ok(()) if CANCEL.get().is_some_and(|flag| flag.is_cancelled()) => ExitCode::from(130),
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

    /// Opens the backend named by `choice`; `auto` falls back to the CPU and logs the reason.
    fn open_backend(choice: &str) -> anyhow::Result<AutoBackend> {
        if choice == "cpu" {
            return Ok(AutoBackend::cpu());
        }
        let options = GpuOptions {
            allow_software: choice == "gpu",
            ..Default::default()
        };
        match pollster::block_on(GpuBackend::new(&options)) {
            Ok(gpu) => {
                tracing::info!(adapter = %gpu.adapter().describe(), "running on the GPU");
                Ok(AutoBackend::gpu(gpu))
            }
            Err(error) if choice == "auto" => {
                tracing::info!("running on the CPU: {error}");
                Ok(AutoBackend::cpu())
            }
            Err(error) => Err(error.into()),
        }
    }

    fn run(cli: Cli) -> anyhow::Result<()> {
        match &cli.command {
            Command::Embed {
                texts,
                model,
                max_length,
            } => {
                let backend = open_backend(&cli.backend)?;
                let mut encoder = match model {
                    Some(source) => native::load_encoder_from(source, backend)?,
                    None => Defaults::open(&root(&cli.root)?)?.encoder_on(backend)?.0,
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
                let backend = open_backend(&cli.backend)?;
                let llm = match model {
                    Some(source) => native::load_llm_from(source, sha256.as_deref(), backend)?,
                    None => Defaults::open(&root(&cli.root)?)?.llm_on(backend)?.0,
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
            Command::Bench(args) => bench::run(&root(&cli.root)?, &cli.backend, args)?,
            Command::Kernels { iterations, json } => {
                let gpu = pollster::block_on(GpuBackend::new(&GpuOptions {
                    allow_software: true,
                    ..Default::default()
                }))?;
                let adapter = gpu.adapter().clone();
                let checks = pollster::block_on(seedling::backend::conformance::check_kernels(
                    &gpu,
                    false,
                    *iterations,
                ))?;
                println!("adapter: {}", adapter.describe());
                if adapter.software {
                    println!("software rendering: GPU timings are a CPU emulating a GPU");
                }
                println!(
                    "{:<30} {:<38} {:>9} {:>9} {:>9} {:>7}",
                    "kernel", "shape", "error", "cpu ms", "gpu ms", "ok"
                );
                let ms = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
                for check in &checks {
                    println!(
                        "{:<30} {:<38} {:>9.1e} {:>9} {:>9} {:>7}",
                        check.kernel,
                        check.shape,
                        check.error,
                        ms(check.cpu_ms),
                        ms(check.gpu_ms),
                        if check.passed { "yes" } else { "NO" }
                    );
                }
                if let Some(path) = json {
                    let value = serde_json::json!({ "adapter": adapter, "checks": checks });
                    std::fs::write(path, serde_json::to_string_pretty(&value)?)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                let failed = checks.iter().filter(|c| !c.passed).count();
                if failed > 0 {
                    bail!("{failed} kernels differ from the CPU path beyond their tolerance");
                }
            }
            Command::Eval {
                tasks,
                limit,
                seed,
                max_new_tokens,
                data,
                execute_untrusted_code,
                amortise_over,
                margin,
                profile,
                grid,
                out,
                hosted,
            } => {
                if !(0.0..=100.0).contains(margin) {
                    bail!("--margin {margin} is outside 0 to 100 points; give it in points, e.g. --margin 5");
                }
                let args = EvalArgs {
                    tasks,
                    limit: *limit,
                    seed: *seed,
                    max_new_tokens: *max_new_tokens,
                    data,
                    execute_untrusted_code: *execute_untrusted_code,
                    amortise_over: *amortise_over,
                    margin: *margin / 100.0,
                    profile: profile.as_deref(),
                    grid: grid.as_deref(),
                    out,
                    hosted: hosted.settings(*max_new_tokens)?,
                    backend: &cli.backend,
                };
                run_eval(&root(&cli.root)?, args)?;
            }
        }
        Ok(())
    }

    /// Prints each item as it finishes and re-estimates each task's energy with the
    /// threads it kept busy, measured as process CPU time over the task's wall time, as
    /// CodeCarbon attributes CPU power per process.
    struct CliObserver {
        cpu_before: f64,
        rapl: Result<seedling::rapl::Rapl, String>,
        rapl_before: Option<seedling::rapl::Reading>,
        measured: Vec<seedling::report::MeasuredEnergy>,
        profile: seedling::energy::PowerProfile,
        grid: seedling::energy::GridIntensity,
        busy: Vec<f64>,
    }

    impl eval::RunObserver for CliObserver {
        fn item(&mut self, task: &str, done: usize, total: usize, record: &serde_json::Value) {
            let field = |name: &str| record.get(name).and_then(|v| v.as_str()).unwrap_or("");
            let outcome = match task.trim_start_matches("hosted ") {
                "embed" => String::new(),
                "humaneval" => format!(" {}", field("detail")),
                _ => format!(
                    " predicted {:?}, reference {:?}",
                    record
                        .get("prediction")
                        .and_then(|v| v.as_str())
                        .unwrap_or("nothing"),
                    field("reference")
                ),
            };
            let seconds = record
                .get("latency_ms")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0)
                / 1000.0;
            eprintln!(
                "{task} {done}/{total} {}{outcome} ({seconds:.1} s)",
                field("id")
            );
        }

        fn hosted_item(
            &mut self,
            task: &str,
            done: usize,
            total: usize,
            record: Option<&serde_json::Value>,
            failure: Option<&seedling::report::ItemFailure>,
        ) {
            if let Some(failure) = failure {
                eprintln!("hosted {task} {} failed: {}", failure.id, failure.message);
            } else if let Some(record) = record {
                self.item(&format!("hosted {task}"), done, total, record);
            }
        }

        fn task_started(&mut self, _task: &str) {
            self.cpu_before = native::cpu_seconds();
            self.rapl_before = self.rapl.as_ref().ok().map(|rapl| rapl.read());
        }

        fn task_finished(&mut self, task: &str, energy: &mut seedling::energy::DeviceEnergy) {
            if let (Ok(rapl), Some(before)) = (&self.rapl, self.rapl_before.take()) {
                self.measured
                    .push(rapl.measured(task, &before, &rapl.read()));
            }
            let busy = (native::cpu_seconds() - self.cpu_before) / energy.seconds.max(1e-9);
            *energy = seedling::energy::estimate_device(
                &self.profile,
                &self.grid,
                energy.seconds,
                energy.items,
                busy,
                energy.device_threads,
            );
            self.busy.push(energy.threads_used);
        }
    }

    struct EvalArgs<'a> {
        /// As a fraction of the metric: 0.05 is 5 points.
        margin: f64,
        tasks: &'a Option<Vec<String>>,
        limit: usize,
        seed: u64,
        max_new_tokens: usize,
        data: &'a [String],
        execute_untrusted_code: bool,
        amortise_over: u64,
        profile: Option<&'a str>,
        grid: Option<&'a str>,
        out: &'a std::path::Path,
        hosted: Option<seedling::hosted::HostedSettings>,
        backend: &'a str,
    }

    fn run_eval(root: &std::path::Path, args: EvalArgs<'_>) -> anyhow::Result<()> {
        use seedling::inputs::{self, DataInput, TASKS};

        let tasks: Vec<String> = match args.tasks {
            Some(tasks) => tasks.clone(),
            None => {
                if !args.execute_untrusted_code {
                    eprintln!(
                        "note: humaneval is left out because it runs model-written code; \
                         add --execute-untrusted-code to include it"
                    );
                }
                let has_user_file = |task: &str| {
                    args.data
                        .iter()
                        .any(|spec| spec.starts_with(&format!("{task}=")))
                };
                for task in inputs::NEEDS_USER_DATA.iter().filter(|t| !has_user_file(t)) {
                    eprintln!("note: {task} is left out because it needs your own data file (--data {task}=PATH)");
                }
                TASKS
                    .iter()
                    .filter(|t| **t != "humaneval" || args.execute_untrusted_code)
                    .filter(|t| !inputs::NEEDS_USER_DATA.contains(t) || has_user_file(t))
                    .map(|t| t.to_string())
                    .collect()
            }
        };
        for task in &tasks {
            inputs::check_task(task)?;
        }
        if args.limit == 0 || args.max_new_tokens == 0 {
            bail!(
                "--limit and --max-new-tokens must be at least 1 (got {} and {})",
                args.limit,
                args.max_new_tokens
            );
        }
        // Fail before a long run, not after it, when the report cannot be written.
        if let Some(folder) = args.out.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("cannot create the report folder {}", folder.display()))?;
        }
        if args.execute_untrusted_code && tasks.iter().any(|t| t == "humaneval") {
            eprintln!(
                "warning: --execute-untrusted-code runs Python written by the model on this \
                 machine, in a temporary folder with a {} s time limit, memory and file-size \
                 limits and no network namespace where the kernel allows one. It is not a \
                 full sandbox: run it in a container or virtual machine you can throw away.",
                seedling::tasks::humaneval::TIMEOUT_MS / 1000
            );
        }

        // Check the hosted settings and the estimate's inputs before any model work.
        let cancel = cancel_on_interrupt();
        let hosted = match &args.hosted {
            Some(settings) => {
                let (client, plan) = seedling::hosted::connect(
                    seedling::hosted::native::NativeTransport,
                    settings,
                    cancel.clone(),
                )?;
                if plan.provider_guessed {
                    eprintln!(
                        "note: the hosted estimate uses EcoLogits' {} datacenter figures ({}); set --hosted-provider to choose",
                        plan.provider, plan.zone
                    );
                }
                Some((client, plan))
            }
            None => None,
        };

        let defaults = Defaults::open(root)?;
        let mut data: std::collections::BTreeMap<String, Vec<DataInput>> = Default::default();
        for spec in args.data {
            let (task, path) = spec.split_once('=').with_context(|| {
                format!("--data {spec:?}: expected TASK=PATH, e.g. gsm8k=mine.jsonl")
            })?;
            inputs::check_task(task)?;
            if !tasks.iter().any(|t| t == task) {
                bail!("--data {spec:?} names the task {task:?}, which is not in --tasks");
            }
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read --data file {path}"))?;
            data.entry(task.to_string()).or_default().push(DataInput {
                name: path.to_string(),
                bytes,
                pinned_sha256: None,
            });
        }
        for task in &tasks {
            if data.contains_key(task) {
                continue;
            }
            let mut files = Vec::new();
            for dest in inputs::default_files(task)? {
                let (bytes, record) = defaults.data_file(dest)?;
                files.push(DataInput {
                    name: dest.to_string(),
                    bytes,
                    pinned_sha256: Some(record.sha256),
                });
            }
            data.insert(task.clone(), files);
        }

        let backend = open_backend(args.backend)?;
        let mut loaded = eval::Loaded::default();
        let needs = |which: fn((bool, bool, bool)) -> bool| {
            tasks.iter().any(|t| which(eval::models_needed(t)))
        };
        if needs(|n| n.0) {
            let (encoder, files) = defaults.encoder_on(backend.clone())?;
            loaded.encoder = Some((
                encoder,
                ModelRecord {
                    name: "all-MiniLM-L6-v2".into(),
                    files,
                },
            ));
        }
        // The chat model's tokenizer also counts a hosted reply's tokens when the server
        // reports no usage.
        if needs(|n| n.1) || hosted.is_some() {
            let (llm, record) = defaults.llm_on(backend.clone())?;
            loaded.llm = Some((
                llm,
                ModelRecord {
                    name: "SmolLM2-135M-Instruct".into(),
                    files: vec![record],
                },
            ));
        }
        if needs(|n| n.2) {
            let (head, record) =
                seedling::finetune::load_head(&root.join("models/heads"), "sentiment")?;
            loaded
                .head_training
                .push(("sentiment head".to_string(), record.training_wh));
            loaded.sentiment_head = Some((
                head.clone(),
                seedling::report::FileRecord {
                    name: format!("heads/{}", record.file),
                    sha256: record.sha256.clone(),
                    bytes: head.weight.len() * 4,
                },
            ));
        }

        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let settings = EvalSettings {
            limit: args.limit,
            seed: args.seed,
            max_new_tokens: args.max_new_tokens,
            threads_used: threads as f64,
            device_threads: threads,
            amortised_queries: args.amortise_over,
            runtime_download_bytes: 0,
            verdict_margin: args.margin,
        };
        // The CLI guesses the country from the locale only (LANG such as fr_FR.UTF-8).
        let grid_request = eval::GridRequest {
            code: args.grid.map(str::to_string),
            locale: std::env::var("LANG")
                .ok()
                .map(|lang| lang.split('.').next().unwrap_or("").to_string()),
            time_zone: None,
        };
        let (profile, grid) = eval::energy_context(args.profile, &grid_request)?;
        let mut observer = CliObserver {
            cpu_before: 0.0,
            profile: profile.clone(),
            grid: grid.grid.clone(),
            busy: Vec::new(),
            rapl: seedling::rapl::Rapl::open(),
            rapl_before: None,
            measured: Vec::new(),
        };
        let executor = seedling::sandbox::PythonProcess::default();
        let runtime = Runtime {
            target: "native".into(),
            backend: backend.name().into(),
            adapter: backend.adapter().map(|a| a.describe()),
            fell_back: None,
            threads_used: threads as f64,
            device_threads: threads,
            user_agent: None,
        };
        let request = eval::RunRequest {
            tasks: &tasks,
            data: &data,
            settings,
            profile,
            grid,
            runtime,
            cancel: cancel.clone(),
        };
        let baseline = hosted
            .as_ref()
            .map(|(client, plan)| eval::HostedBaseline { client, plan });
        let mut report = pollster::block_on(eval::run_tasks(
            &loaded,
            args.execute_untrusted_code.then_some(&executor),
            baseline,
            request,
            &mut observer,
        ))?;
        if report.cancelled {
            eprintln!("cancelled: the report keeps the items that finished");
        }
        report.runtime.fell_back = backend.fell_back();
        if let Some(reason) = &report.runtime.fell_back {
            eprintln!("warning: the GPU device was lost ({reason}); the run finished on the CPU, and each task's backend names the item where the CPU took over");
        }
        if let Some(hosted) = &report.hosted {
            let failed: usize = hosted.tasks.iter().map(|task| task.failures.len()).sum();
            let answered: usize = hosted.tasks.iter().map(|task| task.items.len()).sum();
            if let Some(reason) = &hosted.stopped {
                eprintln!("warning: the hosted baseline stopped early ({answered} replies, {failed} failed): {reason}");
            } else if failed > 0 {
                eprintln!("warning: {failed} hosted requests failed and are left out of the comparison; see the report's failures");
            }
        }
        report.runtime.threads_used = observer.busy.iter().copied().fold(0.0, f64::max);
        report.measurement = seedling::report::PowerMeasurement {
            method: "rapl".into(),
            available: observer.rapl.is_ok(),
            reason: observer.rapl.as_ref().err().cloned(),
            tasks: observer.measured,
        };
        if let Some(reason) = &report.measurement.reason {
            eprintln!("note: no energy measurement beside the estimate: {reason}");
        }
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(args.out, json)
            .with_context(|| format!("writing {}", args.out.display()))?;
        let emissions = args.out.with_file_name("emissions.csv");
        std::fs::write(&emissions, report.emissions_csv())
            .with_context(|| format!("writing {}", emissions.display()))?;
        println!("{}", report.summary_table());
        println!("report written to {}", args.out.display());
        println!(
            "CodeCarbon-compatible emissions written to {}",
            emissions.display()
        );
        Ok(())
    }
}
