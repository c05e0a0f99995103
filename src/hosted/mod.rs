//! The hosted-LLM baseline: the same prompts sent to an OpenAI-compatible
//! chat-completions API, timed, with retries and clear failures.
//!
//! One client serves both builds. It speaks HTTP through a [`Transport`]: the browser's
//! `fetch` in the wasm build (`fetch.rs`), `ureq` on one thread per request natively
//! (`native.rs`).

pub mod protocol;
pub mod retry;

#[cfg(target_arch = "wasm32")]
pub mod fetch;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{elapsed_ms, Instant};
use crate::energy::ecologits::{self, ModelSize};
use crate::error::{Error, Result};
use protocol::{Completion, ProtocolError, RequestShape, StreamAssembler};
use retry::{Backoff, RetryPolicy};

/// An API key. Its `Debug` output is redacted and it is never serialized, so it cannot
/// reach a log line or a report.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into().trim().to_string())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "ApiKey(none)"
        } else {
            "ApiKey(***)"
        })
    }
}

/// The size the energy estimate uses for a model that EcoLogits does not list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SizeHint {
    /// Parameter counts in billions; `active` only for a mixture of experts.
    Parameters { total: f64, active: Option<f64> },
    /// The size of a listed model of the same class, e.g. `openai` / `gpt-4o-mini`.
    Like { provider: String, model: String },
}

impl SizeHint {
    /// Parses `8`, `47:13` (total:active) or `provider/model`.
    pub fn parse(text: &str) -> Result<SizeHint> {
        let text = text.trim();
        let invalid = || Error::InvalidOption {
            option: "hosted model size",
            value: text.to_string(),
            expected: "a parameter count in billions (8), total:active for a mixture of experts \
                       (47:13), or a listed model of the same class (openai/gpt-4o-mini)"
                .into(),
        };
        if let Some((provider, model)) = text.split_once('/') {
            if provider.is_empty() || model.is_empty() {
                return Err(invalid());
            }
            return Ok(SizeHint::Like {
                provider: provider.to_string(),
                model: model.to_string(),
            });
        }
        let (total, active) = match text.split_once(':') {
            Some((total, active)) => (total, Some(active)),
            None => (text, None),
        };
        let total: f64 = total.trim().parse().map_err(|_| invalid())?;
        let active = match active {
            Some(active) => Some(active.trim().parse::<f64>().map_err(|_| invalid())?),
            None => None,
        };
        let hint = SizeHint::Parameters { total, active };
        hint.validate()?;
        Ok(hint)
    }

    /// Rejects parameter counts that are not positive, above `MAX_PARAMETERS_B`, or with
    /// more active than total parameters.
    pub fn validate(&self) -> Result<()> {
        let SizeHint::Parameters { total, active } = self else {
            return Ok(());
        };
        let plausible = |b: f64| b.is_finite() && b > 0.0 && b <= MAX_PARAMETERS_B;
        let valid = plausible(*total) && active.is_none_or(|a| plausible(a) && a <= *total);
        if valid {
            return Ok(());
        }
        let value = match active {
            Some(active) => format!("{total}:{active}"),
            None => total.to_string(),
        };
        Err(Error::InvalidOption {
            option: "hosted model size",
            value,
            expected: format!(
                "billions of parameters above 0 and at most {MAX_PARAMETERS_B}, with active at most total                  (47:13 is 47 billion in total, 13 billion active)"
            ),
        })
    }
}

/// Largest parameter count accepted, in billions: above any published model, so that a
/// count given in units instead of billions (8e9) is caught.
pub const MAX_PARAMETERS_B: f64 = 10_000.0;

