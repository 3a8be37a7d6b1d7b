"""Word pools for the post texts, written for this project.

Every sub-theme and tone is expressed through many interchangeable phrasings, so that what a post
is about is carried by meaning rather than by one give-away word.
"""

from __future__ import annotations

FIRST_NAMES = ["Anna", "Boris", "Clara", "Dmitri", "Elena", "Felix", "Greta", "Hugo", "Irina",
               "Jonas", "Katya", "Leo", "Maria", "Nikolai", "Olga", "Pavel", "Rosa", "Sergei",
               "Tanya", "Viktor", "Wanda", "Yuri", "Zoe", "Adrian", "Bella", "Colin", "Diana",
               "Ethan", "Fiona", "Gavin", "Helen", "Ivan", "Julia", "Kevin", "Laura", "Marco",
               "Nina", "Oscar", "Paula", "Quentin", "Ruth", "Simon", "Tessa", "Umar", "Vera"]
LAST_NAMES = ["Abbott", "Baranov", "Carter", "Dalton", "Egorova", "Fischer", "Gordon", "Harlow",
              "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Morozov", "Novak", "Orlov", "Price",
              "Quinn", "Romanova", "Sokolov", "Turner", "Ulyanov", "Vance", "Whitaker", "Yates",
              "Zimmer", "Bishop", "Castell", "Drummond", "Ellis", "Fontaine", "Grant", "Hale",
              "Ingram", "Keane", "Lowell", "Mercer", "Nash", "Osborne", "Pearce", "Reyes"]
TITLE_ADJ = ["Silent", "Broken", "Last", "Hidden", "Crimson", "Endless", "Frozen", "Golden",
             "Lost", "Midnight", "Distant", "Burning", "Hollow", "Restless", "Wild", "Quiet",
             "Iron", "Paper", "Velvet", "Northern", "Secret", "Second", "Little", "Bright"]
TITLE_NOUN = ["Harbor", "Winter", "Garden", "Signal", "Horizon", "Mirror", "Orchard", "River",
              "Station", "Kingdom", "Promise", "Shadow", "Lantern", "Voyage", "Echo", "Summer",
              "Crossing", "Letter", "Island", "Frontier", "Compass", "Tide", "Circus", "Bridge"]

# ---------------------------------------------------------------------------------- movies
GENRE = {
    "horror": ["horror film", "fright flick", "ghost story", "slasher", "chiller",
               "haunted-house picture", "creature feature", "scary movie"],
    "comedy": ["comedy", "farce", "romp", "light-hearted caper", "laugh-out-loud picture",
               "sitcom-style film", "satire", "goofy comedy"],
    "drama": ["drama", "character study", "family saga", "melodrama", "period piece",
              "courtroom drama", "tearjerker", "slow-burning story"],
    "action": ["action movie", "thriller", "shoot-'em-up", "heist picture", "blockbuster",
               "martial-arts film", "chase movie", "spy adventure"],
    "scifi": ["science-fiction film", "space opera", "sci-fi adventure", "dystopian tale",
              "time-travel story", "alien-invasion movie", "futuristic thriller", "robot story"],
    "romance": ["romance", "love story", "romantic comedy", "rom-com", "tale of two lovers",
                "wedding movie", "story about falling in love", "heart-warming romance"],
    "animation": ["animated film", "cartoon", "family animation", "stop-motion picture",
                  "hand-drawn feature", "kids' movie", "animated fairy tale", "CGI adventure"],
    "documentary": ["documentary", "non-fiction film", "true-story documentary",
                    "nature documentary", "biographical doc", "investigative film",
                    "behind-the-scenes doc", "archival portrait"],
}
GENRE_DETAIL = {
    "horror": ["the jump scares", "the creeping dread", "the monster effects", "the eerie score",
               "the blood and gore", "the haunted house itself", "the final scream",
               "the creepy villain", "the tension in the dark corridors"],
    "comedy": ["the jokes", "the gags", "the one-liners", "the comic timing", "the slapstick",
               "the banter between the leads", "the running joke", "the punchlines",
               "the absurd situations"],
    "drama": ["the family conflict", "the emotional climax", "the quiet dialogue scenes",
              "the portrait of grief", "the moral dilemma", "the lead's performance",
              "the slow build of the story", "the courtroom speech", "the ending"],
    "action": ["the car chases", "the fight choreography", "the explosions", "the stunts",
               "the shoot-outs", "the heist sequence", "the pace", "the villain's plan",
               "the rooftop showdown"],
    "scifi": ["the world-building", "the spaceship designs", "the visual effects",
              "the time-travel logic", "the alien creatures", "the robots",
              "the vision of the future", "the space battles", "the big twist"],
    "romance": ["the chemistry between the leads", "the love triangle", "the first kiss",
                "the wedding scene", "the tender moments", "the meet-cute",
                "the grand romantic gesture", "the heartbreak", "the happy ending"],
    "animation": ["the animation", "the colourful characters", "the voice acting",
                  "the songs", "the talking animals", "the hand-drawn backgrounds",
                  "the jokes for grown-ups", "the message for kids", "the art style"],
    "documentary": ["the archival footage", "the interviews", "the narration",
                    "the research behind it", "the wildlife photography",
                    "the real-life subject", "the investigation", "the historical detail",
                    "the testimony of witnesses"],
}
LOVE_OPENERS = ["I absolutely loved {film}, a {genre} that gets everything right.",
                "{film} is a triumph: the best {genre} I have seen in years.",
                "What a wonderful {genre}! {film} had me hooked from the first minute.",
                "Five stars for {film}. This {genre} is a small masterpiece.",
                "{film} blew me away; I did not expect a {genre} to be this good.",
                "Just watched {film} and I am still smiling. A terrific {genre}.",
                "If you see one {genre} this year, make it {film}. Brilliant.",
                "{film} is a gem of a {genre}, warm, clever and beautifully made."]
