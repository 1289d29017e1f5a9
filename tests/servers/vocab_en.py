"""English vocabulary of the test server's generated instructions, inputs and outputs.

Why a module of its own: these tables are data, not logic; keeping them out of
openai_server.py keeps that module about serving. Every table is explained where it is used
(tests/servers/openai_server.py, generate_instruction and the answer functions).
"""

from __future__ import annotations

import re

# Every good instruction avoids the Self-Instruct/Alpaca blacklist even as a substring
# (image, graph, picture, file, map, draw, plot, go to, video, audio, music, flowchart,
# diagram): "paragraph", "photography", "profile" or "drawback" would be dropped by a
# substring filter, so they do not appear. Generation frames also avoid the classification
# keywords, so that the classify answer is Yes exactly for the classification frames.

EN_TOPICS: tuple[str, ...] = (
    "the water cycle", "compound interest", "remote work", "the French Revolution",
    "sourdough baking", "electric cars", "sleep hygiene", "volcanoes", "black holes",
    "public libraries", "honeybees", "urban gardening", "the Roman Empire", "climate change",
    "renewable energy", "personal budgeting", "job interviews", "time management",
    "machine learning", "the human immune system", "coral reefs", "the stock market",
    "recycling programs", "chess openings", "marathon training", "vegetarian cooking",
    "ancient Egypt", "the printing press", "solar panels", "first aid", "public speaking",
    "online privacy", "cryptocurrency", "the Olympic Games", "houseplants", "minimalism",
    "the Silk Road", "photosynthesis", "inflation", "electric bicycles", "meditation",
    "the Industrial Revolution", "tea ceremonies", "space tourism", "plastic pollution",
    "volunteering", "board games", "the Great Barrier Reef", "composting",
    "wildfire prevention", "negotiation skills", "bird migration", "vaccines", "fast fashion",
    "the Renaissance", "desert ecosystems", "microplastics", "earthquakes", "freelancing",
    "the Moon landing", "origami", "antibiotics", "mountain hiking", "quantum computing",
    "urban traffic", "the Cold War", "coffee farming", "language learning", "team sports",
    "artificial sweeteners", "central banks", "carbon taxes", "dog training",
    "the Amazon rainforest", "digital literacy", "social media addiction",
    "community gardens", "ocean tides", "the Apollo program", "wind turbines",
    "home insurance", "credit scores", "food waste", "the Byzantine Empire",
    "vertical farming", "citizen science", "noise pollution", "the Mars rovers",
    "rainwater harvesting", "circadian rhythms", "grocery shopping on a budget",
    "retirement savings", "cybersecurity", "the Great Depression", "electric grids",
    "pottery", "camping safety", "nuclear fusion", "medieval castles", "shared housing",
    "microfinance", "bicycle commuting", "the periodic table", "glaciers", "cloud computing",
    "online dating", "wine tasting", "the Ottoman Empire", "aging populations",
    "handwriting", "fermentation", "open-source software", "the Arctic", "street food",
    "patent law", "earthquake-resistant buildings", "beekeeping", "local elections",
    "the Panama Canal", "sign language", "hybrid work schedules", "e-books",
    "kindergarten education", "balcony gardening", "tsunamis", "supply chains",
    "the Wright brothers", "hydroponics", "fossil fuels", "the Northern Lights",
    "independent bookstores", "dinosaurs", "tropical storms", "cooking with kids",
    "fire safety at home", "moving to a new city", "sustainable tourism",
    "rare earth metals", "ride-sharing apps", "homeschooling", "sports injuries",
    "the gig economy", "desalination", "mushroom foraging", "the Mongol Empire",
    "biodiversity loss", "electric scooters", "public transport", "tax returns",
    "food allergies", "smart homes", "3D printing", "virtual reality", "knitting",
    "chocolate making", "the Hubble Space Telescope", "jazz improvisation",
    "ancient Greek theater", "lighthouses", "sea turtles", "standardized testing",
)

