//! The browser surface: what the page's Web Worker calls through wasm-bindgen.
//!
//! The worker downloads files and hands their bytes over. Everything else happens
//! here, on the same engine as the native CLI: hash checks, parsing, inference,
//! scoring and energy.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::backend::cpu::CpuBackend;
use crate::data::{gsm8k, seeded_subset, uci_sentiment};
use crate::eval::{self, EvalSettings, RunParts};
use crate::integrity;
use crate::models::bert::{BertFiles, SentenceEncoder};
use crate::models::head::{HeadRecord, LinearHead};
use crate::models::llama::{CausalLm, GenerateOptions};
use crate::report::{FileRecord, ModelRecord, Runtime};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    use tracing_subscriber::prelude::*;
    let console = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_writer(tracing_web::MakeWebConsoleWriter::new());
    // A second call (a worker restarted in the same realm) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(console).try_init();
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    value
        .serialize(&serializer)
        .map_err(|e| JsError::new(&e.to_string()))
}

fn js_error(error: crate::Error) -> JsError {
    JsError::new(&error.to_string())
}

/// Lowercase hexadecimal SHA-256 of `bytes`.
#[wasm_bindgen(js_name = sha256Hex)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    integrity::sha256_hex(bytes)
}

/// Checks `bytes` against `expected`; the error names `file` and both hashes.
#[wasm_bindgen(js_name = verifySha256)]
pub fn verify_sha256(file: &str, bytes: &[u8], expected: &str) -> Result<String, JsError> {
    integrity::verify_sha256(file, bytes, expected).map_err(js_error)
}

#[derive(Default)]
struct Loaded {
    encoder: Option<(SentenceEncoder<CpuBackend>, Vec<FileRecord>)>,
    llm: Option<(CausalLm<CpuBackend>, FileRecord)>,
    sentiment_head: Option<(LinearHead, HeadRecord)>,
}

