//! The CronWorkflow controller: creates a Workflow at each scheduled time.

pub mod children;
pub mod controller;
pub mod due;
pub mod gc;
