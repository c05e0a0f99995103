//! The model's chat template (Jinja, from the GGUF metadata), rendered with minijinja.

use candle_core::quantized::gguf_file::Content;
use minijinja::{context, Environment};

use crate::error::{Error, Result};
use crate::tokenize::gguf::SpecialTokens;

/// ChatML, used when a file carries no `tokenizer.chat_template`.
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

#[derive(serde::Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

impl ChatTemplate {
    pub fn from_gguf(content: &Content, special: &SpecialTokens) -> Result<Self> {
        let source = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|value| value.to_string().ok().cloned())
            .unwrap_or_else(|| CHATML.to_string());
        let template = Self {
            source,
            bos: special.bos_text.clone(),
            eos: special.eos_text.clone(),
        };
        // Fail at load time, not at the first prompt, when the template does not compile.
        template.environment()?;
        Ok(template)
    }

    fn environment(&self) -> Result<Environment<'_>> {
        let mut environment = Environment::new();
        minijinja_contrib::add_to_environment(&mut environment);
        environment
            .set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        environment.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        environment
            .add_template("chat", &self.source)
            .map_err(|e| Error::ChatTemplate(e.to_string()))?;
        Ok(environment)
    }

    /// Renders an optional system message and one user turn, followed by the
    /// assistant's generation prompt. Without `system`, the template's own default applies.
    pub fn render_user_turn(&self, system: Option<&str>, user: &str) -> Result<String> {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(Message {
                role: "system",
                content: system,
            });
        }
        messages.push(Message {
            role: "user",
            content: user,
        });

        let environment = self.environment()?;
        let template = environment
            .get_template("chat")
            .map_err(|e| Error::ChatTemplate(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos,
                eos_token => self.eos,
            })
            .map_err(|e| Error::ChatTemplate(e.to_string()))
    }
}
