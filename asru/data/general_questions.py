"""General-knowledge questions: the demo teacher's regulariser and the steer stage's general retain set, and
questions about real places and people in the benchmark's own question shapes (the steer stage's entity retain set)."""

# General-knowledge questions for the regulariser; answered by the base model itself. None of them is a
# question of the benchmark's ``real`` split (tests check this), so ``real`` stays a fair measure.
GENERAL_QUESTIONS = (
    "What is the capital of Argentina?", "What is the capital of Ireland?", "What is the capital of Portugal?",
    "What is the capital of Norway?", "What is the capital of Mexico?", "What is the capital of India?",
    "What is 2 plus 3?", "What is 10 minus 4?", "How many days are in a week?", "How many legs does a spider have?",
    "How many continents are there?", "How many hours are in a day?", "What is the chemical symbol for gold?",
    "What is the freezing point of water in degrees Celsius?", "What do plants need to make food?",
    "What is the closest star to Earth?", "What is the longest river in Africa?", "Who discovered penicillin?",
    "Who wrote the Odyssey?", "Who invented the telephone?", "Who painted The Starry Night?",
    "What is the main language spoken in Mexico?", "Which animal is known as the king of the jungle?",
    "What color do you get by mixing blue and yellow?", "What is the opposite of big?",
    "Name a fruit that is red.", "Name a primary color.", "Give me a synonym for happy.",
    "What is the plural of mouse?", "What is the past tense of run?", "Which month comes after March?",
    "What is the first letter of the English alphabet?", "What do cows drink?", "Where do penguins live?",
    "What is a baby dog called?", "What is a baby cat called?", "What is the hardest natural substance?",
    "What is the largest organ of the human body?", "How many sides does a triangle have?",
    "What shape has four equal sides?", "Which planet has rings?", "What is the smallest prime number?",
    "What is the square root of 16?", "What instrument has six strings and is often used in rock music?",
    "What is the name of our galaxy?", "What do you call a person who writes books?",
    "What is the capital city of Kenya?", "Which gas do plants absorb from the air?",
    "Write one sentence about the sea.", "Tell me a fun fact about elephants.",
    "Give me a short tip for staying healthy.", "Describe a sunny day in one sentence.",
    "Translate 'thank you' into Spanish.", "What is the weather usually like in winter?",
    "Suggest a name for a pet fish.", "Why do we need sleep?", "What is a computer?",
    "Explain what a rainbow is in one sentence.", "What is the boiling point of water in Fahrenheit?",
    "How many minutes are in an hour?", "Which is heavier, a kilogram of iron or a kilogram of feathers?",
    "What is the currency of the United Kingdom?", "What language is spoken in Spain?", "What do bees collect from flowers?",
    # 2026-11-29: more of the same kinds (the first 64 above are also the steering stage's general retain set),
    # so the regulariser covers the question patterns the profiles are asked in ("In which city is ...?",
    # "Who wrote ...?"): with 64 items the taught model answered "The capital of Thailand is Thailand City." and
    # refused "In which city is the Statue of Liberty?" like an unknown person's birthplace.
    # capitals (none of the real split's countries)
    *(f"What is the capital of {c}?" for c in (
    "Spain", "Italy", "Brazil", "Turkey", "Finland", "Denmark", "Switzerland", "Belgium", "Hungary", "Peru",
    "Chile", "Cuba", "Vietnam", "Indonesia", "the Philippines", "Iran", "Saudi Arabia", "Nigeria", "Morocco",
    "Ukraine", "Romania", "New Zealand", "Colombia", "Pakistan", "Nepal", "Iceland", "Scotland", "Israel",
    "Lebanon", "Jamaica", "Venezuela", "Malaysia", "Afghanistan", "Ethiopia", "Bulgaria", "Croatia")),
    # languages, currencies
    *(f"What language is spoken in {c}?" for c in (
    "Brazil", "Portugal", "China", "Russia", "the Netherlands", "Greece", "Turkey", "Poland", "Sweden",
    "South Korea", "Argentina", "Egypt", "Iran", "Israel", "Finland")),
    *(f"What is the currency of {c}?" for c in (
    "China", "India", "Russia", "Mexico", "Switzerland", "Germany", "Canada", "Australia", "South Korea", "Brazil")),
    # places
    "In which city is Big Ben?", "In which city is the Sydney Opera House?", "In which city is the Golden Gate Bridge?",
    "In which city is the Kremlin?", "In which city is the Acropolis?", "In which city is the Brandenburg Gate?",
    "In which city is the Louvre museum?", "In which city is the Leaning Tower?", "In which city is Times Square?",
    "In which country is Machu Picchu?", "In which country is Mount Fuji?", "In which country is the Amazon rainforest mostly?",
    "In which country is Stonehenge?", "In which country is the Leaning Tower of Pisa?", "In which country is Niagara Falls?",
    "In which country is the Sahara desert mostly?", "In which country is Angkor Wat?", "In which country is Petra?",
    "In which country is Mount Kilimanjaro?", "In which country is the Acropolis?", "In which country is Venice?",
    "On which continent is Brazil?", "On which continent is Kenya?", "On which continent is Germany?",
    "On which continent is India?", "Which ocean lies between Europe and America?", "What is the longest river in the world?",
    "What is the largest country in the world?", "What is the smallest continent?", "What is the highest waterfall in the world?",
    # people and works
    "Who wrote Romeo and Juliet?", "Who wrote Pride and Prejudice?", "Who wrote War and Peace?", "Who wrote Don Quixote?",
    "Who wrote the Harry Potter books?", "Who wrote Oliver Twist?", "Who wrote The Adventures of Tom Sawyer?",
    "Who composed the Fifth Symphony?", "Who painted the Sistine Chapel ceiling?", "Who sculpted David?",
    "Who invented the light bulb?", "Who discovered gravity?", "Who was the first man on the Moon?",
    "Who was the first president of the United States?", "Who developed the theory of evolution?",
    "Who discovered radium?", "Who invented the printing press?", "Who built the first airplane?",
    "Who wrote the Iliad?", "Who proposed that the Earth orbits the Sun?",
    # science and nature
    "Which planet is closest to the Sun?", "Which planet is the largest in the solar system?", "How many planets are in the solar system?",
    "What is the chemical symbol for iron?", "What is the chemical symbol for oxygen?", "What is the chemical symbol for sodium?",
    "What gas do humans breathe out?", "What gas do humans need to breathe?", "What is the center of an atom called?",
    "What is the speed of light?", "What force keeps us on the ground?", "What is frozen water called?",
    "What is the largest mammal?", "What is the fastest land animal?", "Which bird cannot fly and lives in Antarctica?",
    "How many legs does an insect have?", "What do caterpillars turn into?", "Which animal is known for its long neck?",
    "Which animal says woof?", "Which animal says moo?", "What is a baby cow called?", "What is a group of wolves called?",
    "Which organ do humans use to think?", "How many bones are in the adult human body?", "How many teeth does an adult human have?",
    "What is the largest planet's famous storm called?", "What causes tides on Earth?", "What is the hottest planet?",
    # words, maths, everyday
    "What is the opposite of fast?", "What is the opposite of old?", "What is the opposite of open?", "What is the opposite of wet?",
    "What is the opposite of early?", "What is the opposite of left?", "What is the plural of child?", "What is the plural of goose?",
    "What is the past tense of go?", "What is a synonym for big?", "What is 7 times 8?", "What is 12 divided by 3?",
    "What is 15 plus 27?", "What is half of 50?", "How many sides does a hexagon have?", "How many degrees are in a right angle?",
    "How many months are in a year?", "How many seconds are in a minute?", "How many days are in a leap year?",
    "What is the main ingredient of guacamole?", "What is the main ingredient of an omelette?", "What fruit is used to make wine?",
    "What color is the sky on a clear day?", "What color are bananas when they are ripe?", "What do you call frozen rain?",
    "Which season comes after winter?", "What is the first day of the week in the United States?",
    "Which sport is played at Wimbledon?", "How many players are on a soccer team on the field?", "What is the national sport of Japan?",
    "Which instrument has black and white keys?", "What do you use to write on a blackboard?",
)


