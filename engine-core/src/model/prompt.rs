//! Turning a user's prompt into the tokens a generation starts from: as written, or as a user
//! message in the model's chat template. Shared by the CLI and the web API so both feed a model the
//! same tokens for the same request.

use crate::chat::{ChatError, ChatMessage, ChatTemplate};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Why a prompt could not become tokens.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("this model has no chat template")]
    NoTemplate,
    #[error("rendering the chat template: {0}")]
    Template(#[from] ChatError),
    #[error("tokenizing the prompt: {0}")]
    Tokenize(#[from] TokenizerError),
    #[error("the prompt is empty")]
    Empty,
}

/// A request's text and how to present it to the model.
#[derive(Debug, Clone, Copy)]
pub struct Prompt<'a> {
    /// The prompt (in chat mode: the user message).
    pub text: &'a str,
    /// Wrap `text` in the chat template as a user message, ending where the reply begins.
    pub chat: bool,
    /// A system message before the user message (chat mode only).
    pub system: Option<&'a str>,
}

impl Prompt<'_> {
    /// The token ids to prefill: special tokens in the text (and the template) are parsed as
    /// such, and BOS is added where the tokenizer asks for it.
    pub fn tokens(
        &self,
        tokenizer: &Tokenizer,
        template: Option<&ChatTemplate>,
    ) -> Result<Vec<u32>, PromptError> {
        let rendered;
        let text = if self.chat {
            let template = template.ok_or(PromptError::NoTemplate)?;
            let mut messages = Vec::with_capacity(2);
            if let Some(system) = self.system {
                messages.push(ChatMessage::system(system));
            }
            messages.push(ChatMessage::user(self.text));
            rendered = template.render(&messages, true)?;
            rendered.as_str()
        } else {
            self.text
        };
        let tokens = tokenizer.encode(text, true, true)?;
        if tokens.is_empty() {
            return Err(PromptError::Empty);
        }
        Ok(tokens)
    }
}
