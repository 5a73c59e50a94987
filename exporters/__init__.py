"""lcore.exporters: what reads the master's merged state — Prometheus /metrics, the status page,
CSV / JSON / HTML reports and the Grafana dashboard. Imports core; core never imports it."""
