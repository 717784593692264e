"""tpmon report: the reliability review as one HTML file (docs/REVIEW.md)."""
