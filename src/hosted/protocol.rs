//! The OpenAI chat-completions wire format: the request body, the plain reply, the
//! server-sent events of a streamed reply, and the error bodies servers send.

use serde_json::{json, Value};

/// Request parameters that some servers reject, dropped or renamed after a 400 or 422
/// reply that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestShape {
    /// Request `usage` in the last streamed chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Send the budget as `max_completion_tokens` (OpenAI's reasoning models) instead of `max_tokens`.
    pub max_completion_tokens: bool,
    /// Send `temperature`, which models with a fixed temperature reject.
    pub temperature: bool,
}

impl Default for RequestShape {
    fn default() -> Self {
        Self {
            include_usage: true,
            max_completion_tokens: false,
            temperature: true,
        }
    }
}

impl RequestShape {
    /// Returns the shape to retry with when a 400 or 422 `message` names a parameter this
    /// shape can drop or rename, or `None` when the rejection is about something else.
    pub fn adapted_to(self, message: &str, stream: bool) -> Option<RequestShape> {
        let lower = message.to_lowercase();
        if stream && self.include_usage && lower.contains("stream_options") {
            return Some(RequestShape {
                include_usage: false,
                ..self
            });
        }
        if !self.max_completion_tokens && lower.contains("max_completion_tokens") {
            return Some(RequestShape {
                max_completion_tokens: true,
                ..self
            });
        }
        if self.temperature && lower.contains("temperature") {
            return Some(RequestShape {
                temperature: false,
                ..self
            });
        }
        None
    }
}

/// Builds the JSON body of one chat completion with a single user message.
pub fn request_body(
    model: &str,
    user_message: &str,
    max_tokens: usize,
    temperature: f64,
    stream: bool,
    shape: RequestShape,
) -> String {
    let mut body = json!({
        "model": model,
        "messages": [{"role": "user", "content": user_message}],
        "stream": stream,
    });
    let budget_key = if shape.max_completion_tokens {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[budget_key] = json!(max_tokens);
    if shape.temperature {
        body["temperature"] = json!(temperature);
    }
    if stream && shape.include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body.to_string()
}

/// Token counts as the server reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

fn parse_usage(value: &Value) -> Option<Usage> {
    let usage = value.get("usage")?;
    Some(Usage {
        prompt_tokens: usage.get("prompt_tokens")?.as_u64()? as usize,
        completion_tokens: usage.get("completion_tokens")?.as_u64()? as usize,
    })
}

/// A finished reply, before timing is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// `stop`, `length`, … as the server sent it. `length` means the token budget cut
    /// the reply.
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    /// The model name that the server returned.
    pub model: Option<String>,
}

/// A failure to read a body as a chat completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// The body is not JSON, or lacks the fields of a chat completion.
    Malformed(String),
    /// The server sent an error object inside a 200 reply or a stream.
    ServerError(String),
    /// The stream ended before `[DONE]` or a finish reason.
    CutShort { received_chars: usize },
}

/// Cuts `text` to at most `limit` characters for an error message.
pub fn excerpt(text: &str, limit: usize) -> String {
    let mut cut: String = text.chars().take(limit).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// Reads the message of an error body: OpenAI's `{"error": {"message"}}`, a plain
/// `{"error": "…"}`, FastAPI's `{"detail"}` or `{"message"}`. Falls back to the start of
/// the body.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| message_in(&value))
        .unwrap_or_else(|| excerpt(body.trim(), 200))
}

/// Finds the message in a parsed error object, in the shapes `error_message` lists.
fn message_in(value: &Value) -> Option<String> {
    let candidates = [
        value.pointer("/error/message"),
        value.get("error"),
        value.get("detail"),
        value.get("message"),
    ];
    for candidate in candidates.into_iter().flatten() {
        match candidate {
            Value::String(text) => return Some(excerpt(text, 300)),
            Value::Null | Value::Object(_) => continue,
            other => return Some(excerpt(&other.to_string(), 300)),
        }
    }
    None
}