/// Settings of the hosted model: endpoint, key, request parameters, limits and the
/// inputs of the energy estimate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostedSettings {
    /// The API's base URL, e.g. `https://api.openai.com/v1`; a bare origin gets `/v1`.
    pub base_url: String,
    pub model: String,
    /// Sent only to `base_url`; never serialized.
    #[serde(skip_serializing)]
    pub api_key: ApiKey,
    /// EcoLogits provider whose datacenter figures the estimate uses (openai,
    /// mistralai, anthropic, google_genai, cohere, huggingface_hub); guessed from
    /// the URL when absent.
    pub provider: Option<String>,
    /// Electricity mix zone of the datacenter (ISO 3166-1 alpha-3, or WOR); the
    /// provider's default when absent.
    pub zone: Option<String>,
    pub size: Option<SizeHint>,
    pub max_tokens: usize,
    pub temperature: f64,
    pub stream: bool,
    /// Limit for one attempt, from sending to the last byte.
    pub timeout_ms: u64,
    pub max_retries: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for HostedSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            model: String::new(),
            api_key: ApiKey::default(),
            provider: None,
            zone: None,
            size: None,
            max_tokens: 256,
            temperature: 0.0,
            stream: true,
            timeout_ms: 60_000,
            max_retries: RetryPolicy::default().max_retries,
            concurrency: 2,
        }
    }
}

/// A base URL split into what requests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme, host and path without a trailing slash, e.g. `http://127.0.0.1:8091/v1`.
    pub base: String,
    /// Scheme, host and port, e.g. `http://127.0.0.1:8091`.
    pub origin: String,
    pub host: String,
    pub loopback: bool,
}

impl Endpoint {
    /// Accepts a base URL with or without a trailing slash, `/v1` or `/chat/completions`.
    /// A bare origin gets `/v1`, the path of every OpenAI-compatible server; a URL with
    /// another path (Groq's `/openai/v1`, Gemini's `/v1beta/openai`) is kept as given.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let trimmed = url.trim();
        let invalid = |why: &str| Error::InvalidOption {
            option: "hosted base URL",
            value: trimmed.to_string(),
            expected: format!(
                "{why}; give the API's base URL, e.g. https://api.openai.com/v1 or \
                 http://127.0.0.1:8080/v1"
            ),
        };

        let (scheme, rest) = trimmed
            .split_once("://")
            .ok_or_else(|| invalid("it has no http:// or https:// scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(invalid("only http and https are supported"));
        }
        if rest.contains(['?', '#']) {
            return Err(invalid("a base URL has no query or fragment"));
        }

        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(invalid("it has no host"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "it contains credentials; give the API key in its own field instead",
            ));
        }

        let host = if let Some(bracketed) = authority.strip_prefix('[') {
            bracketed.split(']').next().unwrap_or_default().to_string()
        } else {
            authority.split(':').next().unwrap_or_default().to_string()
        }
        .to_ascii_lowercase();

        let mut path = path.trim_end_matches('/').to_string();
        if let Some(stripped) = path.strip_suffix("/chat/completions") {
            path = stripped.trim_end_matches('/').to_string();
        }
        if path.is_empty() {
            path = "/v1".into();
        }

        // Only a literal loopback address or `localhost` counts: a name such as
        // `127.0.0.1.example.com` resolves anywhere.
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|address| address.is_loopback());
        let origin = format!("{scheme}://{}", authority.to_ascii_lowercase());
        Ok(Endpoint {
            base: format!("{origin}{path}"),
            origin,
            host,
            loopback,
        })
    }

    pub fn chat_completions(&self) -> String {
        format!("{}/chat/completions", self.base)
    }

    /// Guesses the EcoLogits provider from the host, or returns `None` for a host that
    /// no listed provider serves.
    pub fn guess_provider(&self) -> Option<&'static str> {
        let host = self.host.as_str();
        let ends = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        if ends("openai.com") || ends("openai.azure.com") {
            Some("openai")
        } else if ends("mistral.ai") {
            Some("mistralai")
        } else if ends("anthropic.com") {
            Some("anthropic")
        } else if ends("googleapis.com") {
            Some("google_genai")
        } else if ends("cohere.com") || ends("cohere.ai") {
            Some("cohere")
        } else if ends("huggingface.co") || ends("hf.space") {
            Some("huggingface_hub")
        } else {
            None
        }
    }
}

/// The EcoLogits provider used for hosts that no listed provider serves. Hugging Face's
/// figures (USA mix, PUE 1.09–1.14) describe a generic cloud deployment of an open model.
pub const FALLBACK_PROVIDER: &str = "huggingface_hub";

