//! The one engine API every caller uses: [`Engine::load`] builds a model on a backend from a
//! weight store (resident, or streamed within a device budget), and a [`Conversation`] keeps a
//! KV cache across turns, prefilling only what is new and streaming each reply as a [`Reply`].
//!
//! ## Design
//! A conversation renders the whole history every turn and tokenizes it; the longest common
//! prefix with the tokens already in its cache is kept and only the rest is prefilled. So a turn
//! gives exactly the tokens a fresh session fed the same history would, whatever the template
//! does to earlier messages, and still costs only its new tokens. The API is executor-free:
//! `Reply::next` is a future the CLI blocks on, the page awaits and the server drives on its
//! engine thread.

mod conversation;
mod emit;
mod file;
mod options;
mod prompt;
mod reply;
mod slots;
#[cfg(test)]
mod slots_tests;
mod stop;
#[cfg(test)]
mod tests;

pub use conversation::Conversation;
pub use file::{parse_messages, ConversationFileError};
pub use options::{GenerateOptions, TurnStats, DEFAULT_PREFILL_BATCH};
pub use prompt::{Prompt, PromptError};
pub use reply::{Reply, ReplyOutcome};
pub use slots::{SlotEvent, SlotPool, SlotRequest};
pub use stop::{CancelHandle, StopReason};

use crate::backend::Backend;
use crate::chat::ChatTemplate;
use crate::model::Model;
use crate::prefetch::PrefetchConfig;
use crate::schedule::{PrefetchProfile, SchedulerConfig};
use crate::source::ByteSource;
use crate::store::WeightStore;
use crate::tokenizer::Tokenizer;
use crate::Result;
use std::sync::Arc;

/// Where a model's weights go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadConfig {
    /// Most bytes of weights on the device: `None` loads everything once; with a budget, a model
    /// that does not fit keeps a pinned set and streams its other layers ahead of use.
    pub device_budget: Option<u64>,
    /// How far ahead streamed layers are fetched.
    pub profile: PrefetchProfile,
    /// The prefetch workers (0: fetch inline when a layer is needed, as in a page).
    pub prefetch: PrefetchConfig,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            device_budget: None,
            profile: PrefetchProfile::Default,
            prefetch: PrefetchConfig::default(),
        }
    }
}

/// A model on backend `B` with its tokenizer and chat template: everything a conversation needs.
pub struct Engine<B: Backend> {
    pub backend: B,
    pub model: Model<B>,
    pub tokenizer: Tokenizer,
    /// The model's chat template; `None` when it has none or it does not compile
    /// (`template_error` says which).
    pub template: Option<ChatTemplate>,
    pub template_error: Option<String>,
}

impl<B: Backend + Clone + Send + Sync + 'static> Engine<B> {
    /// Reads the model in `store` and puts its weights on `backend` as `config` says.
    pub fn load<S: ByteSource + 'static>(
        backend: B,
        store: Arc<WeightStore<S>>,
        config: &LoadConfig,
    ) -> Result<Self> {
        let model = match config.device_budget {
            None => Model::load(&backend, store.clone())?,
            Some(budget) => {
                let scheduler = SchedulerConfig {
                    budget,
                    profile: config.profile,
                    prefetch: config.prefetch,
                };
                Model::load_streaming(&backend, store.clone(), scheduler)?
            }
        };
        let metadata = &store.gguf().metadata;
        let tokenizer = Tokenizer::from_metadata(metadata)?;
        // A model without a usable template still generates from plain text.
        let (template, template_error) = match ChatTemplate::from_metadata(metadata) {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(Self {
            backend,
            model,
            tokenizer,
            template,
            template_error,
        })
    }
}

impl<B: Backend> Engine<B> {
    /// A new, empty conversation whose KV cache holds up to `context` positions (at most the
    /// model's context length).
    pub fn conversation(&self, context: usize) -> Result<Conversation<B>> {
        Conversation::new(self, context)
    }

    /// The tokens `prompt` stands for on this model.
    pub fn tokenize(&self, prompt: Prompt<'_>) -> Result<Vec<u32>, PromptError> {
        prompt.tokens(&self.tokenizer, self.template.as_ref())
    }
}