/// Data files handed over by the worker for a run, each with its manifest name and hash.
#[derive(Deserialize)]
struct DataFile {
    name: String,
    sha256: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunRequest {
    tasks: Vec<String>,
    settings: EvalSettings,
    gsm8k: Option<DataFile>,
    #[serde(default)]
    uci: Vec<DataFile>,
    profile: Option<String>,
    grid: Option<String>,
    user_agent: Option<String>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Progress<'a> {
    Item {
        task: &'a str,
        done: usize,
        total: usize,
        record: serde_json::Value,
    },
}

/// The models loaded in this worker and the operations the page runs on them.
#[wasm_bindgen]
pub struct Engine {
    loaded: Rc<RefCell<Loaded>>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl Engine {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Engine {
        Engine {
            loaded: Rc::new(RefCell::new(Loaded::default())),
        }
    }

    /// Loads a sentence-transformers encoder from verified file bytes.
    #[wasm_bindgen(js_name = loadEncoder)]
    pub fn load_encoder(
        &self,
        weights: &[u8],
        tokenizer_json: &[u8],
        config_json: &[u8],
        sentence_config_json: Option<Vec<u8>>,
        file_records: JsValue,
    ) -> Result<JsValue, JsError> {
        let records: Vec<FileRecord> = serde_wasm_bindgen::from_value(file_records)?;
        let files = BertFiles {
            weights,
            tokenizer_json,
            config_json,
            sentence_config_json: sentence_config_json.as_deref(),
        };
        let name = records
            .first()
            .map(|r| r.name.clone())
            .unwrap_or_else(|| "model.safetensors".into());
        let encoder = SentenceEncoder::load(CpuBackend::new(), files, &name).map_err(js_error)?;
        let info = serde_json::json!({
            "maxLength": encoder.max_length(),
            "hiddenSize": encoder.config().hidden_size,
            "layers": encoder.config().num_hidden_layers,
        });
        self.loaded.borrow_mut().encoder = Some((encoder, records));
        to_js(&info)
    }

    /// Loads a GGUF chat model from verified file bytes.
    #[wasm_bindgen(js_name = loadLlm)]
    pub fn load_llm(&self, gguf: &[u8], file_record: JsValue) -> Result<JsValue, JsError> {
        let record: FileRecord = serde_wasm_bindgen::from_value(file_record)?;
        let llm = CausalLm::load(CpuBackend::new(), gguf, &record.name).map_err(js_error)?;
        let info = to_js(llm.config())?;
        self.loaded.borrow_mut().llm = Some((llm, record));
        Ok(info)
    }

    /// Loads a trained classification head after checking its weights against the
    /// SHA-256 in its record (`models/heads/<task>.json`).
    #[wasm_bindgen(js_name = loadHead)]
    pub fn load_head(&self, weights: &[u8], record_json: &str) -> Result<JsValue, JsError> {
        let record: HeadRecord = serde_json::from_str(record_json)
            .map_err(|e| JsError::new(&format!("invalid head record: {e}")))?;
        integrity::verify_sha256(&format!("heads/{}", record.file), weights, &record.sha256)
            .map_err(js_error)?;
        let head = LinearHead::load(weights, &record.file).map_err(js_error)?;
        if record.task != "sentiment" {
            return Err(JsError::new(&format!(
                "head for task {:?} is not supported; expected \"sentiment\"",
                record.task
            )));
        }
        let info = to_js(&record)?;
        self.loaded.borrow_mut().sentiment_head = Some((head, record));
        Ok(info)
    }

    /// Sets the encoder's token limit (at most its position embeddings, 512 for MiniLM).
    #[wasm_bindgen(js_name = setMaxLength)]
    pub fn set_max_length(&self, max_length: usize) -> Result<(), JsError> {
        let mut loaded = self.loaded.borrow_mut();
        let (encoder, _) = loaded
            .encoder
            .as_mut()
            .ok_or_else(|| JsError::new("no encoder loaded; call loadEncoder first"))?;
        encoder.set_max_length(max_length).map_err(js_error)
    }

    /// Embeds `texts` (an array of strings) as one batch; resolves to an array of embeddings.
    pub fn embed(&self, texts: JsValue) -> Result<js_sys::Promise, JsError> {
        let texts: Vec<String> = serde_wasm_bindgen::from_value(texts)?;
        let loaded = self.loaded.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let loaded = loaded.borrow();
            let (encoder, _) = loaded
                .encoder
                .as_ref()
                .ok_or_else(|| JsError::new("no encoder loaded; call loadEncoder first"))?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let embeddings = encoder.embed(&refs).await.map_err(js_error)?;
            Ok(to_js(&embeddings)?)
        }))
    }

    /// Tokenizes a rendered prompt with the chat model's tokenizer.
    #[wasm_bindgen(js_name = tokenizePrompt)]
    pub fn tokenize_prompt(&self, prompt: &str) -> Result<Vec<u32>, JsError> {
        let loaded = self.loaded.borrow();
        let (llm, _) = loaded
            .llm
            .as_ref()
            .ok_or_else(|| JsError::new("no chat model loaded; call loadLlm first"))?;
        llm.tokenizer().encode_prompt(prompt).map_err(js_error)
    }

    /// Computes the most likely next token at every position of `ids`, from a fresh cache.
    #[wasm_bindgen(js_name = teacherForcedTop1)]
    pub fn teacher_forced_top1(&self, ids: Vec<u32>) -> js_sys::Promise {
        let loaded = self.loaded.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let loaded = loaded.borrow();
            let (llm, _) = loaded
                .llm
                .as_ref()
                .ok_or_else(|| JsError::new("no chat model loaded; call loadLlm first"))?;
            let mut cache = llm.new_cache();
            let logits = llm
                .forward(&ids, &mut cache, true)
                .await
                .map_err(js_error)?;
            let vocab = logits.len() / ids.len().max(1);
            let top1: Vec<u32> = logits
                .chunks_exact(vocab)
                .map(|row| crate::models::sampling::argmax(row) as u32)
                .collect();
            Ok(js_sys::Uint32Array::from(top1.as_slice()).into())
        })
    }

    /// Generates a reply. `prompt` is a user message, or, when `raw` is true, token
    /// ids given as `promptIds`. `onToken(id, text)` is called for each new token.
    pub fn generate(
        &self,
        request: JsValue,
        on_token: js_sys::Function,
    ) -> Result<js_sys::Promise, JsError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct GenerateRequest {
            prompt: Option<String>,
            prompt_ids: Option<Vec<u32>>,
            options: GenerateOptions,
        }
        let request: GenerateRequest = serde_wasm_bindgen::from_value(request)?;
        let loaded = self.loaded.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let loaded = loaded.borrow();
            let (llm, _) = loaded
                .llm
                .as_ref()
                .ok_or_else(|| JsError::new("no chat model loaded; call loadLlm first"))?;
            let ids = match (request.prompt_ids, request.prompt) {
                (Some(ids), _) => ids,
                (None, Some(prompt)) => {
                    let rendered = llm.chat_prompt(None, &prompt).map_err(js_error)?;
                    llm.tokenizer().encode_prompt(&rendered).map_err(js_error)?
                }
                (None, None) => {
                    return Err(JsError::new("generate needs `prompt` or `promptIds`").into())
                }
            };
            let generation = llm
                .generate(&ids, &request.options, |token| {
                    let text = llm.tokenizer().decode(&[token]).unwrap_or_default();
                    let _ =
                        on_token.call2(&JsValue::NULL, &JsValue::from(token), &JsValue::from(text));
                })
                .await
                .map_err(js_error)?;
            Ok(to_js(&generation)?)
        }))
    }

    /// Runs the main job on the loaded models and resolves to the report.
    /// `onProgress(event)` receives each finished item.
    #[wasm_bindgen(js_name = runEval)]
    pub fn run_eval(
        &self,
        request: JsValue,
        on_progress: js_sys::Function,
    ) -> Result<js_sys::Promise, JsError> {
        let request: RunRequest = serde_wasm_bindgen::from_value(request)?;
        let loaded = self.loaded.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let loaded = loaded.borrow();
            let report = run_eval_inner(&loaded, request, &on_progress)
                .await
                .map_err(js_error)?;
            Ok(to_js(&report)?)
        }))
    }
}

