"""The sentiment agent: reads the headlines, embedded with all-MiniLM-L6-v2 through onnxruntime.

The text encoder always runs (tokenizers + onnxruntime, no torch). When the manifest has the
trained `sentiment` ONNX model, it decides on the headlines' embeddings one slot per headline in
payload order (`models.data.features.text_features`, at most HEADLINE_SLOTS headlines) and its
embedding is published. Otherwise — or, with the model, for a payload of more headlines than it has
slots — a deterministic prototype rule decides on the mean headline embedding: cosine similarity to
a few anchor headlines per class, embedded once at start-up. Without a model the rule's input, the
unit mean MiniLM embedding, is published, in MiniLM's own embedding space (its model id); beside a
model the rule publishes a decision only (its vector is not in the model's space).
"""

from __future__ import annotations

import logging

import numpy as np

from agents.base import (
    Action,
    Agent,
    AgentIdentity,
    AgentOutput,
    Embedding,
    Encoding,
    Modality,
    Role,
    TaskInput,
    TextEncoder,
    abstained,
    decided,
    softmax,
)
from agents.onnx import AgentModel

log = logging.getLogger(__name__)

ANCHORS: dict[Action, tuple[str, ...]] = {
    Action.SELL: ("Prices plunge as investors flee after the hack", "Regulators sue the exchange; tokens slide",
             "Heavy losses and liquidations as the market crashes", "Project halts withdrawals amid insolvency fears"),
    Action.HOLD: ("Prices little changed in a quiet session", "Traders wait for more data before moving",
             "The token trades sideways within its range", "No major news; volumes stay flat"),
    Action.BUY: ("Prices surge as institutional demand soars", "Record inflows push the token to new highs",
            "Analysts upgrade the outlook after strong growth", "Major partnership announced; rally accelerates"),
}
TEMPERATURE = 25.0  # cosine similarities are close together; sharpen them into probabilities



class SentimentAgent(Agent):
    def __init__(self, encoder: TextEncoder, encoder_model_id: bytes, encoder_name: str,
                 model: AgentModel | None = None, encoder_encoding: Encoding = Encoding.F32) -> None:
        self.encoder = encoder
        self.model = model
        self._prototypes = self._embed_anchors()  # (3, d)
        dim = self._prototypes.shape[1]
        if model is not None:
            self.identity = AgentIdentity(Role.SENTIMENT, Modality.TEXT, model.model_id, model.dim, model.encoding,
                                          model.name, f"{model.name} on {encoder_name}", "onnx")
        else:
            self.identity = AgentIdentity(Role.SENTIMENT, Modality.TEXT, encoder_model_id, dim, encoder_encoding,
                                          encoder_name, f"prototype-rule on {encoder_name}", "numpy")

    def _embed_anchors(self) -> np.ndarray:
        rows = []
        for action in Action:  # rows in action order, as the probabilities are
            v = self.encoder.embed(list(ANCHORS[action])).mean(axis=0)  # (d,)
            rows.append(v / (np.linalg.norm(v) + 1e-12))
        return np.stack(rows).astype(np.float32)  # (3, d)

    def text_embedding(self, headlines: list[str]) -> np.ndarray:
        """Mean of the headlines' normalised embeddings (the prototype rule's input), (d,)."""
        from models.data.features import mean_text_embedding

        return mean_text_embedding(list(headlines), self.encoder)

    def model_reads(self, headlines: list[str]) -> bool:
        """Whether the trained model can read these headlines (1 to HEADLINE_SLOTS of them)."""
        from models.data.features import headlines_fit

        return headlines_fit(headlines)

    def features(self, headlines: list[str]) -> np.ndarray:
        """The trained model's input: one embedding slot per headline, (SENTIMENT_DIM,)."""
        from models.data.features import text_features

        return text_features(list(headlines), self.encoder)

    def run(self, task: TaskInput) -> AgentOutput:
        p = task.payload
        if not p.headlines:
            return abstained("sentiment modality missing")
        if self.model is not None and self.model_reads(p.headlines):
            out = self.model(self.features(p.headlines))
            emb = Embedding(out["embedding"][0].astype(np.float32), self.model.model_id, self.model.encoding)
            return decided(out["probs"][0], emb)
        mean = self.text_embedding(p.headlines)  # (d,)
        unit = mean / (np.linalg.norm(mean) + 1e-12)
        probs = softmax(TEMPERATURE * (self._prototypes @ unit))  # (3,)
        if self.model is not None:
            return decided(probs, note=f"{len(p.headlines)} headlines, more than the model's slots: prototype rule")
        emb = Embedding(unit, self.identity.model_id, self.identity.encoding)
        return decided(probs, emb)
