"""Small reference architectures shipped with Arborist (the demo model lives here)."""
