//! Rendering one event for one named subscription, outside routing: for events that come back
//! from the retry topic or a replay without a body, which must be shaped by the template the
//! subscription has now.

use super::{RenderError, RuleSet};
use crate::event::Event;
use crate::render::EventContext;

impl RuleSet {
    /// Classifies `event` and renders it with `subscription`'s template; returns the event's
    /// category with the body. `None` when the rules have no such subscription.
    pub fn render_for(
        &self,
        event: &Event,
        subscription: &str,
    ) -> Option<(String, Result<serde_json::Value, RenderError>)> {
        let position = self
            .subscriptions
            .iter()
            .position(|s| &*s.id == subscription)?;
        let classified = self.sources.for_topic(&event.origin.topic).classify(event);
        let cx = EventContext::new(event, &classified.derived);
        let body = self.sub_templates[position].render(&cx);
        Some((classified.derived.category.clone(), body))
    }
}
