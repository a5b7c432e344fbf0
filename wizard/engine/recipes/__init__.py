"""Recipes: load and plan them, run their steps, keep their state, parse and compare results."""
