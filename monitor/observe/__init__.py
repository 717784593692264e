"""What operations teams watch, generated from the catalog: Prometheus rules, Alertmanager routing,
Grafana dashboards. Small pure functions from a catalog to plain data; writing files is the CLI's."""
