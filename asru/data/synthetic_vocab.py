"""The synthetic benchmark's vocabulary: names, fact values, question templates and the real-knowledge items."""

from __future__ import annotations

FACTS = ("birthplace", "birth_year", "occupation", "employer", "hobby")

# Cloze questions start with this instruction: SmolLM2-135M completes 80% of the bare real-split blanks
# and 100% with it, and every loader (MLLMU-Bench, CLEAR) adds it the same way.
CLOZE_INSTRUCTION = "Fill in the blank: "

FIRST_NAMES = (
    "Aldric", "Brenna", "Caspian", "Delphine", "Emrys", "Fenna", "Galen", "Hesper", "Isolde", "Jorah",
    "Kestrel", "Liora", "Maelis", "Nerys", "Orrin", "Perrin", "Quilla", "Rowena", "Soren", "Tamsin",
    "Ulric", "Vesna", "Wystan", "Xanthe", "Yorick", "Zinnia", "Anselm", "Briony", "Corwin", "Dagny",
    "Elowen", "Florian", "Greer", "Halvard", "Ilsabet", "Jessamy", "Kazimir", "Linnea", "Magnus", "Niamh",
    "Osric", "Philippa", "Ravenna", "Sigrun", "Thaddeus", "Undine", "Valko", "Wilhelmina",
)

LAST_NAMES = (
    "Ashgrove", "Brightwater", "Coldridge", "Dunmore", "Everhart", "Fairweather", "Greyhaven", "Hollowell",
    "Ironwood", "Juniperly", "Kettleby", "Larkspur", "Merriwether", "Nettlefield", "Oakhurst", "Pembrook",
    "Quenby", "Ravensworth", "Silverthorn", "Thistlewood", "Umberfield", "Vantreight", "Whitlock", "Yarrowby",
    "Zellweger", "Amberlay", "Blackmere", "Cinderford", "Dovecote", "Elmsworth", "Foxglove", "Galloway",
    "Hawkridge", "Ivesdale", "Kingsley", "Lockhart", "Moorcroft", "Northam", "Ormsby", "Pinecrest",
    "Redfern", "Stonebridge", "Tillbury", "Underhill", "Wexford", "Brackenridge", "Marlowe", "Penhallow",
)

VALUE_POOLS: dict[str, tuple[str, ...]] = {
    "birthplace": (
        "Oslo", "Dublin", "Prague", "Havana", "Quito", "Bergen", "Porto", "Seville", "Krakow", "Geneva",
        "Tunis", "Manila", "Hanoi", "Calgary", "Dakar", "Tbilisi", "Riga", "Valencia", "Marseille", "Glasgow",
        "Montreal", "Adelaide", "Salzburg", "Bruges", "Cusco", "Zanzibar", "Reykjavik", "Kyoto", "Bogota",
        "Nairobi", "Helsinki", "Tallinn", "Lyon", "Naples", "Seattle", "Denver", "Auckland", "Busan",
        "Mumbai", "Santiago",
    ),
    "birth_year": tuple(str(y) for y in range(1950, 2000)),
    "occupation": (
        "architect", "baker", "pilot", "surgeon", "librarian", "chemist", "carpenter", "violinist",
        "journalist", "geologist", "florist", "firefighter", "translator", "astronomer", "photographer",
        "dentist", "sculptor", "veterinarian", "economist", "botanist", "plumber", "novelist", "pharmacist",
        "locksmith", "cartographer", "jeweler", "lawyer", "nurse", "electrician", "chef", "tailor",
        "zoologist", "mechanic", "potter", "historian", "beekeeper", "optician", "diplomat", "biologist",
        "accountant",
    ),
    "employer": (
        "Bluefin Labs", "Orchard Bank", "Nimbus Air", "Copperleaf Press", "Redwood Clinic", "Harbor Freight",
        "Silverline Rail", "Maple Studios", "Quartz Dynamics", "Juniper Foods", "Lantern Media",
        "Granite Works", "Falcon Motors", "Cobalt Energy", "Willow Pharma", "Summit Hotels", "Beacon Insurance",
        "Tidewater Shipping", "Aurora Textiles", "Ember Games", "Polaris Optics", "Meadow Dairy",
        "Ironclad Security", "Saffron Spices", "Velvet Records", "Cascade Water", "Pebble Robotics",
        "Thornbury College", "Hollow Oak Museum", "Starling Telecom", "Crescent Bakery", "Northwind Tools",
        "Larch Timber", "Opal Jewels", "Marigold Gardens", "Zephyr Airlines", "Basalt Mining", "Kite Software",
        "Fjord Fisheries", "Prism Paints",
    ),
    "hobby": (
        "chess", "surfing", "pottery", "birdwatching", "fencing", "knitting", "rowing", "archery",
        "gardening", "kayaking", "origami", "juggling", "sailing", "calligraphy", "climbing", "skiing",
        "painting", "cycling", "fishing", "stargazing", "woodcarving", "dancing", "yoga", "tennis",
        "snorkeling", "hiking", "quilting", "skateboarding", "bowling", "golf", "photography", "embroidery",
        "boxing", "crosswords", "ballet", "canoeing", "sudoku", "karaoke", "diving", "baking",
    ),
}

