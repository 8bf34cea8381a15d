"""Serving: the HTTP API against in-process prediction, under load, and the ONNX file against torch.

A real `conceptlab serve` process on loopback (lite, 8 labelled photos); photos of 640x480. Figures:
one request at a time (median and p95) against in-process ``predict`` on the same photos; 8 concurrent
clients sending 400 one-photo requests, against the bare embedder's batched throughput (batch 32,
decoded images); the exported ONNX file under onnxruntime against the same model in torch.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .common import DATA, Row, fresh_home, make_photos, met

CONSOLE_SCRIPT = str(Path(sys.executable).parent / "conceptlab")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def bench_serving(rows: list[Row], requests: int = 400, clients: int = 8) -> None:
    import httpx
    import onnxruntime
    from PIL import Image

    from core.embedding.lite import LiteEmbedder
    from core.exchange.onnx_export import export_onnx
    from core.ingestion import ingest
    from core.inputs import ReadConfig, decode_image, read_inputs, read_uploads
    from core.learning import load_model, train
    from core.prediction import predict
    from core.storage.projects import create_project

    home = fresh_home()
    photos = make_photos(64, DATA / "photos-vga", megapixels=(0.3, 0.3), seed=11)
    paths = sorted(photos.glob("*.jpg"))
    labelled = DATA / "photos-vga-labelled"
    shutil.rmtree(labelled, ignore_errors=True)
    for i, path in enumerate(paths[:8]):
        (labelled / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, labelled / f"c{i % 2}" / path.name)
    project = create_project("serve", "lite")
    ingest(project, read_inputs([labelled], ReadConfig(labels_from_folders=True)))
    train(project)
    queries = [(p.name, p.read_bytes()) for p in paths[8:40]]

    def in_process(item) -> None:
        list(predict(project, read_uploads([item])))

    in_process(queries[0])
    local = []
    for item in queries:
        start = time.perf_counter()
        in_process(item)
        local.append(time.perf_counter() - start)

    port = _free_port()
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([CONSOLE_SCRIPT, "serve", "--port", str(port), "--requests-per-minute", "100000"], env=env)
    url = f"http://127.0.0.1:{port}/v1/projects/serve/predict"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/projects", timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("conceptlab serve did not start") from None
                time.sleep(0.2)
        with httpx.Client(timeout=60) as client:
            client.post(url, files=[("files", queries[0])])  # loads the image model in the server
            remote = []
            for item in queries:
                start = time.perf_counter()
                answer = client.post(url, files=[("files", item)])
                remote.append(time.perf_counter() - start)
                assert answer.status_code == 200, answer.text

        def client_session(c: int) -> list[int]:
            # A client as programs are written: one connection kept alive, its share of the requests in turn.
            with httpx.Client(timeout=120) as client:
                return [client.post(url, files=[("files", queries[i % len(queries)])]).status_code for i in range(c, requests, clients)]

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            codes = [code for session in pool.map(client_session, range(clients)) for code in session]
        loaded = requests / (time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait(timeout=10)

    embedder = project.embedder()
    images = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in queries]
    embedder.embed_images(images[:32])
    start = time.perf_counter()
    for _ in range(3):
        embedder.embed_images(images[:32])
    bare = 3 * 32 / (time.perf_counter() - start)
    # The same, from the JPEG bytes a request carries: decoding is work the server cannot skip.
    start = time.perf_counter()
    for _ in range(3):
        embedder.embed_images([decode_image(data, name, min_side=embedder.image_size) for name, data in queries[:32]])
    bare_from_bytes = 3 * 32 / (time.perf_counter() - start)

    ratio = statistics.median(remote) / statistics.median(local)
    rows.append(
        Row(
            "serving: one request at a time, median",
            f"{statistics.median(remote) * 1000:.0f} ms",
            f"{statistics.median(local) * 1000:.0f} ms",
            f"{ratio:.2f}x",
            "<= 1.2x in-process",
            met(ratio <= 1.2),
        )
    )
    rows.append(Row("  p95", f"{_p95(remote) * 1000:.0f} ms", f"{_p95(local) * 1000:.0f} ms", f"{_p95(remote) / _p95(local):.2f}x"))
    ok = sum(code == 200 for code in codes)
    rows.append(
        Row(
            f"  {clients} clients, {requests} requests ({ok} answered 200)",
            f"{loaded:.1f} req/s",
            f"{bare:.1f} img/s",
            f"{loaded / bare:.2f}x",
            ">= 0.8x bare batched",
            met(loaded >= 0.8 * bare),
        )
    )
    rows.append(
        Row(
            "    against the bare embedder from the JPEG bytes",
            f"{loaded:.1f} req/s",
            f"{bare_from_bytes:.1f} img/s",
            f"{loaded / bare_from_bytes:.2f}x",
            ">= 0.8x",
            met(loaded >= 0.8 * bare_from_bytes),
        )
    )

    # The ONNX file against the very same model run by torch (lite embeds under onnxruntime by default).
    os.environ["CONCEPTLAB_RUNTIME"] = "torch"
    try:
        in_torch = LiteEmbedder()
        in_torch.load_image_runner()
    finally:
        del os.environ["CONCEPTLAB_RUNTIME"]
    onnx_path = export_onnx(project, home / "serve.onnx")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    heads = load_model(project).spaces[embedder.image_space]
    for batch in (1, 32):
        tensor = embedder._batch_transform(images[:batch])
        feeds = {"image": tensor.numpy()}
        session.run(None, feeds)
        in_torch.embed_images(images[:batch])
        runs = max(64 // batch, 2)
        start = time.perf_counter()
        for _ in range(runs):
            session.run(None, feeds)
        onnx_rate = runs * batch / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(runs):
            heads.score(in_torch.embed_images(images[:batch]))
        torch_rate = runs * batch / (time.perf_counter() - start)
        rows.append(
            Row(
                f"  ONNX file, onnxruntime, batch {batch}",
                f"{onnx_rate:.1f} img/s",
                f"{torch_rate:.1f} img/s (torch)",
                f"{onnx_rate / torch_rate:.2f}x",
            )
        )
    print(json.dumps({"local_ms": [round(t * 1000, 1) for t in local], "remote_ms": [round(t * 1000, 1) for t in remote]}), file=sys.stderr)
