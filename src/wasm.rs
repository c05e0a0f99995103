//! The browser surface: what the page's Web Worker calls through wasm-bindgen.
//!
//! The worker downloads files and hands their bytes over. Everything else happens
//! here, on the same engine as the native CLI: hash checks, parsing, inference,
//! scoring and energy.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::backend::auto::AutoBackend;
use crate::backend::gpu::{GpuBackend, GpuOptions};
use crate::backend::Backend;
use crate::eval::{self, EvalSettings};
use crate::inputs::DataInput;
use crate::integrity;
use crate::models::bert::{BertFiles, SentenceEncoder};
use crate::models::head::{HeadRecord, LinearHead};
use crate::models::llama::{CausalLm, GenerateOptions};
use crate::report::{FileRecord, ModelRecord, Runtime};
use crate::tasks::humaneval::{CodeExecutor, ExecOutcome};

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

type Loaded = eval::Loaded<AutoBackend>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunRequest {
    tasks: Vec<String>,
    settings: EvalSettings,
    profile: Option<String>,
    #[serde(default)]
    grid: eval::GridRequest,
    user_agent: Option<String>,
    /// The hosted model to compare against, if the user configured one.
    #[serde(default)]
    hosted: Option<crate::hosted::HostedSettings>,
    /// Fault injection for tests: destroys the GPU device after this many items, to
    /// check that the run finishes on the CPU.
    #[serde(default)]
    lose_gpu_after_items: Option<usize>,
}

/// The page's code-execution sandbox (a Pyodide worker), called as
/// `executePython(program, timeoutMs)` and resolving to `{passed, result}`.
struct JsExecutor(js_sys::Function);

impl CodeExecutor for JsExecutor {
    async fn execute(&self, program: &str, timeout_ms: u64) -> crate::Result<ExecOutcome> {
        let failed =
            |what: String| crate::Error::Execution(format!("the code sandbox failed: {what}"));
        let promise = self
            .0
            .call2(
                &JsValue::NULL,
                &JsValue::from(program),
                &JsValue::from(timeout_ms as f64),
            )
            .map_err(|e| failed(format!("{e:?}")))?;
        let value = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
            .await
            .map_err(|e| failed(e.as_string().unwrap_or_else(|| format!("{e:?}"))))?;
        serde_wasm_bindgen::from_value(value).map_err(|e| failed(e.to_string()))
    }
}

/// Lists the grid-intensity rows for the country picker: `{code, name, gCo2ePerKwh}`,
/// named in `language` (`fr` or English), world first, then regions, then countries.
#[wasm_bindgen(js_name = gridOptions)]
pub fn grid_options(language: &str) -> Result<JsValue, JsError> {
    let rows = crate::energy::grid_intensities().map_err(js_error)?;
    let options: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let name = if language == "fr" {
                &row.name_fr
            } else {
                &row.name
            };
            serde_json::json!({ "code": row.code, "name": name, "gCo2ePerKwh": row.g_co2e_per_kwh })
        })
        .collect();
    to_js(&options)
}

/// Picks the power profile that best matches what the browser reports (`hints`: WebGPU
/// adapter info, WebGL renderer, platform, user agent, cores, memory) with the reason.
#[wasm_bindgen(js_name = detectProfile)]
pub fn detect_profile(hints: JsValue) -> Result<JsValue, JsError> {
    let hints: crate::energy::detect::DeviceHints = serde_wasm_bindgen::from_value(hints)?;
    let profiles = crate::energy::power_profiles().map_err(js_error)?;
    to_js(&crate::energy::detect::match_profile(&hints, &profiles))
}

/// Lists the power profiles for the override picker: `{id, label, class}`.
#[wasm_bindgen(js_name = profileOptions)]
pub fn profile_options() -> Result<JsValue, JsError> {
    let profiles = crate::energy::power_profiles().map_err(js_error)?;
    let options: Vec<serde_json::Value> = profiles
        .iter()
        .map(|p| serde_json::json!({ "id": p.id, "label": p.label, "class": p.class }))
        .collect();
    to_js(&options)
}

