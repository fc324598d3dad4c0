//! Prometheus metrics served at `/metrics`.

use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The process's metrics registry and the gauges the server keeps current.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    ledger_position: IntGauge,
    read_model_lag: IntGaugeVec,
}

impl Metrics {
    /// Registers the gauges.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("dezky".into()), None)?;
        let ledger_position = IntGauge::new(
            "ledger_head_position",
            "Position of the last event committed to the ledger",
        )?;
        registry.register(Box::new(ledger_position.clone()))?;
        let read_model_lag = IntGaugeVec::new(
            Opts::new(
                "read_model_lag_events",
                "Events a read model still has to fold",
            ),
            &["read_model"],
        )?;
        registry.register(Box::new(read_model_lag.clone()))?;
        Ok(Self {
            registry,
            ledger_position,
            read_model_lag,
        })
    }

    /// The registry, for components that add their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records the ledger head.
    pub fn set_ledger_position(&self, position: u64) {
        self.ledger_position
            .set(i64::try_from(position).unwrap_or(i64::MAX));
    }

    /// Records how far a read model lags behind the ledger.
    pub fn set_read_model_lag(&self, read_model: &str, lag: u64) {
        self.read_model_lag
            .with_label_values(&[read_model])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
