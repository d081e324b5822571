"""Run a sentence-transformers model with its transformer in ONNX Runtime.

Only the transformer (the expensive part) runs in ONNX Runtime. Tokenisation and every module after
the transformer (pooling as its 1_Pooling config says, dense layers, normalisation) are the loaded
model's own sentence-transformers modules, so the vectors match the torch backend's by construction
except for the transformer's arithmetic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from core.errors import WorkbenchError

# The inputs a text transformer export may take, in the order they are fed.
INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
# Modules that may follow the transformer: they only see token embeddings and the attention mask.
TAIL_MODULES = frozenset({"Pooling", "Dense", "Normalize", "LayerNorm", "Dropout"})
SESSION_ROWS = 16
"""Most texts one ONNX Runtime call takes, whatever the batch size. Its memory arena keeps the
largest call's activations: with 256-token texts a 64-row call held the process at 1.9 GB, 16 rows
at 1.0 GB, at the same speed on two cores (bench/RESULTS.md)."""


def check_pipeline(model: object) -> None:
    """Refuse models whose pipeline the ONNX backends cannot split after the transformer.

    Raises:
        WorkbenchError: the first module is no Hugging Face transformer, or a later one needs more
            than the token embeddings (e.g. weighted layer pooling).
    """
    modules = list(model.children())
    first = modules[0] if modules else None
    if first is None or getattr(first, "auto_model", None) is None:
        raise WorkbenchError(
            f"the ONNX backends need a model that starts with a Hugging Face transformer, "
            f"not {type(first).__name__}"
        )
    odd = [type(m).__name__ for m in modules[1:] if type(m).__name__ not in TAIL_MODULES]
    if odd:
        raise WorkbenchError(
            f"the ONNX backends support {', '.join(sorted(TAIL_MODULES))} after the transformer, "
            f"not {', '.join(odd)}"
        )


class OnnxEncoder:
    """Encode texts with an exported transformer and the model's own pooling modules.

    Args:
        model: the loaded ``SentenceTransformer`` the export was made from.
        path: the ONNX file (fp32 or int8).
        threads: intra-op threads (default: as many as torch uses).
    """

    def __init__(self, model: object, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.model = model
        modules = list(model.children())
        self.output_key = getattr(modules[0], "module_output_name", "token_embeddings")
        self.tail = modules[1:]

    def __call__(self, texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        """Vectors for ``texts`` in order (as the model's last module leaves them)."""
        import torch

        texts = list(texts)
        # Longest first, as sentence-transformers does, so each batch pads to similar lengths.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        step = max(1, min(batch_size, SESSION_ROWS))
        out: np.ndarray | None = None
        with torch.inference_mode():
            for start in range(0, len(texts), step):
                rows = order[start:start + step]
                features = self.model.preprocess([texts[i] for i in rows], prompt=prompt or None)
                feed = {name: features[name].numpy() for name in self.input_names}
                hidden = self.session.run(None, feed)[0]
                features[self.output_key] = torch.from_numpy(hidden)
                for module in self.tail:
                    features = module(features)
                vectors = features["sentence_embedding"].float().numpy()
                if out is None:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[rows] = vectors
        if out is None:
            raise WorkbenchError("no texts to encode")
        return out
