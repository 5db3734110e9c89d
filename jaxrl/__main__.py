"""The ``jaxrl`` command (``python -m jaxrl ...`` too, where pip's script directory is not on PATH)."""

import sys


def main() -> int:
    # `--distributed` must join the other processes before jaxrl.run is imported (gymnax computes at import time)
    from jaxrl.distributed import join_from_argv

    try:
        join_from_argv(sys.argv[1:])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from jaxrl.run.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