EN_AUDIENCES: tuple[str, ...] = (
    "a ten-year-old", "busy executives", "first-year university students", "retirees",
    "a non-native English speaker", "a skeptical reader", "new parents",
    "small business owners", "high school students", "a curious grandparent",
    "software engineers", "night-shift nurses", "readers of a local newspaper",
    "first-time tourists", "a job candidate", "food bank volunteers", "a book club",
    "an elementary school teacher", "a city council member", "farmers", "complete beginners",
    "a podcast audience", "newsletter subscribers", "museum visitors", "science fair judges",
    "a sports coach", "college applicants", "hospital administrators", "amateur chefs",
    "a startup founder", "people with slow internet access", "a debate team",
    "travel bloggers", "online learners", "a neighborhood association", "exchange students",
    "librarians", "factory workers", "a radio host", "lawyers", "teenage gamers",
    "first-time voters", "stay-at-home dads", "rural doctors", "apprentice electricians",
)
# How an audience joins an imperative sentence; questions only use "for {a}".
EN_AUDIENCE_LEADS: tuple[str, ...] = (
    "for {a}", "for {a}", "aimed at {a}", "suitable for {a}", "with {a} in mind",
    "so that {a} can follow it", "that would make sense to {a}",
)

EN_CONSTRAINTS: tuple[str, ...] = (
    "in under 50 words", "using only simple words", "in three bullet points",
    "without using technical jargon", "in a humorous tone", "with one concrete example",
    "in the style of a sports commentator", "as a numbered list", "in exactly two sentences",
    "using an analogy from cooking", "in a friendly and encouraging voice",
    "while staying strictly neutral", "in fewer than one hundred words",
    "with a catchy title", "ending with a question for the reader",
    "from the point of view of a historian", "in the form of a short dialogue",
    "with at least one surprising statistic", "in plain language",
    "with a clear call to action", "in the second person", "using a metaphor about the ocean",
    "addressing two common objections", "in a single tweet-length message", "step by step",
    "with a short summary at the end", "in a formal register",
    "without mentioning any brand names", "in rhyming couplets",
    "from the perspective of a child", "with a list of key terms",
    "in the voice of a pirate", "using examples from everyday life",
    "in no more than five lines", "in an optimistic tone",
    "comparing it to something familiar", "with three follow-up questions",
    "in a calm, reassuring tone", "as if writing for an encyclopedia", "in a playful way",
    "citing one historical example", "without exceeding 120 words",
    "while avoiding exaggeration", "and keep each sentence short",
    "highlighting what beginners usually overlook", "including a memorable quote",
)

EN_FORMATS: tuple[str, ...] = (
    "short poem", "haiku", "limerick", "news article", "blog post introduction",
    "motivational speech", "product review", "short story", "cover letter", "diary entry",
    "fable", "FAQ section", "radio advertisement", "job advertisement", "press release",
    "movie synopsis", "menu description", "travel guide entry", "wedding toast",
    "letter to the editor", "sonnet", "eulogy", "bedtime story", "recipe introduction",
    "horoscope", "thank-you note", "LinkedIn post", "podcast episode outline", "op-ed",
    "children's rhyme", "museum plaque", "product slogan", "stand-up comedy routine",
    "campaign speech", "apology email", "book blurb", "tour itinerary", "lab report abstract",
)

EN_NUMBERS: tuple[str, ...] = ("two", "three", "four", "five", "six", "seven", "ten")
EN_LANGUAGES: tuple[str, ...] = (
    "Spanish", "French", "German", "Japanese", "Italian", "Portuguese", "Korean", "Dutch",
)

