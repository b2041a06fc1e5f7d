"""`python -m cryptobot COMMAND`: the runtime's top-level commands (today: `doctor`)."""

from __future__ import annotations

import sys

COMMANDS = {"doctor": "check that this machine is ready to run the bot (python -m cryptobot doctor --help)"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"} or args[0] not in COMMANDS:
        print("usage: python -m cryptobot COMMAND [options]\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:<8} {text}")
        print("\nother entry points: python -m cryptobot.live, cryptobot.data, cryptobot.config, cryptobot.warmup")
        return 0 if not args or args[0] in {"-h", "--help"} else 2
    from cryptobot.doctor import main as doctor

    return doctor(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
