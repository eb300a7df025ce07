"""Text classifier of smart dispatch (智能派单): Chinese complaint text -> ranked categories with
calibrated confidence. Pure module: no database; arrays in, arrays out.

Pipeline (every step a well-kept library or a cited formula):

1. Normalisation: Unicode NFKC, lower case, digit runs -> ``0`` (addresses and times carry no
   category).
2. Discourse weighting: a text is cut into clauses; a clause that negates or dismisses
   (``不是…`` / ``…倒还好`` / ``已经处理好了``) or mentions something in passing (``顺便`` / ``另外``)
   weighs less, one that names the main problem (``主要`` / ``最严重`` / ``最要紧``) more, and a
   landmark phrase (``垃圾桶旁边的``) weighs little: the keyword trap. The text's vector is the
   weighted sum of its clause vectors, L2-normalised (a weighted bag of n-grams, as in
   Salton & Buckley, "Term-weighting approaches in automatic text retrieval", IP&M 24(5), 1988).
3. Features: character 1–3-gram TF-IDF (``sklearn.feature_extraction.text.TfidfVectorizer``,
   sublinear tf) and jieba word uni/bigram TF-IDF (jieba's bundled dictionary, nothing
   downloaded), stacked.
4. Model: multinomial logistic regression (``sklearn.linear_model.LogisticRegression``), trained on
   the corpus plus the catalogue's own words (category names, registration criteria, kinds) as
   weighted pseudo-documents (a prior).
5. Calibration: temperature scaling of the logits (Guo, Pleiss, Sun, Weinberger, "On Calibration
   of Modern Neural Networks", ICML 2017), one scalar fitted on a calibration fold by minimising
   the negative log-likelihood (``scipy.optimize.minimize_scalar``); the final model is refitted on
   everything and keeps that temperature.
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

CLAUSE = re.compile(r"[，。！？；;,.!?\n]+|(?=顺便|另外|此外|还有就是|除了|但最|但是最|不过最|最主要|主要是|更严重)")
NEGATE = re.compile(r"^(不是|并不是|并非|没有|没什么|也不是)|倒还好|还好|不要紧|不急|已经处理好|已经修好|已经解决|已处理|是好的|没问题|没毛病|倒没|倒是没|倒不")
PASSING = re.compile(r"^(顺便|另外|此外|还有就是|除了)")
MAIN = re.compile(r"主要|最严重|更严重|最要紧|关键是|重点是|最麻烦")
LANDMARK = re.compile(r"(?:^|在|靠近|就在|紧挨着?)([\u4e00-\u9fff]{2,5}?)(?:旁边|边上|附近|对面|底下|下面|后面|前面|隔壁|周边|一带)的?")
W_NEGATE, W_PASSING, W_MAIN, W_LANDMARK = 0.25, 0.5, 1.6, 0.3


def normalise(text: str) -> str:
    """NFKC, lower case, digit runs collapsed (UAX #15 normalisation form KC)."""
    t = unicodedata.normalize("NFKC", text or "").lower()
    return re.sub(r"\d+(\.\d+)?", "0", t)


def segments(text: str) -> list[tuple[str, float]]:
    """The weighted segments of one text (see the module docstring, step 2)."""
    t = normalise(text)
    out: list[tuple[str, float]] = []
    for raw in CLAUSE.split(t):
        c = raw.strip()
        if not c:
            continue
        w = 1.0
        if NEGATE.search(c):
            w = W_NEGATE
        elif PASSING.search(c):
            w = W_PASSING
        if MAIN.search(c):
            w = W_MAIN
        m = LANDMARK.search(c)
        if m and len(c) > len(m.group(0)) + 1:
            out.append((m.group(1), w * W_LANDMARK))
            c = c[:m.start(1)] + c[m.end(1):]
        out.append((c, w))
    return out or [(t, 1.0)]


def _tokenizer() -> Any:
    import jieba

    jieba.setLogLevel(60)
    return jieba


def jieba_words(text: str) -> list[str]:
    """jieba's precise-mode words (its bundled dictionary; no download)."""
    return [w for w in _tokenizer().lcut(text, HMM=False) if w.strip()]


@dataclass
class Model:
    labels: np.ndarray  # class labels (category codes), the order of the model's columns
    char_vec: Any
    word_vec: Any | None
    clf: Any
    temperature: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)


def _segment_matrix(texts: list[str]) -> tuple[list[str], sp.csr_matrix]:
    segs: list[str] = []
    rows: list[int] = []
    weights: list[float] = []
    for i, t in enumerate(texts):
        for s, w in segments(t):
            segs.append(s)
            rows.append(i)
            weights.append(w)
    agg = sp.csr_matrix((np.asarray(weights), (np.asarray(rows), np.arange(len(segs)))), shape=(len(texts), len(segs)))
    return segs, agg


def _l2(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ x)


def features(model: Model, texts: list[str]) -> sp.csr_matrix:
    segs, agg = _segment_matrix(texts)
    blocks = [_l2(agg @ model.char_vec.transform(segs))]
    if model.word_vec is not None:
        blocks.append(_l2(agg @ model.word_vec.transform(segs)) * 0.7)
    return sp.csr_matrix(sp.hstack(blocks, format="csr"))


def _vectorizers(use_words: bool) -> tuple[Any, Any | None]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    char = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2, max_features=120_000,
                           dtype=np.float32)
    word = TfidfVectorizer(tokenizer=jieba_words, token_pattern=None, lowercase=False, ngram_range=(1, 2),
                           sublinear_tf=True, min_df=2, max_features=80_000, dtype=np.float32) if use_words else None
    return char, word