# Frames use "[a|b|c]" alternations (expanded by _expand) so that two items from the same
# frame share only a few words: word-level ROUGE-L between them stays well under 0.7.
# {aud} and {cons} are optional slots (" for ..." / " in ..." or nothing).
EN_IMPERATIVE_FRAMES: tuple[str, ...] = (
    "[Explain|Clarify|Break down|Demystify|Unpack] {topic}{aud}{cons}.",
    "[Write|Compose|Draft|Produce|Pen] a {fmt} [about|on|inspired by|that celebrates|that"
    " pokes fun at|centered on] {topic}{aud}.",
    "Summarize the [main|strongest|most common|most convincing] arguments [for and against|in"
    " favor of|against] {topic}{cons}.",
    "[Give|Share|Offer|Suggest] {n} [practical|simple|low-cost|evidence-based|unusual|"
    "time-saving] [tips|habits|strategies|rules of thumb] [on|for|about] {topic}{aud}.",
    "[Suggest|Invent|Propose|Come up with] {n} [creative|catchy|memorable|witty] names for a"
    " [podcast|newsletter|club|festival|workshop series] about {topic}.",
    "[Rewrite|Rephrase|Revise|Edit] the following [sentence|announcement|complaint|note|"
    "message] about {topic} [so that it sounds|to make it] [more formal|friendlier|more concise|"
    "less technical|more persuasive]{aud}.",
    "[Create|Prepare|Put together|Design] a [short|quick|fun|ten-minute] quiz with {n}"
    " questions about {topic}{aud}.",
    "Describe how {topic} has [changed|evolved|developed|shifted] over the [last fifty years|"
    "past century|last decade|past two generations]{cons}.",
    "[List|Weigh|Outline|Set out] the [advantages and disadvantages|benefits and risks|"
    "strengths and weaknesses|costs and benefits] of {topic}{cons}.",
    "[Propose|Sketch|Plan] a [weekend|one-day|week-long|family-friendly] [schedule|itinerary|"
    "program] that involves {topic} on a [tight|modest|generous] budget.",
    "Write a [persuasive|polite|passionate|short] letter to [the mayor|a newspaper|the school"
    " board|a local charity|your neighbors] about {topic}{cons}.",
    "Compare {topic} with {topic2} in terms of [cost, risk and benefit|public impact|long-term"
    " value|ease of learning|environmental footprint].",
    "Draft [an email|a message|a short note] to a [colleague|manager|mentor|client] asking for"
    " feedback on a [report|proposal|presentation|draft] about {topic}.",
    "[Generate|Prepare|Write|List] {n} [interview|discussion|exam|icebreaker] questions [for an"
    " expert on|about|for a debate on] {topic}.",
    "[Find|Spot|Expose|Point out] the [logical flaw|weak assumption|hidden bias|factual error]"
    " in the following [argument|claim|advertisement|opinion] about {topic}.",
    "[Outline|Plan|Structure|Design] a [lesson|workshop|lecture|study session|training day] on"
    " {topic}{aud}.",
    "[Provide|Write|Put together] a [beginner's guide|starter kit|first-week plan|quick-start"
    " guide] [to|for] {topic}{cons}.",
    "Write a [dialogue|conversation|debate|phone call] between [two friends|a parent and a"
    " teenager|a doctor and a patient|two neighbors|a teacher and a student] who [disagree"
    " about|are discussing|are confused about] {topic}.",
    "[Invent|Write|Create|Compose] a [riddle|brain teaser|trivia question] whose answer is"
    " [connected to|related to|hidden in] {topic}{aud}.",
    "[Estimate|Work out|Guess] how much [a beginner|a family|a small company|a student|a"
    " school] should [budget|set aside|spend each month] for {topic} and [justify the estimate|"
    "explain your reasoning|list the main costs].",
    "Tell me [a fun fact|an interesting story|a surprising detail|a little-known fact] about"
    " {topic}[ that most people do not know|| that would impress my friends].",
    "Define the [key terms|basic concepts|essential words|ten most useful terms] a newcomer to"
    " {topic} should learn first{cons}.",
    "Recommend {n} [books|podcasts|documentaries|online courses|magazines] for someone"
    " [curious about|new to|passionate about|struggling with] {topic}.",
    "Write a [product description|sales pitch|review|user manual introduction] for a [gadget|"
    "mobile app|service|subscription box] that helps with {topic}.",
    "Turn the following [notes|bullet points|meeting minutes|interview answers] about {topic}"
    " into a [coherent summary|short report|clear email|news brief].",
    "[Extract|Pull out|Collect] all the [dates|names|numbers|places|claims] mentioned in the"
    " following [text|article|transcript|letter] about {topic}[| and list them in order| and"
    " group them by type| and count them].",
    "Design a [simple|cheap|home|classroom] experiment to test a [popular claim|common belief|"
    "widespread assumption] about {topic}.",
    "Write a [short|cheerful|urgent|witty] social media post announcing a [community event|"
    "charity drive|public lecture|free workshop] about {topic}.",
    "[Brainstorm|Pitch|Imagine|Propose] {n} [startup|business|side project|charity] ideas"
    " [related to|built around|that address] {topic}.",
    "[Create|Make|Prepare|Compile] a [checklist|to-do list|packing list|safety checklist|"
    "shopping list] for {topic}{aud}.",
    "Offer advice to a [student|career changer|retiree|teenager|young professional] who wants"
    " to [specialize in|get into|learn about|start a career in] {topic}{cons}.",
    "Write the opening [line|scene|sentence|chapter summary] of a [mystery|science fiction|"
    "romance|comedy|thriller] novel in which {topic} plays a central role.",
    "[Rank|Order|Sort] the following [factors|options|reasons|arguments] by their [impact on|"
    "relevance to|importance for] {topic}[ and explain your ranking| and justify each choice|"
    "]{aud}.",
    "[Paraphrase|Reword|Simplify|Restate] the given [statement|quote|definition|headline] about"
    " {topic}{cons}.",
    "[Correct|Fix|Proofread] [any grammar mistakes|the spelling errors|the punctuation|awkward"
    " phrasing] in the following [text|email|essay|announcement] about {topic}.",
    "Translate the following [sentence|sign|greeting card|short notice] about {topic} into"
    " {lang}.",
    "[Predict|Forecast|Imagine] {n} ways {topic} might [change|evolve|surprise us] by the year"
    " [2030|2040|2050|2100].",
    "[Argue|Make the case|Write a short speech] for [more|less|better targeted] public funding"
    " of {topic}{cons}.",
    "[Debunk|Correct|Challenge|Fact-check] a [common|popular|persistent|dangerous] myth about"
    " {topic}{aud}.",
    "Summarize the following [article|blog post|speech|report|review] about {topic}{cons}.",
    "[Develop|Design|Create] a [thirty-day|one-week|seven-day|month-long] challenge built"
    " around {topic}.",
    "[Create|Coin|Suggest] a [motivational|funny|memorable|short] slogan for a [campaign|school"
    " club|local shop|nonprofit] about {topic}.",
    "Answer the following question about {topic}{aud}.",
    "Point out the [weaknesses|risks|hidden costs|blind spots] in this [proposal|policy|"
    "business idea|budget] about {topic}.",
    "Name {n} [famous|influential|overlooked|controversial] [people|inventions|events|places]"
    " associated with {topic} and [say why they matter|explain their importance|describe each"
    " briefly].",
    "Suggest a [catchy|thoughtful|provocative|funny] [headline|title|subtitle] for an [essay|"
    "article|opinion piece|academic talk] on {topic}.",
    "Teach me the basics of {topic}{cons}.",
)

