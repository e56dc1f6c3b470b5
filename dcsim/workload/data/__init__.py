"""Shipped workload inputs (derived from public Azure traces; see SOURCES.md)."""
