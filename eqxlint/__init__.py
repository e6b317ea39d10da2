"""eqxlint: find the mistakes that make Equinox training code crash or train the wrong thing.

Importing eqxlint does not import jax: the linter never needs it.
"""

__version__ = "0.1.0"
