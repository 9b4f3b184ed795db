"""A finite but large bank of varied, natural crypto-news headlines with known polarity.

Headlines are composed from templates and fillers: entities (exchanges, funds, regulators, banks,
protocols, cities, people), numbers (percentages, dollar amounts, price levels, counts), negation
("does not expect ... to rally", "rules out a ban") and distractors (off-topic news, or news about
another asset). Each headline carries an integer polarity level for its own asset, -2 (strongly
bearish) .. +2 (strongly bullish); distractors have level 0 for the task's asset.

The bank is a pure function of its seed, independent of any dataset seed: every dataset draws its
headlines from it, so the sentence encoder embeds each sentence once and the cache is reused.

Two phrasing families: "a" (newswire style, the training regime) and "b" (held-out social-media
style) which a test regime under shift mixes in, so a text model meets phrasing it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BASE_PRICE: dict[str, float] = {
    "BTC": 65000.0, "ETH": 3200.0, "SOL": 150.0, "AVAX": 35.0, "LINK": 15.0, "DOT": 7.0,
    "ADA": 0.45, "ARB": 1.1,
}
"""Typical USD price level per asset (headline price levels and simulated series start near it)."""

ASSETS: dict[str, tuple[str, ...]] = {
    "BTC": ("Bitcoin", "BTC"),
    "ETH": ("Ether", "Ethereum", "ETH"),
    "SOL": ("Solana", "SOL"),
    "AVAX": ("Avalanche", "AVAX"),
    "LINK": ("Chainlink", "LINK"),
    "DOT": ("Polkadot", "DOT"),
    "ADA": ("Cardano", "ADA"),
    "ARB": ("Arbitrum", "ARB"),
}
"""Ticker -> the names a headline may use for it."""

LEVELS = (-2, -1, 0, 1, 2)
FAMILIES = ("a", "b")

_FILL = {
    "EX": ("Binance", "Coinbase", "Kraken", "OKX", "Bitstamp", "Bybit", "Gemini", "Bitfinex"),
    "FUND": ("BlackRock", "Fidelity", "Grayscale", "ARK Invest", "Franklin Templeton", "VanEck",
             "Galaxy Digital", "a Swiss pension fund", "a Gulf sovereign fund", "MicroStrategy"),
    "REG": ("the SEC", "the CFTC", "the ECB", "Japan's FSA", "the UK FCA", "Singapore's MAS",
            "Hong Kong's SFC", "the Justice Department"),
    "BANK": ("JPMorgan", "Goldman Sachs", "Standard Chartered", "Citi", "Morgan Stanley",
             "Bernstein", "Barclays", "Deutsche Bank"),
    "PROTO": ("Uniswap", "Aave", "Lido", "MakerDAO", "Curve", "Compound", "Wormhole", "Jupiter"),
    "CITY": ("Lisbon", "Dubai", "Singapore", "Denver", "Seoul", "Zug", "Buenos Aires", "Nairobi",
             "Paris", "Austin"),
    "MACRO": ("the Fed decision", "the CPI report", "the payrolls report", "the ECB meeting",
              "the Bank of Japan meeting", "the FOMC minutes"),
    "DAY": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend"),
    "PERSON": ("A former Goldman trader", "The ex-head of a central bank", "A veteran fund manager",
               "A well-known venture investor", "The founder of a mining firm"),
    "SRC": ("Analysts at JPMorgan", "Bernstein strategists", "Traders surveyed by Reuters",
            "Options markets", "Citi researchers", "Most quant funds", "Derivatives desks"),
}

# (template, level) — family "a": newswire phrasing.
_A: list[tuple[str, int]] = [
    ("{A} surges {PB}% as {FUND} files for a spot ETF", 2),
    ("{FUND} discloses a ${AMT} million purchase of {A}", 2),
    ("{A} breaks through resistance, rallying {PB}% in a single session", 2),
    ("{REG} approves the first {A} exchange-traded fund", 2),
    ("Record ${AMT} million flows into {A} funds this week, {FUND} reports", 2),
    ("{A} soars to a {N}-month high on institutional demand", 2),
    ("Short sellers squeezed as {A} jumps {PB}% in hours", 2),
    ("{EX} reports record {A} withdrawals as holders move coins to cold storage", 2),
    ("{A} rallies {PB}% after {BANK} lifts its year-end target to ${PRICE}", 2),
    ("{A} edges up {PS}% in quiet trading", 1),
    ("Analysts at {BANK} turn cautiously optimistic on {A}", 1),
    ("{A} developers ship an upgrade that cuts fees by {PB}%", 1),
    ("{EX} adds {N} new {A} trading pairs", 1),
    ("{A} recovers modestly after early losses", 1),
    ("{PROTO} integrates {A}, adding ${AMT} million in liquidity", 1),
    ("{A} funds see small inflows of ${AMT} million", 1),
    ("{A} trades flat ahead of {MACRO}", 0),
    ("{A} holds steady near ${PRICE} as volumes thin", 0),
    ("{EX} schedules maintenance for {A} deposits on {DAY}", 0),
    ("Mixed signals for {A} as traders await {MACRO}", 0),
    ("{A} is little changed, up {PS}% then down {PS}% within the hour", 0),
    ("{A} slips {PS}% as traders take profits", -1),
    ("{BANK} analysts trim their {A} price target to ${PRICE}", -1),
    ("{A} network congestion pushes fees up {PB}%", -1),
    ("{A} funds record modest outflows of ${AMT} million", -1),
    ("{A} drifts lower as jitters over {MACRO} weigh on risk assets", -1),
    ("{A} plunges {PB}% after {EX} halts withdrawals", -2),
    ("{REG} sues {EX} over {A} listings", -2),
    ("Hackers drain ${AMT} million from a {PROTO} bridge, sending {A} tumbling", -2),
    ("{FUND} dumps {A} holdings worth ${AMT} million", -2),
    ("{A} crashes below ${PRICE} as liquidations top ${AMT} million", -2),
    ("{A} sinks {PB}% as {REG} opens a probe into {EX}", -2),
]

# Negation frames: polarity = frame sign x predicate sign (level +-1).
_NEG_FRAMES: list[tuple[str, int]] = [
    ("{SRC} expect {A} to {P}", 1),
    ("{SRC} do not expect {A} to {P}", -1),
    ("{SRC} no longer expect {A} to {P}", -1),
    ("{SRC} see {A} poised to {P}", 1),
    ("Few analysts believe {A} will {P}", -1),
    ("{SRC} now doubt that {A} can {P}", -1),
]
_NEG_PREDS: list[tuple[str, int]] = [
    ("rally further this month", 1),
    ("recover its losses this quarter", 1),
    ("break its all-time high", 1),
    ("reclaim ${PRICE}", 1),
    ("extend its slide", -1),
    ("fall below ${PRICE}", -1),
    ("see more fund outflows", -1),
]
_NEG_FIXED: list[tuple[str, int]] = [
    ("{REG} rules out a ban on {A} staking", 1),
    ("{REG} denies reports it will investigate {EX}'s {A} desk", 1),
    ("{FUND} says it will not sell its {A} holdings", 1),
    ("{EX} says no customer {A} was lost in the outage", 1),
    ("{A} fails to hold gains despite backing from {FUND}", -1),
    ("No sign of a rebound for {A} as outflows continue", -1),
    ("{REG} refuses to approve {A} futures on {EX}", -1),
    ("{FUND} will not renew its {A} mandate", -1),
]

# Family "b": held-out, social-media phrasing (only seen under regime shift).
_B: list[tuple[str, int]] = [
    ("{A} to the moon? Price rockets {PB}% overnight", 2),
    ("Whales scoop up {N},000 {A} in 24 hours", 2),
    ("Massive green candle: {A} rips {PB}% and bears get wrecked", 2),
    ("{A} grinds higher, up {PS}% on the day", 1),
    ("Quiet accumulation: wallets keep stacking {A}", 1),
    ("{A} chops sideways, traders sit on their hands", 0),
    ("Nothing to see on {A} charts today, volume dead", 0),
    ("{A} drifts lower, down {PS}% on the day", -1),
    ("Weak hands selling {A} again, chart looks heavy", -1),
    ("Bloodbath: {A} sheds {PB}% as panic spreads", -2),
    ("Exploit at {PROTO} wipes ${AMT} million, {A} sinks hard", -2),
    ("Capitulation? {A} nukes {PB}% in minutes", -2),
]

# Distractors: level 0 for the task's asset ({O} = another asset).
_D: list[str] = [
    "{EX} opens a new office in {CITY}",
    "{CITY} hosts a blockchain summit with {N} speakers",
    "{O} community votes on a treasury proposal",
    "{O} rallies {PB}% on ETF hopes",
    "{O} slides {PS}% as miners sell",
    "{PERSON} joins {FUND} as head of digital assets",
    "Developers gather in {CITY} for a {PROTO} hackathon",
    "{BANK} publishes its annual report on tokenized deposits",
    "{EX} rebrands its mobile app ahead of {DAY}'s launch",
    "{REG} schedules a public hearing on stablecoin disclosures",
]


@dataclass(frozen=True)
class Headline:
    text: str
    asset: str
    level: int
    """Polarity for `asset`: -2..2 (0 for neutral news and for distractors)."""
    family: str
    """'a' (training phrasing), 'b' (held-out phrasing) or 'd' (distractor)."""


class HeadlineBank:
    """Headlines grouped by (asset, level, family) and distractors by asset."""

    def __init__(self, headlines: list[Headline]) -> None:
        self.headlines = headlines
        self._groups: dict[tuple, list[str]] = {}
        for h in headlines:
            key = (h.asset, "d") if h.family == "d" else (h.asset, h.level, h.family)
            self._groups.setdefault(key, []).append(h.text)

    def group(self, asset: str, level: int | None, family: str) -> list[str]:
        """Texts for an asset at a level in a family; `level=None, family='d'` for distractors."""
        key = (asset, "d") if family == "d" else (asset, level, family)
        return self._groups[key]

    def texts(self) -> list[str]:
        return [h.text for h in self.headlines]

    def __len__(self) -> int:
        return len(self.headlines)


def _filler(key: str, rng: np.random.Generator, asset: str) -> str:
    if key == "A":
        return str(rng.choice(ASSETS[asset]))
    if key == "O":
        other = [a for a in ASSETS if a != asset]
        return str(rng.choice(ASSETS[str(rng.choice(other))]))
    if key == "PB":
        return str(int(rng.integers(6, 36)))
    if key == "PS":
        return f"{rng.uniform(0.3, 3.9):.1f}"
    if key == "AMT":
        return str(int(rng.choice([40, 75, 120, 150, 200, 250, 320, 400, 480, 600, 750, 900])))
    if key == "N":
        return str(int(rng.integers(2, 19)))
    if key == "PRICE":
        level = BASE_PRICE[asset] * float(rng.choice([0.6, 0.7, 0.8, 0.9, 1.1, 1.2, 1.25, 1.5]))
        return f"{level:,.0f}" if level >= 100 else f"{level:.2f}"
    if key == "P":
        raise KeyError(key)  # handled by the negation composer
    return str(rng.choice(_FILL[key]))


def _render(template: str, rng: np.random.Generator, asset: str) -> str:
    out, i = [], 0
    while i < len(template):
        j = template.find("{", i)
        if j < 0:
            out.append(template[i:])
            break
        k = template.index("}", j)
        out.append(template[i:j])
        out.append(_filler(template[j + 1:k], rng, asset))
        i = k + 1
    text = "".join(out)
    return text[0].upper() + text[1:]


def _sample_template(level: int, family: str, rng: np.random.Generator) -> str:
    if family == "b":
        pool = [t for t, lv in _B if lv == level]
        return str(rng.choice(pool))
    pool = [t for t, lv in _A if lv == level]
    if level in (-1, 1) and rng.random() < 0.45:  # negation constructions, about half the +-1 news
        if rng.random() < 0.5:
            return str(rng.choice([t for t, s in _NEG_FIXED if s == level]))
        frame, fs = _NEG_FRAMES[int(rng.integers(len(_NEG_FRAMES)))]
        preds = [p for p, ps in _NEG_PREDS if fs * ps == level]
        return frame.replace("{P}", str(rng.choice(preds)))
    return str(rng.choice(pool))


@lru_cache(maxsize=4)
def headline_bank(per_group: int = 40, per_group_b: int = 12, distractors: int = 30,
                  seed: int = 20261127) -> HeadlineBank:
    """The headline bank: `per_group` distinct sentences per (asset, level) in family "a",
    `per_group_b` in family "b", and `distractors` per asset. Pure function of its arguments."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[Headline] = []

    def draw(asset: str, level: int, family: str, count: int, make) -> None:
        got, tries = 0, 0
        while got < count and tries < count * 50:
            tries += 1
            text = make()
            if text in seen:
                continue
            seen.add(text)
            out.append(Headline(text, asset, level, family))
            got += 1

    for asset in ASSETS:
        for level in LEVELS:
            draw(asset, level, "a", per_group,
                 lambda: _render(_sample_template(level, "a", rng), rng, asset))
            draw(asset, level, "b", per_group_b,
                 lambda: _render(_sample_template(level, "b", rng), rng, asset))
        draw(asset, 0, "d", distractors, lambda: _render(str(rng.choice(_D)), rng, asset))
    return HeadlineBank(out)
