//! Logging (tracing, pretty or JSON) and the process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

/// Installs the global subscriber once; later calls (tests build many apps) are no-ops.
pub fn init_logging(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if settings.format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// The global recorder: metrics are process-wide, like the index they describe.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0])
            .expect("static buckets are valid")
            .install_recorder()
            .expect("the Prometheus recorder is installed once")
    })
}
