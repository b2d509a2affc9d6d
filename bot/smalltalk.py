"""Messages with nothing to learn: greetings, thanks, acknowledgements, one-word answers.

Each one the writer skips saves an extraction call (Mem0's prompt is about 8,000 tokens of
instructions around the message). The test is deliberately narrow: a message is skipped only
when every word of it is small talk, or it has no more than one word, or no letters at all. A
short message with a fact in it ("I'm vegan", "moved to Oslo") is always learned.
"""

from __future__ import annotations

import re

__all__ = ["only_small_talk", "worth_learning"]

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# Scripts written without spaces between words (Chinese, Japanese, Korean syllables): there a
# "word" of the pattern above is a whole clause, so its characters are counted instead.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

# Words that carry no fact about the person on their own; a message made only of these (and of
# punctuation, emoji and numbers) is small talk.
_SMALL_TALK = frozenset({
    "hi", "hello", "hey", "hiya", "yo", "heya", "howdy", "greetings", "morning", "afternoon",
    "evening", "night", "good", "gm", "gn", "thanks", "thank", "thx", "ty", "cheers", "thankyou",
    "appreciated", "appreciate", "it", "much", "so", "very", "lot", "a", "you", "ok", "okay", "k",
    "kk", "alright", "sure", "yes", "yeah", "yep", "yup", "no", "nope", "nah", "maybe", "fine",
    "great", "cool", "nice", "awesome", "perfect", "got", "gotcha", "understood", "noted",
    "right", "indeed", "true", "exactly", "agreed", "sounds", "that's", "thats", "lol", "lmao",
    "haha", "hahaha", "hehe", "wow", "oh", "ah", "hmm", "hm", "um", "uh", "welcome", "please",
    "bye", "goodbye", "later", "see", "ya", "cya", "ttyl", "np", "problem", "worries", "all",
    "is",
})


def worth_learning(text: str) -> bool:
    """False when ``text`` has nothing a memory could be made of: no letters, a single word, or
    only words of greeting, thanks and acknowledgement. True otherwise, including whenever in
    doubt."""
    words = [word.lower() for word in _WORD.findall(text)]
    if _UNSPACED.search(text):
        return len(_UNSPACED.findall(text)) > 2
    if len(words) <= 1:
        return False
    return not all(word in _SMALL_TALK for word in words)


def only_small_talk(text: str) -> bool:
    """True when ``text`` has no letters or only words of greeting, thanks and acknowledgement
    ("Thanks!", "ok great"); a single word that is not small talk ("Vegetarian") is not."""
    if _UNSPACED.search(text):
        return False
    return all(word.lower() in _SMALL_TALK for word in _WORD.findall(text))