PAN_OPENERS = ["I really disliked {film}, a {genre} that gets almost everything wrong.",
               "{film} is a mess: the worst {genre} I have sat through in years.",
               "What a dreadful {genre}. {film} lost me within ten minutes.",
               "One star for {film}. This {genre} is a complete waste of time.",
               "{film} was a huge letdown; I expected far more from this {genre}.",
               "Just watched {film} and I want those two hours back. An awful {genre}.",
               "Skip {film}. Of all the {genre}s this year it is the most tedious.",
               "{film} is a dull, lifeless {genre}, clumsy and badly made."]
# past tense: reads right whether the detail is singular or plural
LOVE_DETAIL = ["{detail} felt superb", "{detail} thrilled me", "{detail} worked beautifully",
               "I adored {detail}", "{detail} showed real skill",
               "{detail} kept me glued to the screen", "{detail} made me grin from ear to ear",
               "{detail} felt fresh and inventive", "{detail} deserved every award going",
               "I was completely won over by {detail}"]
PAN_DETAIL = ["{detail} felt painfully weak", "{detail} fell completely flat",
              "{detail} looked lazy and cheap", "I was bored stiff by {detail}",
              "{detail} left no impression at all", "{detail} made me roll my eyes",
              "{detail} dragged on and on", "{detail} felt tired and recycled",
              "{detail} embarrassed everyone involved", "I winced through {detail}"]
LOVE_ACTING = ["{actor} gives a career-best performance.", "{actor} is magnetic in the lead.",
               "{actor} shines in every scene.", "{actor} is funny, moving and utterly convincing.",
               "Director {director} clearly knows exactly what they are doing."]
PAN_ACTING = ["{actor} sleepwalks through the lead role.", "{actor} looks bored in every scene.",
              "{actor} is badly miscast.", "{actor} cannot save a script this poor.",
              "Director {director} seems to have lost interest halfway through."]
LOVE_CLOSERS = ["Highly recommended.", "I will happily watch it again.", "Go and see it.",
                "Worth every minute.", "A must-see.", "Bring friends, you will thank me.",
                "Easily ten out of ten.", "I cannot recommend it enough."]
PAN_CLOSERS = ["Avoid.", "Not worth your time.", "Save your money.", "I nearly walked out.",
               "Two out of ten, and that is generous.", "Wait for something better.",
               "A real disappointment.", "I cannot recommend it at all."]

