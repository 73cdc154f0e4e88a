//! Subscriptions: where a subscription comes from and what state it is in.
//!
//! A subscription is defined in a rule file (`subscriptions:`, routed by the files' routes)
//! or created through the admin API (`/api/v1/webhooks`; its own route from its event types,
//! severity floor, topics and filter). Both are compiled into one rule set, through one path
//! ([`crate::rules::reload`]), so lanes, queues and backlogs follow either kind the same way.
//!
//! - [`model`]: an API subscription as stored (secrets sealed), and the records beside it.
//! - [`crypto`]: sealing secrets at rest with the configured key.
//! - [`store`]: the compacted topic that holds them: key = id, tombstone on delete.
//! - [`catalogue`]: what the topic says, merged into the rule set's inputs.
//! - [`follow`]: reading the topic to its end at start-up, then following it.
//! - [`status`]: pause, resume, disable; and auto-disable, on `410 Gone` and after failing
//!   without a success for `subscriptions.disable_after`.

pub mod catalogue;
pub mod crypto;
pub mod follow;
pub mod model;
pub mod status;
pub mod store;

pub use catalogue::Catalogue;
pub use store::{StoreError, StoreReader, StoreWriter};

/// The catalogue could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The topic could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A subscription's secrets do not open.
    #[error("API subscription {id}: its secrets cannot be read")]
    Seal {
        /// The subscription.
        id: String,
        /// Why.
        #[source]
        source: crypto::SealError,
    },
}
