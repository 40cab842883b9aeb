//! Carrying out decisions: the executor, each action kind's API calls, and the Event on the
//! target. `act` sees only the protocol's requests and the record writer; it never reads the
//! engine's stores, policies or decisions.

mod announce;
pub mod batch;
mod discover;
mod dispatch;
pub mod drain;
mod executor;
mod failure;
mod handle;
pub mod job;
pub mod node;
mod outcome;
pub mod pod;
mod recheck;
pub mod remediate;
pub mod replace;
pub mod reschedule;
pub mod restart;
mod unfinished;

pub use dispatch::{asks_budgets, removal_grace};
pub use executor::{Acting, executor};
pub use outcome::Outcome;
pub use recheck::{Reads, reads};