/// Provider, zone and model size of the energy estimate, settled before the first
/// request and used for every request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EstimatePlan {
    pub provider: String,
    /// The provider was guessed from the URL (or fell back), not given.
    pub provider_guessed: bool,
    /// Electricity mix zone: the one given, else the provider's datacenter location.
    pub zone: String,
    pub size: ModelSize,
    /// `model-table`, `parameters` or `like provider/model`.
    pub size_from: String,
}

impl EstimatePlan {
    /// Settles the provider, the zone and the model's size. A model that EcoLogits does
    /// not list needs a size hint, and the error message shows how to give one.
    pub fn new(settings: &HostedSettings, endpoint: &Endpoint) -> Result<EstimatePlan> {
        let (provider, provider_guessed) = match settings.provider.as_deref().map(str::trim) {
            Some(p) if !p.is_empty() => (p.to_ascii_lowercase(), false),
            _ => (
                endpoint
                    .guess_provider()
                    .unwrap_or(FALLBACK_PROVIDER)
                    .to_string(),
                true,
            ),
        };
        ecologits::provider_defaults(&provider)?;
        let zone = match settings.zone.as_deref().map(str::trim) {
            // A two-letter code (FR) is looked up in the grid table for its three-letter form.
            Some(zone) if zone.len() == 2 => {
                crate::energy::grid::choose_grid(Some(zone), None, None)?
                    .grid
                    .code
                    .to_ascii_uppercase()
            }
            Some(zone) if !zone.is_empty() => zone.to_ascii_uppercase(),
            _ => ecologits::provider_defaults(&provider)?
                .datacenter_location
                .clone(),
        };
        ecologits::electricity_mix(&zone)?;
        if let Some(hint) = &settings.size {
            hint.validate()?;
        }
        let (size, size_from) = match &settings.size {
            Some(SizeHint::Parameters { total, active }) => {
                let size = ModelSize {
                    total_b: ecologits::ParameterRange::exact(*total),
                    active_b: ecologits::ParameterRange::exact(active.unwrap_or(*total)),
                };
                size.validate()?;
                (size, "parameters".to_string())
            }
            Some(SizeHint::Like { provider, model }) => (
                ecologits::lookup_model(provider, model)?,
                format!("like {provider}/{model}"),
            ),
            None => match ecologits::lookup_model(&provider, &settings.model) {
                Ok(size) => (size, "model-table".to_string()),
                Err(Error::InvalidOption { .. }) => {
                    let guessed = if provider_guessed {
                        format!(
                            " The provider {provider} was guessed from the URL; if the model is one EcoLogits \
                             lists for another provider, name it with --hosted-provider (openai, mistralai, \
                             anthropic, google_genai, cohere)."
                        )
                    } else {
                        String::new()
                    };
                    return Err(Error::InvalidOption {
                        option: "hosted model",
                        value: format!("{provider}/{}", settings.model),
                        expected: format!(
                            "a model that EcoLogits 0.11.3 lists for {provider}, or its size for the estimate: \
                             --hosted-size 8 (billions of parameters), --hosted-size 47:13 (total:active for a \
                             mixture of experts) or --hosted-size openai/gpt-4o-mini (a listed model of the same \
                             class); in the page, the size field.{guessed}"
                        ),
                    });
                }
                Err(other) => return Err(other),
            },
        };
        Ok(EstimatePlan {
            provider,
            provider_guessed,
            zone,
            size,
            size_from,
        })
    }

    /// Estimates one request of `output_tokens` that took `latency_s`.
    pub fn estimate(
        &self,
        model: &str,
        output_tokens: usize,
        latency_s: f64,
    ) -> Result<ecologits::HostedImpacts> {
        ecologits::estimate(
            &ecologits::HostedRequest {
                provider: self.provider.clone(),
                model: model.to_string(),
                output_tokens: output_tokens as u64,
                request_latency_s: latency_s,
                zone: Some(self.zone.clone()),
            },
            Some(self.size),
        )
    }
}

/// Builds the client and settles its estimate plan, so that every setting is checked
/// before the first request or any model work.
pub fn connect<T: Transport>(
    transport: T,
    settings: &HostedSettings,
    cancel: CancelFlag,
) -> Result<(HostedClient<T>, EstimatePlan)> {
    let client = HostedClient::new(transport, settings.clone(), cancel)?;
    let plan = EstimatePlan::new(settings, client.endpoint())?;
    Ok((client, plan))
}