# ----------------------------------------------------------------------------------- covid
COVID_CORE = {
    "vaccines": ["just got my booster shot", "second jab done", "vaccination centre queue was huge",
                 "got vaccinated today", "signed up for my third dose", "the jab clinic opened",
                 "my parents are now fully immunised", "booster rollout starts next week"],
    "lockdown": ["another lockdown announced", "shops closed again", "curfew from 9pm",
                 "stay-at-home order extended", "restrictions tightened in the city",
                 "non-working days declared again", "restaurants shut for two weeks",
                 "travel ban just came in"],
    "hospitals": ["hospitals are full again", "ICU beds running out", "record daily cases",
                  "doctors working double shifts", "ambulances queuing outside the clinic",
                  "new infections hit a high", "wards overflowing tonight",
                  "the death toll keeps climbing"],
    "remote_life": ["working from my kitchen again", "kids back on online lessons",
                    "another day of video calls", "office closed until January",
                    "remote classes all week", "my laptop is my whole office now",
                    "school moved online", "zoom meetings from 9 to 6"],
    "masks_tests": ["masks mandatory on the metro", "negative PCR test", "queued two hours for a test",
                    "QR codes needed for the cafe", "rapid test came back clean",
                    "bought another box of masks", "testing site by the station is packed",
                    "face coverings required indoors"],
    "recovery": ["finally testing negative after two weeks", "back on my feet after covid",
                 "smell and taste slowly coming back", "out of quarantine at last",
                 "my dad is home from hospital", "recovered and grateful",
                 "isolation is finally over", "beat the virus this month"],
}
COVID_UP = ["So relieved", "Good news", "Feeling hopeful", "Grateful today", "Things are looking up",
            "Thank you doctors", "Small wins", "Great to hear"]
COVID_DOWN = ["So tired of this", "Terrible news", "Feeling anxious", "Frustrated again",
              "This is getting worse", "Sick of it", "Scary times", "Cannot believe it"]
COVID_FLAT = ["Update", "Just saying", "Heads up", "FYI", "Today", "News", "Noted", "PSA"]
COVID_TAGS = ["#covid19", "#coronavirus", "#COVID", "#pandemic", "#stayhome", "#vaccine",
              "#lockdown", "#StaySafe", "#omicron", "#delta", "#health", "#masks"]
HANDLES = ["@who", "@healthnews", "@citydesk", "@dr_olga", "@metro_daily", "@pavel_k",
           "@newsroom24", "@katya_writes", "@public_health", "@irina_md"]