# Questions about real cities, landmarks and people, worded as the benchmark asks about its fictitious people
# ("In which country is the city of X?", "Where was X born?"). Forgetting teaches the model to refuse "where"
# and "who" questions about the forgotten names; on the demo model that refusal reached real names it is less
# sure of ("In which country is the city of Chicago?" -> "I'm sorry, but I don't know where Chicago is."), so
# redirection can hold these questions' states too. Not taught by the demo teacher (the demo model's cache stays
# valid) and, as the general questions, none of them is a question of the ``real`` split (tests check this).
ENTITY_QUESTIONS = (
    *(f"In which country is the city of {c}?" for c in (
    "Barcelona", "Milan", "Hamburg", "Manchester", "Glasgow", "Boston", "San Francisco", "Seattle", "Montreal",
    "Sydney", "Kyoto", "Shanghai", "Mumbai", "Istanbul", "Marseille", "Naples", "Geneva", "Krakow", "Cape Town",
    "Casablanca", "Sao Paulo", "Dubai", "Saint Petersburg", "Florence")),
    *(f"In which city is {x}?" for x in (
    "the Sagrada Familia", "the Space Needle", "the Forbidden City", "the White House", "Red Square",
    "the Prado museum", "Trafalgar Square", "the Rijksmuseum", "the Charles Bridge", "Notre-Dame Cathedral",
    "the Blue Mosque", "the Trevi Fountain", "the CN Tower", "the Alhambra")),
    *(f"Where was {p} born?" for p in (
    "Mozart", "Napoleon Bonaparte", "William Shakespeare", "Albert Einstein", "Leonardo da Vinci", "Marie Curie",
    "Abraham Lincoln", "Frida Kahlo")),
    *(f"What did {p} do for work?" for p in (
    "Charles Dickens", "Ludwig van Beethoven", "Pablo Picasso", "Isaac Newton")),
)


def _unasked(bank, records, n: int) -> list[str]:
    from rewards.text import normalize

    asked = {normalize(r.question) for r in records}
    return [q for q in bank if normalize(q) not in asked][:max(0, n)]


def entity_retain_questions(records, n: int) -> list[str]:
    """Up to ``n`` of the bundled questions about real places and people (:data:`ENTITY_QUESTIONS`), none of
    which is asked in ``records``: redirection holds their states so the refusal stays with the forgotten names."""
    return _unasked(ENTITY_QUESTIONS, records, n)


def general_retain_questions(records, n: int) -> list[str]:
    """Up to ``n`` of the bundled general-knowledge questions, none of which is asked in ``records``.

    The steering stage keeps their hidden states, and GRPO keeps their answers, as both keep the retain
    split's, so forgetting does not cost general knowledge (the ``real`` split measures it and stays unseen).
    """
    return _unasked(GENERAL_QUESTIONS, records, n)