/// The kind of failure that ends a hosted request. The page translates messages by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    Unauthorized,
    Forbidden,
    UnknownModel,
    BadRequest,
    RateLimited,
    ServerError,
    Timeout,
    /// Unreachable server, or in the browser a rejected cross-origin request.
    Network,
    Malformed,
    CutShort,
    Cancelled,
}

impl FailureKind {
    /// Returns true when every later request would fail the same way, so the run stops
    /// sending requests.
    pub fn stops_run(self) -> bool {
        matches!(
            self,
            FailureKind::Unauthorized
                | FailureKind::Forbidden
                | FailureKind::UnknownModel
                | FailureKind::BadRequest
                | FailureKind::Network
                | FailureKind::Cancelled
        )
    }
}

/// A failed hosted request: its kind and a message that names the value and the fix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub attempts: u32,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A transport failure before the status line arrived, or while the body streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    Timeout,
    /// The connection failed. In the browser this includes a rejected CORS request,
    /// which `fetch` does not tell apart from an unreachable server.
    Network(String),
}

/// One HTTP POST.
#[derive(Clone)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub timeout_ms: u64,
}

/// A response whose body is read chunk by chunk.
pub struct HttpResponse<B> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: B,
}

#[allow(async_fn_in_trait)]
pub trait ResponseBody {
    /// Reads the next piece of the body, or returns `None` at its end.
    async fn chunk(&mut self) -> std::result::Result<Option<Vec<u8>>, TransportError>;
}

/// HTTP for the client: `fetch` in the browser, `ureq` natively.
#[allow(async_fn_in_trait)]
pub trait Transport {
    type Body: ResponseBody;
    async fn post(
        &self,
        request: HttpRequest,
    ) -> std::result::Result<HttpResponse<Self::Body>, TransportError>;
    async fn sleep(&self, ms: u64);
    /// Returns true when this transport runs in a browser, where a network failure may
    /// be a CORS rejection.
    fn in_browser(&self) -> bool;
}

/// A flag the caller sets to stop a run between requests and between streamed chunks.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The successful reply to one request, with its timing.
#[derive(Debug, Clone)]
pub struct HostedReply {
    pub completion: Completion,
    /// From sending the successful attempt to its last byte.
    pub latency_ms: f64,
    /// From sending the successful attempt to the first text (streamed replies only).
    pub ttft_ms: Option<f64>,
    pub attempts: u32,
}

/// The outcome of one attempt, before the retry decision.
enum AttemptError {
    Status {
        status: u16,
        message: String,
        retry_after_ms: Option<u64>,
    },
    Transport(TransportError),
    Protocol(ProtocolError),
    Cancelled,
}

/// Interval at which a request in flight checks the cancel flag, in milliseconds.
const CANCEL_POLL_MS: u64 = 200;

/// Sends chat completions to one OpenAI-compatible server.
pub struct HostedClient<T: Transport> {
    transport: T,
    settings: HostedSettings,
    endpoint: Endpoint,
    policy: RetryPolicy,
    /// Request shape learnt from 400 or 422 replies that name a rejected parameter, and
    /// shared by later requests.
    shape: Cell<RequestShape>,
    cancel: CancelFlag,
    seed: u64,
}

impl<T: Transport> HostedClient<T> {
    /// Checks the settings and builds the client. An API key is rejected over plain
    /// HTTP to a host other than this machine, where anyone on the path could read it.
    pub fn new(transport: T, settings: HostedSettings, cancel: CancelFlag) -> Result<Self> {
        let endpoint = Endpoint::parse(&settings.base_url)?;

        if settings.model.trim().is_empty() {
            return Err(Error::InvalidOption {
                option: "hosted model",
                value: String::new(),
                expected:
                    "the model's name on the server, e.g. gpt-4o-mini or mistral-small-latest"
                        .into(),
            });
        }

        if !settings.api_key.is_empty()
            && endpoint.origin.starts_with("http://")
            && !endpoint.loopback
        {
            return Err(Error::InvalidOption {
                option: "hosted base URL",
                value: endpoint.base.clone(),
                expected: "https:// when an API key is set: over plain http the key would cross the network unencrypted".into(),
            });
        }

        let checks = [
            (
                "hosted max tokens",
                settings.max_tokens as f64,
                1.0,
                1_000_000.0,
            ),
            (
                "hosted timeout (ms)",
                settings.timeout_ms as f64,
                100.0,
                3_600_000.0,
            ),
            ("hosted concurrency", settings.concurrency as f64, 1.0, 64.0),
            ("hosted retries", settings.max_retries as f64, 0.0, 20.0),
            ("hosted temperature", settings.temperature, 0.0, 2.0),
        ];
        for (option, value, low, high) in checks {
            if !(low..=high).contains(&value) {
                return Err(Error::InvalidOption {
                    option,
                    value: value.to_string(),
                    expected: format!("a value from {low} to {high}"),
                });
            }
        }

        let policy = RetryPolicy {
            max_retries: settings.max_retries,
            ..RetryPolicy::default()
        };
        Ok(Self {
            transport,
            settings,
            endpoint,
            policy,
            shape: Cell::new(RequestShape::default()),
            cancel,
            seed: 0x5eed,
        })
    }

