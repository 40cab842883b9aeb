//! One module per subcommand.

pub mod classify;
pub mod crd;
pub mod run;
