"""Outputs: tables (CSV, Markdown), plots (PNG), TensorBoard scalars and progress bars."""
