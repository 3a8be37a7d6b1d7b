"""The published versions' text pipelines: how fast a post's text becomes its text columns.

For each model's latest version in the repository (`text_pipeline/`, as a server would load it):
- the whole catalogue, no embedding cache (test: MiniLM encodes every text, as a cold build);
- one new post at a time and batches of 100 (texts no cache holds), p50 and p99, through one
  loaded pipeline as a server would keep it;
and, where sentence-transformers is installed, the Python pipeline the encoder replaces on the
same texts: its time, and the cosine between its embeddings and the ONNX encoder's; and the
encoder alone at each precision (`build.encoder_precision`): its time on the catalogue, and its
vectors' cosine to float32's.

    .venv/bin/python benchmarks/text_pipeline.py --world data/world --repository model_repository

Writes benchmarks/results/text_pipeline{-quick}.{json,md,png}.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from end_to_end import RESULTS

from feedrank.features.embeddings import EmbeddingCache
from feedrank.features.text_encoder import load_encoder
from feedrank.features.text_pipelines import TextPipeline, load_pipeline
from feedrank.world.layout import WorldLayout

from record import machine, save

SINGLE, BATCH = 200, 100


def latest_pipeline(repository: Path, model: str) -> TextPipeline:
    versions = sorted(int(p.name) for p in (repository / model).iterdir() if p.name.isdigit())
    return load_pipeline(repository / model / str(versions[-1]) / "text_pipeline")


def timed(run, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = run(*args)
    return time.perf_counter() - start, value


def latencies_ms(pipeline: TextPipeline, groups: list[list[str]]) -> dict:
    seconds = [timed(pipeline.columns, group)[0] for group in groups]
    return {
        "p50_ms": float(np.percentile(seconds, 50) * 1e3),
        "p99_ms": float(np.percentile(seconds, 99) * 1e3),
        "runs": len(seconds),
    }


def fresh(texts: list[str], n: int, rng, tag: str) -> list[str]:
    """n catalogue texts at random, each made new with a numbered line: no cache can answer."""
    return [f"{texts[i]}\n{tag} {k}" for k, i in enumerate(rng.choice(len(texts), n))]


def measure_model(repository: Path, model: str, texts: list[str], rng) -> dict:
    pipeline = latest_pipeline(repository, model)
    pipeline.columns(fresh(texts, BATCH, rng, "warm-up"))  # onnxruntime's first runs allocate
    catalogue_s, columns = timed(latest_pipeline(repository, model).columns, texts)
    single = latencies_ms(pipeline, [[t] for t in fresh(texts, SINGLE, rng, "one")])
    batches = fresh(texts, 10 * BATCH, rng, "batch")
    many = latencies_ms(pipeline, [batches[i : i + BATCH] for i in range(0, len(batches), BATCH)])
    return {
        "columns": len(columns.columns),
        "catalogue_s": catalogue_s,
        "texts_per_s": len(texts) / catalogue_s,
        "one_post": single,
        f"batch_of_{BATCH}": many,
    }


def reference(encoder: EmbeddingCache, texts: list[str]) -> dict | None:
    """sentence-transformers (PyTorch) on the same texts, against the published ONNX encoder."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return None
    from sentence_transformers import SentenceTransformer

    from feedrank.features.text_encoder import model_folder

    model = SentenceTransformer(str(model_folder()), device="cpu")
    model.max_seq_length = encoder.max_tokens
    seconds, vectors = timed(lambda: model.encode(texts, batch_size=64, normalize_embeddings=True))
    onnx = encoder.encode(texts)
    cosines = (onnx * np.asarray(vectors)).sum(axis=1)
    return {
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "cosine_min": float(cosines.min()),
        "cosine_mean": float(cosines.mean()),
        "max_abs_diff": float(np.abs(onnx - vectors).max()),
    }


def precisions(texts: list[str], max_tokens: int) -> dict:
    """The encoder alone at float32 and int8 on the same texts, from freshly written files."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        vectors = {}
        for precision in ("float32", "int8"):
            encoder = load_encoder(Path(folder), max_tokens, precision)
            encoder.encode(texts[:BATCH])  # first runs allocate
            seconds, vectors[precision] = timed(encoder.encode, texts)
            cosines = (vectors[precision] * vectors["float32"]).sum(axis=1)
            out[precision] = {
                "seconds": seconds,
                "texts_per_s": len(texts) / seconds,
                "cosine_to_float32_min": float(cosines.min()),
                "cosine_to_float32_mean": float(cosines.mean()),
            }
    return out


def markdown(r: dict) -> str:
    lines = [
        f"# Text pipelines: {r['texts']:,} catalogue texts\n",
        f"{r['machine']['cores']} cores ({r['machine']['cpu']}), commit "
        f"{r['machine']['git_commit'][:10]}\n",
        "| model | columns | whole catalogue, no cache | texts/s | one post p50 / p99 ms "
        f"| {BATCH} posts p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for model, m in r["models"].items():
        one, many = m["one_post"], m[f"batch_of_{BATCH}"]
        lines.append(
            f"| {model} | {m['columns']} | {m['catalogue_s']:.1f} s | {m['texts_per_s']:.0f} "
            f"| {one['p50_ms']:.1f} / {one['p99_ms']:.1f} | {many['p50_ms']:.0f} / "
            f"{many['p99_ms']:.0f} |"
        )
    ref = r["reference"]
    if ref:
        lines += [
            "",
            f"sentence-transformers (PyTorch) on the same texts: {ref['seconds']:.1f} s "
            f"({ref['texts_per_s']:.0f} texts/s); cosine to the ONNX encoder min "
            f"{ref['cosine_min']:.7f}, mean {ref['cosine_mean']:.7f}, max |Δ| "
            f"{ref['max_abs_diff']:.1e}",
        ]
    if r["precisions"]:
        lines += [
            "",
            "| encoder precision | whole catalogue | texts/s | cosine to float32 min / mean |",
            "|---|---|---|---|",
        ]
        for precision, e in r["precisions"].items():
            lines.append(
                f"| {precision} | {e['seconds']:.1f} s | {e['texts_per_s']:.0f} "
                f"| {e['cosine_to_float32_min']:.4f} / {e['cosine_to_float32_mean']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{m}\n(ONNX)" for m in r["models"]]
    seconds = [m["catalogue_s"] for m in r["models"].values()]
    if r["reference"]:
        names.append("MiniLM only\n(PyTorch)")
        seconds.append(r["reference"]["seconds"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(names, seconds, color=["#4c72b0", "#55a868", "#c44e52"][: len(names)])
    ax.set_ylabel("seconds for the whole catalogue")
    ax.set_title(f"Text columns of {r['texts']:,} posts, no cache")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=Path("data/world"))
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--quick", action="store_true", help="60 texts, no reference")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    texts = pl.read_parquet(WorldLayout(args.world).posts)["text"].fill_null("").to_list()
    texts = texts[:60] if args.quick else texts
    rng = np.random.default_rng(0)
    encoder = latest_pipeline(args.repository, "test").encoder
    assert encoder is not None  # the test model's pipeline holds the sentence encoder
    result = {
        "machine": machine(),
        "texts": len(texts),
        "models": {m: measure_model(args.repository, m, texts, rng) for m in ("control", "test")},
        "reference": None if args.quick else reference(encoder, texts),
        "precisions": precisions(texts, encoder.max_tokens),
    }
    save(
        result, args.out, "text_pipeline" + ("-quick" if args.quick else ""), markdown(result), plot
    )


if __name__ == "__main__":
    main()
