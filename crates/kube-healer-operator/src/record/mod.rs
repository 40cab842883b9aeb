//! HealingAction records: their names, writing them around each action, and retention.

pub mod names;
pub mod retention;
pub mod writer;

pub use names::{Mode, batch_name, label_value, record_name};
pub use retention::{Records, Retention};
