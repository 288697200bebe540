//! Every actor runs inside a span carrying its id and type, and lifecycle changes are events.

mod support;

use std::sync::{Arc, Mutex};

use amber::prelude::*;
use support::{Counter, CounterMsg, bounded};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records span fields and event messages (with the span they happened in).
#[derive(Default, Clone)]
struct Recorder {
    spans: Arc<Mutex<Vec<(String, String)>>>, // (span name, "id=.. ty=..")
    events: Arc<Mutex<Vec<String>>>,
    next: Arc<Mutex<u64>>,
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut f = Fields(String::new());
        attrs.record(&mut f);
        self.spans.lock().unwrap().push((attrs.metadata().name().to_owned(), f.0));
        let mut n = self.next.lock().unwrap();
        *n += 1;
        Id::from_u64(*n)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.events.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn actors_get_a_span_with_id_and_type_and_lifecycle_events() {
    let recorder = Recorder::default();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let id = tracing::subscriber::with_default(recorder.clone(), || {
        rt.block_on(async {
            let system = ActorSystem::new();
            let counter = system.spawn(Counter::new()).unwrap();
            counter.tell(CounterMsg::Panic).await.unwrap();
            bounded(counter.wait_stopped()).await;
            bounded(system.shutdown()).await;
            counter.id()
        })
    });
    let spans = recorder.spans.lock().unwrap().clone();
    let actor_span = spans.iter().find(|(name, _)| name == "actor").expect("an actor span");
    assert!(actor_span.1.contains(&format!("id={id}")), "{actor_span:?}");
    assert!(actor_span.1.contains("Counter"), "{actor_span:?}");
    let events = recorder.events.lock().unwrap().join("\n");
    assert!(events.contains("starting"), "{events}");
    assert!(events.contains("actor panicked"), "{events}");
    assert!(events.contains("stopped"), "{events}");
}
