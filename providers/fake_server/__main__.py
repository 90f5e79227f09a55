"""`python -m providers.fake_server --port 8199 [--host H] [--config file.yaml]`."""

from __future__ import annotations

import argparse

from providers.fake_server import run_fake_provider


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m providers.fake_server",
        description="Fake OpenAI/Anthropic/Gemini server for tests and load tests.",
    )
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", default=None, help="YAML or JSON FakeServerConfig")
    args = parser.parse_args(argv)
    run_fake_provider(args.port, args.host, args.config)


if __name__ == "__main__":
    main()
