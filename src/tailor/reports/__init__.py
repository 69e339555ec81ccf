"""The daily report and the dashboard: the shop's figures by day and by variant, the models
against their baselines, the server's latency and fallbacks, drift flags (`tailor report`,
`/dashboard`)."""