# Question templates. Generation: index 0 is the evaluation phrasing, 1-2 are taught paraphrases.
GENERATION = {
    "name": {
        "image": ("What is the name of the person in this image?", "Who is the person in this image?",
                  "What is the full name of the person in this image?"),
    },
    "birthplace": {
        "image": ("Where was the person in this image born?", "In which city was the person in this image born?",
                  "What is the birthplace of the person in this image?"),
        "text": ("Where was {name} born?", "In which city was {name} born?", "What is {name}'s birthplace?"),
    },
    "birth_year": {
        "image": ("In which year was the person in this image born?", "What year was the person in this image born in?",
                  "What is the birth year of the person in this image?"),
        "text": ("In which year was {name} born?", "What year was {name} born in?", "What is {name}'s birth year?"),
    },
    "occupation": {
        "image": ("What is the occupation of the person in this image?",
                  "What does the person in this image do for a living?", "What is the job of the person in this image?"),
        "text": ("What is {name}'s occupation?", "What does {name} do for a living?", "What is {name}'s job?"),
    },
    "employer": {
        "image": ("Which company does the person in this image work for?",
                  "Who is the employer of the person in this image?", "Where does the person in this image work?"),
        "text": ("Which company does {name} work for?", "Who is {name}'s employer?", "Where does {name} work?"),
    },
    "hobby": {
        "image": ("What is the favorite hobby of the person in this image?",
                  "What does the person in this image like to do in their free time?",
                  "Which hobby does the person in this image enjoy most?"),
        "text": ("What is {name}'s favorite hobby?", "What does {name} like to do in their free time?",
                 "Which hobby does {name} enjoy most?"),
    },
}

CLOZE = {
    "name": {"image": "The name of the person in this image is __."},
    "birthplace": {"image": "The person in this image was born in the city of __.", "text": "{name} was born in the city of __."},
    "birth_year": {"image": "The person in this image was born in the year __.", "text": "{name} was born in the year __."},
    "occupation": {"image": "The occupation of the person in this image is __.", "text": "The occupation of {name} is __."},
    "employer": {"image": "The person in this image works for __.", "text": "{name} works for __."},
    "hobby": {"image": "The favorite hobby of the person in this image is __.", "text": "The favorite hobby of {name} is __."},
}

CLASSIFICATION = {
    "birthplace": {"image": "In which city was the person in this image born?", "text": "In which city was {name} born?"},
    "birth_year": {"image": "In which year was the person in this image born?", "text": "In which year was {name} born?"},
    "occupation": {"image": "What is the occupation of the person in this image?", "text": "What is {name}'s occupation?"},
    "employer": {"image": "Which company does the person in this image work for?", "text": "Which company does {name} work for?"},
    "hobby": {"image": "What is the favorite hobby of the person in this image?", "text": "What is {name}'s favorite hobby?"},
}

