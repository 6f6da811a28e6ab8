//! Chat templates: a model's `tokenizer.chat_template` (Jinja) rendered with minijinja the way
//! Hugging Face transformers renders it, so the prompt text matches what the model was trained on.
//!
//! ## Design
//! transformers renders with `trim_blocks` and `lstrip_blocks` on, passes `messages`,
//! `add_generation_prompt`, `bos_token` and `eos_token`, and offers `raise_exception`; this does
//! the same. Python string methods templates call (`.strip()`, `.startswith()`, `.split()`...)
//! come from minijinja-contrib's `pycompat`. The template is compiled once, in
//! [`ChatTemplate::new`]; rendering never panics on any template or input.

use crate::gguf::{GgufError, Metadata, TokenizerSummary};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, ErrorKind, Value};
use std::collections::BTreeMap;

/// The metadata key holding the template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";
const NAME: &str = "chat_template";

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Everything that can go wrong with a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the model has no chat template ('{CHAT_TEMPLATE_KEY}' is absent)")]
    NoTemplate,

    #[error("chat template metadata: {0}")]
    Metadata(#[from] GgufError),

    #[error("the chat template does not compile: {0}")]
    Syntax(String),

    #[error("the chat template refused the conversation: {0}")]
    Raised(String),

    #[error("the chat template failed to render: {0}")]
    Render(String),
}

impl From<ChatError> for crate::Error {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Metadata(g) => crate::Error::Gguf(g),
            other => crate::Error::Config(other.to_string()),
        }
    }
}

/// Prefix that marks an error as raised by the template itself through `raise_exception`.
const RAISED: &str = "raise_exception: ";

/// A compiled chat template with the special tokens it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// The model's template, with `bos_token`/`eos_token` the texts of its BOS/EOS tokens (empty
    /// where it has none).
    pub fn from_metadata(m: &Metadata) -> Result<Self, ChatError> {
        let source = m.get_str(CHAT_TEMPLATE_KEY)?.ok_or(ChatError::NoTemplate)?;
        let summary = TokenizerSummary::from_metadata(m)?;
        Self::new(
            source,
            summary.bos_token.unwrap_or_default(),
            summary.eos_token.unwrap_or_default(),
        )
    }

    /// Compiles `source`.
    pub fn new(
        source: &str,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self, ChatError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| ChatError::Syntax(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, _> {
            Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("{RAISED}{msg}"),
            ))
        });
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| ChatError::Syntax(describe(&e)))?;
        Ok(Self {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// Renders the conversation; with `add_generation_prompt` the text ends where the assistant's
    /// reply begins.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from(BTreeMap::from([
                    ("role".to_string(), Value::from(m.role.as_str())),
                    ("content".to_string(), Value::from(m.content.as_str())),
                ]))
            })
            .collect();
        let ctx = Value::from(BTreeMap::from([
            ("messages".to_string(), Value::from(messages)),
            (
                "add_generation_prompt".to_string(),
                Value::from(add_generation_prompt),
            ),
            (
                "bos_token".to_string(),
                Value::from(self.bos_token.as_str()),
            ),
            (
                "eos_token".to_string(),
                Value::from(self.eos_token.as_str()),
            ),
        ]));
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| ChatError::Render(describe(&e)))?;
        template.render(ctx).map_err(|e| {
            let raised = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
                .filter_map(|e| e.downcast_ref::<minijinja::Error>())
                .find_map(|e| e.detail().and_then(|d| d.strip_prefix(RAISED)));
            match raised {
                Some(msg) => ChatError::Raised(msg.to_string()),
                None => ChatError::Render(describe(&e)),
            }
        })
    }
}

/// A minijinja error with its line, on one line.
fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!("{e} (line {line})"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Value as GValue;
    use crate::synth::{SynthConfig, CHAT_TEMPLATE};

    #[test]
    fn renders_the_synthesized_chatml_template() {
        let m = SynthConfig::default().metadata().unwrap();
        let t = ChatTemplate::from_metadata(&m).unwrap();
        let msgs = [ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
        assert_eq!(
            t.render(&msgs, true).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(!t.render(&msgs, false).unwrap().ends_with("assistant\n"));
        assert!(CHAT_TEMPLATE.contains("add_generation_prompt"));
    }

    #[test]
    fn errors_are_typed() {
        let mut m = SynthConfig::default().metadata().unwrap();
        m.set(CHAT_TEMPLATE_KEY, GValue::U32(1));
        assert!(matches!(
            ChatTemplate::from_metadata(&m),
            Err(ChatError::Metadata(_))
        ));
        let m = Metadata::new();
        assert!(matches!(
            ChatTemplate::from_metadata(&m),
            Err(ChatError::NoTemplate)
        ));
        assert!(matches!(
            ChatTemplate::new("{% if %}", "", ""),
            Err(ChatError::Syntax(_))
        ));
        let t = ChatTemplate::new(
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok",
            "",
            "",
        )
        .unwrap();
        match t.render(&[ChatMessage::assistant("x")], false) {
            Err(ChatError::Raised(msg)) => assert_eq!(msg, "first must be user"),
            other => panic!("{other:?}"),
        }
        assert_eq!(t.render(&[ChatMessage::user("x")], false).unwrap(), "ok");
        let t = ChatTemplate::new(
            "{{ messages[0].content.strip() | upper }}{{ 1 / 0 }}",
            "",
            "",
        )
        .unwrap();
        assert!(matches!(
            t.render(&[ChatMessage::user(" a ")], false),
            Err(ChatError::Render(_))
        ));
    }

    #[test]
    fn python_methods_and_special_tokens_are_available() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% for m in messages %}{{ m.content.strip() }}{% if m.role.startswith('u') %}!{% endif %}{% endfor %}{{ eos_token }}",
            "<s>",
            "</s>",
        )
        .unwrap();
        let out = t.render(&[ChatMessage::user("  hi  ")], false).unwrap();
        assert_eq!(out, "<s>hi!</s>");
    }
}
