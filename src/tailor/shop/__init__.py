"""The demo shop `tailor serve --demo-shop` serves at /shop/: the home's own catalogue with
its live recommendations, reasons and checkout offers, tracked by tailor.js."""
