"""`tailor schedule`: the platform's cadence (hourly, daily, weekly jobs), each job a `tailor`
command run as a subprocess under its own lock, and the same table written out for cron and
Kubernetes."""
