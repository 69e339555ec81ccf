"""The four models (homepage, cross-sell, churn, checkout), their data frames, metrics and backtest."""
