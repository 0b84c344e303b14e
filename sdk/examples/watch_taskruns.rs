//! A watcher: prints every change to the TaskRuns of one namespace (all
//! namespaces with `""`). `watch_objects` lists first, then watches, and
//! relists or resumes by itself after a disconnect, so the loop only reads.
//!
//! ```sh
//! cargo run -p sloth-sdk --example watch_taskruns -- http://127.0.0.1:50053 default
//! ```

use futures_util::StreamExt;
use sloth_sdk::objects::TaskRunSpec;
use sloth_sdk::watcher::{Event, watch_objects};
use sloth_sdk::{Api, Client, WatchParams};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50053".into());
    let namespace = args.next().unwrap_or_default();
    let client = Client::new(&[server])?;
    let taskruns: Api<TaskRunSpec> = Api::all(client);
    let mut events = watch_objects(&taskruns, &namespace, WatchParams::default());
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Restarted(all)) => println!("listed {} TaskRuns", all.len()),
            Ok(Event::Applied(run)) => {
                let phase = run.status.as_ref().map(|s| s.phase).unwrap_or_default();
                println!("{}/{}: {phase:?}", run.namespace(), run.name());
            }
            Ok(Event::Deleted(run)) => println!("{}/{}: deleted", run.namespace(), run.name()),
            // The watcher retries on its own; an error is only worth showing.
            Err(e) => eprintln!("watch: {e}"),
        }
    }
    Ok(())
}