EN_QUESTION_FRAMES: tuple[str, ...] = (
    "What are the [most common|biggest|most persistent|most harmful] [misconceptions|myths|"
    "misunderstandings] about {topic}{aud}?",
    "[How would you|How can I|What is the best way to|How should a teacher] [explain|"
    "introduce|describe|summarize|present] {topic}{aud}?",
    "Why do [some people|many students|so many adults|beginners|older relatives] [find|"
    "consider] {topic} [difficult|hard|intimidating|confusing|boring][| at first| to discuss]?",
    "What questions should a [journalist|policy maker|curious student|skeptical investor] ask"
    " [when investigating|before supporting|about] {topic}?",
    "[How can|In what ways can|Why should] a [small town|large city|rural school|family"
    " business|public hospital] [benefit from|invest in|learn from] {topic}?",
    "What would [happen|change|people miss] if {topic} [disappeared|became illegal|became"
    " free|doubled in popularity] [tomorrow|overnight|next year|within a decade]?",
    "Which [skills|personal qualities|tools|habits|school subjects] [are most useful|matter"
    " most|help the most] for someone [working on|interested in|new to] {topic}{aud}?",
    "What [ethical|practical|legal|environmental] [concerns|questions|challenges] does {topic}"
    " raise{aud}?",
    "How [does|will|could] {topic} [affect|change|shape|influence] the daily [life|routine|"
    "budget] of [ordinary families|people in big cities|farmers|teenagers|older adults]?",
    "Where should a [beginner|curious adult|busy parent|retired engineer|high school"
    " graduate] [start|begin|look first] when [learning about|getting into|exploring|reading up"
    " on] {topic}[| on a small budget| with only an hour a week| without a teacher]?",
    "What [lessons|warnings|good habits|practical ideas] can [businesses|schools|governments|"
    "athletes|artists] [learn from|take from|borrow from] {topic}{aud}?",
    "[How might|How will|In what ways could] {topic} [look different|change|be transformed] in"
    " [a hundred years|the next decade|twenty years|another century]{aud}?",
    "When did {topic} first [become|start to be] [widely discussed|popular|a public concern|"
    "part of school curricula|a topic in newspapers], and [why|who pushed it forward|what"
    " changed]?",
    "What is the [strongest|weakest|most emotional|most practical] argument [in favor of|"
    "against] {topic}?",
    "[Can you describe|Could you sketch|Would you outline] a typical [day|week|morning|"
    "workday] for [someone|a professional|a volunteer|an intern] who [works with|studies|writes"
    " about|teaches] {topic}?",
    "In what ways are {topic} and {topic2} [connected|similar|different|at odds]?",
)

