"""Held-out sentences for checking quantized text encoders against the fp32 export.

None of these sentences is used to calibrate or choose a quantization recipe (that is
`models.minilm.calibration`); they only measure the result. They mix financial-news headlines,
everyday text, negation, numbers and units, questions, very short inputs and long passages that
run past the 128-token window, so a recipe that only works on one kind of text shows up here.
"""

from __future__ import annotations

FINANCIAL: tuple[str, ...] = (
    "Shares of the regional lender slid 7% after it cut its full-year guidance.",
    "The central bank held rates steady and signalled two cuts before year end.",
    "Copper futures climbed to a three-month high on supply worries in Chile.",
    "Quarterly revenue beat estimates, but margins narrowed for the fourth straight quarter.",
    "The chipmaker announced a $12 billion buyback and raised its dividend by 10 percent.",
    "Investors dumped long-dated Treasuries as inflation expectations crept higher.",
    "A stablecoin briefly lost its peg, trading as low as 0.96 dollars before recovering.",
    "Bitcoin fell below 60,000 overnight as leveraged longs were liquidated.",
    "The exchange halted withdrawals citing unusual on-chain activity.",
    "Oil prices eased after OPEC+ agreed to keep output unchanged through the summer.",
    "Retail sales rose 0.4% in March, slightly ahead of the consensus forecast.",
    "The airline warned that higher jet fuel costs would weigh on second-half profit.",
    "Moody's downgraded the utility to junk, citing mounting wildfire liabilities.",
    "The merger was blocked by regulators who feared higher prices for consumers.",
    "Gold slipped as the dollar strengthened against a basket of major currencies.",
    "Weekly jobless claims unexpectedly fell to their lowest level since January.",
    "The startup raised $45 million in a Series B round led by a growth fund.",
    "Tesla deliveries missed expectations as demand in Europe softened.",
    "A large holder moved 20,000 ETH to an exchange wallet, stoking fears of a sell-off.",
    "The yen weakened past 155 per dollar, prompting warnings from Tokyo officials.",
    "Analysts upgraded the retailer to buy, pointing to a strong holiday season.",
    "The bond auction drew weak demand, pushing ten-year yields up 8 basis points.",
    "Net inflows into spot ether funds reached a record on Tuesday.",
    "The company delayed its earnings release, sending the stock down in after-hours trading.",
    "Mortgage applications dropped for a third week as borrowing costs rose.",
    "The lender set aside more money for bad loans tied to commercial real estate.",
    "European stocks opened flat ahead of the inflation print.",
    "A hack drained roughly $80 million from the lending protocol's liquidity pools.",
    "The pharmaceutical giant's shares surged after a trial met its primary endpoint.",
    "Natural gas prices tumbled as mild weather curbed heating demand.",
    "The governance vote passed, cutting the protocol's token emissions by half.",
    "Short interest in the streaming company hit its highest level in two years.",
    "Wheat prices spiked after drought damaged crops across the plains.",
    "The fund manager trimmed its stake in banks and added to healthcare.",
    "Consumer confidence slumped to a nine-month low in the latest survey.",
    "Stocks rallied into the close as bond yields retreated from their highs.",
    "The automaker recalled 300,000 vehicles over a faulty brake sensor.",
    "Trading volume on decentralized exchanges doubled week over week.",
    "The IPO priced above its range and jumped 30% on its debut.",
    "Shipping rates between Asia and Europe rose sharply as vessels rerouted.",
    "The miner's hash rate share fell after it switched off rigs during the heat wave.",
    "Credit spreads widened as investors priced in a higher risk of recession.",
    "The insurer reported a surprise loss because of storm claims.",
    "Hedge funds increased net short positions in the euro for a second week.",
    "Housing starts rebounded in May after a weak spring.",
    "The token's price doubled within hours of its listing on a major exchange.",
    "Earnings per share came in at $1.32 against expectations of $1.18.",
    "The board replaced the chief executive after a string of disappointing quarters.",
    "Treasury yields inverted further, a signal many read as a recession warning.",
    "A whale wallet withdrew 5,000 BTC from cold storage for the first time since 2019.",
)

