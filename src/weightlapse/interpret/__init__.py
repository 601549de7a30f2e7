"""What a network responds to: layer activations (and, later, attribution maps)."""