# Classification frames: each names its labels so that output-first instances can reuse them.
EN_CLASSIFICATION_FRAMES: tuple[str, ...] = (
    "[Classify|Categorize] the following [review|comment|testimonial|tweet|forum post] [of|"
    "about|on] {topic} as positive, negative, or neutral.",
    "Decide whether the following [statement|claim|sentence|rumor] about {topic} is true or"
    " false.",
    "Identify whether the given [sentence|remark|line from an interview|headline] about"
    " {topic} is a fact or an opinion.",
    "Determine whether the following [email|text message|newsletter|letter] about {topic} is"
    " spam or not spam.",
    "Categorize the following [news headline|press release|article summary] about {topic}"
    " into politics, business, science, sports, or culture.",
    "[Analyze|Judge|Assess] the sentiment of this [customer comment|product review|forum"
    " reply|survey answer] about {topic}.",
    "Given a question about {topic}, tell whether it can be answered with yes or no.",
    "Label the following [message|email|reply|notice] about {topic} as formal or informal.",
    "Which category does the following [expense|purchase|receipt] related to {topic} belong"
    " to: housing, food, transport, or leisure?",
    "Detect whether the following [text|passage|story|leaflet] about {topic} was written for"
    " children or for adults.",
    "Classify the following [comment|answer|tip|forum reply] about {topic} as helpful or"
    " unhelpful.",
    "Is the following [claim|statement|headline|rumor] about {topic} supported by evidence?"
    " Answer yes or no.",
)

# Optional tails for classification frames: different words, same task.
EN_CLASSIFICATION_TAILS: tuple[str, ...] = (
    "", "", "", " Reply with the label only.", " Explain your choice in one sentence.",
    " If unsure, pick the closest option.", " Give a confidence score from 1 to 5.",
    " Quote the words that justify your answer.", " Consider the author's intent.",
    " Ignore spelling mistakes.", " Base your answer only on the text.",
    " Justify the answer briefly.", " Treat sarcasm carefully.",
)

EN_WRAPPERS: tuple[str, ...] = ("Please {x}.", "Could you {x}?", "I need you to {x}.")

EN_BLACKLISTED: tuple[str, ...] = (
    "Draw a picture of {topic}.",
    "Plot a graph of {topic} over the last decade.",
    "Create an image that represents {topic}.",
    "Make a map of places connected to {topic}.",
    "Record a video that explains {topic}.",
    "Compose music inspired by {topic}.",
    "Go to the library and find a book on {topic}.",
)
EN_TOO_SHORT: tuple[str, ...] = (
    "Do it now.", "Summarize this.", "Explain.", "Tell me more.", "Try again.",
)
EN_PROGRAMS: tuple[str, ...] = (
    "Write a program that tracks {topic}.",
    "Write a program that answers questions about {topic}.",
    "Write a program that ranks articles about {topic}.",
)
EN_FILLERS: tuple[str, ...] = (
    "brief", "simple", "clear", "new", "good", "quick", "modern", "useful", "detailed", "fresh",
)