NEGATION: tuple[str, ...] = (
    "The company did not raise its guidance.",
    "The company raised its guidance.",
    "Inflation is not falling as fast as policymakers hoped.",
    "Nobody expected the rate hike, yet it came anyway.",
    "The stock never recovered from the crash.",
    "This is not a buying opportunity.",
    "This is a buying opportunity.",
    "The regulator found no evidence of wrongdoing.",
    "Profits were neither up nor down compared with last year.",
    "The bridge was not exploited; the funds are safe.",
    "I don't think the market will keep rising.",
    "The outlook isn't bad, but it isn't great either.",
    "Without the one-off gain, the quarter would have been a loss.",
    "Not a single analyst rated the stock a sell.",
    "The merger will not close before the end of the year.",
    "She never said the dividend was at risk.",
    "The data gave no reason to panic.",
    "There were no withdrawals from the pool on Friday.",
    "The restaurant was not crowded at all on Monday night.",
    "He didn't forget to lock the door this time.",
    "It is hardly surprising that costs went up.",
    "The results were far from disappointing.",
    "No, the train does not stop at that station.",
    "Nothing about the new policy changes the tax rate.",
    "The vote failed to reach a quorum.",
)

NUMBERS: tuple[str, ...] = (
    "Revenue was $3.2 billion, up 14% year over year.",
    "The index closed at 4,812.37, a gain of 0.83 percent.",
    "Gas fees averaged 23 gwei, down from 41 gwei last week.",
    "The model has 22 million parameters and 384 dimensions.",
    "Call me at 555-0142 after 6:30 pm.",
    "The meeting moved from 14 March to 2 April 2025.",
    "Unemployment ticked up to 4.1% from 3.9%.",
    "The block at height 19,204,881 contained 312 transactions.",
    "Prices rose 2.5x in 18 months.",
    "The portfolio returned -3.7% in Q3 versus +1.2% for the benchmark.",
    "He ran 42.195 km in 3 hours and 12 minutes.",
    "1, 2, 3, 4, 5, 6, 7, 8, 9, 10.",
    "Pi is roughly 3.14159 and e is about 2.71828.",
    "The loan carries an APR of 7.99% over 60 months.",
    "About 1 in 5 adults reported trouble sleeping.",
    "The deposit of 0.0035 BTC confirmed after 6 blocks.",
    "The thermostat was set to 21 degrees Celsius.",
    "Volume spiked to 1.8 million shares, triple the 30-day average.",
    "Dividend yield: 4.6%; payout ratio: 71%.",
    "2024 was warmer than 2023, which was warmer than 2022.",
)

GENERAL: tuple[str, ...] = (
    "The cat slept on the windowsill all afternoon.",
    "Could you send me the slides before the meeting?",
    "Heavy rain is expected across the north tomorrow.",
    "She planted tomatoes, basil and a row of sunflowers.",
    "The museum reopens next week after a long renovation.",
    "How do I reset my password?",
    "Turn left at the second traffic light, then keep straight.",
    "The orchestra played Beethoven's ninth symphony to a full hall.",
    "My laptop battery dies after only an hour.",
    "The recipe calls for two eggs and a cup of flour.",
    "Children were building sandcastles along the shore.",
    "The library extended its opening hours during exams.",
    "A sudden power cut left the whole street in darkness.",
    "He apologised for arriving late to the interview.",
    "The hiking trail climbs steeply through a pine forest.",
    "Please keep your luggage with you at all times.",
    "The new phone has a brighter screen and a slower charger.",
    "Volunteers cleaned up the river bank on Saturday morning.",
    "Our flight was delayed by three hours because of fog.",
    "The team celebrated its first championship in decades.",
    "I prefer tea in the morning and coffee after lunch.",
    "The bakery on the corner sells out of croissants by nine.",
    "Scientists observed a new comet near the orbit of Jupiter.",
    "The kids argued about whose turn it was to feed the dog.",
    "What time does the pharmacy close on Sundays?",
    "The software update fixed the crash but broke the printer driver.",
    "A fox crossed the road just ahead of our car.",
    "The novel follows three sisters over fifty years.",
    "The doctor recommended more sleep and less caffeine.",
    "The bridge will be closed for repairs until October.",
    "Learning a language takes patience and daily practice.",
    "The painting was sold at auction for far more than expected.",
    "Please remove your shoes before entering the temple.",
    "The storm knocked down several trees in the park.",
    "We watched the sunset from the top of the hill.",
    "My grandmother still writes letters by hand.",
    "The printer is out of paper again.",
    "The concert was cancelled at the last minute.",
    "Bees are essential for pollinating many crops.",
    "The referee's decision sparked angry protests from the fans.",
    "Is this seat taken?",
    "The elevator is out of order; please use the stairs.",
    "A good night's sleep improves memory and mood.",
    "The teacher handed back the graded essays.",
    "The city is adding more bike lanes downtown.",
)

