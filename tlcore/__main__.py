"""Entry point for `python -m tlcore` and the `tlcore` command."""

from typing import NoReturn

from tlcore.cli import main, quick_exit


def run() -> NoReturn:
    """Run the command line and exit with its status, without TensorFlow's teardown (`cli.quick_exit`)."""
    quick_exit.arm()
    quick_exit.finish(main())


if __name__ == "__main__":
    run()
