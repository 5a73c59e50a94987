"""lcore.exporters: what reads the master's merged state — Prometheus /metrics, the status page,
CSV / JSON / HTML reports, the Grafana dashboard and the results store (``results_db`` the
tables, ``results_record`` what a run keeps, ``results_writer`` the master's writer,
``results_compare`` the statistics of ``lcore runs compare``, ``results_trend``, and
``web_history`` the page's History view; the page's server is ``web``, with ``web_documents``
what it shows, ``web_auth`` its logins, ``web_guard`` and ``web_limits`` its defences,
``web_form`` its start form and ``web_flask`` a locustfile's Flask app; ``otel_compat`` is
Locust's ``locust.opentelemetry``, on ``otlp``'s exporters). Imports core; core
never imports it."""