SHORT: tuple[str, ...] = (
    "Hi",
    "ok",
    "Sell.",
    "Buy!",
    "Hold",
    "Bullish.",
    "Rates up.",
    "Crash?",
    "Thanks a lot",
    "Yes",
    "no",
    "ETH",
    "42",
    "Good morning",
    "Markets closed.",
    "Why?",
    "a",
    "Déjà vu",
    "¿Qué tal?",
    "!!!",
)

MIXED: tuple[str, ...] = (
    "BREAKING: $SOL +12% in 1h — funding rates flip positive",
    "re: ur last msg... idk, maybe we wait till earnings?",
    "Le marché a ouvert en baisse ce matin à Paris.",
    "Die Aktie ist heute stark gefallen.",
    "東京株式市場は続落した。",
    "contract 0x3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD paused",
    "lol the token went to zero 😂",
    "ALL CAPS HEADLINE: MARKET IN FREE FALL",
    "email: support@example.com | ticket #88213",
    "Pros: cheap, fast. Cons: noisy, breaks often.",
    "https://example.org/news/2025/04/rates-hold",
    "def f(x): return x * 2",
    "The the the the the the the the.",
    "Q: Will the Fed cut? A: Not yet.",
    "Price target raised to $250 (from $210); rating: Overweight.",
)

