"""The dependency-graph canvas: pure layout/hierarchy code plus Qt scene, items and view."""
