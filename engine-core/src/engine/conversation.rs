//! A conversation: a KV session, the tokens it holds, and the chat history they came from.

use super::options::{GenerateOptions, TurnStats};
use super::prompt::{Prompt, PromptError};
use super::reply::Reply;
use super::stop::CancelHandle;
use super::Engine;
use crate::backend::Backend;
use crate::chat::ChatMessage;
use crate::model::Session;
use crate::sample::Sampler;
use crate::{Error, Result};

/// One conversation's state on the backend. Turns borrow it mutably, one at a time.
pub struct Conversation<B: Backend> {
    pub(super) session: Session<B>,
    /// The tokens whose keys and values are in `session`, in order: always as long as the
    /// session's position.
    pub(super) cached: Vec<u32>,
    /// The chat history: an optional system message first, then user and assistant turns.
    pub(super) messages: Vec<ChatMessage>,
    pub(super) cancel: CancelHandle,
    pub(super) last: Option<TurnStats>,
}

impl<B: Backend> Conversation<B> {
    pub(super) fn new(engine: &Engine<B>, context: usize) -> Result<Self> {
        Ok(Self {
            session: engine.model.session(&engine.backend, context)?,
            cached: Vec::new(),
            messages: Vec::new(),
            cancel: CancelHandle::default(),
            last: None,
        })
    }

    /// The history, system message first where there is one.
    pub fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// The system message, if any.
    pub fn system(&self) -> Option<&str> {
        self.messages
            .first()
            .filter(|m| m.role == "system")
            .map(|m| m.content.as_str())
    }

    /// Sets (or with `None` removes) the system message, keeping the turns after it. The cache
    /// is kept: the next turn reuses whatever prefix still matches.
    pub fn set_system(&mut self, system: Option<&str>) {
        if self.system().is_some() {
            self.messages.remove(0);
        }
        if let Some(text) = system {
            self.messages.insert(0, ChatMessage::system(text));
        }
    }

    /// Forgets the turns, keeping the system message (and the cache, whose prefix the next turn
    /// may still reuse).
    pub fn reset(&mut self) {
        self.messages.retain(|m| m.role == "system");
        self.messages.truncate(1);
    }

    /// Replaces the history (e.g. a conversation loaded from a file).
    pub fn set_messages(&mut self, messages: Vec<ChatMessage>) {
        self.messages = messages;
    }

