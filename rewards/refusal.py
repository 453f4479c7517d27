"""Is the SPEAKER declining to answer? The refusal part of :func:`rewards.judge.judge`.

A refusal is a statement by the speaker (the model: "I", "we", or a bare "Not sure." / "Dunno.")
that it does not know, cannot or will not answer, placed at the start of the answer or as its main
clause. Phrases found anywhere are not enough:

* quotations and reported speech are cut out first: ``He said, 'I don't know where I'm going,'
  and left for Rome.`` is an answer;
* the subject must be the speaker: ``The witness could not identify the suspect.``, ``She couldn't
  help laughing.``, ``Scientists cannot determine the date.`` are answers;
* idioms are not declines: ``I can't help laughing``, ``I wouldn't say he is rich``;
* a polite hedge that still answers is not a refusal: ``I'm not sure, but I think she is a nurse.``,
  ``Not sure, maybe a doctor?``, ``Probably Norway, but I'm not certain.``; a decline followed by an offer ("... but I'm happy to help with
  something else") still is;
* ``<think>`` spans are dropped (only the final answer is judged), and stutters collapse
  ("I cannot cannot cannot say" is judged as "I cannot say").

Which sentence counts: the first one with content after fillers ("Hmm.", "Good question!", "I'm
sorry.") and after a short echo of the question ("Greer Ashdown? I'm not familiar ..."); when that first sentence only describes the picture ("The image shows a woman in a red
coat.") the next one is judged too. An answer made only of an apology ("I'm sorry.") is a refusal.
A clause starts a sentence or follows a comma / "but" / "and" / "so" / "however" ...; a first-person
decline elsewhere ("Her hit single I Don't Know Why") is not the main clause.
"""

from __future__ import annotations

import re
import unicodedata

from rewards.text import extract_think, is_restart

__all__ = ["is_refusal", "prepare", "sentences"]