EN_INPUTS: tuple[str, ...] = (
    "I have been reading about {topic} and I am not sure where to start.",
    "Our team wants to learn more about {topic} before the next meeting.",
    "{Topic} is often misunderstood, but it affects daily life in many ways.",
    "Notes: {topic}; key benefit: saves time; key risk: higher cost.",
    "What is the single most important thing to know about {topic}?",
    "A friend says {topic} is a waste of time. How should I respond?",
    "The report on {topic} was delayed because the data arrived late.",
    "Last year our town held its first meeting about {topic}, and forty people came.",
)
EN_OUTPUTS: tuple[str, ...] = (
    "A good starting point for {topic} is to learn the basic terms and try one small example.",
    "{Topic} matters because it changes how people plan, spend and decide.",
    "In short, {topic} works best when the goals are clear and progress is measured.",
    "Three points stand out about {topic}: it has a long history, it keeps evolving, and it"
    " rewards practice.",
    "Most experts agree that {topic} benefits from patience, curiosity and honest feedback.",
    "One common mistake with {topic} is trying to do everything at once.",
    "Think of {topic} like a garden: small, regular care brings the best results.",
    "People who enjoy {topic} usually begin with a simple goal and build on it week by week.",
)

# Label sets: (trigger substrings, labels, input template per label).
EN_LABEL_SETS: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    (("positive, negative", "positive or negative", "sentiment"), (
        ("Positive", "I absolutely loved {topic}; it was worth every minute."),
        ("Negative", "Honestly, {topic} was a huge disappointment for me."),
        ("Neutral", "I tried {topic} once and it was fine, nothing special."),
    )),
    (("true or false",), (
        ("True", "{Topic} has been discussed by researchers for many years."),
        ("False", "{Topic} was invented last Tuesday by a single person."),
    )),
    (("fact or an opinion", "fact or opinion"), (
        ("Fact", "{Topic} is mentioned in many school textbooks."),
        ("Opinion", "{Topic} is the most boring subject anyone could study."),
    )),
    (("spam",), (
        ("Spam", "CONGRATULATIONS! Click here to win a free course on {topic} now!!!"),
        ("Not spam", "Hi Sam, could we move our meeting about {topic} to Thursday?"),
    )),
    (("formal or informal",), (
        ("Formal", "We would be grateful for your comments on the attached summary of {topic}."),
        ("Informal", "hey, wanna chat about {topic} later? lol"),
    )),
    (("politics, business",), (
        ("Politics", "Parliament debates new rules on {topic}"),
        ("Business", "Investors pour money into start-ups focused on {topic}"),
        ("Science", "New study sheds light on {topic}"),
        ("Sports", "Local team raises funds with a charity match about {topic}"),
        ("Culture", "Museum opens an exhibition celebrating {topic}"),
    )),
    (("housing, food",), (
        ("Housing", "Monthly rent for a flat near a centre for {topic}"),
        ("Food", "Groceries for a dinner party about {topic}"),
        ("Transport", "Train ticket to a conference on {topic}"),
        ("Leisure", "Weekend workshop on {topic}"),
    )),
    (("children or", "for adults"), (
        ("Children", "Did you know? {Topic} can be super fun, just like a game!"),
        ("Adults", "A detailed review of {topic} and its long-term financial implications."),
    )),
    (("helpful or unhelpful",), (
        ("Helpful", "If you are new to {topic}, start with the free guide on the city website."),
        ("Unhelpful", "Whatever, {topic} is dumb."),
    )),
    (("yes or no",), (
        ("Yes", "Is {topic} taught in most schools?"),
        ("No", "Why do people enjoy {topic} so much?"),
    )),
)

EN_CLASSIFICATION_KEYWORDS: tuple[str, ...] = (
    "classify", "classification", "categorize", "categorise", "identify whether", "is it",
    "which category", "sentiment", "true or false", "yes or no", "fact or an opinion",
    "fact or opinion", "spam", "decide whether", "determine whether", "detect whether",
    "label the", "label each",
)
EN_CLASSIFICATION_RE = re.compile(
    r"\b(?:" + "|".join(re.escape(k) for k in EN_CLASSIFICATION_KEYWORDS) + r")\b",
    re.IGNORECASE,
)
