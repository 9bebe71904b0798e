"""Reusable pieces of the stacks: each is parameterised (by region, concern, table) and used many times."""
