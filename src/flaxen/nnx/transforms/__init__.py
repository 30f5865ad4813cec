"""Stateful transforms: JAX transforms that accept graph objects and mutate them in place."""
