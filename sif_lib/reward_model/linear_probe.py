"""A frozen-backbone baseline for the reward model: logistic regression on the backbone's last-token state.

The fine-tuned classifier of the paper reads the same input and pools the same way (the final hidden state of the
last non-padding token, after the final norm); this baseline keeps the backbone frozen and fits only a linear
head, with scikit-learn's ``LogisticRegression``. It trains in seconds once the features are computed, which makes
it the yardstick for what fine-tuning adds, and cheap enough for a learning curve over many data sizes.

A probe reward model is saved like any other: the backbone (without a head), its tokenizer, and ``sif_rm.json``,
whose ``head`` holds the coefficients and intercept; :class:`~sif_lib.reward_model.scorer.RewardScorer` scores it as
``sigmoid(w . h + b)``. (A sequence-classification head has no bias, so the intercept could not live there.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sif_lib.reward_model.rm_input import padded_batches
from sif_lib.runner import progress

HEAD_TYPE = "logistic"


def last_token_states(model: Any, input_ids, attention_mask):
    """The final hidden state of each row's last non-padding token (right padding), as a float tensor."""
    import torch  # heavy: only with a model

    out = model(input_ids=input_ids, attention_mask=attention_mask)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out.hidden_states[-1]
    last = attention_mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()


def features(model: Any, tokenizer: Any, ids: Sequence[Sequence[int]], batch_size: int = 16):
    """:func:`last_token_states` for every input (token ids), as an ``(n, hidden)`` numpy array in input order.
    Inputs are batched by length, as the scorer batches them."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = None
    done = 0
    model.eval()
    with torch.inference_mode():
        for chunk, input_ids, mask in padded_batches(ids, batch_size, pad_id):
            states = last_token_states(model, input_ids.to(device), mask.to(device)).cpu().numpy()
            if out is None:
                out = np.zeros((len(ids), states.shape[1]), dtype=np.float32)
            out[chunk] = states
            done += len(chunk)
            progress.update(done, len(ids), "features")
    return out


C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def fit(x, y: Sequence[int], c: float | None = None, balance: bool = False, seed: int = 0,
        groups: Sequence[str] | None = None) -> dict:
    """A logistic regression on standardised features; returns the head as plain numbers (``coef`` applies to
    the raw features: the standardisation is folded in), for ``sif_rm.json``.

    With ``c`` None the regularisation strength is chosen from :data:`C_GRID` by 5-fold cross-validated ROC-AUC
    on the training pairs, folds split by ``groups`` (the instructions), so that no held-out pair picks it.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(y)
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    weight = "balanced" if balance else None
    n_groups = len(set(groups)) if groups is not None else 0
    if c is None and n_groups >= 2 and len(set(y.tolist())) == 2:
        folds = list(GroupKFold(n_splits=min(5, n_groups)).split(xs, y, groups))
        model = LogisticRegressionCV(Cs=list(C_GRID), cv=folds, scoring="roc_auc", class_weight=weight,
                                     max_iter=2000, random_state=seed).fit(xs, y)
        chosen = float(model.C_[0])
        search = {str(cv_c): round(float(score), 4)
                  for cv_c, score in zip(C_GRID, np.nanmean(model.scores_[1], axis=0))}
    else:
        chosen = 1.0 if c is None else float(c)
        search = None
        model = LogisticRegression(C=chosen, class_weight=weight, max_iter=2000, random_state=seed).fit(xs, y)
    coef = model.coef_[0] / scaler.scale_
    intercept = float(model.intercept_[0] - np.dot(coef, scaler.mean_))
    return {"type": HEAD_TYPE, "coef": [float(v) for v in coef], "intercept": intercept, "c": chosen,
            "c_cv_auc": search, "class_weight": weight}


def log_loss(head: dict, x, y: Sequence[int]) -> float:
    """Mean cross-entropy of a head on labelled features (``sklearn.metrics.log_loss``): the probe's training
    loss, comparable with a fine-tune's (ln 2 = 0.693 is chance)."""
    from sklearn.metrics import log_loss as sk_log_loss

    return float(sk_log_loss(list(y), predict(head, x), labels=[0, 1]))


def predict(head: dict, x):
    """P(label 1) of each feature row under a fitted head."""
    import numpy as np

    z = np.asarray(x, dtype=np.float64) @ np.asarray(head["coef"], dtype=np.float64) + head["intercept"]
    return 1.0 / (1.0 + np.exp(-z))
