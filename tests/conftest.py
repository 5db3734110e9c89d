import os

# Tests compile fresh programs (compile counts are asserted); the persistent cache stays off unless asked for.
os.environ.setdefault("JAXRL_COMPILATION_CACHE", "0")