/// Returns the server error that a 200 reply or a streamed event carries, if any.
fn embedded_error(value: &Value) -> Option<ProtocolError> {
    let error = value.get("error").filter(|error| !error.is_null())?;
    let message = message_in(value).unwrap_or_else(|| excerpt(&error.to_string(), 300));
    Some(ProtocolError::ServerError(message))
}

/// Parses a plain (not streamed) chat-completion body.
pub fn parse_completion(body: &str) -> Result<Completion, ProtocolError> {
    let value: Value = serde_json::from_str(body).map_err(|error| {
        ProtocolError::Malformed(format!("{error} in {:?}", excerpt(body, 120)))
    })?;
    if let Some(error) = embedded_error(&value) {
        return Err(error);
    }
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| ProtocolError::Malformed("no choices[0] in the reply".into()))?;
    let message = choice
        .get("message")
        .ok_or_else(|| ProtocolError::Malformed("no choices[0].message in the reply".into()))?;
    let text = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => {
            return Err(ProtocolError::Malformed(format!(
                "choices[0].message.content is {other}, not text"
            )))
        }
    };
    Ok(Completion {
        text,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
        usage: parse_usage(&value),
        model: value
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The part of a streamed reply that one server-sent event carries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delta {
    pub text: String,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
    pub model: Option<String>,
    pub done: bool,
}

/// Assembler of a streamed reply into a completion, fed chunk by chunk in whatever pieces
/// the network delivers. Lines may end in `\n` or `\r\n`. Comments and fields other than
/// `data:` are skipped, and the `data:` lines of one event are joined with `\n`.
#[derive(Debug, Default)]
pub struct StreamAssembler {
    pending: Vec<u8>,
    event_data: Vec<String>,
    text: String,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    model: Option<String>,
    done: bool,
}

impl StreamAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes from the network and returns the text that arrived with them.
    pub fn push(&mut self, bytes: &[u8]) -> Result<String, ProtocolError> {
        self.pending.extend_from_slice(bytes);
        let mut arrived = String::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                arrived.push_str(&self.dispatch()?);
            } else if let Some(data) = line.strip_prefix("data:") {
                self.event_data
                    .push(data.strip_prefix(' ').unwrap_or(data).to_string());
            }
            // Comments (":…"), `event:`, `id:` and `retry:` lines carry nothing we use.
        }
        Ok(arrived)
    }

    /// Handles the event whose `data:` lines were gathered, at the blank line that ends it.
    fn dispatch(&mut self) -> Result<String, ProtocolError> {
        if self.event_data.is_empty() {
            return Ok(String::new());
        }
        let data = self.event_data.join("\n");
        self.event_data.clear();
        let delta = parse_event(&data)?;
        if delta.finish_reason.is_some() {
            self.finish_reason = delta.finish_reason;
        }
        if delta.usage.is_some() {
            self.usage = delta.usage;
        }
        if delta.model.is_some() && self.model.is_none() {
            self.model = delta.model;
        }
        self.done |= delta.done;
        self.text.push_str(&delta.text);
        Ok(delta.text)
    }

    /// Returns true once `[DONE]` has arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Ends the stream. A stream with neither `[DONE]` nor a finish reason was cut short.
    pub fn finish(mut self) -> Result<Completion, ProtocolError> {
        // A last event without its blank line still counts.
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.push(&rest)?;
            self.push(b"\n")?;
        }
        self.dispatch()?;
        if !self.done && self.finish_reason.is_none() {
            return Err(ProtocolError::CutShort {
                received_chars: self.text.chars().count(),
            });
        }
        Ok(Completion {
            text: self.text,
            finish_reason: self.finish_reason,
            usage: self.usage,
            model: self.model,
        })
    }
}