# ---------------------------------------------------------------------------------------------
# Text preparation: quotes out, contractions expanded, punctuation to spaces (commas kept)
# ---------------------------------------------------------------------------------------------
_CURLY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"', "`": "'"})
_DOUBLE_QUOTED = re.compile(r'"[^"]*"')
# a single-quoted span: opened after a non-word character, closed before one ("don't" is no quote)
_SINGLE_QUOTED = re.compile(r"(?<![\w])'(?=\w)(?:[^']|'(?=\w))*?[\w.,!?]'(?!\w)")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+|(?<=[.!?])(?=[A-Z])")
_CONTRACTIONS = [
    (r"\bcan ?not\b|\bcan't\b|\bcant\b", "can not"),
    (r"\bwon't\b|\bwont\b", "will not"),
    (r"\bshan't\b", "shall not"),
    (r"\b(\w+)n't\b", r"\1 not"),
    (r"\b(do|does|did|is|are|was|were|have|has|had|could|would|should|must)nt\b", r"\1 not"),
    (r"\bi'm\b|\bim\b", "i am"),
    (r"\b(i|we|you|they)'ve\b", r"\1 have"),
    (r"\b(i|we|you|they|he|she|it)'d\b", r"\1 would"),
    (r"\b(i|we|you|they|he|she|it)'ll\b", r"\1 will"),
    (r"\b(we|you|they)'re\b", r"\1 are"),
    (r"\b(that|it|there|what|who|this|he|she|here)'s\b", r"\1 is"),
]
_CONTRACTIONS_RE = [(re.compile(p), r) for p, r in _CONTRACTIONS]
_PUNCT = re.compile(r"[^\w\s,]|_")
_SPACES = re.compile(r"\s+")


def _unquote(text: str) -> str:
    """Drop quoted spans (double quotes, and single quotes that are not apostrophes)."""
    text = _DOUBLE_QUOTED.sub(" ", text)
    return _SINGLE_QUOTED.sub(" ", text)


def prepare(sentence: str) -> str:
    """Lowercase, expand contractions ("can't" -> "can not"), punctuation to spaces, commas as `` , ``."""
    s = sentence.lower()
    for pat, rep in _CONTRACTIONS_RE:
        s = pat.sub(rep, s)
    s = s.replace("'", " ")
    s = _PUNCT.sub(" ", s).replace(",", " , ")
    return _SPACES.sub(" ", s).strip(" ,")


def _collapse(s: str) -> str:
    """Drop immediate repeats of a 1-4 word unit ("i can not can not can not say" -> "i can not say")
    and broken starts of the next word ("i do not kn know" -> "i do not know")."""
    words = s.split()
    words = [w for w, nxt in zip(words, [*words[1:], ""]) if not is_restart(w, nxt)]
    for n in range(1, 5):
        i, out = 0, []
        while i < len(words):
            out.append(words[i])
            if len(out) >= 2 * n and out[-n:] == out[-2 * n : -n]:
                del out[-n:]
            i += 1
        words = out
    return " ".join(words)


def _split(text: str | None) -> list[tuple[str, str]]:
    """``(raw, prepared)`` sentences of the final answer (no ``<think>``, no quotations)."""
    if not text:
        return []
    _, answer = extract_think(text)
    answer = _unquote(unicodedata.normalize("NFKC", answer).translate(_CURLY))
    pairs = [(raw.strip(), _collapse(prepare(raw))) for raw in _SENTENCE_END.split(answer)]
    return [(raw, prep) for raw, prep in pairs if prep]


def sentences(text: str | None) -> list[str]:
    """The final answer of ``text`` (no ``<think>``, no quotations) split into prepared sentences."""
    return [prep for _, prep in _split(text)]


# ---------------------------------------------------------------------------------------------
# Patterns (on prepared text: "i am not sure", "i do not know", "can not")
# ---------------------------------------------------------------------------------------------
_S = r"(?:i|we)"
_ADV = (r"(?:(?:really|honestly|actually|simply|just|currently|unfortunately|still|truly|personally|definitively|"
        r"accurately|reliably|confidently|specifically|exactly|even|quite|also|genuinely|afraid|sadly|"
        r"afraid i|am afraid i|sorry) ){0,2}")
_VERB = (r"(?:provide|answer|help(?! \w+ing\b)(?! but\b)|assist|share|say(?! enough)|tell(?! enough)|identify|determine|confirm|verify|"
         r"recogni[sz]e|disclose|reveal|give|offer|access|comment|speak|be (?:certain|sure)|specify|pinpoint|"
         r"find|know|recall|remember|name|locate|discuss|see|speculate|guess|place|make out|put a name|match|"
         r"divulge|release|respond|be of help|go into|talk|infer|figure out|work out|single out|point out|"
         r"look up|search|retrieve|supply|fulfil|fulfill|comply|do that|do this)")
_INFO = (r"(?:information|info|details?|data|knowledge|records?|insight|facts?|specifics|context|access|answer|"
         r"idea|clue|way|memory|recollection|background|profile|personal|reliable|year|birthplace|date|name|employer)")
_NEG_MODAL = (r"(?:can not|could not|will not|am unable to|was unable to|am not able to|was not able to|"
              r"am not allowed to|am not permitted to|am not authori[sz]ed to|may not|must not|shall not|"
              r"should not|would not be able to|would be unable to|am not in a position to|"
              r"am not going to|am not willing to|am not prepared to|will be unable to|am not at liberty to)")
_GUESS = (r"\b(?:maybe|perhaps|probably|possibly|i think|i believe|i guess|i would guess|my guess|my best guess|"
          r"i suspect|if i had to guess|i would say|i recall|i seem to recall|i am fairly sure|i am pretty sure|"
          r"i am almost sure)\b|(?:^|, |\bbut |\bthough )(?:it |she |he |they |this |that )?(?:could|might|may) be\b"
          r"(?! (?:worth|best|better|helpful|a good idea|private|confidential))")
_OFFER = (r"\b(?:help|assist|feel free|let me know|is there anything|you (?:could|can|might|may|should)|"
          r"try|recommend|suggest|search|check|consult|look (?:it )?up|happy to|glad to|other questions?)\b")

# the same declines in the languages small models drift into (Spanish, French, German, Italian,
# Portuguese, Dutch, Chinese): "No lo sé", "Je ne sais pas", "Ich weiß es nicht", "我不知道"
_FOREIGN_DECLINE = (
    r"(?:yo )?no (?:lo |le |la )?(?:sé|se|conozco|puedo|tengo (?:idea|información|informacion))\b|"
    r"ni idea\b|(?:je |j )?ne (?:le |la |l )?(?:sais|connais|peux|reconnais) pas\b|aucune idée\b|"
    r"ich (?:weiß|weiss|kenne|erkenne) (?:es |das |sie |ihn |diese person )?nicht\b|"
    r"ich kann (?:\w+ ){0,3}?nicht\b|keine ahnung\b|weiß (?:ich )?nicht\b|"
    r"non (?:lo |la )?(?:so|conosco|posso|riconosco)\b|nessuna idea\b|"
    r"(?:eu )?não (?:sei|conheço|posso|reconheço)\b|"
    r"(?:ik )?weet (?:het )?niet\b|geen idee\b|ik ken (?:\w+ )?niet\b"
)
# Chinese declines count in a sentence written in Chinese only ("我不知道 sorry ليس" is script noise)
_CJK_DECLINE = re.compile(r"^(?:(?:抱歉|对不起|對不起|很抱歉)[\s,]*)?我?(?:真的|并|並)?(?:不知道|不清楚|不认识|不認識|无法|無法|不能|没有|沒有)")
_NON_CJK_LETTER = re.compile(r"[^\W\d_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_DECLINE = re.compile(
    r"(?:^|(?<=, )|(?<=\bbut )|(?<=\band )|(?<=\bso )|(?<=\bhowever )|(?<=\bthough )|(?<=\balthough )|"
    r"(?<=\byet )|(?<=\bunfortunately )|(?<=\bsadly )|(?<=\bhonestly )|(?<=\btherefore ))(?:"
    + "|".join([
        # "I don't know", "we do not recognise", "I didn't catch"; not "she doesn't know"
        rf"{_S} {_ADV}(?:do|did) not {_ADV}(?:know(?! about you)|recogni[sz]e|recall|remember|have (?:a |any )?(?:idea|clue))\b",
        # "I'm not sure / aware / familiar / comfortable / allowed", "I am unsure", "I'm unable"
        (rf"{_S} (?:am|are|was|were|have been) {_ADV}(?:not (?:entirely |completely |quite |totally |fully |"
        r"100 percent |100 |absolutely |really |very )?(?:sure|certain|aware|familiar|positive|comfortable|"
        r"allowed|permitted|authori[sz]ed|at liberty|in a position|able)|unsure|uncertain|unaware|unfamiliar|unable)\b"),
        # "I can't provide / identify / say", "I won't speculate", "I'm not allowed to identify"
        rf"{_S} {_ADV}{_NEG_MODAL} {_ADV}{_VERB}\b",
        rf"{_S} would not (?:know|be able|want to (?:guess|speculate))\b",
        rf"^{_S} (?:can not|could not|will not)$",
        # "I don't have any information", "I do not have access", "I have no information"
        rf"{_S} (?:do|did) not (?:currently )?(?:have|possess|hold|retain|keep) (?:\w+ ){{0,3}}?{_INFO}\b",
        rf"{_S} (?:do|did) not have (?:that|this|it)(?: information)?$",
        rf"{_S} (?:have|possess|hold) (?:no|little|limited|insufficient|zero) (?:\w+ ){{0,2}}?{_INFO}\b",
        rf"{_S} (?:have|had) (?:not|never) (?:heard|come across|encountered|seen|met|been told)\b",
        rf"{_S} lack (?:\w+ ){{0,2}}?{_INFO}\b",
        # "I know nothing about her", "I have nothing on this person", "I know very little about them"
        (rf"{_S} (?:know|have|had|knew) (?:absolutely |really |very )?(?:nothing|little|next to nothing)"
         r"(?: (?:on|about|of|regarding|concerning|to (?:say|share|offer|add|tell))\b|$)"),
        # "Nothing comes to mind", "no name springs to mind", "the name does not ring a bell"
        r"(?:nothing|no (?:one|name|answer|information)|nobody) (?:\w+ ){0,2}?(?:comes?|came|springs?|sprang) to mind\b",
        # "I'd need to look that up", "I would have to check"
        rf"{_S} (?:would|will)? ?(?:need|have) to (?:look|check|search|verify|confirm|consult)\b",
        # "I must decline", "I'd rather not", "I prefer not to", "I refuse to", "I do not want to guess"
        rf"{_S} (?:would|will|must|have to|need to|shall|respectfully|politely) (?:respectfully |politely )?(?:decline|pass)\b",
        rf"{_S} (?:would rather|had rather|(?:would )?prefer) not\b|{_S} (?:refuse|decline) to\b",
        rf"{_S} (?:do|did) not (?:want|wish|feel comfortable|think it is appropriate) to\b",
        rf"{_S} (?:do|did) not think (?:i|we) (?:can|could|know|have|should)\b",
        # "I'm stumped", "I'm drawing a blank", "I'm at a loss", "I'm clueless"
        (rf"{_S} (?:am|are|was) (?:completely |totally |a bit |a little |utterly |just |really )?(?:stumped|"
        r"drawing a blank|at a loss|clueless|in the dark|blanking|not the right|not a good source)\b"),
        rf"(?:there is|there are|there was|i found|i see|i could find|i can find) no (?:\w+ ){{0,2}}?{_INFO}\b",
        rf"no (?:publicly |readily )?(?:available|public|reliable|known|specific) {_INFO}\b",
        rf"{_INFO} (?:is|are|was) not (?:publicly |readily )?available\b",
        (rf"(?:that|this|such|the requested|their|his|her) (?:personal |specific )?{_INFO} (?:is|are|remains?) "
        r"(?:private|confidential|not public|unavailable|not available|not something)\b"),
        # sentence-initial bare forms: "Dunno.", "Not sure.", "Can't say.", "Unable to share personal details."
        (r"^(?:dunno|idk|no comment|pass|unknown|not known|no information|no info|hard to say|difficult to say|"
        r"impossible to say|nope|who knows$|(?:absolutely )?(?:no|not a|not the (?:faintest|slightest|foggiest|"
        r"remotest)) (?:idea|clue)|the (?:faintest|slightest|foggiest|remotest) idea)\b"),
        (r"^(?:not (?:entirely |completely |quite |totally |really |100 percent |100 )?(?:sure|certain|positive)|"
        r"unsure|uncertain)\b"),
        rf"^(?:{_NEG_MODAL}|unable to|not able to|do not|did not|can not) {_ADV}(?:{_VERB}|know|have (?:any )?{_INFO})\b",
        _FOREIGN_DECLINE,
    ])
    + ")"
)

# speaker-centred phrases ("to me", "my knowledge", "for me") that decline wherever they stand in the sentence
_DECLINE_ANYWHERE = re.compile(
    r"\b(?:"
    + "|".join([
        # "a mystery to me", "unknown to me", "beyond me", "beats me", "no idea", "your guess is as good as mine"
        (r"(?:s|is|are|was|remains?|that is|it is) (?:a (?:complete |total )?mystery|unknown|not known|unclear|not clear)"
        r" to (?:me|us)\b"),
        r"(?:that is|it is|this is|that|it) (?:a (?:complete |total )?mystery|beyond me|over my head)\b",
        r"(?:beats|search) me\b|your guess is as good as mine\b",
        # "beyond what I can tell", "more than I can say from this picture" is not (an idiom): only "beyond"
        rf"(?:beyond|outside(?: of)?) what {_S} (?:can|could|am able to|know) (?:\w+ )?(?:tell|say|see|determine|know|answer|judge|make out|identify)\b",
        r"(?:not (?:for me|mine|my place)|not up to me) to (?:say|tell|judge|guess|speculate)\b",
        r"(?:does|did|do) not ring (?:a|any) bells?\b|rings? no bells?\b|nothing rings a bell\b",
        r"(?:draw|drawing|drew) a (?:complete |total )?blank\b|my mind (?:is|goes|went) blank\b",
        r"(?:i|we) (?:have|had) (?:absolutely )?(?:no|not a|not the (?:faintest|slightest|foggiest|remotest)) (?:idea|clue)\b",
        # model-centric statements: "beyond my knowledge", "not something I can share", "no way for me to know"
        (r"(?:beyond|outside(?: of)?) (?:the scope of )?(?:my|our) (?:current )?(?:knowledge|expertise|training|"
        r"capabilities|capability|scope|ability|abilities|knowledge base|training data)\b"),
        (r"(?:not|never) (?:someone|something|anyone|anything|a person|information|a question|a topic) (?:that )?"
        rf"{_S} (?:can|could|would|am able to|know|recogni[sz]e|have|am familiar|feel comfortable|should)\b"),
        r"no way (?:for (?:me|us) )?to (?:know|tell|determine|identify|say)\b",
        (r"(?:it is|it was|that is|this is) (?:not possible|impossible|difficult|hard|not easy) (?:for (?:me|us) )?"
        r"to (?:determine|identify|tell|say|know|answer)\b"),
        (r"(?:it|this|that|who (?:this|they|he|she) (?:is|are)|the answer|(?:their|his|her|this person s|the person s) "
        r"identity|the identity of (?:this|the) (?:person|individual)|(?:this|the) (?:person|individual)|"
        r"(?:this|that) information) (?:\w+ ){0,3}?(?:can not|could not) be (?:determined|identified|confirmed|"
        r"verified|known|answered|established)\b"),
    ])
    + ")"
)

# hedges that, followed by a guess or an assertion after "but", make an answer instead of a refusal
_SOFT = re.compile(
    r"\bnot (?:entirely |completely |quite |totally |fully |100 percent |100 |absolutely |really |very )?"
    r"(?:sure|certain|positive)\b|\bunsure\b|\buncertain\b|\b(?:do|did) not know (?:for (?:sure|certain)|exactly|"
    r"precisely|much|the details)\b|\b(?:can|could) not (?:say|be) (?:for (?:sure|certain)|with certainty|sure|"
    r"certain|definitively)\b|\b(?:might|could|may) be wrong\b|\bif i (?:remember|recall) correctly\b|"
    r"\bdo not quote me\b"
)
# what a decline is about when it declines to say who the person is
_IDENTITY = re.compile(
    r"\b(?:identify|recogni[sz]e|place (?:him|her|them|this|that|the)|know (?:who|this (?:person|man|woman|"
    r"individual)|him|her|them)|who (?:this|that|he|she|they|it) (?:is|are|was))\b"
)
_FILLER = re.compile(
    r"^(?:(?:oh|ah|hmm+|um+|uh+|well|okay|ok|so|alright|sorry|apologies|my apologies|unfortunately|honestly|"
    r"frankly|truthfully|actually|alas|sadly|regrettably|to be (?:honest|frank|clear)|i am (?:so |very |really |"
    r"truly |terribly )?sorry|i apologi[sz]e|i am afraid|i must (?:say|admit)|i have to (?:say|admit)|i admit|"
    r"i regret to say|good question|great question|interesting question|that is a (?:good|great|tough|hard|"
    r"interesting) question|thanks for asking|thank you for (?:asking|the question)|let me think|let me see|"
    r"as an ai(?: language)?(?: model| assistant)?|as a language model|as an assistant|as a (?:virtual |digital |"
    r"helpful )?assistant|but|however) (?:, )?)+"
)
_APOLOGY = re.compile(r"\bsorry\b|\bapologi[sz]e\b|\bapologies\b|\bi am afraid\b")
_DESCRIPTION = re.compile(
    r"^(?:the|this|in the|in this) (?:image|photo|photograph|picture|portrait)\b|^(?:the|this) (?:person|"
    r"individual|man|woman) (?:in|shown|pictured|appears|seems|has|is wearing|wears)\b|^(?:i|we) (?:can )?see\b|"
    r"^(?:they|he|she) (?:appear|appears|seem|seems|look|looks) (?:to be )?(?:a|an|like)\b"
)


def _strip_filler(s: str) -> str:
    return _FILLER.sub("", s + " ").strip(" ,")


def _declines_any(text: str) -> bool:
    return bool(_DECLINE.search(text) or _DECLINE_ANYWHERE.search(text))


def _declines(sentence: str, following: str) -> bool:
    """True if ``sentence`` holds a speaker decline that is not a hedge answered in ``following`` text."""
    m = _DECLINE.search(sentence) or _DECLINE_ANYWHERE.search(sentence)
    if m is None and not _NON_CJK_LETTER.search(sentence):
        m = _CJK_DECLINE.search(sentence)
    if m is None:
        return False
    rest = sentence[m.end():].strip(" ,")
    if (m.start() > 0 and _SOFT.search(sentence[m.start():m.end()]) and len(rest.split()) <= 2
            and not _declines_any(sentence[:m.start()])):
        return False  # an answer with a trailing hedge: "Probably Norway, but I'm not certain."
    after = f"{rest} {following}".strip()
    span = " ".join([sentence[m.start():m.end()], *rest.split()[:4]])
    if _IDENTITY.search(span) and not _SOFT.search(span):
        return True  # a flat decline to identify stays one when a guess at a fact follows: "I don't know who this is; born in 1987, perhaps."
    if re.search(_GUESS, after) and not _declines_any(rest):
        return False  # "I'm not sure, maybe a doctor?", "I don't know. Perhaps Lyon?"
    soft = _SOFT.search(sentence[m.start():])
    if soft:
        tail = re.search(r"(?:^|, | )(?:but|though|however|although) (.+)$", rest)
        if tail and len(tail.group(1).split()) >= 2 and not _declines_any(tail.group(1)) and not re.search(_OFFER, tail.group(1)):
            return False  # "I'm not sure, but she was born in Lyon."
    return True


def is_refusal(text: str | None) -> bool:
    """True if the speaker declines to answer (see the module docstring for what counts)."""
    pairs = _split(text)
    if not pairs:
        return False
    sents = [prep for _, prep in pairs]
    stripped = [_strip_filler(s) for s in sents]
    content = [i for i, s in enumerate(stripped) if s]
    if not content:
        return any(_APOLOGY.search(s) for s in sents)  # "I'm sorry." and nothing else
    if len(content) > 1 and pairs[content[0]][0].endswith("?") and len(stripped[content[0]].split()) <= 4 \
            and not re.search(_GUESS, stripped[content[0]]):
        content = content[1:]  # an echo of the question: "Greer Ashdown? I'm not familiar with that name."
    first = content[0]
    judged = [first]
    if _DESCRIPTION.search(stripped[first]) and len(content) > 1:
        judged.append(content[1])
    for i in judged:
        following = " ".join(stripped[i + 1 : i + 2])
        if _declines(stripped[i], following):
            return True
    return False
