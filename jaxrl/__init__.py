"""jaxrl: a JAX-first functional training framework for multi-task, meta- and offline RL."""
__version__ = "0.1.0"
