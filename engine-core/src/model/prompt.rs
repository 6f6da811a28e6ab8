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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::SynthConfig;

    fn parts() -> (Tokenizer, ChatTemplate) {
        let m = SynthConfig::default().metadata().unwrap();
        (
            Tokenizer::from_metadata(&m).unwrap(),
            ChatTemplate::from_metadata(&m).unwrap(),
        )
    }

    #[test]
    fn chat_mode_tokenizes_the_rendered_template() {
        let (tok, template) = parts();
        let prompt = Prompt {
            text: "Hi",
            chat: true,
            system: Some("Be brief."),
        };
        let rendered = template
            .render(
                &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
                true,
            )
            .unwrap();
        assert_eq!(
            prompt.tokens(&tok, Some(&template)).unwrap(),
            tok.encode(&rendered, true, true).unwrap()
        );
        let plain = Prompt {
            chat: false,
            ..prompt
        };
        assert_eq!(
            plain.tokens(&tok, None).unwrap(),
            tok.encode("Hi", true, true).unwrap()
        );
    }

    #[test]
    fn missing_template_and_empty_prompt_are_typed_errors() {
        let (tok, _) = parts();
        let chat = Prompt {
            text: "Hi",
            chat: true,
            system: None,
        };
        assert!(matches!(
            chat.tokens(&tok, None),
            Err(PromptError::NoTemplate)
        ));
        // The synthesized vocabulary adds no BOS, so an empty text has no tokens at all.
        let empty = Prompt {
            text: "",
            chat: false,
            system: None,
        };
        assert!(!tok.add_bos());
        assert!(matches!(empty.tokens(&tok, None), Err(PromptError::Empty)));
    }
}
