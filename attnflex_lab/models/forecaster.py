"""A one-step forecaster that attends over the lags of its input window.

    window x (B, L) --per lag: e_j = x_j·u + p_j--> (B, L, d)
    query from the whole window q = W_q x (B, d); keys k_j = W_k e_j, values v_j = W_v e_j
    α = softmax_j(q·k_j / √d) (B, L)   ->   ŷ = w_o · Σ_j α_j v_j + b   (B,)

The lag position p_j lets the model prefer a *lag* (12 months back, say) whatever the values are;
the query lets that preference depend on the window. With ``query_from_window=False`` the query is
one learned vector for every window; α then changes from window to window only through the keys
(which carry the values), so its average over windows reads more like a profile over the lags.
Since v_j carries x_j linearly, a model that puts all its weight on lag 12 predicts "the same
change as a year ago", the seasonal-naive rule in difference form.
``forward`` returns ``(prediction (B,), alpha (B, L))``; alpha[:, -1] is lag 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..functional import attention


@dataclass
class ForecasterConfig:
    window: int = 36          # L lags seen (three seasons of monthly data)
    d_model: int = 16         # width of a lag's vector
    dropout: float = 0.0      # on the attention output; the data set is small, the model smaller
    query_from_window: bool = True  # False: one learned query for every window (α still moves with the keys)


class AttentionForecaster(nn.Module):
    def __init__(self, cfg: ForecasterConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ForecasterConfig()
        self.value_dir = nn.Parameter(torch.randn(cfg.d_model) / cfg.d_model**0.5)      # u (d,)
        self.lag_embedding = nn.Parameter(0.1 * torch.randn(cfg.window, cfg.d_model))   # p (L, d)
        self.query = nn.Linear(cfg.window, cfg.d_model)
        if not cfg.query_from_window:               # q = the bias alone: the same α for every window
            self.query.weight.data.zero_()
            self.query.weight.requires_grad_(False)
        self.key = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.value = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.d_model, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 2 or x.shape[1] != self.cfg.window or not x.is_floating_point():
            raise ValueError(f"x must be a float (B, window={self.cfg.window}) tensor, got "
                             f"{tuple(x.shape)} {x.dtype}")
        e = x.unsqueeze(-1) * self.value_dir + self.lag_embedding     # (B, L, 1)*(d,) + (L, d) -> (B, L, d)
        q = self.query(x).unsqueeze(1)                                 # (B, L) -> (B, d) -> (B, 1, d)
        context, alpha = attention(q, self.key(e), self.value(e))      # (B, 1, d), (B, 1, L)
        prediction = self.out(self.dropout(context.squeeze(1)))        # (B, d) -> (B, 1)
        return prediction.squeeze(-1), alpha.squeeze(1)                # (B,), (B, L)
