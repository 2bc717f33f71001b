"""carbonscope's Grafana dashboards as code (grafana-foundation-sdk): `make dashboards` writes
them to grafana/dashboards/*.json; tests/test_dashboards.py fails when the two differ."""
