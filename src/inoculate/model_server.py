"""A model server: one base model loaded once, answering the generation jobs of every cell that
uses it, one request at a time (inoculate.model_client starts it and talks to it). With
`generation.backend: vllm` it keeps one vLLM engine and serves each cell's adapter as a LoRA
request; a job that needs the GPU for something else asks it to exit first ("release").

Each request is answered as `inoculate.generate.sample_cell` would in the job's own process:
the same model built the same way (an adapter is merged into a copy of the base weights, which
is what loading base and adapter from disk gives), the same thread count, the same seed, so the
answers are the same to the byte (tests/test_model_server.py). A server with no request for
its idle time exits; so does one whose socket is taken from it.

    python -m inoculate.model_server SOCKET SPEC_JSON IDLE_SECONDS
"""

from __future__ import annotations

import copy
import fcntl
import json
import logging
import os
import socket
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from inoculate.model_client import SERVING, holds_gpu

log = logging.getLogger("inoculate.model_server")


class ModelServer:
    """The base model, loaded on the first request, and every request answered from it."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.base = self.tokenizer = self.engine = None
        self.loads = self.served = 0

    def answer(self, request: dict, tell=None) -> dict:
        """The request's records answered (or its file judged); `tell(message)` reports
        progress to the job."""
        if "judge_file" in request:
            written = self._judge_file(request)
            self.served += 1
            return {"written": written, "loads": self.loads, "served": self.served}
        if "train" in request:
            meta = self._train(request["train"], tell)
            self.served += 1
            return {"meta": meta, "loads": self.loads, "served": self.served}
        if self.spec.get("backend") == "vllm":
            records = self._answer_vllm(request)
        else:
            records = self._answer_transformers(request, tell)
        self.served += 1
        log.info("answered %d records with adapter %s", len(records), request["adapter"])
        return {"records": records, "loads": self.loads, "served": self.served}

    def _judge_file(self, request: dict) -> int:
        """`judge_file` of the request with a judge of its own settings (its cache, its counts
        of calls) on the model this server loaded once."""
        from inoculate.judges import make_judge  # noqa: PLC0415 - the server's one heavy import
        from inoculate.judging import judge_file  # noqa: PLC0415 - beside the one above

        args = dict(request["judge_file"])
        judge = make_judge(request["judge"], args.get("spend_file"))
        if self.base is None:
            self.base = judge.load()
            self.loads += 1
            log.info("loaded the judge %s", self.spec["model"])
        judge.use_model(*self.base)
        paths = ("generations", "out_path", "usage_path", "spend_file")
        args.update({k: Path(args[k]) for k in paths if args.get(k) is not None})
        written = judge_file(judge_config=request["judge"], judge=judge, **args)
        log.info("judged %d answers of %s", written, args["generations"])
        return written

    def _train(self, args: dict, tell) -> dict:
        """`train_lora` as the job would run it, in this warm process: each step's row, progress
        line and log record go to the job, and a job that went away stops the training (a
        send to it fails) before anything is written."""
        from inoculate.jobs import FORMAT, working_for  # noqa: PLC0415 - beside the one below
        from inoculate.train import TrainSettings, train_lora  # noqa: PLC0415 - the server's one heavy import

        relay = _RelayHandler(tell)
        relay.setFormatter(logging.Formatter(FORMAT))
        root = logging.getLogger()
        root.addHandler(relay)
        try:
            with working_for(args["label"], lambda line: tell({"line": line})):
                return train_lora(
                    args["base_model"],
                    Path(args["data"]),
                    Path(args["out_dir"]),
                    TrainSettings.from_dict(args["training"]),
                    seed=args["seed"],
                    device="cpu",
                    dtype=args["dtype"],
                    quantization=args["quantization"],
                    on_step=lambda row: tell({"row": row}),
                )
        finally:
            root.removeHandler(relay)

    def _answer_vllm(self, request: dict) -> list[dict]:
        from inoculate.accelerated import VllmEngine  # noqa: PLC0415 - the server's one heavy import
        from inoculate.sampling_plan import GenerationSettings  # noqa: PLC0415 - beside the one above

        s = self.spec
        if self.engine is None:
            self.engine = VllmEngine(s["base_model"], s["dtype"], s["max_lora_rank"], s["quantization"])
            self.loads += 1
            log.info("vLLM engine for %s ready", s["base_model"])
        adapter = Path(request["adapter"]) if request["adapter"] is not None else None
        settings = GenerationSettings(**request["settings"])
        return self.engine.sample(adapter, request["records"], settings, request["seed"])

    def _answer_transformers(self, request: dict, tell) -> list[dict]:
        from inoculate.generate import load_model, sample  # noqa: PLC0415 - the server's one heavy import
        from inoculate.jobs import resolve_device  # noqa: PLC0415 - imports torch for `auto`
        from inoculate.sampling_plan import GenerationSettings  # noqa: PLC0415 - beside the two above

        s = self.spec
        device = resolve_device(s["device"])
        if self.base is None:
            self.base, self.tokenizer = load_model(
                s["base_model"], None, device, s["dtype"], s["quantization"]
            )
            self.loads += 1
            log.info("loaded %s on %s", s["base_model"], device)
        model = self.base
        if request["adapter"] is not None:
            from peft import PeftModel  # noqa: PLC0415 - optional heavy library (the [models] extra)

            model = PeftModel.from_pretrained(copy.deepcopy(self.base), request["adapter"]).merge_and_unload()
            model.eval()
        settings = GenerationSettings(**request["settings"])
        on_answers = (lambda n: tell({"answered": n})) if tell is not None else None
        return sample(model, self.tokenizer, request["records"], settings, request["seed"], on_answers)


class _RelayHandler(logging.Handler):
    """Log records of work done for a job, sent to that job for its own log."""

    def __init__(self, tell) -> None:
        super().__init__(logging.INFO)
        self.tell = tell

    def emit(self, record: logging.LogRecord) -> None:
        self.tell({"log": self.format(record)})  # a job that went away: the send raises, work stops


def serve(address: Path, spec: dict, idle_seconds: float) -> None:
    """Listen on `address` and answer requests until idle for `idle_seconds`."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(address))
    os.chmod(address, 0o600)
    listener.listen(16)
    listener.settimeout(idle_seconds)
    os.environ[SERVING] = address.stem
    server = ModelServer(spec)
    lock_path = address.with_suffix(".lock")
    try:
        while True:
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                with lock_path.open("w") as lock:  # no client is connecting while the server decides
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    listener.setblocking(False)
                    try:
                        sock, _ = listener.accept()  # one that connected just in time is served
                    except BlockingIOError:
                        address.unlink(missing_ok=True)
                        log.info("idle for %.0f s after %d requests: exiting", idle_seconds, server.served)
                        return
                    listener.settimeout(idle_seconds)
            sock.setblocking(True)
            with Connection(sock.detach()) as connection:
                try:
                    request = connection.recv()
                except (EOFError, OSError):
                    continue
                if "release" in request:  # a job needs the GPU this server holds: give it back
                    connection.send({"released": holds_gpu(spec), "pid": os.getpid()})
                    if holds_gpu(spec):
                        address.unlink(missing_ok=True)
                        log.info("released the GPU after %d requests: exiting", server.served)
                        return
                    continue
                try:
                    reply = server.answer(request, connection.send)
                except Exception as e:  # the job gets the error and fails; the server stays
                    log.exception("request failed")
                    reply = {"error": f"{type(e).__name__}: {e}"}
                try:
                    connection.send(reply)
                except OSError:
                    log.warning("the job went away before its answers were sent")
    finally:
        listener.close()


def main(argv: list[str]) -> int:
    address, spec, idle = Path(argv[0]), json.loads(argv[1]), float(argv[2])
    threads = str(spec.get("threads") or 1)
    os.environ["OMP_NUM_THREADS"] = threads  # as a job's process has it, before torch is imported
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch  # noqa: PLC0415 - after the thread count is set

    torch.set_num_threads(int(threads))
    serve(address, spec, idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