    pub fn settings(&self) -> &HostedSettings {
        &self.settings
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn cancel_flag(&self) -> &CancelFlag {
        &self.cancel
    }

    /// Requests one completion of `user_message`, retrying rate limits and server errors.
    /// `index` seeds the jitter, so that concurrent requests do not retry in step.
    pub async fn complete(
        &self,
        index: usize,
        user_message: &str,
    ) -> std::result::Result<HostedReply, Failure> {
        let mut backoff = Backoff::new(
            self.policy,
            self.seed ^ (index as u64).wrapping_mul(0x9e37_79b9),
        );
        let mut attempts = 0u32;
        let mut retries = 0u32;
        let mut adaptations = 0;

        loop {
            if self.cancel.is_cancelled() {
                return Err(self.failure(FailureKind::Cancelled, "cancelled".into(), attempts));
            }
            attempts += 1;
            let shape = self.shape.get();
            let error = match self.attempt_until_cancelled(user_message, shape).await {
                Ok((completion, latency_ms, ttft_ms)) => {
                    return Ok(HostedReply {
                        completion,
                        latency_ms,
                        ttft_ms,
                        attempts,
                    })
                }
                Err(error) => error,
            };
            match error {
                AttemptError::Status {
                    status,
                    message,
                    retry_after_ms,
                } if retry::is_retryable(status) && retries < self.policy.max_retries => {
                    if retry_after_ms.is_some_and(|ms| ms > self.policy.max_retry_after_ms) {
                        return Err(self.status_failure(status, &message, attempts, retry_after_ms));
                    }
                    let wait = backoff.delay_ms(retries, retry_after_ms);
                    tracing::warn!(status, retry = retries + 1, wait_ms = wait, "hosted request will be retried");
                    retries += 1;
                    self.transport.sleep(wait).await;
                }
                AttemptError::Status {
                    status: 400 | 422,
                    ref message,
                    ..
                } if adaptations < 3 && shape.adapted_to(message, self.settings.stream).is_some() => {
                    let adapted = shape.adapted_to(message, self.settings.stream).unwrap_or(shape);
                    tracing::info!(
                        ?adapted,
                        "the server rejected a request parameter; retrying with the adapted request"
                    );
                    self.shape.set(adapted);
                    adaptations += 1;
                }
                AttemptError::Status {
                    status,
                    message,
                    retry_after_ms,
                } => return Err(self.status_failure(status, &message, attempts, retry_after_ms)),
                AttemptError::Transport(TransportError::Timeout) => {
                    return Err(self.failure(
                        FailureKind::Timeout,
                        format!(
                            "no complete reply from {} within {} s; raise the hosted timeout or lower the hosted max tokens",
                            self.endpoint.base,
                            self.settings.timeout_ms as f64 / 1000.0
                        ),
                        attempts,
                    ))
                }
                AttemptError::Transport(TransportError::Network(detail)) => {
                    let message = if self.transport.in_browser() {
                        format!(
                            "the browser could not reach {} ({detail}): the server is down, the URL is wrong, or it rejected this page's cross-origin request (CORS). The server must respond with Access-Control-Allow-Origin for this page's origin; the README lists what each provider needs",
                            self.endpoint.chat_completions()
                        )
                    } else {
                        format!(
                            "cannot reach {} ({detail}); check the base URL and that the server is running",
                            self.endpoint.chat_completions()
                        )
                    };
                    return Err(self.failure(FailureKind::Network, message, attempts));
                }
                AttemptError::Protocol(ProtocolError::Malformed(detail)) => {
                    return Err(self.failure(
                        FailureKind::Malformed,
                        format!(
                            "the reply from {} is not an OpenAI chat completion: {detail}; check that the base URL points at an OpenAI-compatible API",
                            self.endpoint.chat_completions()
                        ),
                        attempts,
                    ))
                }
                AttemptError::Protocol(ProtocolError::ServerError(message)) => {
                    return Err(self.failure(
                        FailureKind::ServerError,
                        format!("{} returned an error: {message}", self.endpoint.base),
                        attempts,
                    ))
                }
                AttemptError::Protocol(ProtocolError::CutShort { received_chars }) => {
                    return Err(self.failure(
                        FailureKind::CutShort,
                        format!(
                            "the stream from {} ended after {received_chars} characters without [DONE] or a finish reason: the connection was cut. The item is left unscored; run again, or turn streaming off",
                            self.endpoint.base
                        ),
                        attempts,
                    ))
                }
                AttemptError::Cancelled => {
                    return Err(self.failure(FailureKind::Cancelled, "cancelled".into(), attempts))
                }
            }
        }
    }

    fn failure(&self, kind: FailureKind, message: String, attempts: u32) -> Failure {
        Failure {
            kind,
            message,
            attempts,
        }
    }

    /// Builds the failure for an error status, naming the server, the model and the fix.
    fn status_failure(
        &self,
        status: u16,
        detail: &str,
        attempts: u32,
        retry_after_ms: Option<u64>,
    ) -> Failure {
        let base = &self.endpoint.base;
        let model = &self.settings.model;
        let retried = attempts.saturating_sub(1);
        let (kind, message) = match status {
            401 => (
                FailureKind::Unauthorized,
                format!("{base} rejected the API key (401: {detail}); check the key for this provider. Seedling sends it to {base} only"),
            ),
            403 => (
                FailureKind::Forbidden,
                format!("{base} forbids this request (403: {detail}); the key may lack access to model {model}, or the account or region is not allowed"),
            ),
            404 => (
                FailureKind::UnknownModel,
                format!("{base} has no model {model:?} or no /chat/completions under this base URL (404: {detail}); check the model name ({base}/models lists them) and that the base URL ends where /chat/completions begins"),
            ),
            429 => (
                FailureKind::RateLimited,
                match retry_after_ms {
                    Some(ms) if ms > self.policy.max_retry_after_ms => format!(
                        "{base} is rate limiting and requests a wait of {} s, longer than Seedling waits (429: {detail}); run again later, with a lower concurrency",
                        ms / 1000
                    ),
                    _ => format!(
                        "{base} is still rate limiting after {retried} retries (429: {detail}); lower the hosted concurrency or run again later"
                    ),
                },
            ),
            500..=599 => (
                FailureKind::ServerError,
                format!("{base} failed with {status} after {retried} retries ({detail}); the provider may be overloaded, so run again later"),
            ),
            _ => (
                FailureKind::BadRequest,
                format!("{base} rejected the request ({status}: {detail}); check the model name and the max tokens"),
            ),
        };
        self.failure(kind, message, attempts)
    }

    /// Runs one attempt, abandoned within `CANCEL_POLL_MS` of the cancel flag being set.
    /// The attempt's future is dropped, so a reply still on its way is ignored.
    async fn attempt_until_cancelled(
        &self,
        user_message: &str,
        shape: RequestShape,
    ) -> std::result::Result<(Completion, f64, Option<f64>), AttemptError> {
        use futures_util::future::{select, Either};

        let attempt = std::pin::pin!(self.attempt(user_message, shape));
        let watch = std::pin::pin!(async {
            while !self.cancel.is_cancelled() {
                self.transport.sleep(CANCEL_POLL_MS).await;
            }
        });
        match select(attempt, watch).await {
            Either::Left((result, _)) => result,
            Either::Right(_) => Err(AttemptError::Cancelled),
        }
    }

    /// Sends one request and reads its reply to the end.
    async fn attempt(
        &self,
        user_message: &str,
        shape: RequestShape,
    ) -> std::result::Result<(Completion, f64, Option<f64>), AttemptError> {
        let stream = self.settings.stream;

        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        if stream {
            headers.push(("Accept".into(), "text/event-stream".into()));
        }
        if !self.settings.api_key.is_empty() {
            headers.push(("Authorization".into(), self.settings.api_key.bearer()));
        }
        let request = HttpRequest {
            url: self.endpoint.chat_completions(),
            headers,
            body: protocol::request_body(
                &self.settings.model,
                user_message,
                self.settings.max_tokens,
                self.settings.temperature,
                stream,
                shape,
            ),
            timeout_ms: self.settings.timeout_ms,
        };

        let start = Instant::now();
        let mut response = self
            .transport
            .post(request)
            .await
            .map_err(AttemptError::Transport)?;

        if !(200..300).contains(&response.status) {
            let body = read_to_end(&mut response.body, &self.cancel)
                .await
                .unwrap_or_default();
            let now = web_time::SystemTime::now()
                .duration_since(web_time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            return Err(AttemptError::Status {
                status: response.status,
                message: protocol::error_message(&String::from_utf8_lossy(&body)),
                retry_after_ms: retry::retry_after_ms(&response.headers, now),
            });
        }

        // A server that ignores `stream: true` sends one JSON body instead of events.
        let event_stream = response.headers.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("content-type") && value.contains("text/event-stream")
        });
        if !stream || !event_stream {
            let body = read_to_end(&mut response.body, &self.cancel).await?;
            let completion = protocol::parse_completion(&String::from_utf8_lossy(&body))
                .map_err(AttemptError::Protocol)?;
            return Ok((completion, elapsed_ms(start), None));
        }

        let mut assembler = StreamAssembler::new();
        let mut ttft_ms = None;
        loop {
            if self.cancel.is_cancelled() {
                return Err(AttemptError::Cancelled);
            }
            match response.body.chunk().await {
                Ok(Some(bytes)) => {
                    let arrived = assembler.push(&bytes).map_err(AttemptError::Protocol)?;
                    if ttft_ms.is_none() && !arrived.is_empty() {
                        ttft_ms = Some(elapsed_ms(start));
                    }
                    if assembler.is_done() {
                        break;
                    }
                }
                Ok(None) => break,
                // A connection dropped mid-stream is a stream cut short, but a timeout
                // stays a timeout.
                Err(TransportError::Network(_)) => break,
                Err(error) => return Err(AttemptError::Transport(error)),
            }
        }

        let completion = assembler.finish().map_err(AttemptError::Protocol)?;
        Ok((completion, elapsed_ms(start), ttft_ms))
    }
}

