//! Stacks: named deployment environments whose Workflows run one at a
//! time, with their history and outputs.

pub mod gate;
pub mod history;
