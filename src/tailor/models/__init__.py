"""The four models (homepage, cross-sell, churn, checkout), their frames, metrics and backtest."""
