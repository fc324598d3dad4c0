//! The probe: a deliberately small aggregate that exercises the ledger end to end.
//!
//! It is what `dezky demo` and `dezky bench append` drive through the real command path
//! (cqrs-es → ledger repository → hash chain), and what the crash and concurrency suites use
//! to check that a command's events land all together or not at all. It is not part of the
//! product's business domain, but it follows every house rule of one: pure `decide`, typed
//! errors, versioned events with an upcaster.

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::SemanticVersionEventUpcaster;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Aggregate type name as stored in the ledger. Never change it: it is part of every hash.
pub const PROBE_AGGREGATE_TYPE: &str = "probe";
/// Stored type name of [`ProbeEvent::ReadingRecorded`].
pub const READING_RECORDED: &str = "ReadingRecorded";
/// Current schema version of [`ProbeEvent::ReadingRecorded`].
pub const READING_RECORDED_VERSION: &str = "2.0";
/// The most readings one command may record; bounds the size of one ledger batch.
pub const MAX_READINGS_PER_COMMAND: usize = 64;
/// The longest label accepted, in bytes.
pub const MAX_LABEL_BYTES: usize = 200;

/// One measurement to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// Value in thousandths of `unit`; integers keep the ledger free of float formatting.
    pub value_milli: i64,
    /// Unit of the value, e.g. `ms` or `count`.
    pub unit: String,
}

/// Commands a probe accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeCommand {
    /// Record one or more readings; each becomes one `ReadingRecorded` event.
    Record {
        /// A free-text label stored with every reading (lets tests size events).
        label: String,
        /// The readings, in order.
        readings: Vec<Reading>,
    },
}

/// Events a probe emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeEvent {
    /// A reading was recorded (schema 2.0; 1.0 is upcast by [`upcasters`]).
    ReadingRecorded {
        /// 1-based number of the reading within this probe.
        reading_no: u64,
        /// Value in thousandths of `unit`.
        value_milli: i64,
        /// Unit of the value.
        unit: String,
        /// The command's label.
        label: String,
    },
}

impl DomainEvent for ProbeEvent {
    fn event_type(&self) -> String {
        match self {
            ProbeEvent::ReadingRecorded { .. } => READING_RECORDED.to_owned(),
        }
    }

    fn event_version(&self) -> String {
        match self {
            ProbeEvent::ReadingRecorded { .. } => READING_RECORDED_VERSION.to_owned(),
        }
    }
}

/// Why a probe refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// A command must record at least one reading.
    #[error("a command must record at least one reading")]
    NoReadings,
    /// Too many readings in one command.
    #[error("a command may record at most {max} readings, got {got}")]
    TooManyReadings {
        /// The limit.
        max: usize,
        /// What was asked.
        got: usize,
    },
    /// The label is too long.
    #[error("the label is {got} bytes long; the limit is {max}")]
    LabelTooLong {
        /// The limit.
        max: usize,
        /// What was given.
        got: usize,
    },
    /// A reading without a unit.
    #[error("reading {index} has an empty unit")]
    EmptyUnit {
        /// 0-based index of the reading in the command.
        index: usize,
    },
}

/// State of one probe, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// How many readings were recorded.
    pub readings: u64,
    /// The last value recorded, if any.
    pub last_value_milli: Option<i64>,
}

/// Decides which events a command produces, or why it is refused. Pure.
pub fn decide(state: &Probe, command: ProbeCommand) -> Result<Vec<ProbeEvent>, ProbeError> {
    match command {
        ProbeCommand::Record { label, readings } => {
            if readings.is_empty() {
                return Err(ProbeError::NoReadings);
            }
            if readings.len() > MAX_READINGS_PER_COMMAND {
                return Err(ProbeError::TooManyReadings {
                    max: MAX_READINGS_PER_COMMAND,
                    got: readings.len(),
                });
            }
            if label.len() > MAX_LABEL_BYTES {
                return Err(ProbeError::LabelTooLong {
                    max: MAX_LABEL_BYTES,
                    got: label.len(),
                });
            }
            if let Some(index) = readings.iter().position(|r| r.unit.trim().is_empty()) {
                return Err(ProbeError::EmptyUnit { index });
            }
            Ok(readings
                .into_iter()
                .zip(state.readings + 1..)
                .map(|(reading, reading_no)| ProbeEvent::ReadingRecorded {
                    reading_no,
                    value_milli: reading.value_milli,
                    unit: reading.unit,
                    label: label.clone(),
                })
                .collect())
        }
    }
}

