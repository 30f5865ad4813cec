"""``nn.map_variables``: show a module transformed variables (weight standardization, tying,
masking), and map its updates back.

>>> import jax, jax.numpy as jnp
>>> import flaxen.linen as nn
>>> def standardize(vs):
...   k = vs["params"]["kernel"]
...   return {"params": {**vs["params"], "kernel": (k - k.mean()) / k.std()}}
>>> StdDense = nn.map_variables(nn.Dense, "params", standardize, init=True)
>>> layer = StdDense(3, use_bias=False)
>>> variables = layer.init(jax.random.key(0), jnp.ones(2))
>>> y = layer.apply(variables, jnp.ones(2))
>>> round(float(jnp.linalg.norm(y)), 4) == round(float(jnp.linalg.norm(
...   standardize(variables)["params"]["kernel"].sum(0))), 4)
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flaxen.core.filters import CollectionFilter, DenyList
from flaxen.linen.transforms.lift import Lift, intersect, lift_target

__all__ = ["map_variables"]


def _identity(x: Any) -> Any:
  return x


def map_variables(target: Any, mapped_collections: CollectionFilter = True,
                  trans_in_fn: Callable[[Any], Any] = _identity,
                  trans_out_fn: Callable[[Any], Any] = _identity, init: bool = False,
                  mutable: bool = False, rngs: CollectionFilter = True,
                  variables: CollectionFilter = True,
                  methods: Sequence[str] | None = None) -> Any:
  """Run ``target`` on ``trans_in_fn(variables)`` of the ``mapped_collections``.

  Args:
    target: a Module class, or a function taking a bound Module first.
    mapped_collections: the collections transformed.
    trans_in_fn: ``{collection: tree} -> {collection: tree}``, what the target sees.
    trans_out_fn: maps updated variables back before they are stored.
    init: during ``init``, first run the target on the untransformed variables (creating
      them), then on the mapped ones; what init stores is ``trans_out_fn`` of the latter.
    mutable: whether the target may update the mapped collections outside init.
    rngs, variables: the rng streams and collections lifted.
    methods: the methods of a Module class to lift (default ``__call__``).

  Returns:
    The lifted Module subclass (named ``MapVariables{Class}``) or function.
  """
  others = False if mapped_collections is True else DenyList(mapped_collections)

  def transform(body: Callable[..., Any], static: Any, v: Any, r: Any, a: Any, k: Any) -> Any:
    creating = init and dict(static.flags).get("initializing")
    target = {col: trees[0] for col, trees in v[0].items()}
    if creating:
      # create the variables untransformed, then run (and store) the mapped view, as Flax
      _, first = body(v, r, a, k)
      target = trans_out_fn({**target, **{col: t[0] for col, t in first[0].items()}})
    shown = {col: (tree,) for col, tree in trans_in_fn(target).items()}
    y, mutated = body((shown, *v[1:]), r, a, k,
                      mutable=None if mutable or creating else intersect(static.mutable, others))
    if not mutated[0]:
      return y, mutated
    stored = trans_out_fn({col: trees[0] for col, trees in mutated[0].items()})
    return y, ({col: (tree,) for col, tree in stored.items()}, *mutated[1:])

  spec = Lift("map_variables", transform, variable_groups=(mapped_collections,),
              variables=variables, rngs=rngs,
              why="map_variables(..., mutable=False) keeps the mapped collections read-only")
  return lift_target(target, spec, methods, prefix="MapVariables")
