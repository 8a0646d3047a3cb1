"""Child process that runs llama.cpp's OpenAI-compatible server (xllamacpp) for one GGUF file.

Started by :class:`jisik.models.llm.local.LocalLlamaServer` (as a script, by path: it needs only the
standard library and xllamacpp, not jisik); not meant to be run by hand.
It prints one JSON line on stdout, ``{"address": "http://127.0.0.1:PORT"}`` once the model is
loaded and the server listens (or ``{"error": ...}``), then serves until its stdin closes: the
parent holds the other end, so the server also stops when the parent process dies.
The API key comes from the environment (``JISIK_LLAMA_API_KEY``), never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _say(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="serve.py")
    ap.add_argument("--model", required=True)
    ap.add_argument("--alias", default="local")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--verbosity", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        import xllamacpp as xlc
    except ImportError as exc:
        _say({"error": f"xllamacpp is not installed: {exc}", "kind": "not_installed"})
        return 3
    params = xlc.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.hostnames = [args.host]
    params.port = 0  # the server picks a free port and reports it
    params.warmup = False  # the first request warms up; halves the start time on 2 cores
    params.fit_params = False
    params.verbosity = args.verbosity  # 2 = warnings and errors: never the prompts
    key = os.environ.get("JISIK_LLAMA_API_KEY")
    if key:
        params.api_keys = [key]
    try:
        server = xlc.Server(params)
    except Exception as exc:  # llama.cpp reports a bad file or too little memory as RuntimeError
        _say({"error": f"{type(exc).__name__}: {exc}", "kind": "load_failed"})
        return 4
    _say({"address": server.listening_address})
    try:
        while sys.stdin.buffer.read(1 << 12):
            pass  # the parent never writes; EOF means it closed the pipe or died
    except KeyboardInterrupt:
        pass
    del server  # stops the HTTP server and frees the model
    return 0


if __name__ == "__main__":
    sys.exit(main())