impl Aggregate for Probe {
    const TYPE: &'static str = PROBE_AGGREGATE_TYPE;
    type Command = ProbeCommand;
    type Event = ProbeEvent;
    type Error = ProbeError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in decide(self, command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ProbeEvent::ReadingRecorded {
                reading_no,
                value_milli,
                ..
            } => {
                self.readings = reading_no;
                self.last_value_milli = Some(value_milli);
            }
        }
    }
}

/// Upcasts `ReadingRecorded` 1.0 (`{"n", "value", "label"}`, whole units, no unit field) to 2.0.
///
/// Version 1.0 stored whole numbers without a unit; 2.0 stores thousandths with a unit. Old
/// events keep their stored bytes (and so their hashes); only the loaded shape changes.
pub fn upcast_reading_recorded_v1(payload: Value) -> Value {
    let Value::Object(outer) = payload else {
        return payload;
    };
    let Some(Value::Object(v1)) = outer.get(READING_RECORDED) else {
        return Value::Object(outer);
    };
    let reading_no = v1.get("n").cloned().unwrap_or(Value::from(0));
    let value_milli = v1
        .get("value")
        .and_then(Value::as_i64)
        .map(|v| v.saturating_mul(1000))
        .unwrap_or(0);
    let label = v1.get("label").cloned().unwrap_or(Value::from(""));
    serde_json::json!({
        READING_RECORDED: {
            "reading_no": reading_no,
            "value_milli": value_milli,
            "unit": "count",
            "label": label,
        }
    })
}

/// The upcasters a probe event store must be built with.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    vec![Box::new(SemanticVersionEventUpcaster::new(
        READING_RECORDED,
        READING_RECORDED_VERSION,
        Box::new(upcast_reading_recorded_v1),
    ))]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(value_milli: i64) -> Reading {
        Reading {
            value_milli,
            unit: "ms".into(),
        }
    }

    #[test]
    fn recording_readings_numbers_them_after_the_existing_ones() {
        let state = Probe {
            readings: 2,
            last_value_milli: Some(5),
        };
        let events = decide(
            &state,
            ProbeCommand::Record {
                label: "l".into(),
                readings: vec![reading(1), reading(2)],
            },
        )
        .expect("valid command");
        let numbers: Vec<u64> = events
            .iter()
            .map(|ProbeEvent::ReadingRecorded { reading_no, .. }| *reading_no)
            .collect();
        assert_eq!(numbers, vec![3, 4]);
    }

    #[test]
    fn a_command_without_readings_is_refused() {
        let result = decide(
            &Probe::default(),
            ProbeCommand::Record {
                label: String::new(),
                readings: vec![],
            },
        );
        assert_eq!(result, Err(ProbeError::NoReadings));
    }

    #[test]
    fn a_command_with_too_many_readings_is_refused() {
        let result = decide(
            &Probe::default(),
            ProbeCommand::Record {
                label: String::new(),
                readings: vec![reading(1); MAX_READINGS_PER_COMMAND + 1],
            },
        );
        assert_eq!(
            result,
            Err(ProbeError::TooManyReadings {
                max: MAX_READINGS_PER_COMMAND,
                got: MAX_READINGS_PER_COMMAND + 1
            })
        );
    }

    #[test]
    fn a_label_over_the_limit_is_refused() {
        let result = decide(
            &Probe::default(),
            ProbeCommand::Record {
                label: "x".repeat(MAX_LABEL_BYTES + 1),
                readings: vec![reading(1)],
            },
        );
        assert!(matches!(result, Err(ProbeError::LabelTooLong { .. })));
    }

    #[test]
    fn a_reading_with_an_empty_unit_is_refused() {
        let result = decide(
            &Probe::default(),
            ProbeCommand::Record {
                label: String::new(),
                readings: vec![
                    reading(1),
                    Reading {
                        value_milli: 1,
                        unit: " ".into(),
                    },
                ],
            },
        );
        assert_eq!(result, Err(ProbeError::EmptyUnit { index: 1 }));
    }

    #[test]
    fn a_version_one_reading_is_upcast_to_thousandths_with_a_unit() {
        let v1 = serde_json::json!({"ReadingRecorded": {"n": 7, "value": 3, "label": "old"}});
        let upcast = upcast_reading_recorded_v1(v1);
        let event: ProbeEvent = serde_json::from_value(upcast).expect("2.0 shape");
        assert_eq!(
            event,
            ProbeEvent::ReadingRecorded {
                reading_no: 7,
                value_milli: 3000,
                unit: "count".into(),
                label: "old".into(),
            }
        );
    }
}
