"""Thin adapters from training frameworks onto weightlapse.record."""