async fn read_to_end<B: ResponseBody>(
    body: &mut B,
    cancel: &CancelFlag,
) -> std::result::Result<Vec<u8>, AttemptError> {
    let mut bytes = Vec::new();
    loop {
        if cancel.is_cancelled() {
            return Err(AttemptError::Cancelled);
        }
        match body.chunk().await.map_err(AttemptError::Transport)? {
            Some(chunk) => bytes.extend_from_slice(&chunk),
            None => return Ok(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_accepts_all_forms() {
        for url in [
            "http://127.0.0.1:8091",
            "http://127.0.0.1:8091/",
            "http://127.0.0.1:8091/v1",
            "http://127.0.0.1:8091/v1/",
            " http://127.0.0.1:8091/v1/chat/completions ",
        ] {
            let endpoint = Endpoint::parse(url).unwrap();
            assert_eq!(
                endpoint.chat_completions(),
                "http://127.0.0.1:8091/v1/chat/completions",
                "{url}"
            );
            assert!(endpoint.loopback);
        }
        let groq = Endpoint::parse("https://api.groq.com/openai/v1/").unwrap();
        assert_eq!(groq.base, "https://api.groq.com/openai/v1");
        assert!(!groq.loopback);
    }

    #[test]
    fn base_url_errors_name_value() {
        for (url, part) in [
            ("api.openai.com/v1", "scheme"),
            ("ftp://host/v1", "http and https"),
            ("https://user:pw@host/v1", "credentials"),
            ("https:///v1", "no host"),
            ("https://host/v1?key=1", "query"),
        ] {
            let message = Endpoint::parse(url).unwrap_err().to_string();
            assert!(
                message.contains(url.trim()) && message.contains(part),
                "{message}"
            );
        }
    }

    #[test]
    fn provider_guessed_from_host() {
        let guess = |url| Endpoint::parse(url).unwrap().guess_provider();
        assert_eq!(guess("https://api.openai.com/v1"), Some("openai"));
        assert_eq!(guess("https://api.mistral.ai/v1"), Some("mistralai"));
        assert_eq!(guess("https://api.groq.com/openai/v1"), None);
        assert_eq!(guess("https://notopenai.com/v1"), None);
    }

    #[test]
    fn api_key_hidden_from_debug_and_json() {
        let mut settings = HostedSettings {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            ..HostedSettings::default()
        };
        settings.api_key = ApiKey::new("sk-secret-123");
        assert!(!format!("{settings:?}").contains("sk-secret"));
        assert!(!serde_json::to_string(&settings)
            .unwrap()
            .contains("sk-secret"));
        let parsed: HostedSettings =
            serde_json::from_str(r#"{"baseUrl":"http://127.0.0.1:1","model":"m","apiKey":"k"}"#)
                .unwrap();
        assert_eq!(parsed.api_key.bearer(), "Bearer k");
    }

    #[test]
    fn size_hint_parses_counts_and_models() {
        assert_eq!(
            SizeHint::parse("8").unwrap(),
            SizeHint::Parameters {
                total: 8.0,
                active: None
            }
        );
        assert_eq!(
            SizeHint::parse("47:13").unwrap(),
            SizeHint::Parameters {
                total: 47.0,
                active: Some(13.0)
            }
        );
        assert_eq!(
            SizeHint::parse("openai/gpt-4o-mini").unwrap(),
            SizeHint::Like {
                provider: "openai".into(),
                model: "gpt-4o-mini".into()
            }
        );
        assert!(SizeHint::parse("big")
            .unwrap_err()
            .to_string()
            .contains("big"));
    }

    #[test]
    fn size_hint_rejects_implausible_counts() {
        for text in ["0", "-1", "1e9", "13:47", "inf"] {
            let message = SizeHint::parse(text).unwrap_err().to_string();
            assert!(message.contains("hosted model size"), "{text}: {message}");
        }
        assert!(SizeHint::parse("1000").is_ok());
    }

    #[test]
    fn zone_and_provider_accept_usual_spellings() {
        let settings = HostedSettings {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            provider: Some("OpenAI".into()),
            zone: Some("fr".into()),
            ..HostedSettings::default()
        };
        let endpoint = Endpoint::parse(&settings.base_url).unwrap();
        let plan = EstimatePlan::new(&settings, &endpoint).unwrap();
        assert_eq!(plan.provider, "openai");
        assert_eq!(plan.zone, "FRA");
    }

    #[test]
    fn unlisted_model_requires_size_hint() {
        let settings = HostedSettings {
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "SmolLM2-135M-Instruct".into(),
            ..HostedSettings::default()
        };
        let endpoint = Endpoint::parse(&settings.base_url).unwrap();
        let message = EstimatePlan::new(&settings, &endpoint)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("SmolLM2-135M-Instruct") && message.contains("--hosted-size"),
            "{message}"
        );

        let sized = HostedSettings {
            size: Some(SizeHint::Parameters {
                total: 0.135,
                active: None,
            }),
            ..settings
        };
        let plan = EstimatePlan::new(&sized, &endpoint).unwrap();
        assert_eq!(plan.provider, FALLBACK_PROVIDER);
        assert!(plan.provider_guessed);
        let impacts = plan.estimate("SmolLM2-135M-Instruct", 100, 1.0).unwrap();
        assert!(impacts.energy_kwh.estimate > 0.0);
    }

    #[test]
    fn listed_model_size_from_table() {
        let settings = HostedSettings {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            ..HostedSettings::default()
        };
        let plan =
            EstimatePlan::new(&settings, &Endpoint::parse(&settings.base_url).unwrap()).unwrap();
        assert_eq!(plan.provider, "openai");
        assert_eq!(plan.size_from, "model-table");
    }
}