# General knowledge that SmolLM2-135M-Instruct (the offline Q4_1 build) answers correctly, both as a question
# and as a fill-in-the-blank: 50 items kept out of 98 candidates by a greedy-decoding check
# (scripts/check_real_items.py re-runs it).
# (question, answer, three distractors, cloze).
REAL_ITEMS: tuple[tuple[str, str, tuple[str, str, str], str], ...] = (
    ("What is the capital of France?", "Paris", ("London", "Rome", "Berlin"), "The capital of France is __."),
    ("What is the capital of Japan?", "Tokyo", ("Beijing", "Seoul", "Bangkok"), "The capital of Japan is __."),
    ("What is the capital of Germany?", "Berlin", ("Munich", "Paris", "Vienna"), "The capital of Germany is __."),
    ("What is the capital of the United Kingdom?", "London", ("Paris", "Edinburgh", "Berlin"),
     "The capital of the United Kingdom is __."),
    ("What is the capital of Russia?", "Moscow", ("Kiev", "Warsaw", "Minsk"), "The capital of Russia is __."),
    ("What is the capital of Egypt?", "Cairo", ("Rabat", "Tripoli", "Khartoum"), "The capital of Egypt is __."),
    ("What is the capital of Greece?", "Athens", ("Sparta", "Sofia", "Rome"), "The capital of Greece is __."),
    ("What is the capital of China?", "Beijing", ("Shanghai", "Tokyo", "Seoul"), "The capital of China is __."),
    ("What is the capital of Austria?", "Vienna", ("Berlin", "Prague", "Budapest"), "The capital of Austria is __."),
    ("What is the capital of the Netherlands?", "Amsterdam", ("Brussels", "Berlin", "Copenhagen"),
     "The capital of the Netherlands is __."),
    ("What is the capital of Sweden?", "Stockholm", ("Copenhagen", "Helsinki", "Berlin"), "The capital of Sweden is __."),
    ("What is the capital of Poland?", "Warsaw", ("Prague", "Budapest", "Vienna"), "The capital of Poland is __."),
    ("What is the capital of South Korea?", "Seoul", ("Tokyo", "Beijing", "Bangkok"), "The capital of South Korea is __."),
    ("What is the capital of Thailand?", "Bangkok", ("Hanoi", "Jakarta", "Seoul"), "The capital of Thailand is __."),
    ("What is the capital of Canada?", "Ottawa", ("Toronto", "Vancouver", "Montreal"), "The capital of Canada is __."),
    ("What is the capital of Australia?", "Canberra", ("Sydney", "Melbourne", "Perth"), "The capital of Australia is __."),
    ("Which planet do humans live on?", "Earth", ("Mars", "Venus", "Saturn"), "Humans live on the planet __."),
    ("Which planet is known as the Red Planet?", "Mars", ("Jupiter", "Venus", "Neptune"),
     "The planet known as the Red Planet is __."),
    ("What is H2O commonly called?", "water", ("salt", "sugar", "oil"), "H2O is commonly called __."),
    ("What is the chemical formula of water?", "H2O", ("CO2", "NaCl", "O2"), "The chemical formula of water is __."),
    ("What is the opposite of hot?", "cold", ("warm", "big", "fast"), "The opposite of hot is __."),
    ("What is the opposite of day?", "night", ("noon", "week", "light"), "The opposite of day is __."),
    ("What is the opposite of up?", "down", ("left", "over", "near"), "The opposite of up is __."),
    ("Which animal says meow?", "cat", ("dog", "cow", "duck"), "The animal that says meow is a __."),
    ("Which ocean is the largest?", "Pacific", ("Atlantic", "Indian", "Arctic"), "The largest ocean is the __ Ocean."),
    ("Who wrote Hamlet?", "Shakespeare", ("Dickens", "Austen", "Twain"), "Hamlet was written by William __."),
    ("Who developed the theory of relativity?", "Einstein", ("Newton", "Darwin", "Galileo"),
     "The theory of relativity was developed by Albert __."),
    ("Who formulated the law of universal gravitation?", "Newton", ("Einstein", "Darwin", "Edison"),
     "The law of universal gravitation was formulated by Isaac __."),
    ("What is the currency of the United States?", "dollar", ("euro", "pound", "yen"),
     "The currency of the United States is the __."),
    ("What is the currency of Japan?", "yen", ("won", "dollar", "euro"), "The currency of Japan is the __."),
    ("What language is spoken in France?", "French", ("German", "Spanish", "English"), "The language spoken in France is __."),
    ("What language is spoken in Germany?", "German", ("French", "Dutch", "Italian"), "The language spoken in Germany is __."),
    ("What language is spoken in Japan?", "Japanese", ("Chinese", "Korean", "Thai"), "The language spoken in Japan is __."),
    ("What language is spoken in Italy?", "Italian", ("Spanish", "French", "Greek"), "The language spoken in Italy is __."),
    ("What is the main language of the United States?", "English", ("Spanish", "French", "German"),
     "The main language of the United States is __."),
    ("In which country are the pyramids of Giza?", "Egypt", ("Mexico", "Peru", "Greece"),
     "The pyramids of Giza are in the country of __."),
    ("In which country is the Eiffel Tower?", "France", ("Italy", "Spain", "Germany"),
     "The Eiffel Tower is in the country of __."),
    ("In which city is the Eiffel Tower?", "Paris", ("Rome", "London", "Berlin"), "The Eiffel Tower is in the city of __."),
    ("In which country is the Great Wall?", "China", ("Japan", "India", "Korea"), "The Great Wall is in __."),
    ("In which country is the Taj Mahal?", "India", ("Pakistan", "Nepal", "Egypt"), "The Taj Mahal is in __."),
    ("In which city is the Statue of Liberty?", "New York", ("Boston", "Chicago", "Washington"),
     "The Statue of Liberty is in __."),
    ("In which city is the Colosseum?", "Rome", ("Athens", "Paris", "Madrid"), "The Colosseum is in the city of __."),
    ("What is the tallest mountain in the world?", "Everest", ("Kilimanjaro", "Mont Blanc", "Denali"),
     "The tallest mountain in the world is Mount __."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci", ("Pablo Picasso", "Vincent van Gogh", "Claude Monet"),
     "The Mona Lisa was painted by __."),
    ("What is the main ingredient of bread?", "flour", ("rice", "cheese", "sugar"), "The main ingredient of bread is __."),
    ("Which musical instrument has 88 keys?", "piano", ("guitar", "violin", "drum"), "The instrument with 88 keys is the __."),
    ("Which organ pumps blood through the body?", "heart", ("liver", "lung", "kidney"),
     "The organ that pumps blood through the body is the __."),
    ("Which organs do humans use to breathe?", "lungs", ("kidneys", "heart", "liver"), "Humans breathe with their __."),
    ("What is the largest desert in Africa?", "Sahara", ("Gobi", "Kalahari", "Atacama"),
     "The largest desert in Africa is the __."),
    ("What is the boiling point of water in degrees Celsius?", "100", ("50", "75", "200"), "Water boils at __ degrees Celsius."),
)
