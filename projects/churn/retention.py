"""Entry point of `mlflow run projects/churn -e retention`: the weekly retention list.

Reads the churn champion from the registry and the warehouse; writes
<home>/reports/retention/retention_<date>.csv (customer_id, churn_probability,
top_features; no PII) and latest.csv. Schedule it weekly.
"""

import sys

from tailor.training.entry import retention_main

if __name__ == "__main__":
    sys.exit(retention_main(sys.argv[1:]))