/// Judges a report's comparisons again with `margin` (a fraction: 0.05 is 5 points)
/// and recomputes its headline; returns the updated report.
#[wasm_bindgen]
pub fn rejudge(report: JsValue, margin: f64) -> Result<JsValue, JsError> {
    let mut report: serde_json::Value = serde_wasm_bindgen::from_value(report)?;
    crate::verdict::rejudge(&mut report, margin).map_err(js_error)?;
    to_js(&report)
}

/// Checks a finished report against the device's limits (`DeviceLimits` in camelCase).
#[wasm_bindgen(js_name = assessFeasibility)]
pub fn assess_feasibility(report: JsValue, limits: JsValue) -> Result<JsValue, JsError> {
    let report: serde_json::Value = serde_wasm_bindgen::from_value(report)?;
    let limits: crate::feasibility::DeviceLimits = serde_wasm_bindgen::from_value(limits)?;
    to_js(&crate::feasibility::assess(&report, &limits).map_err(js_error)?)
}

/// `g_co2e` in everyday equivalents for readers of `language`, each with its source.
#[wasm_bindgen]
pub fn equivalents(g_co2e: f64, language: &str) -> Result<JsValue, JsError> {
    to_js(&crate::energy::equivalents::express(g_co2e, language).map_err(js_error)?)
}

/// Returns the size of this module's WebAssembly memory in bytes. Wasm memory grows and
/// never shrinks, so after a run this is the run's peak.
#[wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size(0) * 65536) as f64
}

/// Lists the default data files of `task` by their data-manifest destination.
#[wasm_bindgen(js_name = defaultDataFiles)]
pub fn default_data_files(task: &str) -> Result<Vec<String>, JsError> {
    Ok(crate::inputs::default_files(task)
        .map_err(js_error)?
        .into_iter()
        .map(str::to_string)
        .collect())
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
    HostedItem {
        task: &'a str,
        done: usize,
        total: usize,
        record: Option<serde_json::Value>,
        failure: Option<crate::report::ItemFailure>,
    },
}

/// A JavaScript `Uint8Array` read on demand: each read copies only the requested range
/// into the wasm memory.
struct JsBytes {
    array: js_sys::Uint8Array,
    position: u64,
    length: u64,
}

impl JsBytes {
    fn new(array: js_sys::Uint8Array) -> Self {
        let length = array.length() as u64;
        Self {
            array,
            position: 0,
            length,
        }
    }
}

impl std::io::Read for JsBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let end = self.length.min(self.position + buf.len() as u64);
        if end <= self.position {
            return Ok(0);
        }
        let count = (end - self.position) as usize;
        self.array
            .subarray(self.position as u32, end as u32)
            .copy_to(&mut buf[..count]);
        self.position = end;
        Ok(count)
    }
}

impl std::io::Seek for JsBytes {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            std::io::SeekFrom::Start(offset) => Some(offset as i128),
            std::io::SeekFrom::End(offset) => Some(self.length as i128 + offset as i128),
            std::io::SeekFrom::Current(offset) => Some(self.position as i128 + offset as i128),
        }
        .filter(|target| *target >= 0)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        self.position = target as u64;
        Ok(self.position)
    }
}