LONG: tuple[str, ...] = (
    "After months of speculation, the company finally confirmed on Thursday that it would spin off its "
    "cloud division into a separately listed business, a move that executives said would let each unit "
    "pursue its own strategy and give investors a clearer view of the faster-growing segment.",
    "The minutes of the last policy meeting showed that several officials were uneasy about cutting rates "
    "too early, arguing that services inflation remained sticky and that the labour market, while cooling, "
    "was still tighter than before the pandemic.",
    "On a quiet weekend, a single wallet began moving funds through a chain of newly created addresses, "
    "splitting and merging amounts in a pattern that analysts said resembled earlier laundering attempts, "
    "although no exploit had been publicly reported and the protocol said its contracts were operating normally.",
    "We spent the first morning wandering through the old town, stopping for coffee in a tiny square where "
    "an old man played the accordion, and in the afternoon we took the ferry across the bay to the island, "
    "where the beaches were almost empty and the water was surprisingly warm for early June.",
    "The report, which surveyed more than two thousand small businesses across twelve regions, found that "
    "most owners expected higher costs for energy, rent and wages over the next year, but fewer than a third "
    "planned to raise their prices, citing fears of losing customers to larger competitors.",
    "Although the quarterly numbers looked strong on the surface, with revenue up and costs under control, "
    "the cash flow statement told a different story: receivables had ballooned, inventory was piling up in "
    "warehouses, and the company had quietly drawn down its credit line to fund operations.",
    "Engineers traced the outage to a configuration change that had been rolled out to every region at once "
    "instead of gradually, which meant that when the new settings caused servers to reject valid requests, "
    "there was no healthy region left to absorb the traffic and customers saw errors for nearly two hours.",
    "The committee voted seven to two to keep the benchmark rate unchanged, with the two dissenters "
    "preferring a quarter-point cut; in its statement the committee noted that growth had slowed, that "
    "inflation remained above target, and that it would continue to monitor incoming data closely before "
    "making any further adjustments to policy, a phrase that markets interpreted as leaving the door open "
    "to a reduction at the next meeting if the labour market weakens further and price pressures keep "
    "easing, while some economists warned that cutting too soon could undo the progress made so far and "
    "force the bank to reverse course later in the year at a much higher cost to its credibility.",
    "Long passages matter for this check because the model only sees the first 128 tokens, so everything "
    "after the cut is dropped; the quantized and the full-precision encoders should still agree on what "
    "remains, word for word, and the pooled vector should point in nearly the same direction even when the "
    "window is completely full of text about markets, weather, sport, cooking, travel, software, history, "
    "music, medicine, farming, shipping, insurance, mining, energy, retail, housing and anything else that "
    "a news feed might carry on an ordinary day when nothing in particular happens anywhere in the world.",
    "In the first hour of trading the index fell two percent, recovered half of the loss by noon, then "
    "slid again in the afternoon as a string of weak earnings reports from retailers reminded investors "
    "that consumers were pulling back on discretionary spending.",
    "The museum's new wing, designed by a young architect from Lisbon, uses recycled timber and a roof "
    "covered in native plants, and it will house a permanent exhibition on the history of the river and "
    "the people who have lived and worked along its banks for centuries.",
    "Protocol developers proposed raising the collateral ratio for volatile assets from 150 to 175 percent "
    "after last month's liquidation cascade, arguing that the change would reduce bad debt in stressed "
    "markets even if it made borrowing somewhat less attractive for ordinary users.",
    "Despite a wet spring that delayed planting by several weeks, farmers in the region now expect a "
    "near-record harvest of corn and soybeans, which has pushed futures prices lower and raised concerns "
    "about storage capacity and farm incomes later in the year.",
    "She read the contract twice, underlined every clause that mentioned penalties, and then called her "
    "lawyer to ask whether the termination fee could really be enforced if the supplier missed its own "
    "delivery dates.",
    "The study followed nearly ten thousand adults for fifteen years and found that those who walked at "
    "least seven thousand steps a day had a markedly lower risk of heart disease, even after adjusting for "
    "diet, smoking and income.",
)

PARAPHRASE: tuple[str, ...] = (
    "The stock dropped sharply after the earnings call.",
    "Shares tumbled following the quarterly results call.",
    "The price went up a lot today.",
    "Today the price increased significantly.",
    "Regulators are investigating the exchange.",
    "The exchange is under investigation by authorities.",
    "The weather is lovely this morning.",
    "It is a beautiful morning outside.",
    "The market is overvalued and due for a correction.",
    "Valuations look stretched; a pullback seems likely.",
    "A buyer offered to purchase the firm for cash.",
    "The firm received an all-cash takeover bid.",
    "Demand for electric cars keeps growing.",
    "More and more people are buying electric vehicles.",
    "The protocol lost funds to an exploit.",
    "Attackers stole money from the protocol.",
    "The meeting has been postponed until Friday.",
    "We pushed the meeting back to Friday.",
    "Inflation cooled more than expected.",
    "Price growth slowed faster than forecasts suggested.",
    "The bank cut interest rates by a quarter point.",
    "Borrowing costs were lowered by 25 basis points.",
    "Sales were flat compared with a year earlier.",
    "Year-on-year sales showed no change.",
    "The coin is very volatile.",
)

HELDOUT_SENTENCES: tuple[str, ...] = (
    FINANCIAL + NEGATION + NUMBERS + GENERAL + SHORT + MIXED + LONG + PARAPHRASE
)
"""All held-out sentences, in a fixed order."""
