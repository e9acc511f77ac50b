"""Which replies ask to stop (REPLY_STOP_WORDS, in Russian and English), and when the opt-out
check pauses a task."""

from __future__ import annotations

import pytest

from invite.engine.opt_outs import verdict
from invite.engine.replies import StopWords
from invite.engine.reply_rows import OptOutWindow
from invite.kernel.settings import Settings

DEFAULTS = StopWords(Settings().stop_phrases)


@pytest.mark.parametrize(
    "text",
    [
        "СТОП",
        "Стоп!",
        "Пожалуйста, больше не пишите мне.",
        "хочу отписаться",
        "Отпишитесь от меня",
        "STOP",
        "Please unsubscribe me",
        "Don't message me again",
        "don’t write to me",  # a typographic apostrophe
        "This is spam",
        "leave me alone!!!",
        "opt-out",
    ],
)
def test_a_stop_in_either_language_is_found_whatever_its_case_and_punctuation(text: str) -> None:
    assert DEFAULTS.said(text)


@pytest.mark.parametrize(
    "text",
    [
        "Спасибо, интересно",
        "Пишите, конечно",  # «пишите» without «не»
        "не знаю, что вам писать",
        "Thanks, tell me more",
        "stopwatch for sale?",  # a stop word inside another word is not one
        "unsubscribed already?",
        "",
    ],
)
def test_other_replies_do_not_opt_out(text: str) -> None:
    assert not DEFAULTS.said(text)


def test_the_words_are_a_setting_and_yo_is_e() -> None:
    settings = Settings(reply_stop_words="довольно, не надо ещё")
    words = StopWords(settings.stop_phrases)
    assert settings.stop_phrases == ("довольно", "не надо ещё")
    assert words.said("Довольно.")
    assert words.said("не надо еще, спасибо")
    assert not words.said("стоп")


@pytest.mark.parametrize(
    ("window", "paused"),
    [
        (OptOutWindow(reached=19, blocked=0, opt_outs=19), None),  # too few people to judge
        (OptOutWindow(reached=20, blocked=1, opt_outs=1), None),
        (OptOutWindow(reached=20, blocked=0, opt_outs=2), "opt_outs"),
        (OptOutWindow(reached=40, blocked=4, opt_outs=3), "blocks"),
    ],
)
def test_the_opt_out_check_pauses_past_the_rate_once_enough_people_were_reached(
    window: OptOutWindow, paused: str | None
) -> None:
    found = verdict(window, Settings(opt_out_pause_rate=0.1, opt_out_pause_min_people=20))
    assert (found[0] if found else None) == paused