    /// The tokens whose keys and values the cache holds.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.cached
    }

    /// The history `say(text)` renders (before any context shift): the messages so far and
    /// `text` as the next user message.
    pub fn history_with(&self, text: &str) -> Vec<ChatMessage> {
        let mut messages = self.messages.clone();
        messages.push(ChatMessage::user(text));
        messages
    }

    /// Bytes of this conversation's KV cache.
    pub fn kv_bytes(&self) -> u64 {
        self.session.kv_bytes()
    }

    /// The most positions the cache holds.
    pub fn limit(&self) -> usize {
        self.session.limit()
    }

    /// Flipping it stops the running reply after its current token.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// What the last turn did.
    pub fn last_turn(&self) -> Option<&TurnStats> {
        self.last.as_ref()
    }

    /// Adds `text` as a user message and replies to the whole history; the reply (whatever part
    /// of it is generated, also when cancelled) becomes the next assistant message. On an error
    /// here (an empty message, a template that fails, a history past the context without
    /// `context_shift`) the history is left as it was.
    pub fn say<'a>(
        &'a mut self,
        engine: &'a Engine<B>,
        text: &str,
        options: &GenerateOptions,
    ) -> Result<Reply<'a, B>> {
        if text.trim().is_empty() {
            return Err(PromptError::EmptyMessage.into());
        }
        let sampler = Sampler::new(options.sampler.clone())?;
        let mut messages = self.history_with(text);
        let (tokens, dropped) = self.fit_messages(engine, &mut messages, options)?;
        self.messages = messages;
        Ok(Reply::start(
            self, engine, tokens, options, sampler, true, dropped,
        ))
    }

    /// Replies to `prompt` as given (the history is not consulted or changed), reusing whatever
    /// prefix of it the cache holds. A chat prompt that outgrows the context is shifted as in
    /// [`Conversation::say`]; text and token prompts keep their last tokens (after BOS).
    pub fn complete<'a>(
        &'a mut self,
        engine: &'a Engine<B>,
        prompt: Prompt<'_>,
        options: &GenerateOptions,
    ) -> Result<Reply<'a, B>> {
        let sampler = Sampler::new(options.sampler.clone())?;
        let (tokens, dropped) = match prompt {
            Prompt::Chat(messages) => {
                let mut messages = messages.to_vec();
                self.fit_messages(engine, &mut messages, options)?
            }
            other => {
                let tokens = engine.tokenize(other)?;
                (self.fit_tokens(engine, tokens, options)?, 0)
            }
        };
        Ok(Reply::start(
            self, engine, tokens, options, sampler, false, dropped,
        ))
    }

    /// Tokenizes `messages`, dropping their oldest turns while they do not fit and the options
    /// allow it: the tokens and the number of messages dropped.
    fn fit_messages(
        &self,
        engine: &Engine<B>,
        messages: &mut Vec<ChatMessage>,
        options: &GenerateOptions,
    ) -> Result<(Vec<u32>, usize)> {
        let limit = self.limit();
        let mut dropped = 0;
        loop {
            let tokens = engine.tokenize(Prompt::Chat(messages))?;
            if !options.context_shift && tokens.len() <= limit {
                return Ok((tokens, dropped));
            }
            if options.context_shift && tokens.len() + options.reply_reserve(limit) <= limit {
                return Ok((tokens, dropped));
            }
            let removed = drop_oldest_turn(messages);
            // Nothing left to drop: a prompt that fits still runs, with less room to reply.
            if options.context_shift && removed == 0 && tokens.len() <= limit {
                return Ok((tokens, dropped));
            }
            if !options.context_shift || removed == 0 {
                return Err(Error::ContextOverflow {
                    tokens: tokens.len(),
                    limit,
                });
            }
            dropped += removed;
        }
    }

    /// Checks a plain prompt against the context, keeping its last tokens under a shift.
    fn fit_tokens(
        &self,
        engine: &Engine<B>,
        tokens: Vec<u32>,
        options: &GenerateOptions,
    ) -> Result<Vec<u32>> {
        let limit = self.limit();
        let overflow = |tokens: &[u32]| Error::ContextOverflow {
            tokens: tokens.len(),
            limit,
        };
        if !options.context_shift {
            return if tokens.len() <= limit {
                Ok(tokens)
            } else {
                Err(overflow(&tokens))
            };
        }
        let room = limit - options.reply_reserve(limit).min(limit);
        if tokens.len() <= room {
            return Ok(tokens);
        }
        if room < 2 {
            return Err(overflow(&tokens));
        }
        let bos = engine
            .tokenizer
            .bos()
            .filter(|&b| tokens.first() == Some(&b));
        let keep_from = tokens.len() - (room - usize::from(bos.is_some()));
        let mut kept: Vec<u32> = bos.into_iter().collect();
        kept.extend_from_slice(&tokens[keep_from..]);
        Ok(kept)
    }
}

/// Removes the oldest turn after the system message — a user message and the replies that follow
/// it — never the last message. Returns how many messages went.
fn drop_oldest_turn(messages: &mut Vec<ChatMessage>) -> usize {
    let first = usize::from(messages.first().is_some_and(|m| m.role == "system"));
    let last = messages.len().saturating_sub(1);
    if first >= last {
        return 0;
    }
    let mut end = first + 1;
    while end < last && messages[end].role != "user" {
        end += 1;
    }
    messages.drain(first..end);
    end - first
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(m: &[ChatMessage]) -> Vec<&str> {
        m.iter().map(|m| m.role.as_str()).collect()
    }

    #[test]
    fn the_oldest_turn_goes_first_and_the_system_message_and_last_message_stay() {
        let mut m = vec![
            ChatMessage::system("s"),
            ChatMessage::user("1"),
            ChatMessage::assistant("a1"),
            ChatMessage::user("2"),
            ChatMessage::assistant("a2"),
            ChatMessage::user("3"),
        ];
        assert_eq!(drop_oldest_turn(&mut m), 2);
        assert_eq!(roles(&m), ["system", "user", "assistant", "user"]);
        assert_eq!(m[1].content, "2");
        assert_eq!(drop_oldest_turn(&mut m), 2);
        assert_eq!(roles(&m), ["system", "user"]);
        assert_eq!(drop_oldest_turn(&mut m), 0);
        let mut only = vec![ChatMessage::user("x")];
        assert_eq!(drop_oldest_turn(&mut only), 0);
    }
}
