//! The server's Prometheus metrics, all in the `sluice_` namespace, exported in the text format at
//! `/metrics`.

use engine_core::prefetch::PrefetchStats;
use prometheus::{
    Counter, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::sync::Mutex;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub prompt_tokens: IntCounter,
    pub prompt_tokens_reused: IntCounter,
    pub generated_tokens: IntCounter,
    pub ttft: Histogram,
    pub inter_token: Histogram,
    pub queue_wait: Histogram,
    pub batch_size: Histogram,
    pub queue_depth: IntGauge,
    pub slots_active: IntGauge,
    pub slots_total: IntGauge,
    pub kv_cells_used: IntGauge,
    pub kv_cells_total: IntGauge,
    pub ready: IntGauge,
    prefetch_hits: IntCounter,
    prefetch_sync_loads: IntCounter,
    prefetch_stall: Counter,
    /// The prefetch totals already added to the counters (the model reports running totals).
    prefetch_seen: Mutex<(u64, u64, f64)>,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(Opts::new(name, help).namespace("sluice")).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::with_opts(Opts::new(name, help).namespace("sluice")).expect("valid metric")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(
        HistogramOpts::new(name, help)
            .namespace("sluice")
            .buckets(buckets),
    )
    .expect("valid metric")
}

const SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

impl Metrics {
    pub fn new() -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "HTTP requests answered, by endpoint and status",
            )
            .namespace("sluice"),
            &["endpoint", "status"],
        )
        .expect("valid metric");
        let m = Self {
            registry: Registry::new(),
            requests,
            prompt_tokens: counter(
                "prompt_tokens_total",
                "Prompt tokens of generation requests",
            ),
            prompt_tokens_reused: counter(
                "prompt_tokens_reused_total",
                "Prompt tokens whose keys and values came from a slot's cache",
            ),
            generated_tokens: counter("generated_tokens_total", "Tokens generated"),
            ttft: histogram(
                "time_to_first_token_seconds",
                "From a request's arrival (queue included) to its first token",
                SECONDS.to_vec(),
            ),
            inter_token: histogram(
                "inter_token_latency_seconds",
                "Between consecutive tokens of one reply",
                SECONDS.to_vec(),
            ),
            queue_wait: histogram(
                "queue_wait_seconds",
                "From a request's arrival to a slot taking it",
                SECONDS.to_vec(),
            ),
            batch_size: histogram(
                "decode_batch_size",
                "Replies stepped together in one batched forward pass",
                vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0],
            ),
            queue_depth: gauge("queue_depth", "Requests waiting for a slot"),
            slots_active: gauge("slots_active", "Slots generating a reply"),
            slots_total: gauge("slots_total", "Slots (--parallel)"),
            kv_cells_used: gauge("kv_cells_used", "KV cache positions filled, over all slots"),
            kv_cells_total: gauge("kv_cells_total", "KV cache positions, over all slots"),
            ready: gauge(
                "ready",
                "1 once the model is loaded and requests are served",
            ),
            prefetch_hits: counter(
                "prefetch_hits_total",
                "Streamed layers that were on the device when needed",
            ),
            prefetch_sync_loads: counter(
                "prefetch_sync_loads_total",
                "Streamed layers loaded synchronously when needed",
            ),
            prefetch_stall: Counter::with_opts(
                Opts::new(
                    "prefetch_stall_seconds_total",
                    "Time forward passes waited for streamed layers",
                )
                .namespace("sluice"),
            )
            .expect("valid metric"),
            prefetch_seen: Mutex::new((0, 0, 0.0)),
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.requests.clone()),
            Box::new(m.prompt_tokens.clone()),
            Box::new(m.prompt_tokens_reused.clone()),
            Box::new(m.generated_tokens.clone()),
            Box::new(m.ttft.clone()),
            Box::new(m.inter_token.clone()),
            Box::new(m.queue_wait.clone()),
            Box::new(m.batch_size.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.slots_active.clone()),
            Box::new(m.slots_total.clone()),
            Box::new(m.kv_cells_used.clone()),
            Box::new(m.kv_cells_total.clone()),
            Box::new(m.ready.clone()),
            Box::new(m.prefetch_hits.clone()),
            Box::new(m.prefetch_sync_loads.clone()),
            Box::new(m.prefetch_stall.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// Brings the prefetch counters up to the model's running totals.
    pub fn observe_prefetch(&self, stats: &PrefetchStats) {
        let Ok(mut seen) = self.prefetch_seen.lock() else {
            return;
        };
        let stall = stats.stall_time.as_secs_f64();
        self.prefetch_hits.inc_by(stats.hits.saturating_sub(seen.0));
        self.prefetch_sync_loads
            .inc_by(stats.sync_loads.saturating_sub(seen.1));
        if stall > seen.2 {
            self.prefetch_stall.inc_by(stall - seen.2);
        }
        *seen = (
            stats.hits.max(seen.0),
            stats.sync_loads.max(seen.1),
            stall.max(seen.2),
        );
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding only fails on a broken metric family, which `new` never registers.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