/// The models loaded in this worker and the operations the page runs on them.
#[wasm_bindgen]
pub struct Engine {
    loaded: Rc<RefCell<Loaded>>,
    data: Rc<RefCell<BTreeMap<String, Vec<DataInput>>>>,
    /// The flag of the run in progress, set by `cancel`.
    cancel: RefCell<crate::hosted::CancelFlag>,
    /// Backend the models load on, chosen by `useBackend` before any model loads.
    backend: Rc<RefCell<AutoBackend>>,
    /// The encoder file the loaded sentiment head was trained on.
    head_trained_on: RefCell<Option<FileRecord>>,
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
            data: Rc::new(RefCell::new(BTreeMap::new())),
            cancel: RefCell::new(Default::default()),
            backend: Rc::new(RefCell::new(AutoBackend::cpu())),
            head_trained_on: RefCell::new(None),
        }
    }

    /// Chooses where the models compute, before they load: `auto` (WebGPU on a hardware
    /// adapter, else the CPU), `webgpu` (any adapter, software ones included; fails
    /// without one) or `cpu`. Resolves to `{backend, adapter, software, reason}`, where
    /// `reason` says why `auto` chose the CPU.
    #[wasm_bindgen(js_name = useBackend)]
    pub fn use_backend(&self, choice: String) -> js_sys::Promise {
        let slot = self.backend.clone();
        let has_models = {
            let loaded = self.loaded.borrow();
            loaded.encoder.is_some() || loaded.llm.is_some()
        };
        wasm_bindgen_futures::future_to_promise(async move {
            if has_models {
                return Err(JsError::new(
                    "models are already loaded on the current back end; reload the worker to change it",
                )
                .into());
            }
            let (backend, reason) = match choice.as_str() {
                "cpu" => (AutoBackend::cpu(), None),
                "auto" | "webgpu" => {
                    let options = GpuOptions {
                        allow_software: choice == "webgpu",
                        ..Default::default()
                    };
                    match GpuBackend::new(&options).await {
                        Ok(gpu) => (AutoBackend::gpu(gpu), None),
                        Err(error) if choice == "auto" => {
                            (AutoBackend::cpu(), Some(error.to_string()))
                        }
                        Err(error) => return Err(js_error(error).into()),
                    }
                }
                other => {
                    return Err(JsError::new(&format!(
                        "unknown back end {other:?}: use auto, webgpu or cpu"
                    ))
                    .into())
                }
            };
            let adapter = backend.adapter().cloned();
            let info = serde_json::json!({
                "backend": backend.name(),
                "adapter": adapter.as_ref().map(|a| a.describe()),
                "software": adapter.as_ref().map(|a| a.software),
                "reason": reason,
            });
            *slot.borrow_mut() = backend;
            Ok(to_js(&info)?)
        })
    }

    /// Runs every GPU kernel against the CPU path on small seeded inputs and resolves
    /// to one `{kernel, shape, error, tolerance, passed}` per case; with `iterations`
    /// above zero, each side is also timed (`cpuMs`, `gpuMs`).
    #[wasm_bindgen(js_name = checkGpuKernels)]
    pub fn check_gpu_kernels(&self, iterations: usize) -> js_sys::Promise {
        let current = self.backend.borrow().gpu_backend().cloned();
        wasm_bindgen_futures::future_to_promise(async move {
            let gpu = match current {
                Some(gpu) => gpu,
                None => GpuBackend::new(&GpuOptions {
                    allow_software: true,
                    ..Default::default()
                })
                .await
                .map_err(js_error)?,
            };
            let checks = crate::backend::conformance::check_kernels(&gpu, true, iterations)
                .await
                .map_err(js_error)?;
            Ok(to_js(&serde_json::json!({
                "adapter": gpu.adapter(),
                "checks": checks,
            }))?)
        })
    }

    /// Loads a sentence-transformers encoder from verified file bytes. `model_name`
    /// names a user's own encoder in the report; the default is all-MiniLM-L6-v2.
    #[wasm_bindgen(js_name = loadEncoder)]
    pub fn load_encoder(
        &self,
        weights: &[u8],
        tokenizer_json: &[u8],
        config_json: &[u8],
        sentence_config_json: Option<Vec<u8>>,
        file_records: JsValue,
        model_name: Option<String>,
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
        let backend = self.backend.borrow().clone();
        let encoder = SentenceEncoder::load(backend, files, &name).map_err(js_error)?;
        let info = serde_json::json!({
            "maxLength": encoder.max_length(),
            "hiddenSize": encoder.config().hidden_size,
            "layers": encoder.config().num_hidden_layers,
        });
        let model = ModelRecord {
            name: model_name.unwrap_or_else(|| "all-MiniLM-L6-v2".into()),
            files: records,
        };
        let mut loaded = self.loaded.borrow_mut();
        // A head trained on another encoder's embeddings would score noise.
        if let Some(trained_on) = self.head_trained_on.borrow().as_ref() {
            if loaded.sentiment_head.is_some()
                && !model
                    .files
                    .iter()
                    .any(|file| file.sha256 == trained_on.sha256)
            {
                tracing::info!("unloading the sentiment head: it was trained on another encoder");
                loaded.sentiment_head = None;
            }
        }
        loaded.encoder = Some((encoder, model));
        to_js(&info)
    }

    /// Loads a GGUF chat model from verified file bytes. `model_name` names a user's
    /// own model in the report; the default is SmolLM2-135M-Instruct. The bytes stay in
    /// JavaScript and are copied in one tensor at a time, so the wasm memory contains the
    /// weights and not a second copy of the file.
    #[wasm_bindgen(js_name = loadLlm)]
    pub fn load_llm(
        &self,
        gguf: js_sys::Uint8Array,
        file_record: JsValue,
        model_name: Option<String>,
    ) -> Result<JsValue, JsError> {
        let record: FileRecord = serde_wasm_bindgen::from_value(file_record)?;
        let backend = self.backend.borrow().clone();
        let reader = std::io::BufReader::with_capacity(1 << 16, JsBytes::new(gguf));
        let llm = CausalLm::load_from(backend, reader, &record.name).map_err(js_error)?;
        let info = to_js(llm.config())?;
        let model = ModelRecord {
            name: model_name.unwrap_or_else(|| "SmolLM2-135M-Instruct".into()),
            files: vec![record],
        };
        self.loaded.borrow_mut().llm = Some((llm, model));
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
        let file = FileRecord {
            name: format!("heads/{}", record.file),
            sha256: record.sha256.clone(),
            bytes: weights.len(),
        };
        let mut loaded = self.loaded.borrow_mut();
        if let Some((_, encoder)) = &loaded.encoder {
            if !encoder
                .files
                .iter()
                .any(|file| file.sha256 == record.encoder.sha256)
            {
                return Err(JsError::new(&format!(
                    "the sentiment head was trained on the embeddings of {} (SHA-256 {}), not on {}; \
                     run the sentiment task with the default encoder, or leave it out with your own",
                    record.encoder.name, record.encoder.sha256, encoder.name
                )));
            }
        }
        loaded
            .head_training
            .retain(|(name, _)| name != "sentiment head");
        loaded
            .head_training
            .push(("sentiment head".to_string(), record.training_wh));
        loaded.sentiment_head = Some((head, file));
        *self.head_trained_on.borrow_mut() = Some(record.encoder.clone());
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

    /// Adds a data file for `task`: a default file with the manifest's `sha256`, or
    /// a user's file with none (its hash is computed and recorded). Replaces the
    /// task's files when `replace` is true.
    #[wasm_bindgen(js_name = addData)]
    pub fn add_data(
        &self,
        task: &str,
        name: &str,
        bytes: Vec<u8>,
        sha256: Option<String>,
        replace: bool,
    ) -> Result<(), JsError> {
        crate::inputs::check_task(task).map_err(js_error)?;
        let mut data = self.data.borrow_mut();
        let files = data.entry(task.to_string()).or_default();
        if replace {
            files.clear();
        }
        files.push(DataInput {
            name: name.to_string(),
            bytes,
            pinned_sha256: sha256,
        });
        Ok(())
    }

    /// Drops the files held for `task`; the next run loads its defaults again.
    #[wasm_bindgen(js_name = clearData)]
    pub fn clear_data(&self, task: &str) {
        self.data.borrow_mut().remove(task);
    }

    /// Names the files held for `task`, so the page loads only what is missing.
    #[wasm_bindgen(js_name = dataFiles)]
    pub fn data_files(&self, task: &str) -> Vec<String> {
        self.data
            .borrow()
            .get(task)
            .map(|files| files.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default()
    }

    /// Runs the main job on the loaded models and data, and resolves to
    /// `{report, emissionsCsv}`: the report and its CodeCarbon-style CSV.
    /// `onProgress(event)` receives each finished item; `executePython(program,
    /// timeoutMs)` runs HumanEval programs in the page's sandbox.
    #[wasm_bindgen(js_name = runEval)]
    pub fn run_eval(
        &self,
        request: JsValue,
        on_progress: js_sys::Function,
        execute_python: Option<js_sys::Function>,
    ) -> Result<js_sys::Promise, JsError> {
        let request: RunRequest = serde_wasm_bindgen::from_value(request)?;
        let loaded = self.loaded.clone();
        let data = self.data.clone();
        let backend = self.backend.borrow().clone();
        let cancel = crate::hosted::CancelFlag::default();
        *self.cancel.borrow_mut() = cancel.clone();
        // Check the hosted settings and the estimate's inputs before any model work.
        let hosted = match &request.hosted {
            Some(settings) => Some(
                crate::hosted::connect(
                    crate::hosted::fetch::FetchTransport,
                    settings,
                    cancel.clone(),
                )
                .map_err(js_error)?,
            ),
            None => None,
        };
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let loaded = loaded.borrow();
            let data = data.borrow();
            let (profile, grid) = eval::energy_context(request.profile.as_deref(), &request.grid)
                .map_err(js_error)?;
            let runtime = Runtime {
                target: "wasm32".into(),
                backend: backend.name().into(),
                adapter: backend.adapter().map(|a| a.describe()),
                fell_back: None,
                threads_used: request.settings.threads_used,
                device_threads: request.settings.device_threads,
                user_agent: request.user_agent,
            };
            let run = eval::RunRequest {
                tasks: &request.tasks,
                data: &data,
                settings: request.settings,
                profile,
                grid,
                runtime,
                cancel,
            };
            let executor = execute_python.map(JsExecutor);
            let mut observer = PageObserver {
                on_progress,
                items: 0,
                lose_gpu: request
                    .lose_gpu_after_items
                    .and_then(|after| Some((after, backend.gpu_backend()?.clone()))),
            };
            let baseline = hosted
                .as_ref()
                .map(|(client, plan)| eval::HostedBaseline { client, plan });
            let mut report =
                eval::run_tasks(&loaded, executor.as_ref(), baseline, run, &mut observer)
                    .await
                    .map_err(js_error)?;
            report.runtime.fell_back = backend.fell_back();
            // The CSV is built now: the page keeps it beside the report it saves.
            Ok(to_js(&RunOutcome {
                emissions_csv: report.emissions_csv(),
                report: &report,
            })?)
        }))
    }

    /// Stops the run in progress at its next item or streamed chunk; `runEval` then
    /// resolves to the report of what finished, marked `cancelled`.
    pub fn cancel(&self) {
        self.cancel.borrow().cancel();
    }
}