def _fit(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray, c: float, seed: int) -> Any:
    """One-vs-rest linear SVM (``sklearn.svm.LinearSVC``, liblinear: Fan et al., JMLR 9, 2008)."""
    from sklearn.svm import LinearSVC

    clf = LinearSVC(C=c, random_state=seed, max_iter=3000)
    clf.fit(x, y, sample_weight=w)
    return clf


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def fit_temperature(logits: np.ndarray, y_idx: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) (Guo et al. 2017, section 4.2)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = _softmax(logits / np.exp(log_t))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y_idx)), y_idx], 1e-12, None))))

    res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(res.x))


def train(texts: list[str], labels: list[str], *, weights: list[float] | None = None, prior_texts: list[str] = (),  # type: ignore[assignment]
          prior_labels: list[str] = (), prior_weight: float = 2.0, c: float = 0.5, use_words: bool = True,  # type: ignore[assignment]
          calibration_share: float = 0.15, seed: int = 14) -> Model:
    """Fit vectorizers, the linear model and the temperature. ``prior_*``: the catalogue's words
    as pseudo-documents (weight ``prior_weight``)."""
    t0 = time.perf_counter()
    all_texts = list(texts) + list(prior_texts)
    y = np.asarray(list(labels) + list(prior_labels))
    w = np.asarray((list(weights) if weights is not None else [1.0] * len(texts)) + [prior_weight] * len(prior_texts),
                   dtype=float)
    char, word = _vectorizers(use_words)
    segs, agg = _segment_matrix(all_texts)
    char.fit(segs)
    if word is not None:
        word.fit(segs)
    model = Model(labels=np.asarray(sorted(set(y.tolist()))), char_vec=char, word_vec=word, clf=None)
    x = features(model, all_texts)
    # calibration fold: a stratified share of the corpus rows (never the prior rows)
    rng = np.random.default_rng(seed)
    n = len(texts)
    cal = np.zeros(len(all_texts), dtype=bool)
    for lab in np.unique(y[:n]):
        idx = np.nonzero(y[:n] == lab)[0]
        k = int(len(idx) * calibration_share)
        if k >= 1 and len(idx) - k >= 2:
            cal[rng.choice(idx, size=k, replace=False)] = True
    temperature = 1.0
    if cal.any():
        part = _fit(x[~cal], y[~cal], w[~cal], c, seed)
        logits = part.decision_function(x[cal])
        col = {lab: i for i, lab in enumerate(part.classes_)}
        known = np.array([lab in col for lab in y[cal]])
        if known.any():
            yi = np.array([col[lab] for lab in y[cal][known]])
            temperature = fit_temperature(np.asarray(logits)[known], yi)
    model.clf = _fit(x, y, w, c, seed)
    model.labels = np.asarray(model.clf.classes_)
    model.temperature = temperature
    model.info = {"n_train": n, "n_prior": len(prior_texts), "c": c, "use_words": use_words,
                  "temperature": temperature, "train_s": time.perf_counter() - t0,
                  "n_features": int(x.shape[1])}
    return model


def predict_proba(model: Model, texts: list[str]) -> np.ndarray:
    """Calibrated class probabilities (rows: texts, columns: ``model.labels``)."""
    if not texts:
        return np.zeros((0, len(model.labels)))
    logits = np.asarray(model.clf.decision_function(features(model, texts)))
    if logits.ndim == 1:  # two classes
        logits = np.column_stack([-logits, logits])
    return _softmax(logits / model.temperature)


def rank(model: Model, texts: list[str], k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The top-``k`` label indices (best first) and their probabilities, per text."""
    p = predict_proba(model, texts)
    k = min(k, p.shape[1])
    idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(p, idx, axis=1)


def evaluate(model: Model, texts: list[str], labels: list[str], groups: dict[str, str] | None = None) -> dict[str, Any]:
    """Top-1 / top-3 accuracy overall and per label; ``groups`` maps a label to its group (a kind):
    a prediction in the same group counts as right for the group figures."""
    idx, prob = rank(model, texts, k=3)
    pred = model.labels[idx]
    y = np.asarray(labels)
    hit1 = pred[:, 0] == y
    hit3 = (pred == y[:, None]).any(axis=1)
    per: dict[str, dict[str, float]] = {}
    for lab in sorted(set(labels)):
        m = y == lab
        per[lab] = {"n": int(m.sum()), "top1": float(hit1[m].mean()), "top3": float(hit3[m].mean())}
    out: dict[str, Any] = {"n": len(labels), "top1": float(hit1.mean()) if len(y) else 0.0,
                           "top3": float(hit3.mean()) if len(y) else 0.0, "per_label": per,
                           "mean_confidence": float(prob[:, 0].mean()) if len(y) else 0.0,
                           "ece": expected_calibration_error(prob[:, 0], hit1)}
    if groups:
        g = np.vectorize(lambda s: groups.get(s, s))
        out["group_top1"] = float((g(pred[:, 0]) == g(y)).mean()) if len(y) else 0.0
    return out


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins (Naeini, Cooper, Hauskrecht, AAAI 2015; Guo et al. 2017 eq. 3)."""
    if len(conf) == 0:
        return 0.0
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    err = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            err += m.mean() * abs(float(correct[m].mean()) - float(conf[m].mean()))
    return float(err)
