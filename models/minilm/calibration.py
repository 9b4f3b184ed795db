"""Calibration and recipe-selection sentences for quantizing the MiniLM export.

Kept apart from `models.minilm.heldout`: these sentences may be used to calibrate activation
ranges or to compare quantization recipes; the held-out set only measures the chosen one.
"""

from __future__ import annotations

CALIBRATION_SENTENCES: tuple[str, ...] = (
    "Equities drifted lower as traders waited for the payrolls report.",
    "The brewer's profit fell after barley costs jumped.",
    "The central bank surprised markets with a half-point hike.",
    "Crude inventories rose by 4.2 million barrels last week.",
    "The software firm guided revenue below analyst estimates.",
    "Lending rates on the protocol spiked to 40% as utilisation hit 98%.",
    "The token unlock will release 12% of supply next month.",
    "The euro rose to its strongest level against the franc in a year.",
    "Factory orders declined for the second month in a row.",
    "The retailer will close 150 stores and cut 2,000 jobs.",
    "A validator was slashed for signing two conflicting blocks.",
    "The court ruled against the exchange in the securities case.",
    "The company is not planning any layoffs this year.",
    "Margins didn't improve despite the price increases.",
    "There is no sign of a slowdown in hiring.",
    "The deal is unlikely to close before March.",
    "Nothing suggests the dividend will be cut.",
    "The launch was neither a success nor a failure.",
    "Net income: $812 million, or $2.07 per share.",
    "Silver gained 3.4% to $31.20 an ounce.",
    "The pool holds 14,300 ETH and 41 million USDC.",
    "Average block time was 12.1 seconds over 7,200 blocks.",
    "The survey of 1,024 adults has a margin of error of 3 points.",
    "Temperatures will reach 35°C by Thursday.",
    "The kettle takes about four minutes to boil.",
    "My neighbour's dog barks every time the post arrives.",
    "We need more chairs for the party on Saturday.",
    "The train to the airport leaves every fifteen minutes.",
    "The soup needs a little more salt.",
    "He fixed the bicycle with a borrowed spanner.",
    "Where did you park the car?",
    "The garden looks lovely after the rain.",
    "The lecture covered the causes of the First World War.",
    "Please switch off the lights when you leave.",
    "The film was too long but the music was wonderful.",
    "The swimming pool is closed for cleaning today.",
    "Hello there",
    "Short.",
    "Panic!",
    "fine",
    "Rates?",
    "Dump it",
    "xyz",
    "WAGMI, ser — floor is holding 🚀",
    "El banco central mantuvo las tasas sin cambios.",
    "tx reverted: insufficient allowance (0xfb8f41b2)",
    "Buy the rumour, sell the news.",
    "TL;DR: costs up, sales down, guidance cut.",
    "Analysts said the acquisition would add to earnings within two years, although integration costs and "
    "a heavier debt load could weigh on the balance sheet in the meantime, and several large shareholders "
    "have already said they will vote against it at the extraordinary meeting next month.",
    "The storm moved slowly up the coast, flooding low-lying streets, closing schools and ports, cutting "
    "power to hundreds of thousands of homes and forcing airlines to cancel most flights for two days.",
    "Researchers trained the model on a decade of filings and news, then tested whether its signals still "
    "worked after the regime change, finding that most of the apparent edge disappeared once transaction "
    "costs, delays in data availability and survivorship bias in the original sample were properly taken "
    "into account, a result that echoes many earlier studies of published trading anomalies and suggests "
    "that simple rules discovered in historical data rarely survive contact with live markets for long.",
    "The bakery switched to a four-day week and, to the owner's surprise, sales went up.",
    "Traders rushed into haven assets as geopolitical tensions escalated overnight.",
    "The governance proposal to add a new collateral type was rejected by token holders.",
    "A sharp rise in stablecoin supply often precedes inflows into riskier tokens.",
    "Our internet has been slow all week.",
    "The players trained in the snow ahead of Sunday's final.",
    "The cost of a cup of coffee has nearly doubled in five years.",
    "The bond fund posted its worst month since 2022.",
    "A new study links poor sleep to higher blood pressure.",
    "Ministers agreed a plan to cut energy bills for poorer households.",
    "The price fell.",
    "The price did not fall.",
    "Markets rose sharply after the ceasefire was announced.",
)
"""Sentences for calibration and recipe selection (disjoint from the held-out set)."""