/// The value `runEval` resolves to.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunOutcome<'a> {
    report: &'a crate::report::Report,
    emissions_csv: String,
}

/// Relays each finished item to the page.
struct PageObserver {
    on_progress: js_sys::Function,
    items: usize,
    /// The device to destroy after so many items (fault injection).
    lose_gpu: Option<(usize, GpuBackend)>,
}

impl eval::RunObserver for PageObserver {
    fn item(&mut self, task: &str, done: usize, total: usize, record: &serde_json::Value) {
        let event = Progress::Item {
            task,
            done,
            total,
            record: record.clone(),
        };
        if let Ok(value) = to_js(&event) {
            let _ = self.on_progress.call1(&JsValue::NULL, &value);
        }
        self.items += 1;
        if let Some((after, gpu)) = &self.lose_gpu {
            if self.items == *after {
                tracing::warn!(
                    "destroying the GPU device after {after} items, as the request asked"
                );
                gpu.lose_device();
            }
        }
    }

    fn hosted_item(
        &mut self,
        task: &str,
        done: usize,
        total: usize,
        record: Option<&serde_json::Value>,
        failure: Option<&crate::report::ItemFailure>,
    ) {
        let event = Progress::HostedItem {
            task,
            done,
            total,
            record: record.cloned(),
            failure: failure.cloned(),
        };
        if let Ok(value) = to_js(&event) {
            let _ = self.on_progress.call1(&JsValue::NULL, &value);
        }
    }
}
