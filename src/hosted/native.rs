//! The native transport: `ureq` on one thread per request, so that requests run
//! concurrently under a single-threaded executor such as `pollster`, and each body
//! arrives piece by piece through a channel.

use std::io::Read;
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

use super::{HttpRequest, HttpResponse, ResponseBody, Transport, TransportError};

/// A message from the request thread to the response reader.
enum Event {
    Head {
        status: u16,
        headers: Vec<(String, String)>,
    },
    Chunk(Vec<u8>),
    Failed(TransportError),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct NativeTransport;

pub struct NativeBody {
    events: mpsc::UnboundedReceiver<Event>,
}

impl ResponseBody for NativeBody {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        match self.events.next().await {
            Some(Event::Chunk(bytes)) => Ok(Some(bytes)),
            Some(Event::Failed(error)) => Err(error),
            Some(Event::Head { .. }) | None => Ok(None),
        }
    }
}

fn transport_error(error: &ureq::Error) -> TransportError {
    match error {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => TransportError::Timeout,
        other => TransportError::Network(crate::error::first_line(other)),
    }
}

fn io_error(error: &std::io::Error) -> TransportError {
    let timed_out = error.kind() == std::io::ErrorKind::TimedOut
        || error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)));
    if timed_out {
        TransportError::Timeout
    } else {
        TransportError::Network(error.to_string())
    }
}

/// Sends the request and forwards the status, headers and body pieces until the body
/// ends, fails, or the receiver is dropped.
fn run_request(request: HttpRequest, events: mpsc::UnboundedSender<Event>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(request.timeout_ms)))
        .http_status_as_error(false)
        .build()
        .into();

    let mut builder = agent.post(&request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = match builder.send(request.body.as_bytes()) {
        Ok(response) => response,
        Err(error) => {
            let _ = events.unbounded_send(Event::Failed(transport_error(&error)));
            return;
        }
    };

    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let head = Event::Head {
        status: response.status().as_u16(),
        headers,
    };
    if events.unbounded_send(head).is_err() {
        return;
    }

    let mut reader = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let event = match reader.read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => Event::Chunk(buffer[..read].to_vec()),
            Err(error) => Event::Failed(io_error(&error)),
        };
        let failed = matches!(event, Event::Failed(_));
        if events.unbounded_send(event).is_err() || failed {
            return;
        }
    }
}

impl Transport for NativeTransport {
    type Body = NativeBody;

    async fn post(&self, request: HttpRequest) -> Result<HttpResponse<NativeBody>, TransportError> {
        let (sender, mut events) = mpsc::unbounded();
        std::thread::Builder::new()
            .name("seedling-http".into())
            .spawn(move || run_request(request, sender))
            .map_err(|error| {
                TransportError::Network(format!("failed to start a request thread: {error}"))
            })?;
        match events.next().await {
            Some(Event::Head { status, headers }) => Ok(HttpResponse {
                status,
                headers,
                body: NativeBody { events },
            }),
            Some(Event::Failed(error)) => Err(error),
            Some(Event::Chunk(_)) | None => Err(TransportError::Network(
                "the request thread ended without a response".into(),
            )),
        }
    }

    async fn sleep(&self, ms: u64) {
        let (sender, receiver) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("seedling-sleep".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                let _ = sender.send(());
            });
        match spawned {
            Ok(_) => {
                let _ = receiver.await;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(ms)),
        }
    }

    fn in_browser(&self) -> bool {
        false
    }
}