/// Verifies and parses the UCI files in the order given, recording each in `datasets`.
fn parse_uci(
    files: &[DataFile],
    datasets: &mut Vec<FileRecord>,
) -> crate::Result<Vec<uci_sentiment::SentimentItem>> {
    let mut all = Vec::new();
    for file in files {
        integrity::verify_sha256(&file.name, file.text.as_bytes(), &file.sha256)?;
        if !datasets.iter().any(|d| d.name == file.name) {
            datasets.push(FileRecord {
                name: file.name.clone(),
                sha256: file.sha256.clone(),
                bytes: file.text.len(),
            });
        }
        let source = file
            .name
            .rsplit('/')
            .next()
            .unwrap_or("uci")
            .trim_end_matches(".json");
        all.extend(uci_sentiment::parse(&file.name, source, &file.text)?);
    }
    Ok(all)
}

fn emit(on_progress: &js_sys::Function, event: &Progress<'_>) {
    if let Ok(value) = to_js(event) {
        let _ = on_progress.call1(&JsValue::NULL, &value);
    }
}

async fn run_eval_inner(
    loaded: &Loaded,
    request: RunRequest,
    on_progress: &js_sys::Function,
) -> crate::Result<crate::report::Report> {
    use crate::Error;

    let settings = request.settings;
    let (profile, grid) =
        eval::energy_context(request.profile.as_deref(), request.grid.as_deref())?;
    let mut models = Vec::new();
    let mut datasets = Vec::new();
    let mut tasks = Vec::new();
    let mut embeddings = None;
    let missing = |what: &str| Error::InvalidOption {
        option: "tasks",
        value: what.into(),
        expected: "the model and data for this task to be loaded first".into(),
    };

    for task in &request.tasks {
        match task.as_str() {
            "gsm8k" => {
                let (llm, record) = loaded.llm.as_ref().ok_or_else(|| missing("gsm8k"))?;
                let file = request.gsm8k.as_ref().ok_or_else(|| missing("gsm8k"))?;
                integrity::verify_sha256(&file.name, file.text.as_bytes(), &file.sha256)?;
                datasets.push(FileRecord {
                    name: file.name.clone(),
                    sha256: file.sha256.clone(),
                    bytes: file.text.len(),
                });
                let all = gsm8k::parse(&file.name, &file.text)?;
                let items: Vec<_> = seeded_subset(all.len(), settings.limit, settings.seed)
                    .into_iter()
                    .map(|i| all[i].clone())
                    .collect();
                let total = items.len();
                let mut done = 0;
                let result = eval::run_gsm8k(
                    llm,
                    "SmolLM2-135M-Instruct",
                    &items,
                    &settings,
                    &profile,
                    &grid,
                    |item| {
                        done += 1;
                        let record = serde_json::to_value(item).unwrap_or_default();
                        emit(
                            on_progress,
                            &Progress::Item {
                                task: "gsm8k",
                                done,
                                total,
                                record,
                            },
                        );
                    },
                )
                .await?;
                models.push(ModelRecord {
                    name: "SmolLM2-135M-Instruct".into(),
                    files: vec![record.clone()],
                });
                tasks.push(result);
            }
            "sentiment" => {
                let (encoder, records) = loaded
                    .encoder
                    .as_ref()
                    .ok_or_else(|| missing("sentiment"))?;
                let (head, head_record) = loaded
                    .sentiment_head
                    .as_ref()
                    .ok_or_else(|| missing("sentiment"))?;
                let all = parse_uci(&request.uci, &mut datasets)?;
                let held_out = crate::tasks::sentiment::split(&all).test;
                let items: Vec<_> = seeded_subset(held_out.len(), settings.limit, settings.seed)
                    .into_iter()
                    .map(|i| all[held_out[i]].clone())
                    .collect();
                let total = items.len();
                let mut done = 0;
                let result = eval::run_sentiment(
                    encoder,
                    head,
                    "all-MiniLM-L6-v2 + head",
                    &items,
                    &settings,
                    &profile,
                    &grid,
                    |item| {
                        done += 1;
                        let record = serde_json::to_value(item).unwrap_or_default();
                        emit(
                            on_progress,
                            &Progress::Item {
                                task: "sentiment",
                                done,
                                total,
                                record,
                            },
                        );
                    },
                )
                .await?;
                let mut files = records.clone();
                files.push(FileRecord {
                    name: format!("heads/{}", head_record.file),
                    sha256: head_record.sha256.clone(),
                    bytes: head.weight.len() * 4,
                });
                models.push(ModelRecord {
                    name: "all-MiniLM-L6-v2 + sentiment head".into(),
                    files,
                });
                tasks.push(result);
            }
            "embed" => {
                let (encoder, records) = loaded.encoder.as_ref().ok_or_else(|| missing("embed"))?;
                let all = parse_uci(&request.uci, &mut datasets)?;
                let items: Vec<_> = seeded_subset(all.len(), settings.limit, settings.seed)
                    .into_iter()
                    .map(|i| all[i].clone())
                    .collect();
                let total = items.len();
                let mut done = 0;
                let run = eval::run_embeddings(
                    encoder,
                    "all-MiniLM-L6-v2",
                    &items,
                    &settings,
                    &profile,
                    &grid,
                    |item| {
                        done += 1;
                        let record = serde_json::to_value(item).unwrap_or_default();
                        emit(
                            on_progress,
                            &Progress::Item {
                                task: "embed",
                                done,
                                total,
                                record,
                            },
                        );
                    },
                )
                .await?;
                models.push(ModelRecord {
                    name: "all-MiniLM-L6-v2".into(),
                    files: records.clone(),
                });
                embeddings = Some(run);
            }
            other => {
                return Err(Error::InvalidOption {
                    option: "tasks",
                    value: other.into(),
                    expected: "gsm8k, sentiment or embed".into(),
                });
            }
        }
    }

    let runtime = Runtime {
        target: "wasm32".into(),
        backend: "cpu".into(),
        threads_used: settings.threads_used,
        device_threads: settings.device_threads,
        user_agent: request.user_agent,
    };
    eval::assemble_report(RunParts {
        runtime,
        settings,
        models,
        datasets,
        tasks,
        embeddings,
        profile,
        grid,
    })
}