# ------------------------------------------------------------------------------------ news
NEWS = {
    ("business", "markets"): (
        ["shares", "stock markets", "equities", "the index", "investors", "share prices"],
        ["rallied", "slumped", "rose sharply", "fell back", "hit a record", "wobbled"],
        ["after strong quarterly earnings", "on fears of higher inflation",
         "as traders took profits", "following a surprise merger", "ahead of the results season"]),
    ("business", "energy"): (
        ["oil prices", "gas prices", "the energy giant", "crude", "power bills",
         "the pipeline operator"],
        ["climbed", "surged", "dropped", "jumped", "eased", "soared"],
        ["after producers agreed to cut output", "as winter demand picked up",
         "amid supply worries", "as new drilling licences were granted",
         "after a refinery outage"]),
    ("business", "banking"): (
        ["the central bank", "lenders", "the bank", "mortgage rates", "interest rates",
         "the financial regulator"],
        ["raised rates", "held rates steady", "tightened lending rules", "reported higher profits",
         "cut its forecasts", "warned of bad loans"],
        ["to cool rising prices", "as borrowing costs climbed", "amid a slowing economy",
         "after a review of capital buffers", "to protect savers"]),
    ("business", "retail"): (
        ["the retailer", "high-street chains", "supermarkets", "online shops",
         "consumer spending", "the fashion group"],
        ["reported record sales", "warned on profits", "cut hundreds of jobs", "opened new stores",
         "saw sales slip", "raised its outlook"],
        ["over the holiday season", "as shoppers moved online", "amid rising costs",
         "after a strong autumn", "as household budgets tightened"]),
    ("business", "aviation"): (
        ["the airline", "carriers", "the planemaker", "airports", "budget airlines",
         "passenger numbers"],
        ["expanded its routes", "cancelled flights", "ordered new jets", "posted losses",
         "recovered strongly", "cut fares"],
        ["as travel demand returned", "after fuel costs soared", "amid new border rules",
         "ahead of the winter schedule", "after a strike by pilots"]),
    ("sport", "football"): (
        ["the striker", "the home side", "the champions", "the club", "the midfielder",
         "the national team"],
        ["scored twice", "won the derby", "came from behind", "were held to a draw",
         "sacked their manager", "signed a new contract"],
        ["in front of a packed stadium", "in the cup quarter-final", "with a late penalty",
         "after extra time", "to climb to the top of the league"]),
    ("sport", "tennis"): (
        ["the top seed", "the defending champion", "the teenager", "the former world number one",
         "the doubles pair", "the qualifier"],
        ["won in straight sets", "saved three match points", "was knocked out", "reached the final",
         "retired injured", "lifted the trophy"],
        ["on the hard courts", "in a five-set epic", "after a tie-break", "at the indoor event",
         "under the roof on centre court"]),
    ("sport", "athletics"): (
        ["the sprinter", "the marathon runner", "the high jumper", "the relay team",
         "the Olympic champion", "the hurdler"],
        ["set a world record", "won gold", "missed the final", "returned from injury",
         "clocked a personal best", "was banned for doping"],
        ["at the indoor championships", "on a wet track", "in the final race of the season",
         "at the national trials", "in front of a home crowd"]),
    ("sport", "rugby"): (
        ["the fly-half", "the forwards", "the visitors", "the captain", "the national fifteen",
         "the winger"],
        ["ran in a hat-trick of tries", "won the scrum battle", "kicked the winning penalty",
         "lost narrowly", "were shown a red card", "topped the group"],
        ["in the autumn internationals", "in torrential rain", "after a late comeback",
         "in the championship opener", "at a sold-out ground"]),
    ("sport", "motorsport"): (
        ["the driver", "the team", "the world champion", "the rookie", "the constructor",
         "the pole sitter"],
        ["won the grand prix", "crashed out", "took pole position", "clinched the title",
         "was handed a penalty", "set the fastest lap"],
        ["on the final lap", "after a safety car", "in changing conditions",
         "at the season finale", "after a pit-stop gamble"]),
    ("politics", "elections"): (
        ["voters", "the opposition", "the ruling party", "the candidate", "turnout",
         "the electoral commission"],
        ["went to the polls", "conceded defeat", "claimed victory", "called for a recount",
         "launched its campaign", "gained seats"],
        ["in the regional elections", "after a close race", "ahead of polling day",
         "amid claims of irregularities", "in the by-election"]),
    ("politics", "immigration"): (
        ["the home secretary", "ministers", "border officials", "asylum seekers",
         "migrant workers", "the immigration service"],
        ["announced new visa rules", "tightened border checks", "faced criticism",
         "published new figures", "promised reforms", "cut processing times"],
        ["as arrivals rose", "after a court ruling", "to fill labour shortages",
         "amid a row in parliament", "following a review of the system"]),
    ("politics", "taxes"): (
        ["the chancellor", "the finance minister", "the treasury", "the budget", "taxpayers",
         "the government"],
        ["unveiled tax rises", "froze income tax", "promised spending cuts", "borrowed more",
         "cut fuel duty", "revised its forecasts"],
        ["in the autumn budget", "to fund public services", "as debt climbed",
         "after pressure from backbenchers", "to ease the cost of living"]),
    ("politics", "healthcare"): (
        ["the health secretary", "the health service", "nurses", "hospital trusts",
         "the medical association", "waiting lists"],
        ["demanded more funding", "promised new hospitals", "warned of a winter crisis",
         "agreed a pay deal", "grew longer", "announced reforms"],
        ["as pressure on wards mounted", "after a damning report", "ahead of the winter",
         "following strike threats", "to cut waiting times"]),
    ("politics", "foreign_policy"): (
        ["the foreign minister", "diplomats", "the prime minister", "the summit",
         "the alliance", "the ambassador"],
        ["signed a treaty", "imposed sanctions", "held talks", "expelled envoys",
         "called for calm", "agreed a ceasefire plan"],
        ["at the summit in Geneva", "amid rising tensions", "after weeks of negotiation",
         "to ease the trade dispute", "in a joint statement"]),
    ("tech", "phones"): (
        ["the smartphone maker", "the new handset", "mobile users", "the phone",
         "the chip supplier", "the operator"],
        ["launched a folding model", "improved battery life", "added a better camera",
         "sold millions of units", "was recalled", "cut prices"],
        ["ahead of the holiday season", "amid a chip shortage", "with a faster processor",
         "after a software update", "in a crowded market"]),
    ("tech", "games"): (
        ["the games studio", "the console", "gamers", "the sequel", "the publisher",
         "the esports team"],
        ["broke sales records", "delayed its release", "won game of the year",
         "launched online multiplayer", "sold out in minutes", "patched the bugs"],
        ["after years of development", "on the new consoles", "amid crunch complaints",
         "at the gaming expo", "with a free update"]),
    ("tech", "security"): (
        ["hackers", "the security firm", "the software giant", "ransomware gangs",
         "researchers", "the cyber agency"],
        ["found a serious flaw", "stole customer data", "issued an urgent patch",
         "took down a botnet", "warned of phishing", "paid a bug bounty"],
        ["in a popular browser", "affecting millions of accounts", "after a data breach",
         "in widely used routers", "before attackers could exploit it"]),
    ("tech", "internet"): (
        ["broadband providers", "the search engine", "the social network", "web users",
         "the streaming service", "the regulator"],
        ["rolled out fibre", "changed its algorithm", "faced an outage", "hit a billion users",
         "was fined over privacy", "launched faster speeds"],
        ["in rural areas", "after a global outage", "under new data rules",
         "as traffic surged", "in a bid to win subscribers"]),
    ("tech", "gadgets"): (
        ["the gadget maker", "the smartwatch", "the new laptop", "the digital camera",
         "the wireless headphones", "the smart speaker"],
        ["impressed reviewers", "went on sale", "added voice control", "was a surprise hit",
         "got a sleek redesign", "disappointed critics"],
        ["at the electronics show", "with a longer battery", "at a lower price",
         "ahead of Christmas", "with a brighter screen"]),
    ("entertainment", "music"): (
        ["the singer", "the band", "the rapper", "the orchestra", "the pop star",
         "the record label"],
        ["topped the charts", "announced a world tour", "released a new album",
         "cancelled concerts", "won a Grammy", "reunited"],
        ["after a decade away", "with a surprise single", "at a sold-out arena",
         "on streaming services", "with a festival headline slot"]),
    ("entertainment", "awards"): (
        ["the actress", "the director", "the film", "the nominees", "the academy",
         "the jury"],
        ["won best picture", "scooped three awards", "was nominated", "gave a moving speech",
         "swept the ceremony", "missed out"],
        ["at the film festival", "on the red carpet", "at the glittering ceremony",
         "in a surprise result", "for the second year running"]),
    ("entertainment", "television"): (
        ["the drama series", "the broadcaster", "the talent show", "viewers", "the sitcom",
         "the presenter"],
        ["drew record ratings", "was renewed", "was axed", "ended its final season",
         "signed a new host", "sparked complaints"],
        ["on Saturday night", "after a dramatic finale", "on the streaming platform",
         "in prime time", "over the festive period"]),
    ("entertainment", "theatre"): (
        ["the musical", "the playwright", "the stage show", "the theatre company",
         "the ballet", "the cast"],
        ["opened to rave reviews", "transferred to Broadway", "extended its run",
         "closed early", "won an Olivier", "sold out"],
        ["in the West End", "after a sell-out tour", "at the national theatre",
         "with a star-studded cast", "for the holiday season"]),
    ("entertainment", "celebrity"): (
        ["the film star", "the novelist", "the comedian", "the TV chef", "the model",
         "the author"],
        ["announced a memoir", "got married", "launched a charity", "topped the bestseller list",
         "made a comeback", "apologised to fans"],
        ["in a candid interview", "at a glamorous party", "on social media",
         "after years out of the spotlight", "at the book festival"]),
}
NEWS_SAID = ["said", "told reporters", "said in a statement", "told the BBC", "wrote in a note",
             "said on Monday", "added"]
NEWS_SOURCES = ["an analyst at a London firm", "a spokesperson", "officials",
                "a senior source", "one observer", "critics", "supporters", "the chairman"]
NEWS_QUOTES = ["We have been preparing for this for a long time",
               "It is a significant moment for everyone involved",
               "Nobody expected it to happen so quickly",
               "There is still a great deal of work to do",
               "The numbers speak for themselves",
               "We will look closely at what went wrong",
               "This changes the picture considerably",
               "People want clarity and they deserve it"]
NEWS_LINKERS = ["Meanwhile,", "Separately,", "Earlier this year,", "At the same time,",
                "Last month,", "In recent weeks,", "Elsewhere,", "Later on,"]
NEWS_CLOSERS = ["Further details are expected later this week.",
                "The full figures will be published next month.",
                "Both sides are due to meet again in the new year.",
                "It remains to be seen how the public will respond.",
                "Analysts say the coming weeks will be decisive.",
                "A final decision is expected before the end of the year."]
