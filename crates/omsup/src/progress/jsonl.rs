//! JSON Lines (`--format jsonl`): one object per event per line on stdout, in the format the
//! parent module documents (`type`, `at`, `format_version`, then the event's fields).

use std::io::Write;
use std::sync::Mutex;

use omsup_journal::Timestamp;
use serde_json::{Map, Value};

use super::{EVENTS_FORMAT_VERSION, Event, ProgressSink, lock};

/// The JSON Lines line of `event` written at `now` (without the newline). See the module doc.
pub fn json_line(event: &Event, now: Timestamp) -> String {
    let mut object = Map::new();
    match serde_json::to_value(event) {
        Ok(Value::Object(fields)) => {
            let kind = fields.get("type").cloned().unwrap_or(Value::Null);
            object.insert("type".to_owned(), kind);
            object.insert("at".to_owned(), Value::String(now.to_rfc3339()));
            object.insert(
                "format_version".to_owned(),
                Value::from(EVENTS_FORMAT_VERSION),
            );
            // In declaration order (`preserve_order`), the tag already written first.
            object.extend(fields.into_iter().filter(|(key, _)| key != "type"));
        }
        // Not reachable with the derived Serialize (string keys, no floats); a line anyway.
        Ok(_) | Err(_) => {
            object.insert(
                "type".to_owned(),
                Value::String("unserializable".to_owned()),
            );
            object.insert("at".to_owned(), Value::String(now.to_rfc3339()));
            object.insert(
                "format_version".to_owned(),
                Value::from(EVENTS_FORMAT_VERSION),
            );
            object.insert("debug".to_owned(), Value::String(format!("{event:?}")));
        }
    }
    Value::Object(object).to_string()
}

/// `--format jsonl`: one JSON object per line on a writer (stdout), flushed per event.
pub struct JsonLines<W> {
    writer: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(writer: W) -> Self {
        Self {
            writer: Mutex::new(writer),
        }
    }
}

impl<W: Write + Send> ProgressSink for JsonLines<W> {
    fn event(&self, event: &Event) {
        let line = json_line(event, Timestamp::now());
        let mut writer = lock(&self.writer);
        // A reader that went away (`| head`) must not stop the run.
        let _ = writeln!(writer, "{line}");
        let _ = writer.flush();
    }
}
