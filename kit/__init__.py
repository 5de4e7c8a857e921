"""kit: k-fold training from YAML recipes, a prediction store, and blending into Kaggle submissions."""

__version__ = "0.1.0"