/// Parses the data of one streamed event: `[DONE]`, an error, or a chunk.
fn parse_event(data: &str) -> Result<Delta, ProtocolError> {
    if data.trim() == "[DONE]" {
        return Ok(Delta {
            done: true,
            ..Delta::default()
        });
    }
    let value: Value = serde_json::from_str(data).map_err(|error| {
        ProtocolError::Malformed(format!(
            "{error} in the streamed event {:?}",
            excerpt(data, 120)
        ))
    })?;
    if let Some(error) = embedded_error(&value) {
        return Err(error);
    }
    let choice = value.get("choices").and_then(|c| c.get(0));
    Ok(Delta {
        text: choice
            .and_then(|c| c.pointer("/delta/content"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        finish_reason: choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(str::to_string),
        usage: parse_usage(&value),
        model: value
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
        done: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_body_has_model_budget_and_temperature() {
        let body: Value = serde_json::from_str(&request_body(
            "gpt-4o-mini",
            "Hi",
            64,
            0.0,
            false,
            RequestShape::default(),
        ))
        .unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["messages"][0]["content"], "Hi");
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["temperature"], 0.0);
        assert!(body.get("stream_options").is_none());
    }

    #[test]
    fn shape_adapts_to_rejected_parameters() {
        let shape = RequestShape::default();
        let renamed = shape
            .adapted_to(
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
                false,
            )
            .unwrap();
        assert!(renamed.max_completion_tokens);
        let body: Value =
            serde_json::from_str(&request_body("o3", "Hi", 8, 0.0, true, renamed)).unwrap();
        assert_eq!(body["max_completion_tokens"], 8);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(body["stream_options"]["include_usage"], true);

        let no_usage = shape
            .adapted_to("extra fields not permitted: stream_options", true)
            .unwrap();
        assert!(!no_usage.include_usage);
        assert_eq!(shape.adapted_to("invalid model", false), None);
    }

    #[test]
    fn plain_completion_parses_text_usage_and_reason() {
        let body = r#"{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#;
        let completion = parse_completion(body).unwrap();
        assert_eq!(completion.text, "Paris.");
        assert_eq!(completion.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            completion.usage,
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 3
            })
        );
    }

    #[test]
    fn malformed_body_is_named() {
        match parse_completion(r#"{"choices": ["#) {
            Err(ProtocolError::Malformed(message)) => assert!(message.contains("EOF"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_completion(r#"{"object":"list"}"#),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn error_message_from_each_body_shape() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#
            ),
            "Incorrect API key provided"
        );
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            error_message(r#"{"error":"model not loaded"}"#),
            "model not loaded"
        );
        assert_eq!(
            error_message("<html>Bad gateway</html>"),
            "<html>Bad gateway</html>"
        );
    }

    #[test]
    fn stream_assembles_across_chunk_boundaries() {
        let stream = concat!(
            ": keep-alive\r\n\r\n",
            "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Bon\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"jour é\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        )
        .as_bytes();
        // Every split point, including ones inside the two-byte "é".
        for split in 0..stream.len() {
            let mut assembler = StreamAssembler::new();
            let mut arrived = assembler.push(&stream[..split]).unwrap();
            arrived.push_str(&assembler.push(&stream[split..]).unwrap());
            assert_eq!(arrived, "Bonjour é");
            let completion = assembler.finish().unwrap();
            assert_eq!(completion.text, "Bonjour é");
            assert_eq!(completion.finish_reason.as_deref(), Some("length"));
            assert_eq!(completion.usage.map(|u| u.completion_tokens), Some(2));
            assert_eq!(completion.model.as_deref(), Some("m"));
        }
    }

    #[test]
    fn unfinished_stream_is_cut_short() {
        let mut assembler = StreamAssembler::new();
        assembler
            .push(b"data: {\"choices\":[{\"delta\":{\"content\":\"Once upon\"}}]}\n\n")
            .unwrap();
        assert_eq!(
            assembler.finish(),
            Err(ProtocolError::CutShort { received_chars: 9 })
        );
    }

    #[test]
    fn stream_reports_error_and_bad_json() {
        let mut assembler = StreamAssembler::new();
        let error = assembler
            .push(b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n")
            .unwrap_err();
        assert_eq!(error, ProtocolError::ServerError("overloaded".into()));
        let mut assembler = StreamAssembler::new();
        assert!(matches!(
            assembler.push(b"data: {not json}\n\n"),
            Err(ProtocolError::Malformed(_))
        ));
    }
}
