"""The HTTP event collector: request parsing, enrichment, validation of groups, the writer
thread, keys and origins, and the app (`tailor.events.collector.app`) that ties them up."""
