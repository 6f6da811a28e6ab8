//! What a generation starts from — a chat's messages, plain text or token ids — and how each
//! becomes the tokens to prefill. Shared by every caller, so the same request gives the same
//! tokens in the CLI, the page and the server.

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
    #[error("the message is empty")]
    EmptyMessage,
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfRange { id: u32, vocab: usize },
}

/// A request's input.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// Messages rendered through the model's chat template, ending where the reply begins.
    Chat(&'a [ChatMessage]),
    /// Text as written: special tokens in it are parsed as such, BOS added where the tokenizer
    /// asks for it.
    Text(&'a str),
    /// Token ids, fed as they are.
    Tokens(&'a [u32]),
}

impl Prompt<'_> {
    /// The token ids to prefill.
    pub fn tokens(
        &self,
        tokenizer: &Tokenizer,
        template: Option<&ChatTemplate>,
    ) -> Result<Vec<u32>, PromptError> {
        let tokens = match *self {
            Prompt::Chat(messages) => {
                let template = template.ok_or(PromptError::NoTemplate)?;
                let text = template.render(messages, true)?;
                tokenizer.encode(&text, true, true)?
            }
            Prompt::Text(text) => tokenizer.encode(text, true, true)?,
            Prompt::Tokens(ids) => {
                let vocab = tokenizer.vocab_size();
                if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
                    return Err(PromptError::TokenOutOfRange { id, vocab });
                }
                ids.to_vec()
            }
        };
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
        let messages = [ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
        let rendered = template.render(&messages, true).unwrap();
        assert_eq!(
            Prompt::Chat(&messages)
                .tokens(&tok, Some(&template))
                .unwrap(),
            tok.encode(&rendered, true, true).unwrap()
        );
        assert_eq!(
            Prompt::Text("Hi").tokens(&tok, None).unwrap(),
            tok.encode("Hi", true, true).unwrap()
        );
        assert_eq!(Prompt::Tokens(&[3, 4]).tokens(&tok, None).unwrap(), [3, 4]);
    }

    #[test]
    fn missing_template_empty_prompt_and_bad_ids_are_typed_errors() {
        let (tok, _) = parts();
        let messages = [ChatMessage::user("Hi")];
        assert!(matches!(
            Prompt::Chat(&messages).tokens(&tok, None),
            Err(PromptError::NoTemplate)
        ));
        // The synthesized vocabulary adds no BOS, so an empty text has no tokens at all.
        assert!(!tok.add_bos());
        assert!(matches!(
            Prompt::Text("").tokens(&tok, None),
            Err(PromptError::Empty)
        ));
        let vocab = tok.vocab_size() as u32;
        assert!(matches!(
            Prompt::Tokens(&[1, vocab]).tokens(&tok, None),
            Err(PromptError::TokenOutOfRange { id, .. }) if id == vocab
        ));
    }
}
