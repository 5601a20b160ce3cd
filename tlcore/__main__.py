"""Entry point for `python -m tlcore` and the `tlcore` command."""

from tlcore.cli import quick_exit


def run() -> None:
    quick_exit.arm()
    from tlcore.cli import main

    quick_exit.finish(main())


if __name__ == "__main__":
    run()
