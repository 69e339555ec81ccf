"""The four models (homepage, cross-sell, churn, checkout) and their metrics: filled by the models issue."""
